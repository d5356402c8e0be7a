"""Jobs and partition leases: who works on what, exactly once, whatever fails.

A partition's life: ``pending`` -> (claim) ``running`` under a lease -> ``done`` (commit) or back to
``pending`` (failure, released) or ``dead`` (failed ``max_attempts`` times). A claim hands out a fresh
``lease_token`` and counts an attempt; the holder renews its leases while it works; a lease that
expires (its holder vanished) can be claimed by anyone. A commit carries the token: it lands only if
the partition is still ``running`` under that same token, in one transaction with the partition's
result rows, so a worker whose lease was taken over cannot add a second result set.

On PostgreSQL candidates are picked with ``FOR UPDATE SKIP LOCKED``: concurrent claimers never wait
on, or take, each other's rows. SQLite serialises writers (``BEGIN IMMEDIATE``), which gives the same
guarantee on one machine.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lidframe.errors import StoreError
from lidframe.store.engine import db_epoch, retrying, safe_url
from lidframe.store.results import DUPLICATE_ID, PartitionRows, replace_rows
from lidframe.store.schema import evaluations, jobs, partitions, predictions, results

__all__ = ["Commit", "JobStatus", "JobStore", "Lease", "PartitionState"]

P = partitions.c
_BATCH = 5000


class PartitionState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True)
class Lease:
    """A claimed partition: commit or fail it with this token."""

    partition: int
    token: str
    attempt: int
    row_start: int
    row_stop: int
    # Where the rows are in the manifest and what they hash to (see lidframe.manifest).
    source: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Commit:
    """What a commit did: ``accepted`` (truthy) or rejected (the lease was taken over), and the rows
    it stored as ``duplicate_id`` errors: ``{position in the partition: error}``."""

    accepted: bool
    duplicates: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.accepted


@dataclass
class JobStatus:
    """A job's progress, for ``lidframe status`` and notebooks."""

    job: dict[str, Any]
    states: Counter[str]
    attempts: int
    retried: int
    rows_done: int
    error_rows: int
    seconds: float
    dead: list[tuple[int, str]] = field(default_factory=list)
    failing: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        j = self.job
        total = j["n_partitions"]
        order = ("done", "running", "pending", "dead")
        parts = ", ".join(f"{s} {self.states.get(s, 0)}" for s in order)
        lines = [
            f"job {j['job_id']}: {j['status']}",
            f"  manifest {j['manifest']} ({j['n_rows']} rows) -> {j['out']}",
            f"  models {', '.join(j['models'])}",
            f"  partitions {total}{'' if j.get('planned', True) else ' so far (planning)'}: {parts}",
            f"  rows done {self.rows_done}/{j['n_rows']}, row errors {self.error_rows}, "
            f"attempts {self.attempts} ({self.retried} partitions retried), "
            f"{self.rows_per_second:.2f} rows/s over {self.seconds:.0f} s",
        ]
        for partition, error in self.dead:
            lines.append(f"  dead partition {partition}: {error}")
        for partition, attempts, error in self.failing:
            lines.append(f"  partition {partition} failed {attempts} time(s), last: {error}")
        return "\n".join(lines)


