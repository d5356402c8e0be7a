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

The loop's helpers have their own modules: planning the manifest beside the work
(:mod:`lidframe.planner`, claims start with the first partition planned), finding stalled tasks and
restarting their workers (:mod:`lidframe.stalls`), and promoting staged parts once their commit is
accepted, or after a crash (:mod:`lidframe.promotion`; :func:`reconcile_parts` is re-exported here).

Nothing here holds an object per partition of the job: only the bounded window of partitions in
flight (``per_thread`` per worker thread) is in memory, so the orchestrating process stays the same
size for any manifest.
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
from dataclasses import dataclass
from typing import Any

from lidframe.errors import (
    ConfigError,
    JobFailed,
    StorageAccessDenied,
    StoreError,
    describe_failure,
)
from lidframe.interrupts import raise_pending
from lidframe.manifest import ManifestChanged, PlannedPartition
from lidframe.partition_task import (
    PROGRESS_TOPIC,
    PartitionTask,
    dead_partition,
    process_partition,
)
from lidframe.planner import Planner, plan_job
from lidframe.progress_bar import progress_bar, set_total
from lidframe.promotion import promote_committed, reconcile_parts
from lidframe.results import discard
from lidframe.stalls import StallWatch, restart_in_background
from lidframe.store.jobs import JobStore, Lease

# plan_job and reconcile_parts live in lidframe.planner and lidframe.promotion; re-exported.
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

    The manifest is planned in a thread beside the work (:class:`~lidframe.planner.Planner`);
    partitions are claimed as soon as they are in the database. Returns what this process did.
    Raises :class:`JobFailed` when the job cannot go on (storage refuses the credentials, the
    manifest changed, the job database stays unreachable); the job's state is kept and a rerun
    resumes it.
    """
    from distributed import wait

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    inflight: dict[Any, Lease] = {}  # future -> its partition's lease
    dead_tasks: dict[Any, Lease] = {}  # future -> the dead partition (its dead token)
    stalls = StallWatch(settings.stall_seconds)
    done = Progress()
    heartbeat = _Heartbeat(store, job_id, owner, settings.lease_seconds)
    planner = Planner(store, job_id, task.manifest, partition_rows)
    states = store.states(job_id)
    bar = progress_bar(
        total=None,
        initial=states.get("done", 0) + states.get("dead", 0),
        unit="part",
        disable=not progress,
        file=sys.stderr,
        desc=f"lidframe {job_id}",
    )

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
        stalls.watch(lease)

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
        stalled = stalls.stalled(inflight)
        if not stalled:
            return
        processing = client.processing()
        for future in stalled:
            lease = inflight.pop(future)
            k = lease.partition
            stalls.forget(lease)
            error = stalls.error
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
                restart_in_background(client, workers)

    def finish_task(future: Any) -> None:
        if future in dead_tasks:
            lease = dead_tasks.pop(future)
            k, token = lease.partition, lease.token
            if future.status == "finished":
                stored = store.store_dead_rows(job_id, k, token, future.result())
                if stored:
                    promote_committed(task, k, token, stored.duplicates)
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
        stalls.forget(lease)
        if future.status == "finished":
            rows, seconds = future.result()
            committed = store.commit(job_id, lease, rows, seconds=seconds)
            if committed:
                promote_committed(task, k, lease.token, committed.duplicates)
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
        error = describe_failure(exc)
        done.failed += 1
        state = store.fail(job_id, lease, error, max_attempts=settings.max_attempts)
        log.warning("partition %d attempt %d failed: %s", k, lease.attempt, error)
        if state == "dead":
            done.dead += 1

    client.subscribe_topic(PROGRESS_TOPIC, stalls.on_progress)
    heartbeat.start()
    planner.start()
    try:
        while True:
            raise_pending()  # a Ctrl-C or SIGTERM whose exception Python lost (lidframe.interrupts)
            planner.check()
            set_total(bar, planner.planned if planner.finished else None)
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


def _planned(lease: Lease) -> PlannedPartition:
    if lease.source is None or lease.digest is None:
        raise JobFailed(
            f"partition {lease.partition} has no manifest source in the job database (a job made "
            "by an older lidframe): run it as a new job (--overwrite)"
        )
    return PlannedPartition(
        lease.partition, lease.row_start, lease.row_stop, lease.source, lease.digest
    )


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
