"""The driver loop (``lidframe.job._driver``: ``Driver``, ``run_partitions``, ``Progress``) on real
components: a real Dask cluster (thread workers in this process, on TCP over loopback), a real job
database (SQLite, and PostgreSQL where a test takes ``db_url``), real CSV manifests and WAV clips
under ``tmp_path``, and real Parquet parts.

The models are small families registered in this process (so thread workers find them): they answer
from a clip's loudness (``en`` loud, ``de`` quiet) and misbehave only on clips of one second or
more: ``picky`` raises, ``sleepy`` blocks until the test lets it go. A partition of long clips is a
task that fails as a whole: the kernel turns a model that fails on every clip of a batch and on its
own known-good clip (one second of noise) into a ``ModelError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster, wait

from lidframe.columns import result_meta, result_schema
from lidframe.errors import JobFailed
from lidframe.job import plan_job
from lidframe.job._config import JobSettings, RunConfig
from lidframe.job._driver import Driver, Progress, run_partitions
from lidframe.job._promotion import promote_committed
from lidframe.job._worker import PartitionTask, process_partition
from lidframe.manifest import PlannedPartition, open_manifest, plan_partitions
from lidframe.models import LidModel, register_family
from lidframe.results import part_files, part_name, staged_parts
from lidframe.speech import SpeechConfig
from lidframe.store import JobStore, open_store
from lidframe.testing import write_wav

JOB = "driver-test"
SHORT, LONG = 4_000, 24_000  # samples at 16 kHz: 0.25 s (always answered) and 1.5 s


def _loudness(waveforms: Sequence[np.ndarray]) -> np.ndarray:
    loud = np.array([np.clip(np.abs(w).mean(), 0, 1) for w in waveforms], dtype=np.float32)
    return np.stack([loud, 1 - loud], axis=1)


def register_picky() -> None:
    """``picky``: ``en``/``de`` by loudness; raises on any batch holding a clip of 1 s or more."""

    class Picky(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de")

        def predict_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
            if any(len(w) >= self.sample_rate for w in waveforms):
                raise RuntimeError("picky: a clip of a second or more")
            return _loudness(waveforms)

    register_family("picky", Picky)


def register_sleepy(release: Path) -> None:
    """``sleepy``: ``en``/``de`` by loudness; a batch holding a clip of 1 s or more blocks, with no
    progress, until the file ``release`` exists (a path: the family travels pickled in the task)."""

    class Sleepy(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de")

        def predict_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
            deadline = time.monotonic() + 120
            while any(len(w) >= self.sample_rate for w in waveforms) and not release.exists():
                assert time.monotonic() < deadline, "never released"
                time.sleep(0.02)
            return _loudness(waveforms)

    register_family("sleepy", Sleepy)


@contextlib.contextmanager
def thread_cluster(n_workers: int = 2) -> Iterator[Client]:
    """Thread workers in this process, one thread each, on TCP over loopback (no nanny)."""
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _manifest(tmp_path: Path, lengths: Sequence[int]) -> Path:
    """One clip per length, quiet and loud in turn (``de`` for even rows, ``en`` for odd ones)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, samples in enumerate(lengths):
        path = tmp_path / f"c{i}.wav"
        level = 0.9 if i % 2 else 0.1
        write_wav(path, level * np.sign(rng.standard_normal(samples)), 16_000)
        rows.append({"id": f"c{i:02d}", "audio": str(path)})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def _task(manifest: Path, out: Path, model: str) -> PartitionTask:
    config = RunConfig(
        models=(model,), speech=SpeechConfig(vad=False), device="cpu", dtype="float32"
    )
    kernel = config.kernel()
    source = open_manifest(manifest)
    aliases = [m.alias for m in kernel.models]
    return PartitionTask(
        job_id=JOB,
        manifest=source,
        kernel=kernel,
        out=str(out),
        schema=result_schema(result_meta(source.meta(), aliases), aliases),
        progress_every=0.1,
    )


