"""Staged parts become results only once their commit landed (``lidframe.job._promotion``:
``promote_committed`` and ``reconcile_parts``).

Real components throughout: a real job database (tests taking ``db_url`` run on a SQLite file and
on a real PostgreSQL server) whose leases are claimed, committed and failed through the store's
own API; real staged parts written by the partition task itself (``process_partition`` and
``dead_partition`` run in this process, on real WAV clips, with the ``loudness`` test family);
"a crash between commit and move" is a test that commits and stops before promoting.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lidframe.columns import result_meta, result_schema
from lidframe.job import plan_job, reconcile_parts
from lidframe.job._config import RunConfig
from lidframe.job._promotion import promote_committed
from lidframe.job._worker import PartitionTask, dead_partition, process_partition
from lidframe.manifest import PlannedPartition, open_manifest
from lidframe.results import STAGING, part_files, part_name, staged_parts
from lidframe.speech import SpeechConfig
from lidframe.store import JobStore, Lease, PartitionRows, open_store
from lidframe.testing import write_wav
from tests.fixtures.models import register_loudness

JOB = "promotion-test"
MODEL = "loudness:x"
ALIAS = "loudness_x"
MANIFEST_KEPT = ("id", "audio", "label", "offset", "duration")


def _task(tmp_path: Path, ids: Sequence[str], partition_rows: int = 2) -> PartitionTask:
    """A manifest of short clips with ``ids`` (quiet, then loud, in turn) and its job's task."""
    register_loudness()
    rng = np.random.default_rng(1)
    rows = []
    for i, row_id in enumerate(ids):
        path = tmp_path / f"c{i}.wav"
        write_wav(path, (0.9 if i % 2 else 0.1) * np.sign(rng.standard_normal(4000)), 16_000)
        rows.append({"id": row_id, "audio": str(path)})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    config = RunConfig(
        models=(MODEL,), speech=SpeechConfig(vad=False), device="cpu", dtype="float32"
    )
    kernel = config.kernel()
    source = open_manifest(tmp_path / "m.csv")
    return PartitionTask(
        job_id=JOB,
        manifest=source,
        kernel=kernel,
        out=str(tmp_path / "out"),
        schema=result_schema(result_meta(source.meta(), [ALIAS]), [ALIAS]),
    )


def _job(store: JobStore, task: PartitionTask, partition_rows: int = 2) -> int:
    store.ensure_job(
        JOB,
        fingerprint="fp",
        manifest=task.manifest.url,
        manifest_digest=task.manifest.identity,
        out=task.out,
        models=[MODEL],
        config={},
        environment={},
    )
    return plan_job(store, JOB, task.manifest, partition_rows)


def _claim(store: JobStore, owner: str = "a", lease_s: float = 60, attempts: int = 3) -> Lease:
    (lease,) = store.claim(JOB, owner, 1, lease_s=lease_s, max_attempts=attempts)
    return lease


def _planned(lease: Lease) -> PlannedPartition:
    assert lease.source is not None and lease.digest is not None
    return PlannedPartition(
        lease.partition, lease.row_start, lease.row_stop, lease.source, lease.digest
    )


def _run(task: PartitionTask, lease: Lease) -> tuple[PartitionRows, float]:
    """The partition task of ``lease``, as a worker runs it: rows back, its part staged."""
    return process_partition(_planned(lease), lease.token, task)


def _token_of(path: Path) -> str:
    return str(json.loads(pq.read_schema(path).metadata[b"lidframe"])["lease_token"])


@pytest.mark.postgres
def test_reconcile_finishes_what_a_crash_between_commit_and_move_left(
    db_url: str, tmp_path: Path
) -> None:
    task = _task(tmp_path, [f"r{i}" for i in range(10)])
    out = Path(task.out)
    with open_store(db_url) as store, open_store(db_url) as other:
        assert _job(store, task) == 5
        leases = [
            _claim(store),  # 0: committed, not moved
            _claim(store),  # 1: still held by its (live) holder
            _claim(store),  # 2: its attempt failed
            _claim(store, lease_s=0.3),  # 3: taken over by another process, which committed
            _claim(store, attempts=1),  # 4: dead, its rows stored, not moved
        ]
        ran = {lease.partition: _run(task, lease) for lease in leases}
        assert store.commit(JOB, leases[0], ran[0][0])

        deadline = time.monotonic() + 30  # partition 3's lease lapses; another process takes it
        while not (taken := other.claim(JOB, "b", 1, lease_s=60, max_attempts=3)):
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(0.05)
        (winner,) = taken
        assert winner.partition == 3
        assert other.commit(JOB, winner, _run(task, winner)[0])

        assert store.fail(JOB, leases[2], "boom", max_attempts=3) == "pending"
        assert store.fail(JOB, leases[4], "boom", max_attempts=1) == "dead"
        ((dead, message),) = store.dead_without_rows(JOB)
        dead_rows = dead_partition(_planned(dead), dead.token, task, message)
        assert store.store_dead_rows(JOB, 4, dead.token, dead_rows)

        # a stray staged part of a partition the job does not have
        staging = out / STAGING
        stray = f"part-00009.{leases[0].token}.parquet"
        shutil.copy(staging / f"part-00000.{leases[0].token}.parquet", staging / stray)
        assert len(staged_parts(str(out))) == 8  # five attempts, the winner, the dead, the stray
        assert part_files(str(out)) == []

        assert reconcile_parts(store, JOB, task.out) == (3, 4)
        tokens = store.partitions(JOB).set_index("partition")["lease_token"]

        assert part_files(str(out)) == [str(out / part_name(k)) for k in (0, 3, 4)]
        for k in (0, 3, 4):  # each promoted part is the one its commit was made with
            assert _token_of(out / part_name(k)) == tokens[k]
        assert _token_of(out / part_name(3)) == winner.token
        assert _token_of(out / part_name(4)) == dead.token
        dead_part = pd.read_parquet(out / part_name(4))
        assert dead_part["error"].str.startswith("dead_partition: boom").all()
        assert staged_parts(str(out)) == [(1, leases[1].token)]  # its holder may still commit

        # the job is not finished while partition 1 is held: its part and the folder stay
        assert reconcile_parts(store, JOB, task.out, finished=True) == (0, 0)
        assert staged_parts(str(out)) == [(1, leases[1].token)]

        # once it commits (and the move is lost again), a finished job leaves only parts
        assert store.commit(JOB, leases[1], ran[1][0])
        assert reconcile_parts(store, JOB, task.out, finished=True) == (1, 0)
        assert part_files(str(out)) == [str(out / part_name(k)) for k in (0, 1, 3, 4)]
        assert not staging.exists()
        assert reconcile_parts(store, JOB, task.out, finished=True) == (0, 0)  # idempotent


