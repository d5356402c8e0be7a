"""Plan a job's manifest into the job database in a thread, beside the work.

Planning a large manifest (hashing, counting and cutting millions of rows into partitions) takes
long enough that waiting for it would leave the cluster idle: the planner streams partitions into
the job database in batches, the first one alone and at once, and the driver
(:mod:`lidframe.job._driver`) claims partitions as soon as they are there. Only the current batch is
in memory, so planning costs the same for any manifest, and a run that stopped halfway resumes
planning after the last partition it wrote.
"""

from __future__ import annotations

import threading
import time

from lidframe.errors import JobFailed, LidframeError, ManifestError, describe_failure
from lidframe.manifest import Manifest, PlannedPartition, plan_partitions
from lidframe.store.jobs import JobStore

__all__ = ["Planner", "plan_job"]


def plan_job(store: JobStore, job_id: str, manifest: Manifest, partition_rows: int) -> int:
    """Plan the whole manifest into the job now (no cluster); returns the number of partitions."""
    planner = Planner(store, job_id, manifest, partition_rows)
    planner.run()
    planner.check()
    return planner.planned


class Planner:
    """Plans the manifest into the job database in a thread, in batches, while the job runs.

    Resumes after the last partition a previous run planned; does nothing for a job already planned.
    The first partition is written alone, at once, so work starts while the rest is planned.
    """

    BATCH = 10_000
    FLUSH_SECONDS = 0.5

    def __init__(
        self, store: JobStore, job_id: str, manifest: Manifest, partition_rows: int
    ) -> None:
        self.store, self.job_id, self.manifest = store, job_id, manifest
        self.partition_rows = partition_rows
        self.planned = 0
        self.finished = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._added = threading.Event()
        self._thread = threading.Thread(target=self.run, name="lidframe-planner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        try:
            self._plan()
        except BaseException as exc:  # noqa: BLE001 - handed to the driver's loop
            self.error = exc
        finally:
            self._added.set()

    def _plan(self) -> None:
        job = self.store.job(self.job_id) or {}
        if job.get("planned"):
            self.planned, self.finished = int(job["n_partitions"]), True
            return
        last = self.store.last_planned(self.job_id)
        after = None if last is None else PlannedPartition(*last)
        self.planned = 0 if last is None else last[0] + 1
        batch: list[PlannedPartition] = []
        flushed = time.monotonic()
        for part in plan_partitions(self.manifest, self.partition_rows, after=after):
            if self._stop.is_set():
                return
            batch.append(part)
            now = time.monotonic()
            if (
                len(batch) >= self.BATCH
                or now - flushed >= self.FLUSH_SECONDS
                or part.partition == 0
            ):
                self._flush(batch)
                batch, flushed = [], now
        self._flush(batch)
        if self.planned == 0:
            raise ManifestError(f"{self.manifest.url}: the manifest has no rows")
        self.store.finish_planning(self.job_id)
        self.finished = True

    def _flush(self, batch: list[PlannedPartition]) -> None:
        if batch:
            self.store.add_partitions(self.job_id, batch)
            self.planned = batch[-1].partition + 1
            self._added.set()

    def wait(self, seconds: float) -> None:
        """Until more partitions are planned (or planning ends), at most ``seconds``."""
        self._added.wait(seconds)
        self._added.clear()

    def check(self) -> None:
        """Raise what stopped planning: the manifest's error, or the job database's."""
        if self.error is not None:
            if isinstance(self.error, LidframeError):
                raise self.error
            raise JobFailed(
                f"planning the manifest failed: {describe_failure(self.error)}"
            ) from self.error

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
