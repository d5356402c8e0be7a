"""Drive one job's partitions through a Dask cluster under leases from the job database.

The orchestrating process (the one that calls :func:`lidframe.run`) is the only one that talks to the
database: it claims partitions, submits one task per partition, renews its leases from a heartbeat
thread, and commits each partition's rows with its lease token as tasks finish. Workers read audio,
write staged Parquet parts and return rows; they hold no database credentials.

Failure handling is layered, and only the top layer is ours:

* a task that raises is retried by Dask (``retries=``); a worker that dies takes its tasks to other
  workers (Dask's ``distributed.scheduler.allowed-failures``, after which the task fails with
  ``KilledWorker``);
* a task that still fails is a failed *attempt*: the partition goes back to ``pending`` and is claimed
  again, until ``max_attempts``, when it is ``dead`` and its rows are written with an error;
* a task that reports no progress for ``stall_seconds`` (a model stuck in native code, a device that
  hangs) is a failed attempt too: its lease is given up, and the worker running it is restarted
  through its nanny so that its thread is free again;
* if this process dies, its leases expire and a new run of the same command (or any other process
  working on the job) claims those partitions; committed partitions are never redone;
* storage refusing every row of a partition (:class:`~lidframe.errors.StorageAccessDenied`) or the
  job database staying unreachable stops the job (:class:`~lidframe.errors.JobFailed`) with its
  state kept: no partition is marked for a problem that is not its own.

Parts are fenced by the lease (see :mod:`lidframe.sinks.parquet`): a task stages its part under its
token, and only a commit accepted by the database promotes it. :func:`reconcile_parts` finishes what a
crash interrupted: staged parts whose commit landed are promoted, the others deleted.

The manifest is planned beside the work: a thread streams partitions into the job database in
batches (:class:`_Planner`), and claims start with the first one. Nothing here holds an object per
partition of the job: only the bounded window of partitions in flight (``per_thread`` per worker
thread) is in memory, so the orchestrating process stays the same size for any manifest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lidframe.errors import (
    ConfigError,
    JobFailed,
    LidframeError,
    ManifestError,
    StorageAccessDenied,
    StoreError,
)
from lidframe.manifest import (
    MANIFEST_COLUMNS,
    Manifest,
    ManifestChanged,
    PlannedPartition,
    plan_partitions,
)
from lidframe.partition_task import (
    PROGRESS_TOPIC,
    PartitionTask,
    dead_partition,
    process_partition,
)
from lidframe.sinks.parquet import discard, mark_staged, promote, remove_staging, staged_parts
from lidframe.store.jobs import JobStore, Lease

__all__ = ["JobSettings", "Progress", "plan_job", "reconcile_parts", "run_partitions"]

log = logging.getLogger("lidframe")


@dataclass(frozen=True)
class JobSettings:
    """How hard a job tries."""

    # Claims of one partition before it is dead (each failed task or vanished holder is one).
    max_attempts: int = 3
    # Seconds a lease lasts without renewal; renewed every third of it while the task runs.
    lease_seconds: float = 60.0
    # Seconds a partition task may go without reporting progress (a row decoded, a batch answered)
    # before it counts as stalled: its attempt fails and its worker is restarted.
    stall_seconds: float = 600.0
    # Dask retries of a task that raised, within one attempt.
    task_retries: int = 1
    # Partitions in flight per worker thread. One: a worker that dies takes no bystander with it
    # (Dask counts every task on a lost worker towards KilledWorker), and claims stay with the
    # process that can start them soon; the gap between a task and the next is one commit.
    per_thread: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.lease_seconds >= 1:
            raise ConfigError(f"lease_seconds must be at least 1, got {self.lease_seconds}")
        if not self.stall_seconds >= 1:
            raise ConfigError(f"stall_seconds must be at least 1, got {self.stall_seconds}")
        if self.task_retries < 0:
            raise ConfigError(f"task_retries must be >= 0, got {self.task_retries}")


@dataclass
class Progress:
    """What this process did for the job."""

    committed: int = 0
    rejected: int = 0
    failed: int = 0
    stalled: int = 0
    dead: int = 0


def run_partitions(
    client: Any,
    store: JobStore,
    job_id: str,
    task: PartitionTask,
    settings: JobSettings,
    *,
    partition_rows: int,
    progress: bool = True,
) -> Progress:
    """Work on the job until it is planned and no partition is pending or running.

    The manifest is planned in a thread beside the work (:class:`_Planner`); partitions are claimed
    as soon as they are in the database. Returns what this process did. Raises :class:`JobFailed`
    when the job cannot go on (storage refuses the credentials, the manifest changed, the job
    database stays unreachable); the job's state is kept and a rerun resumes it.
    """
    from distributed import wait
    from tqdm.auto import tqdm

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    inflight: dict[Any, Lease] = {}  # future -> its partition's lease
    dead_tasks: dict[Any, Lease] = {}  # future -> the dead partition (its dead token)
    # (partition, lease token) -> when its task last reported progress (one claim gives several
    # partitions the same token)
    last_seen: dict[tuple[int, str], float] = {}
    done = Progress()
    heartbeat = _Heartbeat(store, job_id, owner, settings.lease_seconds)
    planner = _Planner(store, job_id, task.manifest, partition_rows)
    states = store.states(job_id)
    bar = tqdm(
        total=None,
        initial=states.get("done", 0) + states.get("dead", 0),
        unit="part",
        disable=not progress,
        file=sys.stderr,
        desc=f"lidframe {job_id}",
    )

    def on_progress(event: tuple[float, Mapping[str, Any]]) -> None:
        key = (event[1].get("partition"), event[1].get("token"))
        if key in last_seen:
            last_seen[key] = time.monotonic()

    def submit(lease: Lease) -> None:
        k = lease.partition
        future = client.submit(
            process_partition,
            _planned(lease),
            lease.token,
            task,
            key=f"lidframe-{job_id}-part{k}-try{lease.attempt}-{lease.token[:8]}",
            retries=settings.task_retries,
            pure=False,
        )
        inflight[future] = lease
        last_seen[(k, lease.token)] = time.monotonic()

    def submit_dead(lease: Lease, message: str) -> None:
        future = client.submit(
            dead_partition,
            _planned(lease),
            lease.token,
            task,
            message,
            key=f"lidframe-{job_id}-dead{lease.partition}-{lease.token[-8:]}",
            retries=settings.task_retries,
            pure=False,
        )
        dead_tasks[future] = lease

    def give_up_stalled() -> None:
        now = time.monotonic()
        stalled = [
            f
            for f, lease in inflight.items()
            if now - last_seen[(lease.partition, lease.token)] > settings.stall_seconds
        ]
        if not stalled:
            return
        processing = client.processing()
        for future in stalled:
            lease = inflight.pop(future)
            k = lease.partition
            last_seen.pop((k, lease.token), None)
            error = (
                f"stalled: no progress for {settings.stall_seconds:g} s (--stall-seconds); "
                "the task was stopped and its worker restarted"
            )
            done.stalled += 1
            done.failed += 1
            log.warning("partition %d attempt %d %s", k, lease.attempt, error)
            workers = [w for w, keys in processing.items() if future.key in keys]
            future.cancel()
            state = store.fail(job_id, lease, error, max_attempts=settings.max_attempts)
            if state == "dead":
                done.dead += 1
            if workers:
                # In the background: the loop goes on claiming and committing meanwhile (a nanny
                # that does not bring its worker back would otherwise hold it for the timeout).
                threading.Thread(
                    target=_restart, args=(client, workers), name="lidframe-restart", daemon=True
                ).start()

    def finish_task(future: Any) -> None:
        if future in dead_tasks:
            lease = dead_tasks.pop(future)
            k, token = lease.partition, lease.token
            if future.status == "finished":
                stored = store.store_dead_rows(job_id, k, token, future.result())
                if stored:
                    _promote(task, k, token, stored.duplicates)
                    bar.update(1)
                else:
                    discard(task.out, k, token, task.out_options)
            else:
                log.error(
                    "could not write the rows of dead partition %d: %s", k, future.exception()
                )
            return
        lease = inflight.pop(future)
        k = lease.partition
        last_seen.pop((k, lease.token), None)
        if future.status == "finished":
            rows, seconds = future.result()
            committed = store.commit(job_id, lease, rows, seconds=seconds)
            if committed:
                _promote(task, k, lease.token, committed.duplicates)
                done.committed += 1
                bar.update(1)
            else:
                discard(task.out, k, lease.token, task.out_options)
                done.rejected += 1
                log.warning("partition %d: lease taken over; result discarded", k)
            return
        exc = future.exception() if future.status == "error" else None
        if isinstance(exc, StorageAccessDenied | ManifestChanged):
            raise JobFailed(str(exc)) from exc
        error = _describe(exc)
        done.failed += 1
        state = store.fail(job_id, lease, error, max_attempts=settings.max_attempts)
        log.warning("partition %d attempt %d failed: %s", k, lease.attempt, error)
        if state == "dead":
            done.dead += 1

    client.subscribe_topic(PROGRESS_TOPIC, on_progress)
    heartbeat.start()
    planner.start()
    try:
        while True:
            planner.check()
            bar.total = planner.planned if planner.finished else None
            threads = sum(client.nthreads().values()) or 1
            room = max(1, settings.per_thread * threads) - len(inflight)
            if room > 0:
                for lease in store.claim(
                    job_id,
                    owner,
                    room,
                    lease_s=settings.lease_seconds,
                    max_attempts=settings.max_attempts,
                ):
                    submit(lease)
            if len(dead_tasks) < threads:
                writing = {lease.partition for lease in dead_tasks.values()}
                for lease, message in store.dead_without_rows(job_id, limit=threads):
                    if lease.partition not in writing:
                        submit_dead(lease, message)
            if not inflight and not dead_tasks:
                if not planner.finished:
                    planner.wait(0.5)  # nothing planned is left to claim yet
                    continue
                if store.finish_if_complete(job_id) is not None:
                    break
                # Partitions still leased elsewhere (another process, or one that died): wait for
                # them to finish or for their leases to expire.
                wait_s = store.seconds_to_next_expiry(job_id)
                time.sleep(min(5.0, 0.5 if wait_s is None else wait_s + 0.2))
                states = store.states(job_id)
                bar.n = states.get("done", 0) + states.get("dead", 0)
                bar.refresh()
                continue
            try:
                finished = wait(
                    list(inflight) + list(dead_tasks), timeout=2.0, return_when="FIRST_COMPLETED"
                ).done
            except TimeoutError:
                finished = set()
            for future in finished:
                finish_task(future)
                future.release()
            give_up_stalled()
    except StoreError as exc:
        raise JobFailed(f"the job database failed while the job ran: {exc}") from exc
    finally:
        planner.stop()
        heartbeat.stop()
        with contextlib.suppress(ValueError, RuntimeError):
            client.unsubscribe_topic(PROGRESS_TOPIC)
        for future in list(inflight) + list(dead_tasks):
            future.cancel()
        bar.close()
        try:
            store.release(job_id, owner)
        except StoreError as exc:  # the leases will expire on their own
            log.warning("could not release leases: %s", exc)
    return done


def plan_job(store: JobStore, job_id: str, manifest: Manifest, partition_rows: int) -> int:
    """Plan the whole manifest into the job now (no cluster); returns the number of partitions."""
    planner = _Planner(store, job_id, manifest, partition_rows)
    planner.run()
    planner.check()
    return planner.planned


def reconcile_parts(
    store: JobStore,
    job_id: str,
    out: str,
    out_options: Mapping[str, Any] | None = None,
    *,
    finished: bool = False,
) -> tuple[int, int]:
    """Finish what a crash interrupted in ``OUT/_staging``; returns ``(promoted, deleted)``.

    A staged part whose token is its partition's committed one (done, or dead with its rows stored)
    is promoted (the crash came between the commit and the move); one whose lease still holds the
    partition is left alone (its holder may still commit); any other
    (an attempt that failed, was taken over or never committed) is deleted. ``finished``: the job
    has nothing left to run, and an empty staging folder is removed.
    """
    keep = (*MANIFEST_COLUMNS, "error")
    staged = staged_parts(out, out_options)
    if not staged:
        if finished:
            remove_staging(out, out_options)
        return 0, 0
    tokens = store.partition_tokens(job_id, [k for k, _ in staged])
    promoted = deleted = 0
    for k, token in staged:
        state, current, stored = tokens.get(k, ("", None, False))
        if token == current and (state == "done" or (state == "dead" and stored)):
            marks = store.duplicate_marks(job_id, k)
            if marks:
                mark_staged(out, k, token, marks, keep, out_options)
            promoted += promote(out, k, token, out_options)
            continue
        if token == current and state == "running":
            continue  # its holder may still commit it (even past its lease, if nobody took over)
        discard(out, k, token, out_options)
        deleted += 1
    if finished and promoted + deleted == len(staged):
        remove_staging(out, out_options)
    return promoted, deleted


def _planned(lease: Lease) -> PlannedPartition:
    if lease.source is None or lease.digest is None:
        raise JobFailed(
            f"partition {lease.partition} has no manifest source in the job database (a job made "
            "by an older lidframe): run it as a new job (--overwrite)"
        )
    return PlannedPartition(
        lease.partition, lease.row_start, lease.row_stop, lease.source, lease.digest
    )


def _promote(task: PartitionTask, k: int, token: str, duplicates: Mapping[int, str]) -> None:
    """Move a committed part into place, first giving its duplicate-id rows their errors."""
    if duplicates:
        keep = (*MANIFEST_COLUMNS, "error")
        mark_staged(task.out, k, token, duplicates, keep, task.out_options)
    promote(task.out, k, token, task.out_options)


class _Planner:
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
        except BaseException as exc:  # noqa: BLE001 - handed to the orchestrating loop
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
                f"planning the manifest failed: {_describe(self.error)}"
            ) from self.error

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def _restart(client: Any, workers: list[str]) -> None:
    """Restart ``workers`` through their nannies, so a thread stuck in native code is freed."""
    try:
        client.restart_workers(workers, timeout=120, raise_for_error=False)
    except Exception as exc:  # noqa: BLE001 - without a nanny there is nothing more to do
        log.warning("could not restart stalled worker(s) %s: %s", workers, exc)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "cancelled"
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if name == "KilledWorker":
        text = "the task's worker process died (every time it was tried): " + text
    return f"{name}: {text}"[:2000]


class _Heartbeat:
    """Renews this process's leases every third of their length, in a daemon thread."""

    def __init__(self, store: JobStore, job_id: str, owner: str, lease_s: float) -> None:
        self._store, self._job, self._owner, self._lease = store, job_id, owner, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lidframe-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                self._store.renew(self._job, self._owner, self._lease)
            except StoreError as exc:  # commits carry lease tokens: a lost lease loses no data
                log.warning("lease renewal failed (will retry): %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