def test_an_empty_staging_folder_is_removed_only_when_the_job_is_finished(tmp_path: Path) -> None:
    task = _task(tmp_path, ["r0", "r1"])
    staging = Path(task.out) / STAGING
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, task)
        staging.mkdir(parents=True)
        assert reconcile_parts(store, JOB, task.out) == (0, 0)
        assert staging.is_dir()
        assert reconcile_parts(store, JOB, task.out, finished=True) == (0, 0)
        assert not staging.exists()
        assert reconcile_parts(store, JOB, task.out, finished=True) == (0, 0)  # none: no error


def _answered(part: pd.DataFrame, row_id: str) -> None:
    row = part.set_index("id").loc[row_id]
    assert pd.isna(row["error"])
    assert row[f"{ALIAS}_lang"] in ("en", "de") and row[f"{ALIAS}_prob"] > 0.5
    assert row["audio_seconds"] == pytest.approx(0.25)


def _marked(part: pd.DataFrame, row_id: str, error: str, audio: str) -> None:
    row = part.set_index("id").loc[row_id]
    assert row["error"] == error
    assert row["audio"] == audio  # the manifest's columns are kept
    for column in part.columns:
        if column not in (*MANIFEST_KEPT, "error"):
            assert row[column] is None or pd.isna(row[column]), column


def test_promote_committed_gives_duplicate_id_rows_their_errors_before_promotion(
    tmp_path: Path,
) -> None:
    task = _task(tmp_path, ["a", "b", "c", "a"])
    out = Path(task.out)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, task)
        first = _claim(store)
        rows, _ = _run(task, first)
        staged = (out / STAGING / f"part-00000.{first.token}.parquet").read_bytes()
        commit = store.commit(JOB, first, rows)
        assert commit and commit.duplicates == {}
        promote_committed(task, 0, first.token, commit.duplicates)
        assert (out / part_name(0)).read_bytes() == staged  # nothing to mark: moved as it was

        second = _claim(store)
        rows, _ = _run(task, second)
        commit = store.commit(JOB, second, rows)
        error = "duplicate_id: id 'a' of row 3 is also the id of row 0"
        assert commit.duplicates == {1: error}
        promote_committed(task, 1, second.token, commit.duplicates)
        results = store.results(JOB).set_index("row")

    assert staged_parts(str(out)) == []
    part = pd.read_parquet(out / part_name(1))
    assert part["id"].tolist() == ["c", "a"]
    _answered(part, "c")
    _marked(part, "a", error, str(tmp_path / "c3.wav"))
    assert _token_of(out / part_name(1)) == second.token  # still the part it was
    assert results.loc[3, "error"] == error  # the database says the same
    _answered(pd.read_parquet(out / part_name(0)), "a")  # the first "a" keeps its answer


@pytest.mark.postgres
def test_reconcile_gives_duplicate_id_rows_their_errors_before_promotion(
    db_url: str, tmp_path: Path
) -> None:
    task = _task(tmp_path, ["a", "b", "b", "c"])
    out = Path(task.out)
    with open_store(db_url) as store:
        _job(store, task)
        for _ in range(2):  # both committed; the process died before either move
            lease = _claim(store)
            assert store.commit(JOB, lease, _run(task, lease)[0])
        assert reconcile_parts(store, JOB, task.out, finished=True) == (2, 0)
        results = store.results(JOB).set_index("row")

    assert not (out / STAGING).exists()
    error = "duplicate_id: id 'b' of row 2 is also the id of row 1"
    assert results.loc[2, "error"] == error
    part = pd.read_parquet(out / part_name(1))
    _marked(part, "b", error, str(tmp_path / "c2.wav"))
    _answered(part, "c")
    first = pd.read_parquet(out / part_name(0))
    _answered(first, "a")
    _answered(first, "b")
