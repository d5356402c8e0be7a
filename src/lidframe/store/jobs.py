"""Jobs, and :class:`JobStore`: the one object callers hold for a job database.

Callers use one store (``store.claim(...)``, ``store.status(...)``); its operations are grouped by
what they own, one module each, and combined here:

* this module: job records (create or match, look up, list, status, finish, retry dead partitions);
* :mod:`~lidframe.store.planning`: adding a job's partitions as its manifest is planned;
* :mod:`~lidframe.store.leases`: partition leases, who works on what exactly once whatever fails
  (claim, renew, commit, fail, release);
* :mod:`~lidframe.store.reads`: progress and results (states, status, summary, result frames);
* :mod:`~lidframe.store.evaluations`: evaluation records;
* :mod:`~lidframe.store.workers`: the workers a job's driver checked, and their environments;
* :mod:`~lidframe.store.base`: the engine and the retried transaction they all share.

:class:`Lease`, :class:`Commit`, :class:`PartitionState` and :class:`JobStatus` are importable from
here too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.errors import StoreError
from lidframe.store.engine import create_engine, migrate, parse_url, retrying, safe_url
from lidframe.store.evaluations import Evaluations
from lidframe.store.leases import Commit, Lease, Leases, PartitionState
from lidframe.store.planning import Planning, insert_partitions
from lidframe.store.reads import JobStatus, Reads
from lidframe.store.schema import jobs, partitions
from lidframe.store.workers import Workers

__all__ = [
    "Commit",
    "JobStatus",
    "JobStore",
    "Lease",
    "PartitionState",
    "job_differences",
    "open_store",
]

P = partitions.c


class JobStore(Planning, Leases, Reads, Evaluations, Workers):
    """Job, partition and result tables of one database (see :mod:`lidframe.store.schema`)."""

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                    insert_partitions(
                        conn,
                        [
                            (job_id, k, int(a), int(b), None, None)
                            for k, (a, b) in enumerate(bounds)
                        ],
                    )
                row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().one()
            elif row["fingerprint"] == fingerprint and row["status"] == "stopped":
                # a stopped job taken up again (see Leases.release)
                conn.execute(
                    jobs.update()
                    .where(jobs.c.job_id == job_id)
                    .values(status="running", updated_at=sa.func.now())
                )
                row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().one()
            elif row["fingerprint"] != fingerprint:
                diffs = (
                    ", ".join(
                        job_differences(
                            dict(row),
                            manifest=manifest,
                            manifest_digest=manifest_digest,
                            out=out,
                            models=models,
                            config=config,
                        )
                    )
                    or "fingerprint"
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

    def job(self, job_id: str) -> dict[str, Any] | None:
        def tx(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            return None if row is None else dict(row)

        return self._tx(f"reading job {job_id}", tx)

    def record_labels(self, job_id: str, labels: Mapping[str, Sequence[str]]) -> None:
        """Record each model's label set (``{alias: codes}``) in the job's row."""
        value = {alias: list(codes) for alias, codes in labels.items()}

        def tx(conn: Connection) -> None:
            conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(labels=value))

        self._tx(f"recording the label sets of job {job_id}", tx)

    def record_fidelity(self, job_id: str, record: Mapping[str, Any]) -> None:
        """Record a run's half-precision check (:func:`lidframe.kernel.check_fidelity`) in the job's row.

        The newest check is the value; the checks of earlier runs of the job (a resume on other
        hardware checks again) are kept under its ``earlier`` key, newest first.
        """

        def tx(conn: Connection) -> None:
            old = conn.execute(sa.select(jobs.c.fidelity).where(jobs.c.job_id == job_id)).scalar()
            value = dict(record)
            if old:
                previous = {k: v for k, v in old.items() if k != "earlier"}
                value["earlier"] = [previous, *old.get("earlier", [])]
            conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(fidelity=value))

        self._tx(f"recording the fidelity check of job {job_id}", tx)

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


def job_differences(
    row: Mapping[str, Any],
    *,
    manifest: str,
    manifest_digest: str,
    out: str,
    models: Sequence[str],
    config: Mapping[str, Any],
) -> list[str]:
    """What differs between a stored job (its ``lidframe_jobs`` row) and the job described, one
    phrase each, the stored value first: ``models (whisper-base vs whisper-tiny)``,
    ``manifest_digest``, ``partition_rows (16 vs 128)``, ``speech.min_speech (0.25 vs 0.5)``."""
    given = {"manifest": manifest, "manifest_digest": manifest_digest, "out": out}
    diffs = [
        k if k == "manifest_digest" else f"{k} ({row[k]} vs {v})"
        for k, v in given.items()
        if row[k] != v
    ]
    if list(row["models"]) != list(models):
        diffs.append(f"models ({', '.join(row['models'])} vs {', '.join(models)})")
    stored, wanted = _flat(row["config"] or {}), _flat(config)
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            diffs.append(f"{key} ({stored.get(key)} vs {wanted.get(key)})")
    return diffs


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted names (``speech.min_speech``)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def open_store(
    db: str, *, migrate_schema: bool = True, retry_deadline_s: float = 120.0
) -> JobStore:
    """Connect to ``db``, migrate its schema, and return a :class:`JobStore`.

    ``retry_deadline_s``: how long one transaction is retried through lost connections before it
    fails with :class:`StoreError`.
    """
    url = parse_url(db)
    engine = create_engine(url)
    try:
        if migrate_schema:
            retrying(
                lambda: migrate(engine),
                f"migrating {safe_url(url)}",
                deadline_s=min(60.0, retry_deadline_s),
            )
    except BaseException:
        engine.dispose()
        raise
    return JobStore(engine, retry_deadline_s=retry_deadline_s)