class JobStore:
    """Job, partition and result tables of one database (see :mod:`lidframe.store.schema`)."""

    def __init__(self, engine: Engine, *, retry_deadline_s: float = 120.0) -> None:
        self.engine = engine
        # How long a transaction is retried through lost connections before StoreError.
        self.retry_deadline_s = retry_deadline_s
        # job -> the partition after this store's last claim (where the next one looks first)
        self._claim_from: dict[str, int] = {}

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self, what: str, fn: Any, deadline_s: float | None = None) -> Any:
        def attempt() -> Any:
            with self.engine.begin() as conn:
                return fn(conn)

        deadline = (
            self.retry_deadline_s if deadline_s is None else min(deadline_s, self.retry_deadline_s)
        )
        return retrying(attempt, f"{what} ({self.url})", deadline)

    # -- jobs ---------------------------------------------------------------------------------

    def ensure_job(
        self,
        job_id: str,
        *,
        fingerprint: str,
        manifest: str,
        manifest_digest: str,
        out: str,
        models: Sequence[str],
        config: dict[str, Any],
        environment: dict[str, Any],
        bounds: Sequence[tuple[int, int]] | None = None,
    ) -> dict[str, Any]:
        """Create the job, or return the existing one when it matches.

        Partitions are added as the manifest is planned (:meth:`add_partitions`, then
        :meth:`finish_planning`); ``bounds`` (``(row_start, row_stop)`` per partition) creates them
        all at once instead. Raises :class:`StoreError` when ``job_id`` exists with another
        manifest, models or settings.
        """

        def tx(conn: Connection) -> dict[str, Any]:
            row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            if row is None:
                conn.execute(
                    jobs.insert().values(
                        job_id=job_id,
                        status="running",
                        manifest=manifest,
                        manifest_digest=manifest_digest,
                        out=out,
                        models=list(models),
                        config=config,
                        fingerprint=fingerprint,
                        environment=environment,
                        n_partitions=len(bounds or ()),
                        n_rows=int(bounds[-1][1]) if bounds else 0,
                        planned=bounds is not None,
                    )
                )
                if bounds:
                    _insert_partitions(
                        conn,
                        [
                            (job_id, k, int(a), int(b), None, None)
                            for k, (a, b) in enumerate(bounds)
                        ],
                    )
                row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().one()
            elif row["fingerprint"] != fingerprint:
                diffs = _differences(
                    row,
                    {"manifest": manifest, "manifest_digest": manifest_digest, "out": out},
                    list(models),
                    config,
                )
                raise StoreError(
                    f"job {job_id!r} already exists and differs in {diffs}; "
                    "give a new --job name, or run the original settings to resume it"
                )
            return dict(row)

        try:
            return self._tx(f"creating job {job_id}", tx)
        except StoreError as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            # another process created the same job at the same moment: this time it is found
            return self._tx(f"creating job {job_id}", tx)

    # -- planning -----------------------------------------------------------------------------

    def add_partitions(self, job_id: str, planned: Sequence[Any]) -> None:
        """Add planned partitions (:class:`lidframe.manifest.PlannedPartition`, in order) to the job.

        One bulk write (COPY on PostgreSQL, executemany on SQLite); partitions already there (another
        process plans the same job) are kept as they are.
        """
        if not planned:
            return
        rows = [(job_id, p.partition, p.row_start, p.row_stop, p.source, p.digest) for p in planned]
        last = planned[-1]

        def tx(conn: Connection) -> None:
            _insert_partitions(conn, rows)
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.n_partitions <= last.partition)
                .values(n_partitions=last.partition + 1, n_rows=last.row_stop)
            )

        self._tx(f"adding partitions to job {job_id}", tx)

    def last_planned(self, job_id: str) -> tuple[int, int, int, str, str] | None:
        """The job's last planned partition ``(partition, row_start, row_stop, source, digest)``."""

        def tx(conn: Connection) -> tuple[int, int, int, str, str] | None:
            row = conn.execute(
                sa.select(P.partition, P.row_start, P.row_stop, P.source, P.digest)
                .where(P.job_id == job_id)
                .order_by(P.partition.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return int(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4])

        return self._tx(f"reading the plan of {job_id}", tx)

    def finish_planning(self, job_id: str) -> str:
        """Mark every partition planned and store the content digest (a hash of every partition's
        digest, in order); returns it. Raises :class:`StoreError` when the job was planned before
        with another content: the manifest changed between two runs of the job."""

        def tx(conn: Connection) -> str:
            digest = hashlib.blake2b(digest_size=16)
            n = rows = 0
            result = conn.execute(
                sa.select(P.digest, P.row_stop)
                .where(P.job_id == job_id)
                .order_by(P.partition)
                .execution_options(yield_per=50_000)
            )
            for part_digest, stop in result:
                digest.update(f"{part_digest}\x1f".encode())
                n += 1
                rows = int(stop)
            content = digest.hexdigest()
            job = conn.execute(
                sa.select(jobs.c.content_digest).where(jobs.c.job_id == job_id)
            ).one()
            if job[0] is not None and job[0] != content:
                raise _ManifestChanged(job_id)
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id)
                .values(planned=True, content_digest=content, n_partitions=n, n_rows=rows)
            )
            return content

        try:
            return self._tx(f"finishing the plan of {job_id}", tx)
        except _ManifestChanged:
            raise StoreError(
                f"job {job_id!r}: the manifest's content changed since the job was planned; "
                "restore it, or run it as a new job (--overwrite)"
            ) from None

    def job(self, job_id: str) -> dict[str, Any] | None:
        def tx(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            return None if row is None else dict(row)

        return self._tx(f"reading job {job_id}", tx)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first, with its partition counts by state."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id)
                ).mappings()
            ]
            counts = conn.execute(
                sa.select(P.job_id, P.state, sa.func.count()).group_by(P.job_id, P.state)
            ).all()
            for r in rows:
                r["states"] = Counter({s: n for j, s, n in counts if j == r["job_id"]})
            return rows

        return self._tx("listing jobs", tx)

    def job_for_out(self, out: str) -> dict[str, Any] | None:
        """The newest job that wrote to the folder ``out`` (None when there is none)."""

        def tx(conn: Connection) -> dict[str, Any] | None:
            row = (
                conn.execute(
                    sa.select(jobs)
                    .where(jobs.c.out == out)
                    .order_by(jobs.c.created_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            return None if row is None else dict(row)

        return self._tx(f"looking up the job of {out}", tx)

    def add_evaluation(
        self, name: str, results: str, record: dict[str, Any], job_id: str | None = None
    ) -> int:
        """Store an evaluation record; returns its ``eval_id``."""

        def tx(conn: Connection) -> int:
            return int(
                conn.execute(
                    evaluations.insert()
                    .values(name=name, job_id=job_id, results=results, record=record)
                    .returning(evaluations.c.eval_id)
                ).scalar_one()
            )

        return self._tx(f"storing evaluation {name}", tx)

    def evaluations(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored evaluations (all, or those called ``name``), oldest first."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            query = sa.select(evaluations).order_by(evaluations.c.eval_id)
            if name is not None:
                query = query.where(evaluations.c.name == name)
            return [dict(r) for r in conn.execute(query).mappings()]

        return self._tx("reading evaluations", tx)

    def set_status(self, job_id: str, status: str) -> None:
        self._tx(
            f"updating job {job_id}",
            lambda conn: conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id)
                .values(status=status, updated_at=sa.func.now())
            ),
        )

    def finish_if_complete(self, job_id: str) -> str | None:
        """Mark the job finished when no partition is pending or running; returns the new status."""

        def tx(conn: Connection) -> str | None:
            planned = conn.execute(
                sa.select(jobs.c.planned).where(jobs.c.job_id == job_id)
            ).scalar()
            states = self._states(conn, job_id)
            if not planned or states.get("pending", 0) or states.get("running", 0):
                return None
            status = "finished_with_dead" if states.get("dead", 0) else "finished"
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id)
                .values(status=status, updated_at=sa.func.now())
            )
            return status

        return self._tx(f"finishing job {job_id}", tx)

    def retry_dead(self, job_id: str) -> int:
        """Give dead partitions a fresh set of attempts; returns how many."""

        def tx(conn: Connection) -> int:
            n = conn.execute(
                partitions.update()
                .where(P.job_id == job_id, P.state == "dead")
                .values(state="pending", attempts=0)
            ).rowcount
            if n:
                conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(status="running"))
            return int(n)

        return self._tx(f"retrying dead partitions of {job_id}", tx)

    # -- leases -------------------------------------------------------------------------------

    def claim(
        self, job_id: str, owner: str, n: int, *, lease_s: float, max_attempts: int
    ) -> list[Lease]:
        """Lease up to ``n`` claimable partitions (pending, or running under an expired lease).

        An expired lease on a partition that already used ``max_attempts`` makes it dead instead.
        """
        if n <= 0:
            return []
        token = uuid.uuid4().hex

        def tx(conn: Connection) -> list[Lease]:
            expired = sa.and_(P.state == "running", P.lease_expires < db_epoch())
            conn.execute(
                partitions.update()
                .where(P.job_id == job_id, expired, P.attempts >= max_attempts)
                .values(
                    state="dead",
                    lease_owner=None,
                    lease_token=_dead_token(),
                    lease_expires=None,
                    last_error=sa.func.coalesce(P.last_error, "")
                    + f" [lease expired {max_attempts} times: the task or its process died]",
                )
            )
            # Two scans of the (job, state, partition) index rather than one OR: a million-partition
            # job claims in the same time at its start and at its end. Ordering by (state,
            # partition), state being fixed, keeps PostgreSQL's planner on that index: by the
            # primary key it would walk every done partition before the first pending one.
            chosen = list(
                conn.execute(
                    sa.select(P.partition)
                    .where(P.job_id == job_id, expired)
                    .order_by(P.state, P.partition)
                    .limit(n)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            # Pending partitions from where this store's last claim ended first: on PostgreSQL the
            # index keeps entries of rows claimed since the last vacuum, and a scan from the start
            # walks all of them (measured: 80 ms per claim half-way through a million partitions).
            # Partitions handed back below it (failed attempts) are claimed when nothing is left
            # above: retries come after the first pass.
            start = self._claim_from.get(job_id, 0)
            for bound in (start, 0) if start else (0,):
                if len(chosen) >= n:
                    break
                chosen += conn.execute(
                    sa.select(P.partition)
                    .where(P.job_id == job_id, P.state == "pending", P.partition >= bound)
                    .order_by(P.state, P.partition)
                    .limit(n - len(chosen))
                    .with_for_update(skip_locked=True)
                ).scalars()
            if not chosen:
                return []
            claimed = conn.execute(
                partitions.update()
                .where(P.job_id == job_id, P.partition.in_(chosen))
                .values(
                    state="running",
                    attempts=P.attempts + 1,
                    lease_owner=owner,
                    lease_token=token,
                    lease_expires=db_epoch() + lease_s,
                    started_at=db_epoch(),
                )
                .returning(P.partition, P.attempts, P.row_start, P.row_stop, P.source, P.digest)
            ).all()
            leases = [
                Lease(int(p), token, int(a), int(s), int(e), src, d)
                for p, a, s, e, src, d in claimed
            ]
            return sorted(leases, key=lambda lease: lease.partition)

        leases = self._tx(f"claiming partitions of {job_id}", tx)
        if leases:
            self._claim_from[job_id] = leases[-1].partition + 1
        return leases

    def renew(self, job_id: str, owner: str, lease_s: float) -> int:
        """Extend every lease ``owner`` holds on the job; returns how many it still holds."""

        def tx(conn: Connection) -> int:
            return int(
                conn.execute(
                    partitions.update()
                    .where(P.job_id == job_id, P.lease_owner == owner, P.state == "running")
                    .values(lease_expires=db_epoch() + lease_s)
                ).rowcount
            )

        return self._tx(f"renewing leases of {job_id}", tx, deadline_s=30)

    def release(self, job_id: str, owner: str) -> int:
        """Hand back ``owner``'s leases (a clean stop): pending again, the attempt not counted."""

        def tx(conn: Connection) -> int:
            return int(
                conn.execute(
                    partitions.update()
                    .where(P.job_id == job_id, P.lease_owner == owner, P.state == "running")
                    .values(
                        state="pending",
                        attempts=sa.case((P.attempts > 0, P.attempts - 1), else_=0),
                        lease_owner=None,
                        lease_token=None,
                        lease_expires=None,
                    )
                ).rowcount
            )

        return self._tx(f"releasing leases of {job_id}", tx, deadline_s=15)

    def seconds_to_next_expiry(self, job_id: str) -> float | None:
        """Seconds until the earliest running lease expires (None when nothing is running)."""

        def tx(conn: Connection) -> float | None:
            value = conn.execute(
                sa.select(sa.func.min(P.lease_expires) - db_epoch()).where(
                    P.job_id == job_id, P.state == "running"
                )
            ).scalar()
            return None if value is None else max(0.0, float(value))

        return self._tx(f"reading leases of {job_id}", tx)

    def commit(
        self, job_id: str, lease: Lease, rows: PartitionRows, *, seconds: float | None = None
    ) -> Commit:
        """Store a partition's result rows and mark it done, atomically, if ``lease`` still holds it.

        Returns a false :class:`Commit` (and writes nothing) when the lease was taken over. Retried
        after a lost connection; a retry of a commit that did land is recognised by its token. Rows
        whose id an earlier row has are stored as ``duplicate_id`` errors (``Commit.duplicates``).
        """

        def tx(conn: Connection) -> Commit:
            updated = conn.execute(
                partitions.update()
                .where(_held(job_id, lease))
                .values(
                    state="done",
                    lease_owner=None,
                    lease_expires=None,
                    last_error=None,
                    rows=len(rows),
                    seconds=seconds,
                    finished_at=db_epoch(),
                )
            ).rowcount
            if updated != 1:
                state, token = conn.execute(
                    sa.select(P.state, P.lease_token).where(
                        P.job_id == job_id, P.partition == lease.partition
                    )
                ).one()
                if state == "done" and token == lease.token:
                    return Commit(True, _marks(conn, job_id, lease.partition))
                return Commit(False)
            duplicates = replace_rows(conn, job_id, lease.partition, rows)
            conn.execute(
                partitions.update()
                .where(P.job_id == job_id, P.partition == lease.partition)
                .values(
                    errors=rows.errors + sum(1 for i in duplicates if rows.results[i][8] is None)
                )
            )
            return Commit(True, duplicates)

        return self._tx(f"committing partition {lease.partition} of {job_id}", tx)

    def fail(self, job_id: str, lease: Lease, error: str, *, max_attempts: int) -> str | None:
        """Record a failed attempt: ``pending`` again, or ``dead`` after ``max_attempts``.

        Returns the new state, or None when the lease was no longer this one's.
        """

        dead = _dead_token()

        def tx(conn: Connection) -> str | None:
            row = conn.execute(
                partitions.update()
                .where(_held(job_id, lease))
                .values(
                    state=sa.case((P.attempts >= max_attempts, "dead"), else_="pending"),
                    # A dead partition's rows are written under a token no holder ever had, so a
                    # late part file of the last holder can never be taken for them.
                    lease_token=sa.case((P.attempts >= max_attempts, dead), else_=P.lease_token),
                    lease_owner=None,
                    lease_expires=None,
                    last_error=error[:4000],
                )
                .returning(P.state)
            ).first()
            return None if row is None else str(row[0])

        return self._tx(f"recording a failure of partition {lease.partition} of {job_id}", tx)

    def dead_without_rows(self, job_id: str, limit: int = 100) -> list[tuple[Lease, str]]:
        """Dead partitions whose rows are not written yet: ``(lease with the dead token, error)``."""

        def tx(conn: Connection) -> list[tuple[Lease, str]]:
            rows = conn.execute(
                sa.select(
                    P.partition,
                    P.lease_token,
                    P.attempts,
                    P.row_start,
                    P.row_stop,
                    P.source,
                    P.digest,
                    P.last_error,
                )
                .where(P.job_id == job_id, P.state == "dead", P.rows.is_(None))
                .order_by(P.partition)
                .limit(limit)
            ).all()
            return [
                (Lease(int(p), str(t), int(a), int(s), int(e), src, d), str(err or ""))
                for p, t, a, s, e, src, d, err in rows
            ]

        return self._tx(f"reading dead partitions of {job_id}", tx)

    def store_dead_rows(
        self, job_id: str, partition: int, token: str, rows: PartitionRows
    ) -> Commit:
        """Store the rows of a dead partition (each with its error) if it is still dead under
        ``token``; accepted also when they were already stored under it (by another process)."""

        def tx(conn: Connection) -> Commit:
            state, current, stored = conn.execute(
                sa.select(P.state, P.lease_token, P.rows)
                .where(P.job_id == job_id, P.partition == partition)
                .with_for_update()
            ).one()
            if state != "dead" or current != token:
                return Commit(False)
            if stored is not None:
                return Commit(True, _marks(conn, job_id, partition))
            duplicates = replace_rows(conn, job_id, partition, rows)
            conn.execute(
                partitions.update()
                .where(P.job_id == job_id, P.partition == partition)
                .values(rows=len(rows), errors=len(rows), finished_at=db_epoch())
            )
            return Commit(True, duplicates)

        return self._tx(f"storing dead partition {partition} of {job_id}", tx)

    def duplicate_marks(self, job_id: str, partition: int) -> dict[int, str]:
        """The partition's stored ``duplicate_id`` rows: ``{position in the partition: error}``."""
        return self._tx(
            f"reading duplicate ids of {job_id}", lambda conn: _marks(conn, job_id, partition)
        )

    def partition_tokens(
        self, job_id: str, partitions_: Sequence[int]
    ) -> dict[int, tuple[str, str | None, bool]]:
        """``{partition: (state, lease token, rows stored)}``."""

        def tx(conn: Connection) -> dict[int, tuple[str, str | None, bool]]:
            found: dict[int, tuple[str, str | None, bool]] = {}
            wanted = sorted(set(partitions_))
            for i in range(0, len(wanted), _BATCH):
                for k, state, token, stored in conn.execute(
                    sa.select(
                        P.partition,
                        P.state,
                        P.lease_token,
                        P.rows.is_not(None),
                    ).where(P.job_id == job_id, P.partition.in_(wanted[i : i + _BATCH]))
                ).all():
                    found[int(k)] = (str(state), token, bool(stored))
            return found

        return self._tx(f"reading partition tokens of {job_id}", tx)

    # -- reading ------------------------------------------------------------------------------

    def _states(self, conn: Connection, job_id: str) -> Counter[str]:
        rows = conn.execute(
            sa.select(P.state, sa.func.count()).where(P.job_id == job_id).group_by(P.state)
        ).all()
        return Counter({s: int(n) for s, n in rows})

    def states(self, job_id: str) -> Counter[str]:
        return self._tx(f"reading job {job_id}", lambda conn: self._states(conn, job_id))

    def partitions(self, job_id: str) -> pd.DataFrame:
        """The partition table of a job as a frame (one row per partition)."""
        return self._tx(
            f"reading partitions of {job_id}",
            lambda conn: pd.DataFrame(
                conn.execute(sa.select(partitions).where(P.job_id == job_id).order_by(P.partition))
                .mappings()
                .all(),
                columns=[c.name for c in partitions.columns],
            ),
        )

    def status(self, job_id: str) -> JobStatus:
        def tx(conn: Connection) -> JobStatus:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            if job is None:
                raise StoreError(f"no job {job_id!r} in {self.url}")
            agg = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(P.attempts), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((P.attempts > 1, 1), else_=0)), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((P.state == "done", P.rows))), 0),
                    sa.func.coalesce(sa.func.sum(P.errors), 0),
                    sa.func.min(P.started_at),
                    sa.func.max(P.finished_at),
                ).where(P.job_id == job_id)
            ).one()
            dead = conn.execute(
                sa.select(P.partition, P.last_error)
                .where(P.job_id == job_id, P.state == "dead")
                .order_by(P.partition)
                .limit(20)
            ).all()
            failing = conn.execute(
                sa.select(P.partition, P.attempts, P.last_error)
                .where(P.job_id == job_id, P.state != "dead", P.last_error.is_not(None))
                .order_by(P.partition)
                .limit(20)
            ).all()
            first, last = agg[4], agg[5]
            return JobStatus(
                job=dict(job),
                states=self._states(conn, job_id),
                attempts=int(agg[0]),
                retried=int(agg[1]),
                rows_done=int(agg[2]),
                error_rows=int(agg[3]),
                seconds=float(last - first) if first is not None and last is not None else 0.0,
                dead=[(int(p), str(e)) for p, e in dead],
                failing=[(int(p), int(a), str(e)) for p, a, e in failing],
            )

        return self._tx(f"reading job {job_id}", tx)

    def summary(self, job_id: str, multi_model: bool) -> dict[str, Any]:
        """Rows, errors by category and languages per model (and consensus) of a job's results."""
        r, p = results.c, predictions.c

        def tx(conn: Connection) -> dict[str, Any]:
            rows = conn.execute(
                sa.select(sa.func.count()).select_from(results).where(r.job_id == job_id)
            ).scalar()
            categories = conn.execute(
                sa.select(r.error_category, sa.func.count())
                .where(r.job_id == job_id, r.error_category.is_not(None))
                .group_by(r.error_category)
            ).all()
            langs = conn.execute(
                sa.select(p.model, p.lang, sa.func.count())
                .where(p.job_id == job_id, p.lang.is_not(None))
                .group_by(p.model, p.lang)
            ).all()
            languages: dict[str, Counter[str]] = {}
            for model, lang, n in langs:
                languages.setdefault(model, Counter())[lang] = int(n)
            if multi_model:
                languages["lang"] = Counter(
                    {
                        lang: int(n)
                        for lang, n in conn.execute(
                            sa.select(r.lang, sa.func.count())
                            .where(r.job_id == job_id, r.lang.is_not(None))
                            .group_by(r.lang)
                        ).all()
                    }
                )
            return {
                "rows": int(rows or 0),
                "error_categories": Counter({c: int(n) for c, n in categories}),
                "languages": languages,
            }

        return self._tx(f"summarising job {job_id}", tx)

    def results(self, job_id: str) -> pd.DataFrame:
        """The job's result rows (without predictions), ordered by manifest row."""
        return self._tx(
            f"reading results of {job_id}",
            lambda conn: pd.DataFrame(
                conn.execute(
                    sa.select(results).where(results.c.job_id == job_id).order_by(results.c.row)
                )
                .mappings()
                .all(),
                columns=[c.name for c in results.columns],
            ),
        )

    def predictions(self, job_id: str) -> pd.DataFrame:
        return self._tx(
            f"reading predictions of {job_id}",
            lambda conn: pd.DataFrame(
                conn.execute(sa.select(predictions).where(predictions.c.job_id == job_id))
                .mappings()
                .all(),
                columns=[c.name for c in predictions.columns],
            ),
        )


