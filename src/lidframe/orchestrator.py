"""Drive one job's partitions through a Dask cluster under leases from the job database.

The orchestrating process (the one that calls :func:`lidframe.run`) is the only one that talks to the
database: it claims partitions, submits one task per partition, renews its leases from a heartbeat
thread, and commits each partition's rows with its lease token as tasks finish. Workers read audio,
write Parquet parts and return rows; they hold no database credentials.

Failure handling is layered, and only the top layer is ours:

* a task that raises is retried by Dask (``retries=``); a worker that dies takes its tasks to other
  workers (Dask's ``distributed.scheduler.allowed-failures``, after which the task fails with
  ``KilledWorker``);
* a task that still fails is a failed *attempt*: the partition goes back to ``pending`` and is claimed
  again, until ``max_attempts``, when it is ``dead`` and its rows are written with an error;
* if this process dies, its leases expire and a new run of the same command (or any other process
  working on the job) claims those partitions; committed partitions are never redone.

Manifest blocks are computed once and pinned (as futures) while partitions that need them are in
flight, so a large input block is not read again for every partition cut from it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from lidframe.errors import StoreError
from lidframe.manifest import ManifestPlan
from lidframe.partition_task import PartitionTask, dead_partition, process_partition
from lidframe.store.jobs import JobStore, Lease

__all__ = ["JobSettings", "run_partitions"]

log = logging.getLogger("lidframe")


@dataclass(frozen=True)
class JobSettings:
    """How hard a job tries."""

    # Claims of one partition before it is dead (each failed task or vanished holder is one).
    max_attempts: int = 3
    # Seconds a lease lasts without renewal; renewed every third of it while the task runs.
    lease_seconds: float = 60.0
    # Dask retries of a task that raised, within one attempt.
    task_retries: int = 1
    # Partitions in flight per worker thread. One: a worker that dies takes no bystander with it
    # (Dask counts every task on a lost worker towards KilledWorker), and claims stay with the
    # process that can start them soon; the gap between a task and the next is one commit.
    per_thread: int = 1

    def __post_init__(self) -> None:
        from lidframe.errors import ConfigError

        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.lease_seconds >= 1:
            raise ConfigError(f"lease_seconds must be at least 1, got {self.lease_seconds}")
        if self.task_retries < 0:
            raise ConfigError(f"task_retries must be >= 0, got {self.task_retries}")


@dataclass
class Progress:
    committed: int = 0
    rejected: int = 0
    failed: int = 0
    dead: int = 0


def run_partitions(
    client: Any,
    store: JobStore,
    job_id: str,
    plan: ManifestPlan,
    task: PartitionTask,
    settings: JobSettings,
    *,
    progress: bool = True,
) -> Progress:
    """Work on the job until no partition is pending or running; returns what this process did."""
    from distributed import wait
    from tqdm.auto import tqdm

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    blocks: dict[int, Any] = {}  # pinned manifest block futures
    inflight: dict[Any, tuple[Lease, int]] = {}  # future -> (lease, block indices key)
    dead_tasks: dict[Any, int] = {}
    done_progress = Progress()
    heartbeat = _Heartbeat(store, job_id, owner, settings.lease_seconds)
    states = store.states(job_id)
    bar = tqdm(
        total=plan.npartitions,
        initial=states.get("done", 0) + states.get("dead", 0),
        unit="part",
        disable=not progress,
        file=sys.stderr,
        desc=f"lidframe {job_id}",
    )

    def block_futures(k: int) -> list[Any]:
        out = []
        for b, _, _ in plan.pieces[k]:
            if b not in blocks:
                blocks[b] = client.compute(plan.blocks[b])
            out.append(blocks[b])
        return out

    def bounds(k: int) -> list[tuple[int, int]]:
        return [(lo, hi) for _, lo, hi in plan.pieces[k]]

    def submit(lease: Lease) -> None:
        k = lease.partition
        future = client.submit(
            process_partition,
            block_futures(k),
            bounds(k),
            k * plan.partition_rows,
            k,
            task,
            key=f"lidframe-{job_id}-part{k}-try{lease.attempt}-{lease.token[:8]}",
            retries=settings.task_retries,
            pure=False,
        )
        inflight[future] = (lease, k)

    def submit_dead(k: int, message: str) -> None:
        future = client.submit(
            dead_partition,
            block_futures(k),
            bounds(k),
            k * plan.partition_rows,
            k,
            task,
            message,
            key=f"lidframe-{job_id}-dead{k}-{uuid.uuid4().hex[:8]}",
            retries=settings.task_retries,
            pure=False,
        )
        dead_tasks[future] = k

    def unpin_blocks() -> None:
        needed = {b for _, k in inflight.values() for b, _, _ in plan.pieces[k]}
        needed |= {b for k in dead_tasks.values() for b, _, _ in plan.pieces[k]}
        for b in [b for b in blocks if b not in needed]:
            blocks.pop(b).release()

    heartbeat.start()
    try:
        while True:
            threads = sum(client.nthreads().values()) or 1
            room = max(1, settings.per_thread * threads) - len(inflight)
            if room > 0:
                leases = store.claim(
                    job_id,
                    owner,
                    room,
                    lease_s=settings.lease_seconds,
                    max_attempts=settings.max_attempts,
                )
                for lease in leases:
                    submit(lease)
            unpin_blocks()
            if not inflight and not dead_tasks:
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
                continue
            for future in finished:
                if future in dead_tasks:
                    k = dead_tasks.pop(future)
                    if future.status == "finished":
                        store.store_dead_rows(job_id, k, future.result())
                    else:
                        log.error(
                            "could not write the rows of dead partition %d: %s",
                            k,
                            future.exception(),
                        )
                    bar.update(1)
                    future.release()
                    continue
                lease, k = inflight.pop(future)
                if future.status == "finished":
                    rows, seconds = future.result()
                    if store.commit(job_id, lease, rows, seconds=seconds):
                        done_progress.committed += 1
                        bar.update(1)
                    else:
                        done_progress.rejected += 1
                        log.warning("partition %d: lease taken over; result discarded", k)
                else:
                    error = _describe(future.exception())
                    done_progress.failed += 1
                    state = store.fail(job_id, lease, error, max_attempts=settings.max_attempts)
                    log.warning("partition %d attempt %d failed: %s", k, lease.attempt, error)
                    if state == "dead":
                        done_progress.dead += 1
                        submit_dead(k, error)
                future.release()
    finally:
        heartbeat.stop()
        for future in list(inflight) + list(dead_tasks):
            future.cancel()
        for future in blocks.values():
            future.release()
        bar.close()
        try:
            store.release(job_id, owner)
        except StoreError as exc:  # the leases will expire on their own
            log.warning("could not release leases: %s", exc)
    return done_progress


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "cancelled"
    name = type(exc).__name__
    text = str(exc)
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
