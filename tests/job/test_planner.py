"""Planning a manifest into the job database (``lidframe.job._planner``: ``Planner``, ``plan_job``).

Real CSV manifests under ``tmp_path`` (opened with :func:`lidframe.manifest.open_manifest`) and a
real job database: tests taking ``db_url`` run on a SQLite file and on a real PostgreSQL server.
To see how partitions reach the database, the store is a :class:`JobStore` subclass that records
each ``add_partitions`` batch (and, where a test needs it, holds one back or fails it) before or
instead of handing it to the real store.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lidframe.errors import JobFailed, ManifestError
from lidframe.job import plan_job
from lidframe.job._planner import Planner
from lidframe.manifest import Manifest, PlannedPartition, open_manifest, plan_partitions
from lidframe.store import JobStore, open_store

JOB = "plan-test"


class RecordingStore(JobStore):
    """The real store; each ``add_partitions`` call's partition numbers are recorded first.

    ``gate``: the second call waits for it (the first partition is in, the rest held back);
    ``fail_from``: a call holding that partition or a later one raises ``RuntimeError`` instead.
    """

    def __init__(self, store: JobStore) -> None:
        super().__init__(store.engine)
        self.batches: list[list[int]] = []
        self.gate: threading.Event | None = None
        self.fail_from: int | None = None

    def add_partitions(self, job_id: str, planned: Sequence[Any]) -> None:
        self.batches.append([p.partition for p in planned])
        if self.gate is not None and len(self.batches) == 2:
            assert self.gate.wait(30), "the test never let planning go on"
        if self.fail_from is not None and planned[-1].partition >= self.fail_from:
            raise RuntimeError("the disk caught fire")
        super().add_partitions(job_id, planned)


def _manifest(tmp_path: Path, rows: int, name: str = "m.csv") -> Manifest:
    path = tmp_path / name
    path.write_text("id,audio\n" + "".join(f"r{i},clips/c{i}.wav\n" for i in range(rows)))
    return open_manifest(path)


def _job(store: JobStore, manifest: Manifest, tmp_path: Path) -> None:
    store.ensure_job(
        JOB,
        fingerprint="fp",
        manifest=manifest.url,
        manifest_digest=manifest.identity,
        out=str(tmp_path / "out"),
        models=["m"],
        config={},
        environment={},
    )


def _stored(store: JobStore) -> list[PlannedPartition]:
    parts = store.partitions(JOB)
    return [
        PlannedPartition(int(k), int(a), int(b), str(s), str(d))
        for k, a, b, s, d in parts[
            ["partition", "row_start", "row_stop", "source", "digest"]
        ].itertuples(index=False)
    ]


def _finish(planner: Planner, timeout: float = 30.0) -> None:
    """Wait (polling, with a deadline) until the planner's thread has planned or failed."""
    deadline = time.monotonic() + timeout
    while not planner.finished and planner.error is None:
        assert time.monotonic() < deadline, "planning did not end"
        planner.wait(0.5)


@pytest.mark.postgres
def test_plan_job_plans_every_partition_and_seals_the_plan(db_url: str, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 25)
    with open_store(db_url) as store:
        _job(store, manifest, tmp_path)
        assert plan_job(store, JOB, manifest, 4) == 7
        job = store.job(JOB)
        stored = _stored(store)
        states = store.states(JOB)
    assert stored == list(plan_partitions(manifest, 4))
    assert [(p.row_start, p.row_stop) for p in stored] == [
        (0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 25),
    ]  # fmt: skip
    assert job is not None
    assert job["planned"] and job["n_partitions"] == 7 and job["n_rows"] == 25
    assert job["content_digest"]
    assert dict(states) == {"pending": 7}