class _ManifestChanged(Exception):
    pass


def _marks(conn: Connection, job_id: str, partition: int) -> dict[int, str]:
    r = results.c
    rows = conn.execute(
        sa.select(r.row - P.row_start, r.error)
        .select_from(
            results.join(partitions, sa.and_(P.job_id == r.job_id, P.partition == r.partition))
        )
        .where(r.job_id == job_id, r.partition == partition, r.error_category == DUPLICATE_ID)
    ).all()
    return {int(position): str(error) for position, error in rows}


def _insert_partitions(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk insert of ``(job_id, partition, row_start, row_stop, source, digest)`` rows; rows whose
    partition exists are left alone."""
    columns = ("job_id", "partition", "row_start", "row_stop", "source", "digest")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        # COPY into a scratch table, then one INSERT ... ON CONFLICT DO NOTHING: COPY's speed, and
        # a second planner of the same job adds nothing twice.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS lidframe_planned "
            "(LIKE lidframe_partitions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY lidframe_planned ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["varchar", "int4", "int8", "int8", "text", "varchar"])
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO lidframe_partitions ({names}) SELECT {names} FROM lidframe_planned "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute("DELETE FROM lidframe_planned")
        return
    for i in range(0, len(rows), _BATCH * 10):
        cursor.executemany(
            f"INSERT OR IGNORE INTO lidframe_partitions ({names}) VALUES (?, ?, ?, ?, ?, ?)",
            rows[i : i + _BATCH * 10],
        )


def _dead_token() -> str:
    return f"dead-{uuid.uuid4().hex}"


def _held(job_id: str, lease: Lease) -> sa.ColumnElement[bool]:
    """The partition is still running under this very lease."""
    return sa.and_(
        P.job_id == job_id,
        P.partition == lease.partition,
        P.lease_token == lease.token,
        P.state == "running",
    )


def _differences(row: Any, given: dict[str, str], models: list[str], config: dict[str, Any]) -> str:
    diffs = [k for k, v in given.items() if row[k] != v]
    if list(row["models"]) != models:
        diffs.append(f"models ({', '.join(row['models'])} vs {', '.join(models)})")
    changed = sorted(
        k for k in set(row["config"]) | set(config) if row["config"].get(k) != config.get(k)
    )
    diffs.extend(f"setting {k!r}" for k in changed)
    return ", ".join(diffs) or "fingerprint"