def _job(store: JobStore, task: PartitionTask) -> None:
    store.ensure_job(
        JOB,
        fingerprint="fp",
        manifest=task.manifest.url,
        manifest_digest=task.manifest.identity,
        out=task.out,
        models=[m.name for m in task.kernel.models],
        config={},
        environment={},
    )


def _token_of(path: Path) -> str:
    return str(json.loads(pq.read_schema(path).metadata[b"lidframe"])["lease_token"])


def _parts_match_the_database(store: JobStore, out: Path) -> pd.DataFrame:
    """Each done or dead partition's part is in place, written under the token it was committed with;
    returns the partitions."""
    parts = store.partitions(JOB).set_index("partition")
    finished = parts[parts["state"].isin(["done", "dead"])]
    assert part_files(str(out)) == [str(out / part_name(k)) for k in finished.index]
    for k, token in finished["lease_token"].items():
        assert _token_of(out / part_name(k)) == token, k
    return parts


@pytest.mark.postgres
def test_a_job_runs_to_completion_committing_each_partition_once(
    db_url: str, tmp_path: Path
) -> None:
    register_picky()
    manifest = _manifest(tmp_path, [SHORT] * 7)
    out = tmp_path / "out"
    task = _task(manifest, out, "picky:x")
    settings = JobSettings(task_retries=0)
    with open_store(db_url) as store:
        _job(store, task)
        with thread_cluster() as client:
            done = run_partitions(
                client, store, JOB, task, settings, partition_rows=2, progress=False
            )
        job = store.job(JOB)
        results = store.results(JOB)
        parts = _parts_match_the_database(store, out)

    assert done == Progress(committed=4)
    assert job["planned"] and job["n_partitions"] == 4 and job["status"] == "finished"
    assert (parts["state"] == "done").all()
    assert (parts["attempts"] == 1).all()  # none done twice
    assert parts["rows"].tolist() == [2, 2, 2, 1]
    assert parts["lease_owner"].isna().all() and parts["lease_expires"].isna().all()
    assert results["row_id"].tolist() == [f"c{i:02d}" for i in range(7)]  # each row once
    assert results["error"].isna().all()
    parquet = pd.read_parquet(part_files(str(out))).set_index("id")
    assert parquet.index.tolist() == [f"c{i:02d}" for i in range(7)]
    assert parquet["picky_x_lang"].tolist() == ["de", "en"] * 3 + ["de"]
    assert staged_parts(str(out)) == []  # every staged part was promoted


@pytest.mark.postgres
def test_a_task_that_raises_fails_its_attempts_and_its_partition_ends_dead_with_its_rows(
    db_url: str, tmp_path: Path
) -> None:
    register_picky()
    manifest = _manifest(tmp_path, [SHORT, SHORT, LONG, LONG, SHORT, SHORT])
    out = tmp_path / "out"
    task = _task(manifest, out, "picky:x")
    settings = JobSettings(max_attempts=2, task_retries=0)
    with open_store(db_url) as store:
        _job(store, task)
        with thread_cluster() as client:
            done = run_partitions(
                client, store, JOB, task, settings, partition_rows=2, progress=False
            )
        job = store.job(JOB)
        results = store.results(JOB).set_index("row_id")
        parts = _parts_match_the_database(store, out)

    assert done == Progress(committed=2, failed=2, dead=1)
    assert job["status"] == "finished_with_dead"
    assert parts["state"].tolist() == ["done", "dead", "done"]
    assert parts["attempts"].tolist() == [1, 2, 1]
    dead = parts.loc[1]
    assert dead["lease_token"].startswith("dead-")  # a token no holder ever had
    assert "ModelError" in dead["last_error"] and "picky" in dead["last_error"]
    assert dead["rows"] == 2 and dead["errors"] == 2
    assert results.loc[["c02", "c03"], "error"].str.startswith("dead_partition: ").all()
    assert results.loc[["c02", "c03"], "error"].str.contains("ModelError").all()
    assert results.drop(index=["c02", "c03"])["error"].isna().all()
    parquet = pd.read_parquet(out / part_name(1)).set_index("id")
    assert parquet.index.tolist() == ["c02", "c03"]
    assert parquet["error"].str.startswith("dead_partition: ").all()
    assert parquet["picky_x_lang"].isna().all() and parquet["picky_x_prob"].isna().all()
    assert staged_parts(str(out)) == []


