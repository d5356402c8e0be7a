"""The workers a job's driver checked, and how each one's environment compares with the job's
(``lidframe_workers``; the fingerprints themselves are :mod:`lidframe.environment`'s).

The driver writes a row when it first sees a worker, and again when a partition task finds the
worker's models differ (their weights are known only once loaded); ``lidframe status`` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lidframe.store.base import StoreBase
from lidframe.store.schema import jobs, workers

__all__ = ["VERDICTS", "Workers"]

W = workers.c
# same: the job's environment; refused: differs in what can change an answer (no partitions);
# allowed: differs so, mixed environments allowed; reported: differs in nothing that can.
VERDICTS = ("same", "refused", "allowed", "reported")


class Workers(StoreBase):
    """Workers' environments by job (mixed into :class:`~lidframe.store.jobs.JobStore`)."""

    def record_worker(
        self,
        job_id: str,
        worker: str,
        *,
        host: str | None,
        environment: str,
        verdict: str,
        difference: str | None = None,
        line: str | None = None,
        fingerprint: Mapping[str, Any] | None = None,
    ) -> None:
        """Record (or update) what the driver found of ``worker``'s environment."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        values = {
            "host": host,
            "environment": environment,
            "verdict": verdict,
            "difference": difference,
            "line": line,
            "fingerprint": None if fingerprint is None else dict(fingerprint),
            "seen_at": sa.func.now(),
        }

        def tx(conn: Connection) -> None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert: Any = dialect.insert(workers).values(job_id=job_id, worker=worker, **values)
            conn.execute(
                insert.on_conflict_do_update(index_elements=["job_id", "worker"], set_=values)
            )

        self._tx(f"recording worker {worker} of job {job_id}", tx)

    def workers(self, job_id: str) -> list[dict[str, Any]]:
        """The workers checked for ``job_id``, by when they were last checked."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            query = sa.select(workers).where(W.job_id == job_id).order_by(W.seen_at, W.worker)
            return [dict(r) for r in conn.execute(query).mappings()]

        return self._tx(f"reading the workers of job {job_id}", tx)

    def record_environment(self, job_id: str, record: Mapping[str, Any]) -> None:
        """Set the job's environment (the fingerprint it started with), for a job made before
        lidframe fingerprinted environments (its record holds only versions and host)."""

        def tx(conn: Connection) -> None:
            conn.execute(
                jobs.update().where(jobs.c.job_id == job_id).values(environment=dict(record))
            )

        self._tx(f"recording the environment of job {job_id}", tx)
