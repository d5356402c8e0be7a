"""A model family from outside lidframe, end to end: ``examples/custom_model`` is built and installed
(pip, from a copy, into a temporary ``--target``), and only its entry point tells lidframe about it.

Every command runs in a child process whose ``PYTHONPATH`` holds that target, as a user's
environment would; the job's worker processes inherit it and find the family there themselves. The
family runs beside real whisper-base weights, so the run has a consensus; its label set (``en, de,
fr``) must reach the Parquet metadata and the job database, so that evaluation counts the Spanish
rows apart for it (a language it cannot answer) instead of as its mistakes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.store import open_store
from lidframe.testing import make_corpus
from tests.fixtures.paths import EXAMPLES

EXAMPLE = EXAMPLES / "custom_model"
FAMILY_MODEL = "bands:en+de+fr"
ALIAS = "bands_en_de_fr"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package installed by pip into a folder of its own (no network, no deps)."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
            "--no-index", "--target", str(target), str(source),
        ],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (target / "lidframe_bands" / "__init__.py").is_file()
    return target


def _lidframe(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # the plugin's folder first, then the caller's path (the lidframe under test)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def test_lidframe_models_lists_the_installed_family(site, tmp_path):
    proc = _lidframe(site, "models", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("bands:SOURCE"))
    assert line.split(None, 1)[1] == "entry point lidframe-bands 0.1.0"
    assert "whisper-base" in proc.stdout.split()


@pytest.mark.slow
def test_installed_family_runs_with_whisper_through_eval_db_and_report(site, tmp_path):
    corpus = make_corpus(tmp_path / "clips", languages=["en", "de", "es"], per_language=2, seed=3)
    corpus["audio"] = [str(tmp_path / "clips" / a) for a in corpus["audio"]]
    corpus.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "out"

    run = _lidframe(
        site, "run", str(tmp_path / "manifest.csv"), "--out", str(out),
        "--models", f"whisper-base,{FAMILY_MODEL}", "--workers", "1", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr

    df = pd.read_parquet(out)
    assert len(df) == 6 and df["error"].isna().all()
    assert set(df[f"{ALIAS}_lang"]) <= {"en", "de", "fr"}
    assert (df["consensus_method"] == "majority[2/2]").all()
    labels = _recorded_labels(out)
    assert labels[ALIAS] == ("en", "de", "fr") and len(labels["whisper_base"]) == 99
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        (job,) = store.jobs()
        record = store.job(job["job_id"])
    assert record is not None and record["labels"][ALIAS] == ["en", "de", "fr"]

    # Evaluation needs no plugin: the label sets come with the results.
    ev = lidframe.evaluate(out)
    assert ev.sources[ALIAS].unsupported == 2  # the two Spanish rows
    assert ev.sources[ALIAS].scored == 4
    assert ev.sources["whisper_base"].unsupported == 0
    proc = _lidframe(site, "eval", str(out), "--no-save", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ALIAS in proc.stdout

    report = tmp_path / "report.html"
    proc = _lidframe(site, "report", str(out), "--html", str(report), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ALIAS in report.read_text()


def test_a_family_registered_in_this_process_reaches_the_workers(tmp_path):
    """``register_family`` in a notebook: the job carries the factory to worker processes."""

    class Loud(LidModel):  # defined here, so only this process knows it
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de", "it")

        def forward(self, batch):  # type: ignore[no-untyped-def]
            import torch

            loud = (batch.values.abs() * batch.mask).sum(-1) / batch.lengths
            return torch.stack([loud, 1 - loud, torch.zeros_like(loud)], -1).clamp(0, 1)

    def factory(spec: ModelSpec) -> LidModel:
        return Loud(spec)

    register_family("loud", factory)
    rng = np.random.default_rng(0)
    rows = []
    for i, level in enumerate([0.9, 0.1, 0.8]):
        path = tmp_path / f"c{i}.wav"
        lidframe.testing.write_wav(path, (level * np.sign(rng.standard_normal(8000))), 16_000)
        rows.append({"id": f"c{i}", "audio": str(path)})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    summary = lidframe.run(
        tmp_path / "m.csv",
        tmp_path / "out",
        ["loud:x"],
        workers=1,
        progress=False,
        speech=lidframe.SpeechConfig(vad=False),  # the clips are noise of three loudnesses
    )
    assert summary.ok
    df = pd.read_parquet(tmp_path / "out").sort_values("id")
    assert df["loud_x_lang"].tolist() == ["en", "de", "en"]
    assert _recorded_labels(tmp_path / "out") == {"loud_x": ("en", "de", "it")}


def _recorded_labels(out: Path) -> dict[str, tuple[str, ...]]:
    """Each model's label set as the run recorded it in its parts' provenance."""
    models = lidframe.read_provenance(str(out))["models"]
    return {alias: tuple(model["labels"]) for alias, model in models.items()}
