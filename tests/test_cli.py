"""The command line: a thin layer over lidframe.run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lidframe.testing import TEXTS, synthesize, write_wav


def _lidframe(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_models_lists_names(tmp_path):
    proc = _lidframe("models", cwd=tmp_path)
    assert proc.returncode == 0
    assert "whisper-base" in proc.stdout.split()


@pytest.mark.slow
def test_run_prints_summary_and_writes_parquet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the commands run in the test's folder
    synthesize(TEXTS["de"][1], "de", tmp_path / "de.wav")
    write_wav(tmp_path / "quiet.wav", np.zeros(3 * 16_000, np.float32), 16_000)
    pd.DataFrame(
        {"audio": ["de.wav", "gone.wav", "quiet.wav"], "label": ["de", "de", None]}
    ).to_csv(tmp_path / "m.csv", index=False)
    proc = _lidframe(
        "run",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 rows in 1 partitions, 1 errors" in proc.stdout
    assert "not_found 1" in proc.stdout
    df = pd.read_parquet(tmp_path / "out").set_index("audio")
    df.index = df.index.str.rsplit("/", n=1).str[-1]
    assert df.loc["de.wav", "whisper_base_lang"] == "de"
    assert df.loc["de.wav", "speech_seconds"] > 1.0
    # digital silence is no speech: und, not an error
    assert df.loc["quiet.wav", "whisper_base_lang"] == "und"
    assert pd.isna(df.loc["quiet.wav", "error"]) and df.loc["quiet.wav", "speech_seconds"] == 0
    job = next(w for w in proc.stdout.split() if w.startswith("job-"))
    assert f"job {job} finished: 1 partitions done by this run, 0 already done" in proc.stdout

    # the job's state is in the embedded database beside the results
    jobs = _lidframe("jobs", "--out", str(tmp_path / "out"))
    assert jobs.returncode == 0, jobs.stderr
    assert job in jobs.stdout and "finished" in jobs.stdout
    status = _lidframe("status", "--out", str(tmp_path / "out"))
    assert status.returncode == 0, status.stderr
    assert f"job {job}: finished" in status.stdout
    assert "partitions 1: done 1, running 0, pending 0, dead 0" in status.stdout
    assert "rows done 3/3, row errors 1" in status.stdout

    # the same command again resumes the finished job: no new work
    again = _lidframe(*proc.args[3:])
    assert again.returncode == 0, again.stderr
    assert f"job {job} finished: 0 partitions done by this run, 1 already done" in again.stdout

    # the speech flags reach the kernel (and make another job: they change results)
    flags = ["--no-vad", "--context", "full", "--max-windows", "1", "--min-speech", "0"]
    other = _lidframe(
        "run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "plain"), "--workers", "1",
        "--no-progress", *flags,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert job not in other.stdout
    plain = pd.read_parquet(tmp_path / "plain").set_index("id")
    assert plain["speech_seconds"].isna().all()
    assert (plain["whisper_base_lang"].dropna() != "und").all()
    assert plain["whisper_base_lang"].notna().sum() == 2


def test_bad_input_exits_2_with_clear_message(tmp_path, monkeypatch):
    # relative paths (--out o) resolve in the test's folder, never the checkout
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("path\nx.wav\n")
    proc = _lidframe("run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--no-progress")
    assert proc.returncode == 2
    assert "lidframe: error:" in proc.stderr and "'audio' is missing" in proc.stderr
    (tmp_path / "ok.csv").write_text("audio\nx.wav\n")
    proc = _lidframe(
        "run", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "o"), "--models", "nope"
    )
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr
    proc = _lidframe("run", str(tmp_path / "ok.csv"), "--out", "o", "--db", "mysql://x/y")
    assert proc.returncode == 2 and "only PostgreSQL and SQLite are supported" in proc.stderr
    proc = _lidframe("status", "--out", str(tmp_path / "nothing-here"))
    assert proc.returncode == 2 and "no job database in" in proc.stderr
    proc = _lidframe("run", str(tmp_path / "ok.csv"), "--out", "s3://bucket/results")
    assert proc.returncode == 2 and "no default job database" in proc.stderr
