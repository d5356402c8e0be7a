"""Job state and results in a SQL database (PostgreSQL, or an embedded SQLite file).

* :mod:`~lidframe.store.schema`: the tables (SQLAlchemy Core), documented column by column.
* :mod:`~lidframe.store.engine`: connecting, migrating (Alembic), the database clock, retries.
* :mod:`~lidframe.store.jobs`: jobs and partition leases (claim, renew, commit, fail, release).
* :mod:`~lidframe.store.results`: result frames to rows and back, batched upserts.
"""

from lidframe.store.engine import open_store
from lidframe.store.jobs import JobStore, Lease, PartitionState

__all__ = ["JobStore", "Lease", "PartitionState", "open_store"]