def test_partitions_are_written_in_batches_the_first_one_alone(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 11)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as base:
        store = RecordingStore(base)
        _job(store, manifest, tmp_path)
        planner = Planner(store, JOB, manifest, 1)
        planner.BATCH, planner.FLUSH_SECONDS = 3, 3600.0  # batches by size only
        planner.run()
        planner.check()
        assert planner.finished and planner.planned == 11
        assert store.batches == [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
        assert [p.partition for p in _stored(store)] == list(range(11))

    # a batch is also written once FLUSH_SECONDS have passed since the last one (here: always)
    manifest = _manifest(tmp_path, 4, "other.csv")
    with open_store(f"sqlite:///{tmp_path}/other.sqlite") as base:
        store = RecordingStore(base)
        _job(store, manifest, tmp_path)
        planner = Planner(store, JOB, manifest, 1)
        planner.BATCH, planner.FLUSH_SECONDS = 10_000, 0.0
        planner.run()
        planner.check()
        assert store.batches == [[0], [1], [2], [3]]


@pytest.mark.postgres
def test_the_first_partition_can_be_claimed_while_the_rest_is_planned(
    db_url: str, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, 9)
    with open_store(db_url) as base:
        store = RecordingStore(base)
        store.gate = threading.Event()
        _job(store, manifest, tmp_path)
        planner = Planner(store, JOB, manifest, 3)
        planner.start()
        try:
            planner.wait(30)  # until something is planned (partition 0, written alone)
            assert planner.error is None
            assert planner.planned == 1 and not planner.finished
            assert dict(store.states(JOB)) == {"pending": 1}
            assert not store.job(JOB)["planned"]
            (lease,) = store.claim(JOB, "me", 5, lease_s=60, max_attempts=3)
            assert (lease.partition, lease.row_start, lease.row_stop) == (0, 0, 3)
        finally:
            store.gate.set()
        _finish(planner)
        planner.check()
        planner.stop()
        assert planner.finished and planner.planned == 3
        assert store.batches[0] == [0]
        assert store.job(JOB)["planned"]
        assert dict(store.states(JOB)) == {"running": 1, "pending": 2}  # the claim stands


@pytest.mark.postgres
def test_planning_resumes_after_the_last_planned_partition(db_url: str, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 25)
    whole = list(plan_partitions(manifest, 4))
    with open_store(db_url) as base:
        _job(base, manifest, tmp_path)
        base.add_partitions(JOB, whole[:3])  # a run that stopped after planning three
        assert not base.job(JOB)["planned"]
        store = RecordingStore(base)
        assert plan_job(store, JOB, manifest, 4) == 7
        added = list(itertools.chain.from_iterable(store.batches))
        assert added == [3, 4, 5, 6]  # nothing planned twice
        assert _stored(store) == whole
        job = store.job(JOB)
    assert job["planned"] and job["n_partitions"] == 7 and job["n_rows"] == 25


def test_a_job_already_planned_is_not_planned_again(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 10)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as base:
        _job(base, manifest, tmp_path)
        assert plan_job(base, JOB, manifest, 3) == 4
        before = base.partitions(JOB)
        Path(manifest.url).unlink()  # it is not even read again
        store = RecordingStore(base)
        planner = Planner(store, JOB, manifest, 3)
        planner.run()
        planner.check()
        assert planner.finished and planner.planned == 4
        assert store.batches == []
        assert store.partitions(JOB).equals(before)


def test_an_empty_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("id,audio\n\n\n")  # a header and blank lines: no rows
    manifest = open_manifest(path)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, manifest, tmp_path)
        with pytest.raises(ManifestError, match="the manifest has no rows"):
            plan_job(store, JOB, manifest, 4)
        job = store.job(JOB)
        assert not job["planned"] and job["n_partitions"] == 0
        assert store.partitions(JOB).empty


def test_check_raises_a_lidframe_error_of_the_planning_thread_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("id,audio\n")
    manifest = open_manifest(path)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as store:
        _job(store, manifest, tmp_path)
        planner = Planner(store, JOB, manifest, 4)
        planner.check()  # nothing went wrong yet
        planner.start()
        _finish(planner)
        planner.stop()
        assert isinstance(planner.error, ManifestError)
        with pytest.raises(ManifestError) as raised:
            planner.check()
        assert raised.value is planner.error
        assert not planner.finished


def test_check_raises_any_other_error_of_the_planning_thread_as_job_failed(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 10)
    with open_store(f"sqlite:///{tmp_path}/jobs.sqlite") as base:
        store = RecordingStore(base)
        store.fail_from = 4
        _job(store, manifest, tmp_path)
        planner = Planner(store, JOB, manifest, 1)
        planner.BATCH, planner.FLUSH_SECONDS = 2, 3600.0
        planner.start()
        _finish(planner)
        planner.stop()
        assert isinstance(planner.error, RuntimeError)
        with pytest.raises(JobFailed, match="planning the manifest failed: .*the disk caught fire"):
            planner.check()
        with pytest.raises(JobFailed) as raised:
            planner.check()  # again: the same error, every time it is asked
        assert raised.value.__cause__ is planner.error
        assert store.batches == [[0], [1, 2], [3, 4]]
        assert not planner.finished and planner.planned == 3
        # what was planned before the failure is kept; the plan is not sealed
        assert [p.partition for p in _stored(store)] == [0, 1, 2]
        assert not store.job(JOB)["planned"]
