"""The dataframe backend (lidframe.dataframes): pandas here, cuDF on a GPU machine with lidframe[gpu].

Here (no GPU, no cuDF): asking for ``cudf`` is a one-line ConfigError naming the setting and the
install extra, before any work; ``auto`` resolves to pandas. On the GPU machine (``gpu`` tests,
skipped without cuDF): frames are cuDF / dask-cuDF, and a run with ``backend="cudf"`` gives the same
results as one with pandas.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.cli import build_parser
from lidframe.columns import column_alias
from lidframe.dataframes import cudf_imports, local_backend, resolve_backend
from lidframe.errors import ConfigError
from lidframe.eval import _metrics as metrics
from lidframe.job import RunConfig
from lidframe.testing import make_corpus
from tests.fixtures.paths import ECAPA_DIR

ECAPA = f"speechbrain:{ECAPA_DIR}"
no_cudf = pytest.mark.skipif(cudf_imports(), reason="cuDF imports here")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backend")
    df = make_corpus(root, languages=["en", "de", "es"], per_language=1, seed=3)
    path = root / "manifest.csv"
    df.to_csv(path, index=False)
    return path


@no_cudf
def test_cudf_without_cudf_is_a_one_line_config_error(manifest, tmp_path):
    with pytest.raises(ConfigError) as caught:
        resolve_backend("cudf", gpus=True)
    message = str(caught.value)
    assert "backend 'cudf'" in message and "pip install 'lidframe[gpu]'" in message
    assert "\n" not in message
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"backend 'cudf'.*lidframe\[gpu\]"):
        lidframe.run(manifest, out, ["whisper-base"], backend="cudf", progress=False)
    assert not out.exists()  # before any work
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "run", str(manifest), "--out", str(out),
         "--backend", "cudf", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "backend 'cudf'" in lines[0] and "lidframe[gpu]" in lines[0]


@no_cudf
def test_auto_resolves_to_pandas_here(manifest):
    assert local_backend("auto") == "pandas"
    assert resolve_backend("auto", gpus=True) == "pandas"  # a GPU alone is not enough
    assert resolve_backend("auto", gpus=False) == "pandas"
    with dask.config.set(scheduler="synchronous"):
        ddf = lidframe.read_manifest(manifest, partition_rows=2)
        assert type(ddf._meta) is pd.DataFrame
        result = lidframe.identify(ddf, ["whisper-base"], device="cpu")
        assert type(result._meta) is pd.DataFrame
        assert type(ddf.get_partition(0).compute()) is pd.DataFrame
    assert RunConfig().backend == "auto"
    assert "backend" not in RunConfig().identity()  # the backend never changes results


def test_bad_backend_values():
    with pytest.raises(ConfigError, match="backend must be one of pandas, cudf, auto, got 'gpu'"):
        RunConfig(backend="gpu")
    with pytest.raises(ConfigError, match="backend must be one of"):
        resolve_backend("GPU", gpus=False)
    parser = build_parser()
    args = parser.parse_args(["run", "m.csv", "--out", "x", "--backend", "pandas"])
    assert args.backend == "pandas"
    assert parser.parse_args(["run", "m.csv", "--out", "x"]).backend == "auto"


@pytest.fixture(scope="module")
def cudf():
    """The cudf module; the test skips where it does not import (no GPU, no lidframe[gpu])."""
    pytest.importorskip("dask_cudf")
    return pytest.importorskip("cudf")


@pytest.mark.gpu
def test_cudf_manifest_identify_and_consensus_frames(cudf, manifest):
    with dask.config.set(scheduler="synchronous"):
        ddf = lidframe.read_manifest(manifest, partition_rows=2, backend="cudf")
        assert type(ddf._meta).__module__.startswith("cudf")
        result = lidframe.identify(ddf, ["whisper-base", ECAPA], backend="cudf")
        decided = lidframe.consensus(result, policy="weighted").compute()
        host = lidframe.identify(
            lidframe.read_manifest(manifest, partition_rows=2, backend="pandas"),
            ["whisper-base", ECAPA],
            backend="pandas",
        )
        want = lidframe.consensus(host, policy="weighted").compute()
    assert type(decided).__module__.startswith("cudf")
    got = decided.to_pandas()
    assert got["lang"].tolist() == want["lang"].tolist()
    assert got["consensus_method"].tolist() == want["consensus_method"].tolist()
    assert np.allclose(got["consensus_prob"], want["consensus_prob"], atol=1e-6)


@pytest.mark.gpu
def test_run_with_the_cudf_backend_gives_the_pandas_results(cudf, manifest, tmp_path):
    models = ["whisper-base", ECAPA]
    frames = {}
    for backend in ("pandas", "cudf"):
        out = tmp_path / backend
        summary = lidframe.run(
            manifest, out, models, backend=backend, workers=1, partition_rows=2, progress=False
        )
        assert summary.ok and summary.rows == 3
        frames[backend] = lidframe.read_results(str(out), backend="pandas").compute()
        if backend == "cudf":
            on_gpu = lidframe.read_results(str(out), backend="cudf")
            assert type(on_gpu._meta).__module__.startswith("cudf")
    a, b = (frames[k].sort_values("id").reset_index(drop=True) for k in ("pandas", "cudf"))
    for column in ("lang", "agree", "n_agree", "consensus_method", f"{column_alias(ECAPA)}_lang"):
        assert a[column].tolist() == b[column].tolist(), column
    assert np.allclose(a["consensus_prob"], b["consensus_prob"], atol=1e-6)


@pytest.mark.gpu
def test_evaluation_counts_on_cudf_equal_pandas(cudf):
    rng = np.random.default_rng(0)
    langs = np.array(["de", "en", "fr", "no", "sv"], dtype=object)
    pairs = pd.DataFrame({"truth": rng.choice(langs, 500), "predicted": rng.choice(langs, 500)})
    on_gpu = cudf.from_pandas(pairs)
    want = metrics.per_language_frame(pairs)
    got = metrics.per_language_frame(on_gpu).to_pandas()
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_index_type=False)
    want = metrics.confusions_frame(pairs, top=50)
    got = metrics.confusions_frame(on_gpu, top=50).to_pandas()
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert metrics.accuracy_frame(on_gpu) == pytest.approx(metrics.accuracy_frame(pairs))
    assert lidframe.evaluate(
        on_gpu.assign(label=on_gpu["truth"], m_lang=on_gpu["predicted"]).drop(
            columns=["truth", "predicted"]
        ),
        models=["m"],
    )["m"].accuracy == pytest.approx(metrics.accuracy_frame(pairs))