def test_a_commit_whose_lease_was_taken_over_is_discarded_and_the_winners_part_kept(
    tmp_path: Path,
) -> None:
    register_picky()
    manifest = _manifest(tmp_path, [SHORT, SHORT])  # one partition
    out = tmp_path / "out"
    task = _task(manifest, out, "picky:x")
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    with open_store(url) as store, open_store(url) as other, thread_cluster(1) as client:
        _job(store, task)
        assert plan_job(store, JOB, task.manifest, 2) == 1
        driver = Driver(client, store, JOB, task, JobSettings(lease_seconds=1), 2, progress=False)
        driver.claim(threads=1)  # no heartbeat runs: the lease lapses after a second
        ((future, lease),) = driver.inflight.items()
        wait([future], timeout=60)
        assert future.status == "finished"
        assert staged_parts(str(out)) == [(0, lease.token)]

        deadline = time.monotonic() + 30  # another process takes the partition over
        while not (taken := other.claim(JOB, "other", 1, lease_s=60, max_attempts=3)):
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(0.1)
        (winner,) = taken
        assert (winner.partition, winner.attempt) == (0, 2)
        planned = PlannedPartition(
            winner.partition, winner.row_start, winner.row_stop, winner.source, winner.digest
        )
        rows, seconds = process_partition(planned, winner.token, task)  # the winner's attempt
        assert staged_parts(str(out)) == sorted([(0, lease.token), (0, winner.token)])

        driver.partition_finished(future)  # the late task: its commit is refused
        assert driver.done == Progress(rejected=1)
        assert driver.inflight == {}
        assert staged_parts(str(out)) == [(0, winner.token)]  # its part deleted, the winner's kept
        assert not (out / part_name(0)).exists()

        commit = other.commit(JOB, winner, rows, seconds=seconds)
        assert commit
        promote_committed(task, 0, winner.token, commit.duplicates)
        assert store.release(JOB, driver.owner) == 0  # the late driver holds nothing any more
        parts = store.partitions(JOB)
        results = store.results(JOB)
    assert parts["state"].tolist() == ["done"] and parts["lease_token"].tolist() == [winner.token]
    assert _token_of(out / part_name(0)) == winner.token
    assert staged_parts(str(out)) == []
    assert results["row_id"].tolist() == ["c00", "c01"]  # one set of rows: the winner's


def test_a_job_that_cannot_go_on_stops_with_job_failed_and_gives_its_leases_back(
    tmp_path: Path,
) -> None:
    register_picky()
    manifest = _manifest(tmp_path, [SHORT] * 6)
    out = tmp_path / "out"
    task = _task(manifest, out, "picky:x")
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, task)
        assert plan_job(store, JOB, task.manifest, 2) == 3
        # partition 1's rows are edited after planning (same length: the other partitions read fine)
        text = manifest.read_text()
        assert text.count("c02,") == 1
        manifest.write_text(text.replace("c02,", "cXY,"))
        settings = JobSettings(task_retries=0)
        with thread_cluster() as client, pytest.raises(JobFailed, match="not what was planned"):
            run_partitions(client, store, JOB, task, settings, partition_rows=2, progress=False)
        parts = store.partitions(JOB).set_index("partition")
        job = store.job(JOB)

    assert job["status"] == "stopped"  # its state kept, nobody works on it: a rerun resumes it
    assert set(parts["state"]) <= {"done", "pending"}  # no lease is left held
    assert parts["lease_owner"].isna().all() and parts["lease_expires"].isna().all()
    # the partition whose manifest rows changed is not failed: the problem is the job's, not its own
    assert parts.loc[1, "state"] == "pending"
    assert parts.loc[1, "attempts"] == 0 and pd.isna(parts.loc[1, "last_error"])
    pending = parts[parts["state"] == "pending"]
    assert (pending["attempts"] == 0).all()  # handed back: the attempt is not counted
    for k in parts.index[parts["state"] == "done"]:
        assert _token_of(out / part_name(k)) == parts.loc[k, "lease_token"]


