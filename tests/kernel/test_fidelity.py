"""Half precision checked against float32 (lidframe.kernel._fidelity): real whisper-base, espeak-ng speech.

bfloat16 and float16 run on the CPU in torch, so the check's figures, a job's fallback to float32
and ``lidframe check`` are tested here on the CPU; the agreement a GPU must reach is the one test
that needs CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import lidframe
from lidframe.errors import ConfigError, ModelError
from lidframe.job import CPU_HALF_ROWS, RunConfig
from lidframe.kernel import check_fidelity, fidelity_lines
from lidframe.models import parse_model
from lidframe.models.base import native_cpu_bfloat16, resolve_dtype
from lidframe.models.registry import load_model, resolved_spec
from lidframe.store import open_store
from lidframe.testing import make_corpus, write_wav
from tests.fixtures.clusters import start_local_cluster

LANGS = ("en", "de", "es", "fr", "it")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """A missing file and a silent clip, then one spoken clip in each of five languages."""
    root = tmp_path_factory.mktemp("fidelity")
    clips = make_corpus(root, LANGS, per_language=1)
    write_wav(root / "quiet.wav", np.zeros(2 * 16_000, np.float32))
    rows = pd.concat(
        [pd.DataFrame({"audio": ["gone.wav", "quiet.wav"], "label": ["en", "en"]}), clips]
    )
    rows[["audio", "label"]].to_csv(root / "m.csv", index=False)
    return root / "m.csv"


def test_auto_resolves_per_device_and_family_and_every_dtype_is_one_job():
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert resolve_dtype("auto", "cuda", half_precision=False) == "float32"
    assert parse_model("whisper-base", dtype="bf16").dtype == "bfloat16"
    assert resolved_spec(parse_model("whisper-base", device="cpu")).dtype == "float32"  # auto
    # SpeechBrain runs in float32 only: auto gives it float32 even where a GPU would run half.
    ecapa = parse_model("voxlingua107-ecapa", device="cpu")
    assert resolved_spec(ecapa).dtype == "float32"
    # A large job on a CPU with native bfloat16: bfloat16 for Whisper, which measured it; never
    # for a family that did not, and never on a CPU that emulates it.
    native = "bfloat16" if native_cpu_bfloat16() else "float32"
    assert resolve_dtype("auto", "cpu", cpu_half=True) == native
    assert resolve_dtype("auto", "cpu", half_precision=False, cpu_half=True) == "float32"
    assert resolve_dtype("float32", "cpu", cpu_half=True) == "float32"
    whisper = parse_model("whisper-base", device="cpu", dtype="auto")
    assert resolved_spec(whisper, cpu_half=True).dtype == native
    assert resolved_spec(whisper).dtype == "float32"
    assert resolved_spec(replace(ecapa, dtype="auto"), cpu_half=True).dtype == "float32"
    with pytest.raises(ConfigError, match="dtype must be one of auto, float32"):
        parse_model("whisper-base", dtype="int4")
    # half precision runs only once checked against float32: the job id does not depend on it
    ids = {json.dumps(RunConfig(dtype=d).identity()) for d in ("auto", "float32", "bfloat16")}
    assert len(ids) == 1 and '"dtype": "float32"' in ids.pop()


@pytest.mark.slow
def test_figures_are_real_and_float32_against_itself_is_exact(manifest):
    spec = parse_model("whisper-base", device="cpu")
    half = check_fidelity(manifest, [spec], "bfloat16", clips=5)
    same = check_fidelity(manifest, [spec], "float32", clips=5)
    # the missing file and the silent clip are read but not compared
    assert half.rows_read == same.rows_read == 7
    (h,) = half.models
    (s,) = same.models
    assert (h.alias, h.dtype, h.device, h.clips, h.failed) == (
        "whisper_base", "bfloat16", "cpu", 5, 0,
    )  # fmt: skip
    assert 0.0 <= h.agreement <= 1.0 and h.passed == (h.agreement >= 0.95)
    assert 0.0 < h.max_diff < 1.0  # bfloat16 moves probabilities, a little
    assert (s.agreement, s.max_diff, s.passed) == (1.0, 0.0, True)
    line = fidelity_lines(half.record())[0]
    assert line.startswith("fidelity whisper_base: bfloat16 vs float32 on cpu, 5 clips: top-1")


@pytest.fixture(scope="module")
def scheduler():
    with start_local_cluster(1, env={"OMP_NUM_THREADS": "1"}) as cluster:
        yield cluster.address


@pytest.mark.slow
def test_a_failed_check_runs_the_job_in_float32_and_is_stored(manifest, tmp_path, scheduler, capfd):
    out = tmp_path / "out"
    settings = dict(scheduler=scheduler, device="cpu", progress=False, fidelity_clips=3)
    summary = lidframe.run(
        manifest, out, dtype="bfloat16", fidelity_threshold=1.01, **settings
    )  # a threshold above 1 no agreement reaches
    assert summary.ok and summary.rows == 7
    said = capfd.readouterr().err
    assert "fidelity whisper_base: bfloat16 vs float32 on cpu, 3 clips" in said
    assert "the job runs in float32" in said and "the job runs in float32" in str(summary)
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        stored = store.job(summary.job_id)["fidelity"]
    assert stored == summary.fidelity
    assert stored["fallback"] is True and stored["passed"] is False
    assert stored["job_dtypes"] == {"whisper_base": "float32"}
    (model,) = stored["models"]
    assert model["clips"] == 3 and model["max_diff"] > 0 and 0 <= model["agreement"] <= 1
    part = next(out.glob("part-*.parquet"))
    provenance = json.loads(pq.read_metadata(part).metadata[b"lidframe"])
    assert provenance["dtypes"] == {"whisper_base": "float32"}  # what the workers ran

    # The same job asked in float32 is the same job (the check made bfloat16 its stand-in).
    again = lidframe.run(manifest, out, dtype="float32", **settings)
    assert again.job_id == summary.job_id and again.committed == 0 and again.fidelity is None


@pytest.mark.slow
def test_a_passed_check_runs_the_job_in_half_precision(manifest, tmp_path, scheduler):
    out = tmp_path / "out"
    summary = lidframe.run(
        manifest, out, scheduler=scheduler, device="cpu", dtype="bf16", progress=False,
        fidelity_clips=3, fidelity_threshold=0.0,
    )  # fmt: skip
    assert summary.ok and summary.fidelity["passed"] and not summary.fidelity["fallback"]
    part = next(out.glob("part-*.parquet"))
    provenance = json.loads(pq.read_metadata(part).metadata[b"lidframe"])
    assert provenance["dtypes"] == {"whisper_base": "bfloat16"}
    langs = pd.read_parquet(out)["whisper_base_lang"]
    assert langs.notna().sum() == 6 and (langs == "und").sum() == 1  # five spoken, one quiet


@pytest.mark.slow
def test_auto_gives_a_large_cpu_job_bfloat16_after_its_check(manifest, tmp_path, scheduler):
    """At CPU_HALF_ROWS manifest rows (bad rows count: they are the job's rows too) ``auto`` runs
    Whisper in bfloat16 on a CPU that computes it natively, once checked; one row fewer, float32
    unchecked."""
    rows = pd.read_csv(manifest)
    rows["audio"] = [str(manifest.parent / a) for a in rows["audio"]]
    missing = [str(tmp_path / f"missing-{i}.wav") for i in range(CPU_HALF_ROWS - len(rows))]
    large = pd.concat([rows, pd.DataFrame({"audio": missing, "label": "en"})])
    assert len(large) == CPU_HALF_ROWS
    runs = {}
    for name, frame in (("large", large), ("small", large.iloc[:-1])):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        out = tmp_path / name
        summary = lidframe.run(
            tmp_path / f"{name}.csv", out, scheduler=scheduler, device="cpu", progress=False,
            fidelity_clips=3, fidelity_threshold=0.0, partition_rows=128,
        )  # fmt: skip
        part = next(out.glob("part-*.parquet"))
        provenance = json.loads(pq.read_metadata(part).metadata[b"lidframe"])
        done = pd.read_parquet(out)
        assert len(done) == len(frame) and done["whisper_base_lang"].notna().sum() == 6
        runs[name] = summary.fidelity, provenance["dtypes"]["whisper_base"]
    assert runs["small"] == (None, "float32")
    if not native_cpu_bfloat16():
        assert runs["large"] == (None, "float32")
        return
    fidelity, dtype = runs["large"]
    assert dtype == "bfloat16" and fidelity["job_dtypes"] == {"whisper_base": "bfloat16"}
    (model,) = fidelity["models"]
    assert model["dtype"] == "bfloat16" and model["clips"] == 3 and fidelity["passed"]


@pytest.mark.slow
def test_int8_runs_on_the_cpu_only_and_is_checked_like_half_precision(manifest):
    with pytest.raises(ModelError, match="int8 runs on the CPU only"):
        load_model(parse_model("whisper-base", device="cuda", dtype="int8"))
    spec = parse_model("whisper-base", device="cpu", dtype="int8")
    model = load_model(spec)
    import torch

    def plain(module: torch.nn.Module) -> list[bool]:
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        return [type(m.weight) in (torch.Tensor, torch.nn.Parameter) for m in linears]

    encoder, decoder = plain(model._model.model.encoder), plain(model._model.model.decoder)
    assert len(encoder) > 20 and not any(encoder)  # every linear layer of the encoder is int8
    assert decoder and all(decoder)  # the one decoder step stays float32
    full = load_model(replace(spec, dtype="float32"))
    exact = full._model.model.encoder.layers[0].fc1
    x = torch.randn(16, exact.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        error = (model._model.model.encoder.layers[0].fc1(x) - exact(x)).norm() / exact(x).norm()
    assert 0.0 < float(error) < 0.05  # int8 numbers, close to float32's
    assert model.weights_digest() != full.weights_digest()  # the int8 weights are hashed
    assert model.weights_digest() == model.weights_digest()
    report = check_fidelity(manifest, [replace(spec, dtype="float32")], "int8", clips=5)
    (m,) = report.models
    assert (m.dtype, m.device, m.clips, m.failed) == ("int8", "cpu", 5, 0)
    assert 0.0 < m.max_diff < 1.0 and m.passed == (m.agreement >= 0.9)


@pytest.mark.slow
def test_a_passed_check_runs_the_job_in_int8(manifest, tmp_path, scheduler):
    out = tmp_path / "out"
    summary = lidframe.run(
        manifest, out, scheduler=scheduler, device="cpu", dtype="int8", progress=False,
        fidelity_clips=3, fidelity_threshold=0.0,
    )  # fmt: skip
    assert summary.ok and summary.fidelity["passed"] and not summary.fidelity["fallback"]
    assert summary.fidelity["job_dtypes"] == {"whisper_base": "int8"}
    part = next(out.glob("part-*.parquet"))
    provenance = json.loads(pq.read_metadata(part).metadata[b"lidframe"])
    assert provenance["dtypes"] == {"whisper_base": "int8"}
    done = pd.read_parquet(out)
    assert done["whisper_base_lang"].notna().sum() == 6
    assert (done["whisper_base_lang"] == "und").sum() == 1  # five spoken, one quiet


def test_a_job_check_is_kept_with_the_earlier_ones(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        store.ensure_job(
            "j", fingerprint="f", manifest="m", manifest_digest="d", out="o", models=["x"],
            config={}, environment={}, bounds=[(0, 1)],
        )  # fmt: skip
        assert store.job("j")["fidelity"] is None
        store.record_fidelity("j", {"passed": True, "fallback": False, "models": []})
        store.record_fidelity("j", {"passed": False, "fallback": True, "models": []})
        stored = store.job("j")["fidelity"]
    assert stored["fallback"] is True
    assert stored["earlier"] == [{"passed": True, "fallback": False, "models": []}]


def _lidframe(*args):
    return subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_check_command_exit_statuses(manifest):
    common = (str(manifest), "--device", "cpu", "--clips", "2")
    passed = _lidframe("check", *common, "--dtype", "bf16", "--threshold", "0")
    assert passed.returncode == 0, passed.stderr
    assert "fidelity whisper_base: bfloat16 vs float32 on cpu, 2 clips" in passed.stdout
    assert passed.stdout.rstrip().endswith(": passed")
    failed = _lidframe("check", *common, "--dtype", "fp16", "--threshold", "1.5")
    assert failed.returncode == 1, failed.stderr
    assert "float16 vs float32" in failed.stdout and "failed (below 150%)" in failed.stdout
    for bad in (("--dtype", "int4"), ("--clips", "0"), ("--threshold", "-1")):
        proc = _lidframe("check", str(manifest), *bad)
        assert proc.returncode == 2 and proc.stderr.startswith("lidframe: error: "), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.slow
def test_bfloat16_on_a_gpu_agrees_with_float32(manifest):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    spec = parse_model("whisper-base", device="cuda")
    assert resolved_spec(replace(spec, dtype="auto")).dtype in ("bfloat16", "float16")
    (model,) = check_fidelity(manifest, [spec], "bfloat16", clips=5).models
    assert model.clips == 5 and model.device.startswith("cuda")
    assert model.agreement >= 0.995, model
