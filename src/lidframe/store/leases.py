"""Partition leases: who works on what, exactly once, whatever fails.

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

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.store.base import StoreBase
from lidframe.store.behaviour import ANSWER
from lidframe.store.behaviour_rows import forget_behaviour
from lidframe.store.engine import db_epoch
from lidframe.store.results import DUPLICATE_ID, PartitionRows, replace_rows
from lidframe.store.schema import behaviour, jobs, partitions, results

__all__ = ["Commit", "Lease", "Leases", "PartitionState", "Redone"]

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
class Redone:
    """What :meth:`Leases.redo_worker` made pending again: ``done`` partitions the worker computed
    and ``dead`` ones that died of its failed attempts."""

    done: list[int]
    dead: list[int]

    def __len__(self) -> int:
        return len(self.done) + len(self.dead)


@dataclass(frozen=True)
class Commit:
    """What a commit did: ``accepted`` (truthy) or rejected (the lease was taken over), and the rows
    it stored as ``duplicate_id`` errors: ``{position in the partition: error}``."""

    accepted: bool
    duplicates: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.accepted


class Leases(StoreBase):
    """Claiming, renewing, committing, failing and releasing a job's partitions (mixed into
    :class:`~lidframe.store.jobs.JobStore`)."""

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
        """Hand back ``owner``'s leases (a clean stop): pending again, the attempt not counted.

        A job left unfinished with no partition running anywhere is then ``stopped`` (no process
        works on it: its last run was interrupted or failed); a run that takes it up again makes it
        ``running`` (:meth:`~lidframe.store.JobStore.ensure_job`). Returns the leases released."""

        def tx(conn: Connection) -> int:
            released = conn.execute(
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
            running = sa.exists().where(P.job_id == job_id, P.state == "running")
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.status == "running", ~running)
                .values(status="stopped", updated_at=sa.func.now())
            )
            return int(released)

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

    def give_back(self, job_id: str, lease: Lease, reason: str) -> bool:
        """Hand one lease back without counting its attempt (its result is not wanted, e.g. it came
        from a quarantined worker): pending again. False when the lease was no longer this one's."""

        def tx(conn: Connection) -> bool:
            return (
                conn.execute(
                    partitions.update()
                    .where(_held(job_id, lease))
                    .values(
                        state="pending",
                        attempts=sa.case((P.attempts > 0, P.attempts - 1), else_=0),
                        lease_owner=None,
                        lease_token=None,
                        lease_expires=None,
                        last_error=reason[:4000],
                    )
                ).rowcount
                == 1
            )

        return bool(self._tx(f"giving back partition {lease.partition} of {job_id}", tx))

    def redo_worker(
        self, job_id: str, worker: str, reason: str, failed: Mapping[int, int] | None = None
    ) -> Redone:
        """Take back what the Dask worker ``worker`` did, to be done elsewhere: none of its attempts
        counts. Every done partition it computed (its stored behaviour says which) is pending
        again; each of its ``failed`` attempts (``{partition: attempts that failed on it}``, which
        the driver saw) is no longer counted against ``max_attempts``, and a partition that died
        of them is pending again. Their stored behaviour is forgotten; their rows (answers, or a
        dead partition's errors) stay until the redo's commit replaces them."""

        def tx(conn: Connection) -> Redone:
            b = behaviour.c
            done = list(
                conn.execute(
                    sa.select(b.partition)
                    .select_from(
                        behaviour.join(
                            partitions,
                            sa.and_(P.job_id == b.job_id, P.partition == b.partition),
                        )
                    )
                    .where(
                        b.job_id == job_id, b.model == ANSWER, b.worker == worker,
                        P.state == "done",
                    )
                    .order_by(b.partition)
                ).scalars()
            )  # fmt: skip
            for i in range(0, len(done), _BATCH):
                chunk = done[i : i + _BATCH]
                conn.execute(
                    partitions.update()
                    .where(P.job_id == job_id, P.partition.in_(chunk))
                    .values(
                        state="pending",
                        # its last attempt, the worker's, does not count
                        attempts=sa.case((P.attempts > 0, P.attempts - 1), else_=0),
                        lease_owner=None,
                        lease_token=None,
                        lease_expires=None,
                        rows=None,
                        errors=None,
                        last_error=reason[:4000],
                    )
                )
                forget_behaviour(conn, job_id, chunk)
            dead: list[int] = []
            for k, n in sorted((failed or {}).items()):
                back = sa.case((P.attempts > n, P.attempts - n), else_=0)
                revived = conn.execute(
                    partitions.update()
                    .where(P.job_id == job_id, P.partition == k, P.state == "dead")
                    .values(
                        state="pending", attempts=back, lease_owner=None, lease_token=None,
                        lease_expires=None, rows=None, errors=None, last_error=reason[:4000],
                    )
                ).rowcount  # fmt: skip
                if revived:
                    dead.append(k)
                    forget_behaviour(conn, job_id, [k])
                else:  # pending or running again: its later attempts have their full count
                    conn.execute(
                        partitions.update()
                        .where(P.job_id == job_id, P.partition == k, P.state != "done")
                        .values(attempts=back)
                    )
            self._claim_from.pop(job_id, None)  # claim from the start: they are below
            return Redone([int(k) for k in done], dead)

        return self._tx(f"redoing the partitions of worker {worker} of {job_id}", tx)

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
