"""examples/batch/nightly.sh: a scheduled job that resumes, and acts on lidframe's exit statuses.

The script runs as cron or systemd would run it (``bash nightly.sh MANIFEST OUT flags...``), with
``LIDFRAME`` pointing at this interpreter's ``python -m lidframe.cli``. Resuming is read from the
job database the runs share (``OUT/_lidframe.sqlite``): a partition done by the first run keeps its
lease token, attempts and finish time through the second. Real whisper-base weights where the
answers matter; elsewhere small model families installed the way a user's would be (an entry
point in a ``.dist-info`` folder on ``PYTHONPATH``, which the job's worker processes inherit): one
that always fails (a partial failure) and one that takes a second per pass (time to interrupt).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from lidframe.testing import make_corpus, write_wav
from tests.fixtures.paths import EXAMPLES

pytestmark = pytest.mark.timeout(300)

SCRIPT = EXAMPLES / "batch" / "nightly.sh"

FAMILIES = textwrap.dedent('''
    """Test families for the nightly example: ``broken`` fails every pass, ``sleepy`` takes 1 s."""
    import time

    import torch

    from lidframe.models import LidModel


    class Broken(LidModel):
        labels = ("en", "de")

        def forward(self, batch):
            raise RuntimeError("this model always fails")


    class Sleepy(LidModel):
        labels = ("en", "de")

        def forward(self, batch):
            time.sleep(1.0)
            return torch.tensor([[0.75, 0.25]] * len(batch.lengths))
''')


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> Path:
    """A folder to put on PYTHONPATH that holds the families and their entry points."""
    site = tmp_path_factory.mktemp("families")
    (site / "nightly_families.py").write_text(FAMILIES)
    info = site / "nightly_families-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nightly-families\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lidframe.models]\nbroken = nightly_families:Broken\nsleepy = nightly_families:Sleepy\n"
    )
    return site


def _env(site: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LIDFRAME_DB"}
    path = [str(site)] if site is not None else []
    env["PYTHONPATH"] = os.pathsep.join([*path, *filter(None, [env.get("PYTHONPATH")])])
    env["LIDFRAME"] = f"{sys.executable} -m lidframe.cli"
    env["NIGHTLY_RETRY_DELAY"] = "1"
    return env


def _nightly(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=280
    )


def _partitions(out: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{out / '_lidframe.sqlite'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(
            "SELECT partition, state, attempts, lease_token, finished_at FROM lidframe_partitions "
            "ORDER BY partition"
        ).fetchall()


def _noise_manifest(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(2)
    entries = []
    for i in range(rows):
        write_wav(folder / f"n{i}.wav", 0.5 * np.sign(rng.standard_normal(4000)), 16_000)
        entries.append({"id": f"n{i:02d}", "audio": str(folder / f"n{i}.wav")})
    pd.DataFrame(entries).to_csv(folder / "noise.csv", index=False)
    return folder / "noise.csv"


def _runs(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("nightly: run ")]


@pytest.mark.slow
def test_a_rerun_resumes_the_finished_job_and_rows_without_audio_are_alerted(tmp_path):
    corpus = make_corpus(tmp_path / "clips", languages=["en", "de"], per_language=1, seed=11)
    rows = [*corpus.to_dict("records"), {"id": "gone", "audio": "missing.wav", "label": "en"}]
    manifest = tmp_path / "clips" / "tonight.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = tmp_path / "lid" / "tonight"
    flags = ["--models", "whisper-base", "--partition-rows", "2", "--workers", "1"]

    first = _nightly(manifest, out, *flags, env=_env())
    assert first.returncode == 0, first.stderr
    assert "lidframe: 3 rows in 2 partitions, 1 errors" in first.stdout
    alerts = [line for line in first.stderr.splitlines() if "ALERT" in line]
    assert alerts == [
        "nightly: ALERT: job lid-nightly-tonight finished with 1 row(s) that have no answer "
        f"(not_found 1); see their 'error' column in {out}"
    ]
    done = _partitions(out)
    assert [(p, state, attempts) for p, state, attempts, _, _ in done] == [
        (0, "done", 1),
        (1, "done", 1),
    ]
    parts = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert len(parts) == 2
    answers = pd.read_parquet(out).set_index("id")
    assert answers.loc["gone", "error"].startswith("not_found: ")
    spoken = answers.loc[corpus["id"]]
    assert spoken["error"].isna().all() and spoken["whisper_base_lang"].str.len().eq(2).all()

    again = _nightly(manifest, out, *flags, env=_env())
    assert again.returncode == 0, again.stderr
    assert "0 partitions done by this run, 2 already done" in again.stdout
    assert _partitions(out) == done  # same lease tokens, attempts and finish times: nothing redone
    assert {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == parts
    assert len(_runs(again.stderr)) == 1


def test_a_configuration_error_is_alerted_and_not_retried(tmp_path):
    proc = _nightly(tmp_path / "no-such-manifest.csv", tmp_path / "out", env=_env())
    assert proc.returncode == 2
    assert "lidframe: error: " in proc.stderr and "no-such-manifest.csv" in proc.stderr
    assert "nightly: ALERT: job lid-nightly-out: configuration error (exit 2)" in proc.stderr
    assert len(_runs(proc.stderr)) == 1


@pytest.mark.slow
def test_a_partial_failure_is_alerted_and_not_retried(tmp_path, families):
    manifest = _noise_manifest(tmp_path, 2)
    proc = _nightly(
        manifest, tmp_path / "out", "--models", "broken:x", "--no-vad", "--max-attempts", "1",
        "--workers", "1", env=_env(families),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "finished with 1 dead partition(s)" in proc.stderr
    assert "nightly: ALERT: job lid-nightly-out: partial failure (exit 1)" in proc.stderr
    assert len(_runs(proc.stderr)) == 1
    assert [state for _, state, *_ in _partitions(tmp_path / "out")] == ["dead"]


@pytest.mark.slow
def test_an_interrupted_run_is_run_again_and_resumes(tmp_path, families):
    manifest = _noise_manifest(tmp_path, 8)
    out = tmp_path / "out"
    script = subprocess.Popen(
        [
            "bash", str(SCRIPT), str(manifest), str(out), "--models", "sleepy:x", "--no-vad",
            "--partition-rows", "2", "--workers", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(families),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        before: list[tuple] = []
        while not before:  # until the first run has finished a partition
            assert script.poll() is None, script.communicate()
            assert time.monotonic() < deadline, "no partition was done"
            time.sleep(0.2)
            if (out / "_lidframe.sqlite").exists():
                with_state = _try_partitions(out)
                before = [p for p in with_state if p[1] == "done"]
        (lidframe,) = psutil.Process(script.pid).children()
        lidframe.send_signal(signal.SIGTERM)  # the run, not the script: a preemption, a kill
        stdout, stderr = script.communicate(timeout=240)
    finally:
        if script.poll() is None:
            script.kill()
    assert script.returncode == 0, stderr
    assert "nightly: job lid-nightly-out interrupted (exit 143); resuming in 1 s" in stderr
    assert len(_runs(stderr)) == 2 and "ALERT" not in stderr
    after = {p[0]: p for p in _partitions(out)}
    assert [p[1] for p in after.values()] == ["done"] * 4
    for kept in before:  # done before the interrupt: not done again
        assert after[kept[0]] == kept
    assert "lidframe: 8 rows in 4 partitions, 0 errors" in stdout


def _try_partitions(out: Path) -> list[tuple]:
    """The partitions, or none while the database is being created."""
    try:
        return _partitions(out)
    except sqlite3.OperationalError:
        return []
