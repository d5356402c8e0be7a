"""What every part of the job store shares: one engine, and transactions retried as a whole.

:class:`~lidframe.store.jobs.JobStore` is one object, but what it does is split by what it owns
(job records, planning, leases, reads, evaluations): one mixin class per module, each deriving from
:class:`StoreBase`. They all run their SQL through :meth:`StoreBase._tx`, so every operation is one
transaction, rerun from the start after a lost connection (:func:`~lidframe.store.engine.retrying`)
until the store's deadline.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from lidframe.store.engine import retrying, safe_url

__all__ = ["StoreBase"]


class StoreBase:
    """One database's engine and the retried transaction the store's parts run their SQL in."""

    def __init__(self, engine: Engine, *, retry_deadline_s: float = 120.0) -> None:
        self.engine = engine
        # How long a transaction is retried through lost connections before StoreError.
        self.retry_deadline_s = retry_deadline_s
        # job -> the partition after this store's last claim (where Leases.claim looks first)
        self._claim_from: dict[str, int] = {}

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self, what: str, fn: Any, deadline_s: float | None = None) -> Any:
        def attempt() -> Any:
            with self.engine.begin() as conn:
                return fn(conn)

        deadline = (
            self.retry_deadline_s if deadline_s is None else min(deadline_s, self.retry_deadline_s)
        )
        return retrying(attempt, f"{what} ({self.url})", deadline)
