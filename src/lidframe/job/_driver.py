"""Drive one job's partitions through a Dask cluster under leases from the job database.

The driver (the process that calls :func:`lidframe.run`) is the only one that talks to the
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
* a task that finds its worker's environment differs from the job's
  (:class:`~lidframe.errors.EnvironmentMismatch`) computed or kept nothing: its partition is handed
  back without counting an attempt, and that worker, like any worker found different when it
  joined (:mod:`lidframe.job._environments`), gets no more partitions;
* storage refusing every row of a partition (:class:`~lidframe.errors.StorageAccessDenied`) or the
  job database staying unreachable stops the job (:class:`~lidframe.errors.JobFailed`) with its
  state kept: no partition is marked for a problem that is not its own.

Nothing here holds an object per partition of the job: only the partitions in flight (``per_thread``
per worker thread) are in memory, so the driver stays the same size for any manifest.
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
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lidframe.errors import (
    EnvironmentMismatch,
    JobFailed,
    StorageAccessDenied,
    StoreError,
    describe_failure,
)
from lidframe.job._config import JobSettings
from lidframe.job._environments import Environments
from lidframe.job._interrupts import raise_pending
from lidframe.job._planner import Planner
from lidframe.job._progress import LiveTable, progress_bar, set_total
from lidframe.job._promotion import promote_committed
from lidframe.job._stalls import StallWatch, restart_in_background
from lidframe.job._watch import Watch, WatchSettings
from lidframe.job._worker import PROGRESS_TOPIC, PartitionTask, dead_partition, process_partition
from lidframe.manifest import ManifestChanged, PlannedPartition
from lidframe.observe import MetricsServer
from lidframe.results import discard
from lidframe.store import JobStore, Lease, PartitionRows

__all__ = ["Driver", "Progress", "run_partitions"]

log = logging.getLogger("lidframe")


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
    watch: WatchSettings | None = None,
    environments: Environments | None = None,
) -> Progress:
    """Work on the job until it is planned and no partition is pending or running.

    The manifest is planned in a thread beside the work (:class:`~lidframe.job._planner.Planner`);
    partitions are claimed as soon as they are in the database. Returns what this process did.
    Raises :class:`JobFailed` when the job cannot go on (storage refuses the credentials, the
    manifest changed, the job database stays unreachable); the job's state is kept and a rerun
    resumes it.
    """
    driver = Driver(
        client,
        store,
        job_id,
        task,
        settings,
        partition_rows,
        progress=progress,
        watch=watch,
        environments=environments,
    )
    return driver.run()


class Driver:
    """One process working on one job: claims, submits, collects, commits, gives up on stalls."""

    def __init__(
        self,
        client: Any,
        store: JobStore,
        job_id: str,
        task: PartitionTask,
        settings: JobSettings,
        partition_rows: int,
        *,
        progress: bool = True,
        watch: WatchSettings | None = None,
        environments: Environments | None = None,
    ) -> None:
        self.client, self.store, self.job_id, self.task = client, store, job_id, task
        # The job's environment and its workers' (None: none checked).
        self.environments = environments
        self.no_worker_warned = False
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.inflight: dict[Any, Lease] = {}  # future -> its partition's lease
        self.writing_dead: dict[Any, Lease] = {}  # future -> a dead partition (its dead token)
        self.dead_write_failures: Counter[int] = Counter()  # dead partition -> failed writes
        # worker -> {partition: attempts that failed on it}, so a quarantine can take them back
        self.failed_on: dict[str, Counter[int]] = {}
        self.stalls = StallWatch(settings.stall_seconds)
        self.done = Progress()
        self.heartbeat = _Heartbeat(store, job_id, self.owner, settings.lease_seconds)
        self.planner = Planner(store, job_id, task.manifest, partition_rows)
        states = store.states(job_id)
        # What the models said so far (partitions stored before this run too), and its checks.
        self.watch = Watch(store, job_id, watch)
        if environments is not None:
            self.watch.environment_of = environments.describe_worker
        self.metrics: MetricsServer | None = None
        self.bar = progress_bar(
            total=None,
            initial=states.get("done", 0) + states.get("dead", 0),
            unit="part",
            disable=not progress,
            file=sys.stderr,
            desc=f"lidframe {job_id}",
        )
        # In Jupyter, what the models said so far as a small table under the bar.
        self.table = LiveTable.for_this_process(job_id, enabled=progress)

    def run(self) -> Progress:
        """Work until the job is planned and no partition is pending or running; see
        :func:`run_partitions`."""
        from distributed import wait

        self.client.subscribe_topic(PROGRESS_TOPIC, self.stalls.on_progress)
        self.serve_metrics()
        self.show_table(now=True)
        self.heartbeat.start()
        self.planner.start()
        try:
            while True:
                raise_pending()  # a Ctrl-C or SIGTERM whose exception Python lost (job._interrupts)
                self.planner.check()
                set_total(self.bar, self.planner.planned if self.planner.finished else None)
                nthreads = self.client.nthreads()
                if self.environments is not None:
                    self.environments.check(self.client, nthreads)
                excluded = self.excluded()
                threads = sum(n for w, n in nthreads.items() if w not in excluded) or 1
                self.claim(threads)
                self.write_dead_rows(threads)
                if not self.inflight and not self.writing_dead:
                    if self.idle_until_finished():
                        break
                    continue
                try:
                    finished = wait(
                        [*self.inflight, *self.writing_dead],
                        timeout=2.0,
                        return_when="FIRST_COMPLETED",
                    ).done
                except TimeoutError:
                    finished = set()
                for future in finished:
                    if future in self.writing_dead:
                        self.dead_rows_written(future)
                    else:
                        self.partition_finished(future)
                    future.release()
                self.give_up_stalled()
        except StoreError as exc:
            raise JobFailed(f"the job database failed while the job ran: {exc}") from exc
        finally:
            self.stop()
        return self.done

    def claim(self, threads: int) -> None:
        """Claim and submit partitions while worker threads have room (``per_thread`` each)."""
        room = max(1, self.settings.per_thread * threads) - len(self.inflight)
        if room <= 0 or not self.may_submit():
            return
        for lease in self.store.claim(
            self.job_id,
            self.owner,
            room,
            lease_s=self.settings.lease_seconds,
            max_attempts=self.settings.max_attempts,
        ):
            future = self.client.submit(
                process_partition,
                _planned(lease),
                lease.token,
                self.task,
                key=f"lidframe-{self.job_id}-part{lease.partition}-try{lease.attempt}-"
                f"{lease.token[:8]}",
                retries=self.settings.task_retries,
                pure=False,
                **self.placement(),
            )
            self.inflight[future] = lease
            self.stalls.watch(lease)

    def excluded(self) -> set[str]:
        """The workers that get no partitions: quarantined, or refused for their environment."""
        refused = self.environments.refused if self.environments is not None else set()
        return self.watch.quarantined | refused

    def placement(self) -> dict[str, Any]:
        """Where a task may run: anywhere, or (once a worker is quarantined or refused) on the
        others only."""
        if not self.excluded():
            return {}
        return {"workers": self.workers(), "allow_other_workers": False}

    def may_submit(self) -> bool:
        """Whether any worker may take a task now; when every worker is excluded, say so once
        (the job waits for a worker to join)."""
        if not self.excluded() or self.workers():
            self.no_worker_warned = False
            return True
        if not self.no_worker_warned:
            self.no_worker_warned = True
            log.warning(
                "job %s: every worker is quarantined or has another environment than the job's; "
                "waiting for a worker to join (`lidframe status` names them)", self.job_id
            )  # fmt: skip
        return False

    def write_dead_rows(self, threads: int) -> None:
        """Submit the writing of dead partitions' rows (their errors), a few at a time."""
        if len(self.writing_dead) >= threads or not self.may_submit():
            return
        writing = {lease.partition for lease in self.writing_dead.values()}
        for lease, message in self.store.dead_without_rows(self.job_id, limit=threads):
            if lease.partition in writing:
                continue
            future = self.client.submit(
                dead_partition,
                _planned(lease),
                lease.token,
                self.task,
                message,
                key=f"lidframe-{self.job_id}-dead{lease.partition}-{lease.token[-8:]}",
                retries=self.settings.task_retries,
                pure=False,
                **self.placement(),
            )
            self.writing_dead[future] = lease

    def idle_until_finished(self) -> bool:
        """Nothing in flight: wait for planning or for partitions leased elsewhere; True once the
        job is finished."""
        if not self.planner.finished:
            self.planner.wait(0.5)  # nothing planned is left to claim yet
            return False
        if self.store.finish_if_complete(self.job_id) is not None:
            return True
        # Partitions still leased elsewhere (another process, or one that died): wait for them to
        # finish or for their leases to expire.
        wait_s = self.store.seconds_to_next_expiry(self.job_id)
        time.sleep(min(5.0, 0.5 if wait_s is None else wait_s + 0.2))
        states = self.store.states(self.job_id)
        self.bar.n = states.get("done", 0) + states.get("dead", 0)
        self.bar.refresh()
        return False

    def partition_finished(self, future: Any) -> None:
        """Commit a finished partition task's rows under its lease, or fail its attempt."""
        lease = self.inflight.pop(future)
        k = lease.partition
        self.stalls.forget(lease)
        if future.status == "finished":
            rows, seconds = future.result()
            made_by = rows.behaviour.worker if rows.behaviour is not None else None
            if made_by in self.watch.quarantined:  # finished after its worker was quarantined
                discard(self.task.out, k, lease.token, self.task.out_options)
                self.store.give_back(self.job_id, lease, f"computed by quarantined {made_by}")
                return
            committed = self.store.commit(self.job_id, lease, rows, seconds=seconds)
            if committed:
                promote_committed(self.task, k, lease.token, committed.duplicates)
                self.done.committed += 1
                self.observe(rows, committed.duplicates)
                self.bar.update(1)
            else:
                discard(self.task.out, k, lease.token, self.task.out_options)
                self.done.rejected += 1
                log.warning("partition %d: lease taken over; result discarded", k)
            return
        exc = future.exception() if future.status == "error" else None
        if isinstance(exc, StorageAccessDenied | ManifestChanged):
            raise JobFailed(str(exc)) from exc
        if isinstance(exc, EnvironmentMismatch) and self.environments is not None:
            self.environments.refuse(self.client, exc.worker, exc.host, str(exc))  # staged nothing
            self.store.give_back(self.job_id, lease, f"worker {exc.worker}: {exc}")
            return
        error = describe_failure(exc)
        log.warning("partition %d attempt %d failed: %s", k, lease.attempt, error)
        self.fail(lease, error, _failed_on(self.client, future, exc))

    def dead_rows_written(self, future: Any) -> None:
        """Store a dead partition's rows (their errors) and promote its part. A write that fails
        ``max_attempts`` times stops the job (:class:`JobFailed`, its state kept) rather than being
        tried for ever."""
        lease = self.writing_dead.pop(future)
        k, token = lease.partition, lease.token
        if future.status != "finished":
            exc = future.exception() if future.status == "error" else None
            if isinstance(exc, StorageAccessDenied | ManifestChanged):
                raise JobFailed(str(exc)) from exc
            self.dead_write_failures[k] += 1
            tries = self.dead_write_failures[k]
            if tries >= self.settings.max_attempts:
                raise JobFailed(
                    f"the rows of dead partition {k} could not be written ({tries} tries): "
                    f"{describe_failure(exc)}; the job's state is kept: fix the cause and run "
                    "the same command again"
                ) from exc
            log.warning("could not write the rows of dead partition %d: %s", k, exc)
            return
        stored = self.store.store_dead_rows(self.job_id, k, token, future.result())
        if stored:
            promote_committed(self.task, k, token, stored.duplicates)
            self.observe(future.result(), stored.duplicates)
            self.bar.update(1)
        else:
            discard(self.task.out, k, token, self.task.out_options)

    def observe(self, rows: PartitionRows, duplicates: dict[int, str]) -> None:
        """Add a stored partition's behaviour (as stored: with its ``duplicate_id`` rows) to what
        the bar shows (language mix, agreement, ``und`` and row-error rates), and check it
        (:class:`~lidframe.job._watch.Watch`): quarantine a worker that answers differently."""
        stored = rows.marked(duplicates) if duplicates else rows
        if stored.behaviour is None:
            return
        self.watch.add(stored.behaviour)
        self.bar.set_postfix_str(self.watch.total.line(), refresh=False)
        self.show_table()
        for worker in self.watch.check(self.client):
            self.quarantine(worker)

    def show_table(self, now: bool = False) -> None:
        """The notebook's live table (:class:`~lidframe.job._progress.LiveTable`), if any."""
        if self.table is not None:
            self.table.show(self.watch.total, self.bar.n, self.bar.total, now=now)

    def quarantine(self, worker: str) -> None:
        """No more partitions for ``worker``, and none of its attempts counts: the partitions it
        computed are redone elsewhere, its failed attempts no longer count against
        ``max_attempts``, and the partitions that died of them are tried again elsewhere."""
        reason = f"redone: worker {worker} answered differently from the others (quarantined)"
        failed = self.failed_on.pop(worker, Counter())
        redone = self.store.redo_worker(self.job_id, worker, reason, failed)
        self.watch.reload(self.store)
        self.bar.n = max(0, self.bar.n - len(redone))
        self.done.dead = max(0, self.done.dead - len(redone.dead))
        self.show_table(now=True)
        log.warning(
            "quarantined worker %s: it gets no more partitions; the %d partitions it computed and "
            "the %d that died of its %d failed attempts are redone elsewhere",
            worker, len(redone.done), len(redone.dead), sum(failed.values()),
        )  # fmt: skip

    def workers(self) -> list[str]:
        """The workers that may take partitions (all but the quarantined and the refused)."""
        excluded = self.excluded()
        return [w for w in self.client.nthreads() if w not in excluded]

    def give_up_stalled(self) -> None:
        """Fail the attempts of tasks that reported no progress for ``stall_seconds`` and restart
        their workers (in the background: the loop goes on claiming and committing meanwhile, as a
        nanny that does not bring its worker back would otherwise hold it for the timeout)."""
        stalled = self.stalls.stalled(self.inflight)
        if not stalled:
            return
        processing = self.client.processing()
        for future in stalled:
            lease = self.inflight.pop(future)
            self.stalls.forget(lease)
            self.done.stalled += 1
            log.warning(
                "partition %d attempt %d %s", lease.partition, lease.attempt, self.stalls.error
            )
            workers = [w for w, keys in processing.items() if future.key in keys]
            future.cancel()
            self.fail(lease, self.stalls.error, workers[0] if workers else None)
            if workers:
                restart_in_background(self.client, workers)

    def fail(self, lease: Lease, error: str, worker: str | None = None) -> None:
        """A failed attempt (on ``worker``, when known): back to pending, or dead after
        ``max_attempts``. An attempt that failed on a worker quarantined meanwhile (its failure
        reached the driver after the results that condemned it) does not count either: the
        partition goes back without one."""
        if worker is not None and worker in self.watch.quarantined:
            self.store.give_back(self.job_id, lease, f"failed on quarantined {worker}: {error}")
            return
        self.done.failed += 1
        state = self.store.fail(self.job_id, lease, error, max_attempts=self.settings.max_attempts)
        if state is not None and worker is not None:
            self.failed_on.setdefault(worker, Counter())[lease.partition] += 1
        if state == "dead":
            self.done.dead += 1

    def serve_metrics(self) -> None:
        """The Prometheus endpoint, when asked for (``metrics_port``), until :meth:`stop`."""
        port = self.watch.settings.metrics_port
        if port is None:
            return
        from lidframe.observe import JobMetrics, serve_metrics

        metrics = JobMetrics(
            self.job_id,
            behaviour=lambda: self.watch.total,
            states=lambda: self.store.states(self.job_id),
            drift=lambda: self.watch.drift_values,
        )
        settings = self.watch.settings
        self.metrics = serve_metrics(metrics, port, settings.metrics_host, settings.metrics_token)
        # Once, on the terminal (a random token is in it); the log gets the URL alone.
        print(f"lidframe: metrics: {self.metrics.announcement}", file=sys.stderr, flush=True)
        log.info("metrics of job %s on %s", self.job_id, self.metrics.url)

    def stop(self) -> None:
        """Stop planning and renewing, cancel what is in flight and give the leases back."""
        if self.metrics is not None:
            self.metrics.close()
        self.planner.stop()
        self.heartbeat.stop()
        with contextlib.suppress(ValueError, RuntimeError):
            self.client.unsubscribe_topic(PROGRESS_TOPIC)
        for future in [*self.inflight, *self.writing_dead]:
            future.cancel()
        self.show_table(now=True)  # the last state, however recent the one before
        self.bar.close()
        try:
            self.store.release(self.job_id, self.owner)
        except StoreError as exc:  # the leases will expire on their own
            log.warning("could not release leases: %s", exc)


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
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _failed_on(client: Any, future: Any, exc: BaseException | None) -> str | None:
    """The worker a failed partition task ran on: the last one to die running it (Dask's
    ``KilledWorker``), else where the scheduler saw it fail (``erred_on``); None when unknown.

    Asked of the scheduler with a function sent by value (a lambda), so a scheduler without
    lidframe installed can answer; one round trip per failed attempt.
    """
    last = getattr(exc, "last_worker", None)
    if last is not None:
        return str(getattr(last, "address", last))
    key = future.key
    try:
        erred = client.run_on_scheduler(
            lambda dask_scheduler: sorted(
                getattr(dask_scheduler.tasks.get(key), "erred_on", None) or ()
            )
        )
    except Exception:  # noqa: BLE001 - unknown is an answer: the attempt still counts
        return None
    return str(erred[-1]) if erred else None
