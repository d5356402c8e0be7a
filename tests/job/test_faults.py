"""Whole jobs under the faults that used to lose rows or hang: real worker processes, a real
PostgreSQL, real signals.

* An output folder belongs to one job: a second job is refused and the first one's rows stay.
* Parquet parts are fenced by the lease: a holder stopped past its lease (SIGSTOP) whose commit is
  rejected never replaces the winner's part; a client killed between writing a part and committing
  it leaves no orphan or duplicate after the rerun.
* A worker retired gracefully mid-job costs no attempt; a task that stops making progress loses its
  lease and its worker is restarted.
* A storage endpoint that accepts connections and never answers costs its row, not the job; bomb-like
  files (32 channels, 192 kHz) keep the worker's memory near a clean partition's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from distributed.diagnostics.plugin import WorkerPlugin

import lidframe
from lidframe.models import LidModel, column_alias
from lidframe.results import MARKER, STAGING, read_parts, staged_parts
from lidframe.store import open_store
from lidframe.testing import make_corpus, sine, write_wav
from tests.fixtures.paths import BOMB, ECAPA_DIR

pytestmark = [pytest.mark.slow]

ECAPA = str(ECAPA_DIR)
MODEL = f"speechbrain:{ECAPA}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight espeak clips in four languages, and their manifest."""
    root = tmp_path_factory.mktemp("faults-corpus")
    table = make_corpus(root, ["en", "de", "es", "fr"], per_language=2, seed=5)
    table.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _lidframe(*args: str) -> list[str]:
    return [sys.executable, "-m", "lidframe.cli", *args]


def _run_args(manifest: Path, out: Path, *extra: str) -> list[str]:
    return _lidframe("run", str(manifest), "--out", str(out), "--no-progress", *extra)


def _parts(out: Path) -> list[str]:
    return sorted(p for p in os.listdir(out) if p.endswith(".parquet"))


def _parquet_equals_database(out: Path, db: str, job: str, alias: str) -> pd.DataFrame:
    """Every row once in Parquet and in the database, with the same answers; returns partitions."""
    with open_store(db) as store:
        results = store.results(job).set_index("row_id")
        predictions = store.predictions(job)
        partitions = store.partitions(job)
    parquet = read_parts(str(out)).set_index("id")
    assert parquet.index.is_unique and results.index.is_unique
    assert sorted(parquet.index) == sorted(results.index)
    answers = predictions[predictions["model"] == alias].set_index("row_id")["lang"]
    for row_id, lang in parquet[f"{alias}_lang"].items():
        assert (None if pd.isna(lang) else lang) == (
            None if pd.isna(answers[row_id]) else answers[row_id]
        )
    # each part was written under the lease its partition was committed with
    for k, token in partitions.set_index("partition")["lease_token"].items():
        meta = pq.read_schema(out / f"part-{k:05d}.parquet").metadata
        assert json.loads(meta[b"lidframe"])["lease_token"] == token
    assert staged_parts(str(out)) == []  # nothing left behind
    return partitions


# -- one folder, one job --------------------------------------------------------------------------


