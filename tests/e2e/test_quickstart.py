"""examples/quickstart.ipynb, executed as Jupyter would: nbclient, a real ipykernel, every cell.

The notebook and the demo clips are copied to a temporary folder (the notebook writes its results
beside itself); its ``parameters`` cell is set to one clip per language (12 clips) to keep the run
short. The kernel is this interpreter (``tests/fixtures/kernels.py``), so it sees the lidframe under
test and no user's kernels. The
notebook starts its own ``LocalCluster`` and runs the real whisper-base weights.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.fixtures.paths import EXAMPLES

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = EXAMPLES / "quickstart.ipynb"


def _tagged(nb, tag: str):
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def _text(cell) -> str:
    """A cell's stream and text/plain outputs, joined."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert _tagged(nb, "parameters").source.splitlines()[2] == "PER_LANGUAGE = None"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quickstart_notebook_runs_from_manifest_to_duckdb(tmp_path, jupyter_kernel):
    work = tmp_path / "examples"
    work.mkdir()
    shutil.copytree(EXAMPLES / "demo", work / "demo")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _tagged(nb, "parameters").source = 'PER_LANGUAGE = 1\nRESULTS = "quickstart-results"'

    client = nbclient.NotebookClient(
        nb,
        kernel_name=jupyter_kernel,
        timeout=540,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError naming the cell if any cell fails

    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    labels = pd.read_csv(EXAMPLES / "demo" / "manifest.csv")["label"]
    rows = labels.nunique()  # one clip per label
    assert rows == 13  # 12 languages, and 'und' (a real recording of monkeys)
    assert f"lidframe: {rows} rows in 2 partitions, 0 errors" in _text(_tagged(nb, "run"))
    assert f"rows in the results: {rows}" in _text(_tagged(nb, "duckdb-count"))
    plots = [o for o in _tagged(nb, "plots").outputs if "image/png" in o.get("data", {})]
    assert len(plots) == 1
    confusions = _tagged(nb, "duckdb-confusions")
    assert "text/html" in confusions.outputs[0].data and "mean_prob" in _text(confusions)
    head = _text(_tagged(nb, "head"))
    assert "whisper_base_lang" in head and len(head.splitlines()) == 6  # header and 5 rows
    assert (work / "quickstart-results" / "part-00000.parquet").is_file()
