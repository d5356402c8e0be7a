"""lidframe in a notebook: the user's Dask client, the dashboard link, the progress bar, rich display.

Real clusters of real worker processes, made the way a notebook makes them (``Client(LocalCluster(...))``,
which sets itself as Dask's default client), and real jobs with a small test model family
(``loudness`` of tests/test_gpu_workers.py). A Jupyter kernel is not started here: the progress-bar
test puts tqdm's kernel marker into a fresh interpreter instead (see its docstring).
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

import lidframe
from lidframe.cluster import active_client, connect, dashboard_link
from lidframe.errors import ConfigError
from lidframe.job import RunSummary
from lidframe.models.registry import load_count
from tests.fixtures.models import loudness_manifest as _labelled_manifest
from tests.fixtures.models import register_loudness

pytestmark = pytest.mark.timeout(300)

MODEL = "loudness:x"
COMMON = {
    "partition_rows": 2,
    "db": False,
    "speech": lidframe.SpeechConfig(vad=False),  # the clips are noise of two loudnesses
}


def _manifest(tmp_path: Path, rows: int = 6) -> Path:
    return _labelled_manifest(tmp_path, rows, labels=True)


class _NewChildren:
    """Direct child processes of this process that appear while the block runs (a cluster that
    lidframe started would show as its nanny processes)."""

    def __enter__(self) -> _NewChildren:
        self._me = psutil.Process()
        self._before = {p.pid for p in self._me.children()}
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.seen |= {p.pid for p in self._me.children()} - self._before

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_run_uses_the_notebooks_client_leaves_it_open_and_starts_no_second_cluster(
    tmp_path, local_cluster, capfd
):
    register_loudness()
    manifest = _manifest(tmp_path)
    notebook = local_cluster(1)  # Client(LocalCluster(n_workers=1, processes=True)): the default
    assert active_client() is notebook.client
    (worker_pid,) = notebook.client.run(lambda: __import__("os").getpid()).values()
    with warnings.catch_warnings(record=True) as caught, _NewChildren() as children:
        warnings.simplefilter("always")
        summary = lidframe.run(manifest, tmp_path / "out", [MODEL], progress=True, **COMMON)
    assert summary.ok and summary.rows == 6, summary
    assert children.seen == set()  # no nanny, no worker of a second cluster
    (loads,) = notebook.client.run(load_count).values()
    assert loads == {f"{MODEL}@cpu/float32": 1}  # the job ran on the notebook's worker
    assert notebook.client.status == "running"  # the user's client is left open...
    assert notebook.client.submit(sum, [1, 2]).result() == 3  # ...and works
    assert list(notebook.client.run(lambda: __import__("os").getpid()).values()) == [worker_pid]
    assert not [w for w in caught if issubclass(w.category, Warning) and "tqdm" in str(w.filename)]
    assert not [w for w in caught if "IProgress" in str(w.message)]
    err = capfd.readouterr().err
    assert f"lidframe {summary.job_id}" in err  # the progress bar, as text outside Jupyter
    link = notebook.client.dashboard_link
    assert [line for line in err.splitlines() if "dashboard" in line] == [
        f"lidframe: dashboard: {link}"
    ]

    # the summary: readable text, and a table in Jupyter
    assert repr(summary) == str(summary) and not repr(summary).startswith("RunSummary(")
    table = summary._repr_html_()
    assert table.startswith("<table>") and "lidframe run: ok" in table
    for shown in (summary.job_id, "6 in 3 partitions", "2 languages: ", "none kept"):
        assert shown in table, (shown, table)
    assert "en 3" in table and "de 3" in table and str(tmp_path / "out") in table

    # the evaluation of the results (their own label column): text and HTML, not field dumps
    ev = lidframe.evaluate(tmp_path / "out")
    source = ev["loudness_x"]
    assert repr(ev) == str(ev) and "DataFrame" not in repr(ev) and "Evaluation(" not in repr(ev)
    assert "6 labelled rows of 6" in repr(ev)
    assert repr(source).startswith("loudness_x: labelled 6,") and "accuracy 1.000" in repr(source)
    assert "\n" not in repr(source)
    assert "<table" in ev._repr_html_() and "loudness_x: per language" in ev._repr_html_()
    page = source._repr_html_()
    assert "lidframe evaluation of loudness_x" in page and "per language" in page


def test_an_explicit_client_wins_over_the_default_and_excludes_a_scheduler(tmp_path, local_cluster):
    register_loudness()
    manifest = _manifest(tmp_path)
    mine = local_cluster(1)
    default = local_cluster(1)  # made last: Dask's default client
    assert active_client() is default.client
    summary = lidframe.run(
        manifest, tmp_path / "out", [MODEL], client=mine.client, progress=False, **COMMON
    )
    assert summary.ok and summary.rows == 6
    assert list(mine.client.run(load_count).values()) == [{f"{MODEL}@cpu/float32": 1}]
    assert list(default.client.run(load_count).values()) == [{}]
    assert mine.client.status == "running" and default.client.status == "running"
    with pytest.raises(ConfigError, match="a client or a scheduler address, not both"):
        lidframe.run(
            manifest,
            tmp_path / "again",
            [MODEL],
            client=mine.client,
            scheduler=default.address,
            progress=False,
            **COMMON,
        )


def test_a_cluster_started_for_the_job_is_closed_and_is_nobodys_default_after():
    assert active_client() is None
    with connect(workers=1) as client:
        assert active_client() is client
    assert client.status == "closed" and active_client() is None


def test_a_started_cluster_serves_its_dashboard_on_a_free_port_without_port_warnings(
    tmp_path, capfd, caplog
):
    """Not on Dask's default 8787 (which another process may hold: Dask would warn and move), and
    its link printed once per use (here connect's own, then the job's, which reuses the client)."""
    register_loudness()
    manifest = _manifest(tmp_path, 2)
    with (
        caplog.at_level(logging.WARNING, logger="distributed"),
        connect(workers=1, verbose=True, announce=True, dashboard=True) as client,
    ):
        link = dashboard_link(client)
        summary = lidframe.run(manifest, tmp_path / "out", [MODEL], progress=True, **COMMON)
        quiet = lidframe.run(manifest, tmp_path / "out2", [MODEL], progress=False, **COMMON)
    assert summary.ok and quiet.ok
    assert link is not None and urlsplit(link).hostname == "127.0.0.1"
    assert urlsplit(link).port != 8787  # a free port, not Dask's default (taken or not)
    assert not [r for r in caplog.records if "already in use" in r.getMessage()]
    lines = [line for line in capfd.readouterr().err.splitlines() if "dashboard" in line]
    assert lines == [f"lidframe: dashboard: {link}"] * 2


JUPYTER_KERNEL_WITHOUT_IPYWIDGETS = """
import sys, types, warnings
# What tqdm.autonotebook looks for to tell a Jupyter kernel: ipykernel's shell module loaded,
# IPython's get_ipython() giving a ZMQInteractiveShell.
class ZMQInteractiveShell:
    pass