def test_a_second_job_into_the_same_folder_is_refused_and_the_first_is_intact(corpus, tmp_path):
    out = tmp_path / "out"
    first = lidframe.run(corpus, out, [MODEL], workers=1, partition_rows=4, progress=False)
    assert first.ok
    before = {p: (out / p).read_bytes() for p in _parts(out)}
    owner = json.loads((out / MARKER).read_text())
    assert owner["job_id"] == first.job_id

    # another job (other settings: another job id) into the same folder: one line, exit 2
    proc = subprocess.run(
        _run_args(corpus, out, "--models", MODEL, "--workers", "1", "--partition-rows", "3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lidframe: error: --out ")
    assert f"job {first.job_id}" in lines[0] and "--overwrite" in lines[0]
    assert {p: (out / p).read_bytes() for p in _parts(out)} == before  # untouched

    # the same job again resumes it (no work), and --overwrite replaces the folder's job
    again = lidframe.run(corpus, out, [MODEL], workers=1, partition_rows=4, progress=False)
    assert again.job_id == first.job_id and again.committed == 0
    other = lidframe.run(
        corpus, out, [MODEL], workers=1, partition_rows=3, progress=False, overwrite=True
    )
    assert other.ok and other.job_id != first.job_id
    assert _parts(out) == [f"part-{k:05d}.parquet" for k in range(3)]
    assert json.loads((out / MARKER).read_text())["job_id"] == other.job_id
    assert len(pd.read_parquet(out)) == 8  # any Parquet reader opens the folder as it is


# -- parts fenced by the lease -------------------------------------------------------------------


def _wait(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _partition_rows(db: str, job: str) -> pd.DataFrame:
    with open_store(db) as store:
        if store.job(job) is None:
            return pd.DataFrame(columns=["partition", "state", "lease_token", "lease_expires"])
        return store.partitions(job)


@pytest.mark.postgres
def test_a_holder_stopped_past_its_lease_never_replaces_the_winners_part(
    corpus, cluster, pg_url, tmp_path
):
    address, client = cluster
    out = tmp_path / "out"
    cmd = _run_args(
        corpus, out, "--models", MODEL, "--db", pg_url, "--job", "race", "--scheduler", address,
        "--partition-rows", "8", "--lease-seconds", "2",
    )  # fmt: skip
    loser = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # stop the first holder once its partition task is running on a worker
        _wait(
            lambda: any(
                "lidframe-race-part0-" in str(key)
                for keys in client.processing().values()
                for key in keys
            ),
            120,
            "the first holder's task to run",
            interval=0.01,
        )
        os.kill(loser.pid, signal.SIGSTOP)
        token_a = _partition_rows(pg_url, "race")["lease_token"].iloc[0]
        # its task goes on on the worker and stages its part, under its own token
        _wait(lambda: (0, token_a) in staged_parts(str(out)), 120, "the stopped holder's part")
        time.sleep(2.5)  # past its lease
        winner = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert winner.returncode == 0, winner.stderr
        parts = _partition_rows(pg_url, "race")
        token_b = parts["lease_token"].iloc[0]
        assert token_b != token_a and parts["attempts"].iloc[0] == 2
        winners_part = (out / "part-00000.parquet").read_bytes()
    finally:
        os.kill(loser.pid, signal.SIGCONT)
    _, stderr = loser.communicate(timeout=120)
    assert loser.returncode == 0, stderr
    assert "lease taken over; result discarded" in stderr
    assert (out / "part-00000.parquet").read_bytes() == winners_part
    _parquet_equals_database(out, pg_url, "race", column_alias(MODEL))


@pytest.mark.postgres
def test_a_crash_between_the_part_write_and_the_commit_leaves_no_orphan_or_duplicate(
    corpus, cluster, pg_url, postgres, tmp_path
):
    address, _ = cluster
    out = tmp_path / "out"
    cmd = _run_args(
        corpus, out, "--models", MODEL, "--db", pg_url, "--job", "crash", "--scheduler", address,
        "--partition-rows", "2", "--lease-seconds", "2",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = sa.create_engine(pg_url)
    try:
        _wait(
            lambda: (_partition_rows(pg_url, "crash")["state"] == "running").any(),
            120,
            "a running partition",
            interval=0.02,
        )
        with engine.begin() as conn:
            # hold the running partitions' rows: their commits wait on this lock
            held = conn.execute(
                sa.text(
                    "SELECT partition, lease_token FROM lidframe_partitions "
                    "WHERE job_id = 'crash' AND state = 'running' FOR UPDATE"
                )
            ).all()
            assert held
            _wait(
                lambda: all((k, t) in staged_parts(str(out)) for k, t in held),
                120,
                "the held partitions' staged parts",
            )
            time.sleep(0.5)  # the client is now blocked in their commits
            proc.kill()  # ... and dies between writing the parts and committing them
            proc.wait(timeout=30)
            conn.rollback()
    finally:
        proc.kill()
        engine.dispose()
    for k, _ in held:
        assert not (out / f"part-{k:05d}.parquet").exists()  # never promoted
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    partitions = _parquet_equals_database(out, pg_url, "crash", column_alias(MODEL))
    assert (partitions["state"] == "done").all()
    assert _parts(out) == [f"part-{k:05d}.parquet" for k in range(4)]
    assert not (out / STAGING).exists()
    for k, token in held:
        row = partitions.set_index("partition").loc[k]
        assert row["lease_token"] != token and row["attempts"] == 2


# -- workers that leave, tasks that stall ---------------------------------------------------------


@pytest.mark.postgres
def test_a_worker_retired_gracefully_mid_job_costs_no_attempt(corpus, cluster, pg_url, tmp_path):
    address, client = cluster
    out = tmp_path / "out"
    cmd = _run_args(
        corpus, out, "--models", MODEL, "--db", pg_url, "--job", "retire", "--scheduler", address,
        "--partition-rows", "1",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(
            lambda: (_partition_rows(pg_url, "retire")["state"] == "done").sum() >= 2,
            180,
            "two partitions done",
        )
        busy = [w for w, keys in client.processing().items() if keys]
        victim = busy[0] if busy else next(iter(client.scheduler_info()["workers"]))
        client.retire_workers([victim], close_workers=True)
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert victim not in client.scheduler_info()["workers"]
    partitions = _parquet_equals_database(out, pg_url, "retire", column_alias(MODEL))
    assert (partitions["state"] == "done").all()
    assert (partitions["attempts"] == 1).all(), partitions[["partition", "attempts", "last_error"]]
    assert partitions["last_error"].isna().all()
    assert "KilledWorker" not in output


HANG_SAMPLES = 13_579  # a clip of this length makes the hanging model block forever


class HangingLid(LidModel):
    """A model that never returns on one clip length (a device or native call that hangs)."""

    @property
    def labels(self):  # type: ignore[no-untyped-def]
        return ("en", "de")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        if any(len(w) == HANG_SAMPLES for w in waveforms):
            time.sleep(3600)
        return np.tile(np.array([[0.8, 0.2]], dtype=np.float32), (len(waveforms), 1))


def _register_hanging() -> None:
    from lidframe.models import register_family

    register_family("test-hang", HangingLid)


class RegisterHanging(WorkerPlugin):
    name = "lidframe-test-hang"

    def setup(self, worker):  # type: ignore[no-untyped-def]
        _register_hanging()


def test_a_task_that_stops_making_progress_loses_its_lease_and_its_worker_restarts(
    tmp_path, capsys, local_cluster
):
    """Through the command's own entry point (in this process, where the test family is known):
    the stalled partition ends dead, the rest of the job finishes, and the command exits 1."""
    import cloudpickle

    from lidframe.cli import main

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _register_hanging()
    rows = []
    for i in range(6):
        samples = HANG_SAMPLES if i == 4 else 16_000 + 800 * i
        write_wav(tmp_path / f"c{i}.wav", sine(samples / 16_000), 16_000)
        rows.append({"id": f"c{i}", "audio": f"c{i}.wav"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = tmp_path / "out"
    with local_cluster(n_workers=2, plugins=[RegisterHanging()]) as c:
        client = c.client
        pids_before = set(client.run(os.getpid).values())
        started = time.monotonic()
        status = main(
            [
                "run", str(manifest), "--out", str(out), "--models", "test-hang:x",
                "--scheduler", c.address, "--partition-rows", "2",
                "--stall-seconds", "4", "--max-attempts", "2", "--no-progress",
                "--no-vad",  # the clips are tones: without it no model would hear them
            ]
        )  # fmt: skip
        took = time.monotonic() - started
        pids_after = set(client.run(os.getpid).values())
    stdout, stderr = capsys.readouterr()
    assert status == 1, stderr
    assert "finished_with_dead" in stdout
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("lidframe: error: job job-") and "1 dead partition(s)" in last
    assert "partition 2 attempt 1 stalled: no progress for 4 s" in stderr  # a warning line each
    assert took < 120, took
    assert pids_after != pids_before  # the stuck worker was restarted
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        (job,) = store.jobs()
        parts = store.partitions(job["job_id"]).set_index("partition")
    assert parts.loc[2, "state"] == "dead" and parts.loc[2, "attempts"] == 2
    assert parts.loc[2, "last_error"].startswith("stalled: no progress for 4 s")
    assert (parts.drop(index=2)["state"] == "done").all()
    df = pd.read_parquet(out).set_index("id")
    assert df.loc[["c4", "c5"], "error"].str.startswith("dead_partition: stalled").all()
    assert df.drop(index=["c4", "c5"])["error"].isna().all()


# -- storage that never answers, files that would blow up memory ----------------------------------


def test_a_storage_endpoint_that_never_answers_costs_its_row_within_the_timeout(
    tmp_path, silent_server
):
    rows = []
    for i in range(3):
        write_wav(tmp_path / f"c{i}.wav", sine(1.0 + i), 16_000)
        rows.append({"audio": str(tmp_path / f"c{i}.wav")})
    rows.insert(1, {"audio": "s3://silent-bucket/clip.wav"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    started = time.monotonic()
    summary = lidframe.run(
        manifest,
        tmp_path / "out",
        [MODEL],
        workers=1,
        audio=lidframe.AudioConfig(io_timeout=60, timeout=5),
        storage_options=silent_server.s3_options(),
        out_storage_options={},
        progress=False,
    )
    took = time.monotonic() - started
    assert silent_server.accepted >= 1  # the worker's decoder really waited on it
    assert summary.ok and summary.rows == 4 and summary.errors == 1
    assert summary.error_categories == {"timeout": 1}
    assert took < 90, took
    df = pd.read_parquet(tmp_path / "out").set_index("audio")
    assert df.loc["s3://silent-bucket/clip.wav", "error"].startswith("timeout: ")
    assert df.drop(index="s3://silent-bucket/clip.wav")["error"].isna().all()


# 60 s of digital silence in 32 channels at 192 kHz, Ogg/Vorbis: 72 KB on disk, 737 MB of float32
# for a 30 s window decoded whole (see tests/test_audio_faults.py for how it was made).


class TreeRss:
    """Samples the summed RSS of a process and its descendants every 20 ms; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for proc in [self.root, *self.root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> TreeRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def test_bomb_like_files_keep_the_worker_within_300_mb_of_a_clean_partition(
    tmp_path, local_cluster
):
    clean, bombs = [], []
    for i in range(4):
        write_wav(tmp_path / f"clean{i}.wav", sine(30.0, freq=200 + 50 * i), 16_000)
        clean.append({"audio": str(tmp_path / f"clean{i}.wav")})
        shutil.copyfile(BOMB, tmp_path / f"bomb{i}.ogg")
        bombs.append({"audio": str(tmp_path / f"bomb{i}.ogg")})
    for name, rows in (("clean", clean), ("bombs", bombs)):
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    peaks = {}
    with local_cluster(n_workers=1) as c:
        (worker_pid,) = c.client.run(os.getpid).values()
        for name in ("clean", "bombs"):
            with TreeRss(worker_pid) as rss:
                summary = lidframe.run(
                    tmp_path / f"{name}.csv",
                    tmp_path / f"out-{name}",
                    [MODEL],
                    scheduler=c.address,
                    batch_size=4,
                    progress=False,
                )
            assert summary.ok and summary.errors == 0, summary
            peaks[name] = rss.peak
    print(f"peak RSS of the worker and its decoders: {peaks}")
    assert peaks["bombs"] - peaks["clean"] < 300 * 2**20, peaks
