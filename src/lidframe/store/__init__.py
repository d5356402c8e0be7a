"""Job state and results in a SQL database (PostgreSQL, or an embedded SQLite file).

* :mod:`~lidframe.store.schema`: the tables (SQLAlchemy Core), documented column by column.
* :mod:`~lidframe.store.engine`: connecting, migrating (Alembic), the database clock, retries.
* :mod:`~lidframe.store.jobs`: :class:`JobStore`, the one object callers hold (made by
  :func:`open_store`), and job records.
* :mod:`~lidframe.store.planning`: a job's partitions, added as its manifest is planned.
* :mod:`~lidframe.store.leases`: partition leases (claim, renew, commit, fail, release).
* :mod:`~lidframe.store.reads`: job progress (:class:`~lidframe.store.reads.JobStatus`) and results.
* :mod:`~lidframe.store.evaluations`: evaluation records.
* :mod:`~lidframe.store.base`: the engine and retried transaction the parts above share.
* :mod:`~lidframe.store.results`: result frames to rows and back, batched upserts.
"""

from lidframe.store.jobs import JobStore, Lease, PartitionState, open_store

__all__ = ["JobStore", "Lease", "PartitionState", "open_store"]