ipython = types.ModuleType("IPython")
ipython.get_ipython = ZMQInteractiveShell
sys.modules["IPython"] = ipython
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
warnings.simplefilter("always")  # every warning shows on stderr (an error would be swallowed)
"""


@pytest.mark.skipif(
    importlib.util.find_spec("ipywidgets") is not None, reason="ipywidgets is installed"
)
def test_in_a_jupyter_kernel_without_ipywidgets_the_bar_is_text_and_nothing_warns():
    """A fresh interpreter that tqdm takes for a Jupyter kernel (its two markers put in place,
    since no kernel runs here): ``tqdm.auto`` warns IProgress not found there, lidframe's bar
    does not, and is tqdm's text bar."""
    plain = JUPYTER_KERNEL_WITHOUT_IPYWIDGETS + "import tqdm.auto\n"
    proc = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True)
    assert proc.returncode == 0 and "TqdmWarning: IProgress not found" in proc.stderr
    ours = JUPYTER_KERNEL_WITHOUT_IPYWIDGETS + textwrap.dedent("""
        import tqdm.std
        from lidframe.job._progress import bar_class, progress_bar, set_total
        bar = progress_bar(total=None, unit="part", file=sys.stderr, desc="job")
        bar.update(2)
        set_total(bar, 3)
        bar.update(1)
        bar.close()
        assert bar_class() is tqdm.std.tqdm, bar_class()
    """)
    proc = subprocess.run([sys.executable, "-c", ours], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    assert "job: 100%" in proc.stderr and "3/3" in proc.stderr


def test_run_summary_html_escapes_and_counts_errors():
    summary = RunSummary(out="<out>", partitions=1, rows=3, errors=2, status="finished_with_dead")
    summary.error_categories.update({"decode_failed": 2})
    table = summary._repr_html_()
    assert "&lt;out&gt;" in table and "<out>" not in table
    assert "2: decode_failed 2" in table and "lidframe run: finished_with_dead" in table


LIVE_TABLE_SETUP = """
import sys
sys.path.insert(0, {root!r})  # tests.fixtures, beside the lidframe under test
from pathlib import Path
from distributed import Client
import lidframe
import lidframe.job._progress
from tests.fixtures.models import loudness_manifest, register_loudness

lidframe.job._progress.TABLE_EVERY_S = 0  # every commit updates the table, however fast
register_loudness()
client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
manifest = loudness_manifest(Path({work!r}), 8, labels=True)
"""
LIVE_TABLE_RUN = """
summary = lidframe.run(
    manifest, {out!r}, ["{model}"], partition_rows=2, db=False,
    speech=lidframe.SpeechConfig(vad=False),
)
"""


@pytest.mark.slow  # a kernel and a cluster in it: about 17 s
def test_in_jupyter_the_behaviour_is_a_live_table_updated_in_place(tmp_path, jupyter_kernel):
    """A notebook executed by nbclient in a real ipykernel: ``lidframe.run`` shows one table under
    its bar (language mix, und and error rates, expected and measured accuracy), updated in place
    (Jupyter's ``update_display_data``) as partitions commit; the cell keeps one table, its last."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from tests.fixtures.paths import ROOT

    updates: list[str] = []

    class Recording(nbclient.NotebookClient):  # type: ignore[misc]
        def process_message(self, msg, cell, cell_index):  # type: ignore[no-untyped-def]
            if msg["msg_type"] == "update_display_data":
                updates.append(msg["content"]["data"]["text/plain"])
            return super().process_message(msg, cell, cell_index)

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(LIVE_TABLE_SETUP.format(root=str(ROOT), work=str(tmp_path))),
        nbformat.v4.new_code_cell(LIVE_TABLE_RUN.format(out=str(tmp_path / "out"), model=MODEL)),
        nbformat.v4.new_code_cell("print(summary.job_id, summary.ok)"),
    ]
    Recording(nb, kernel_name=jupyter_kernel, timeout=240).execute()

    run = nb.cells[1]
    tables = [o for o in run.outputs if o.output_type == "display_data"]
    assert len(tables) == 1, run.outputs  # one table, updated in place, not one per commit
    job, ok = nb.cells[2].outputs[0].text.split()
    assert ok == "True"
    page, text = tables[0].data["text/html"], tables[0].data["text/plain"]
    assert text == updates[-1]  # the cell holds the last update
    assert text.startswith(f"lidframe {job}: 4 of 4 partitions, 8 rows: ")
    assert "de 50%, en 50%" in text and "und 0.0%" in text and "errors 0.0%" in text
    assert page.startswith("<table><caption>") and f"lidframe {job}: 4 of 4 partitions" in page
    for name, value in (
        ("languages", "de 50%, en 50%"), ("und", "0.0%"), ("row errors", "0.0%"),
        ("measured accuracy", "1.000 (8 labelled)"),
    ):  # fmt: skip
        assert f'>{name}</th><td style="text-align:left">{value}</td>' in page, (name, page)
    assert ">expected accuracy</th>" in page
    # shown before the first commit, then after each of the four, then once more at the end
    rows = [int(u.split(", ", 1)[1].split(" rows", 1)[0]) for u in updates]
    assert rows == sorted(rows) and rows[-1] == 8 and len(set(rows)) == 4, updates
    assert "lidframe " + job in "".join(o.get("text", "") for o in run.outputs)  # the bar too