def test_a_task_that_stops_making_progress_is_given_up_as_stalled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = tmp_path / "release"
    register_sleepy(release)
    model = f"sleepy:s{uuid.uuid4().hex[:8]}"  # a model of its own: a fresh instance
    manifest = _manifest(tmp_path, [SHORT, SHORT, LONG, LONG, SHORT, SHORT])
    out = tmp_path / "out"
    task = _task(manifest, out, model)
    alias = task.kernel.models[0].alias
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    settings = JobSettings(max_attempts=1, stall_seconds=3, task_retries=0)
    # Warm up this process (imports, the model, the decoder processes) with partition 0 run
    # elsewhere, so the stall budget only ever measures a task's own silence.
    first = next(plan_partitions(task.manifest, 2))
    process_partition(first, "warm", dataclasses.replace(task, out=str(tmp_path / "warm")))

    def release_once_given_up() -> None:
        """The stuck thread is let go once the driver gave its partition up (thread workers have no
        nanny, so the driver's restart cannot free it)."""
        with open_store(url, migrate_schema=False) as watcher:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not release.exists():
                if watcher.job(JOB) is not None and watcher.states(JOB).get("dead"):
                    break
                time.sleep(0.05)
        release.touch()

    with open_store(url) as store:
        _job(store, task)
        watcher = threading.Thread(target=release_once_given_up, daemon=True)
        try:
            with thread_cluster() as client, caplog.at_level(logging.WARNING, "lidframe"):
                watcher.start()
                workers = set(client.nthreads())
                done = run_partitions(
                    client, store, JOB, task, settings, partition_rows=2, progress=False
                )
        finally:
            release.touch()
            watcher.join(30)
        parts = _parts_match_the_database(store, out)
        results = store.results(JOB).set_index("row_id")

    assert done == Progress(committed=2, failed=1, stalled=1, dead=1)
    assert parts["state"].tolist() == ["done", "dead", "done"]
    assert parts.loc[1, "last_error"].startswith("stalled: no progress for 3 s")
    assert results.loc[["c02", "c03"], "error"].str.startswith("dead_partition: stalled").all()
    assert results.drop(index=["c02", "c03"])["error"].isna().all()
    assert results.drop(index=["c02", "c03"])[f"{alias}_lang"].tolist() == ["de", "en"] * 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("partition 1 attempt 1 stalled: no progress for 3 s" in m for m in messages)
    # the worker that ran it was restarted in the background (a thread worker has no nanny: the
    # attempt fails with a warning naming it)
    deadline = time.monotonic() + 30
    while not (restarts := _restart_warnings(caplog)):
        assert time.monotonic() < deadline, messages
        time.sleep(0.05)
    assert len(restarts) == 1 and any(w in restarts[0] for w in workers), restarts


def _restart_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("could not restart stalled worker(s)")
    ]


@pytest.mark.timeout(180)
def test_a_dead_partition_whose_rows_cannot_be_written_stops_the_job_instead_of_looping(
    tmp_path: Path,
) -> None:
    """Every read of the manifest fails once it is planned: its partitions die, and so does every
    write of their rows; after ``max_attempts`` tries the job stops (it used to try for ever)."""
    register_picky()
    manifest = _manifest(tmp_path, [SHORT] * 4)
    out = tmp_path / "out"
    task = _task(manifest, out, "picky:x")
    settings = JobSettings(max_attempts=2, task_retries=0)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, task)
        assert plan_job(store, JOB, task.manifest, 2) == 2
        manifest.unlink()
        started = time.monotonic()
        with thread_cluster() as client, pytest.raises(JobFailed) as failed:
            run_partitions(client, store, JOB, task, settings, partition_rows=2, progress=False)
        parts = store.partitions(JOB)
    assert time.monotonic() - started < 120
    message = str(failed.value)
    assert "rows of dead partition" in message and "(2 tries)" in message
    assert "FileNotFoundError" in message and "run the same command again" in message
    assert (parts["state"] == "dead").any()
    assert parts["lease_owner"].isna().all()  # the leases were given back
