"""Evaluation records: accuracy reports of a result set, kept next to the jobs they evaluate.

They live in the job database so that a model or settings change can be compared with earlier
evaluations of the same data (``lidframe eval``), whichever machine ran them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.store.base import StoreBase
from lidframe.store.schema import evaluations

__all__ = ["Evaluations"]


class Evaluations(StoreBase):
    """Storing and reading evaluation records (mixed into :class:`~lidframe.store.jobs.JobStore`)."""

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
