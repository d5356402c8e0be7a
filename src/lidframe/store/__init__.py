"""The job database: job state and results in SQL (PostgreSQL, or an embedded SQLite file).

The job's driver is the only process that changes job state; workers never hold database
credentials. Modules, each importing only those above it:

* :mod:`~lidframe.store.schema`: the tables (SQLAlchemy Core), documented column by column.
* :mod:`~lidframe.store.engine`: connecting, migrating (Alembic), the database clock, retries.
* :mod:`~lidframe.store.base`: the engine and retried transaction the parts below share.
* :mod:`~lidframe.store.behaviour`: what a partition's models said, summarised in a fixed size on
  the worker (:class:`Behaviour`), stored with its rows and summed by SQL.
* :mod:`~lidframe.store.results`: result frames to rows and back, batched upserts (what a worker
  hands its driver: :func:`frame_rows`, :class:`PartitionRows`).
* :mod:`~lidframe.store.planning`: a job's partitions, added as its manifest is planned.
* :mod:`~lidframe.store.leases`: partition leases (claim, renew, commit, fail, release).
* :mod:`~lidframe.store.reads`: job progress (:class:`~lidframe.store.reads.JobStatus`) and results.
* :mod:`~lidframe.store.evaluations`: evaluation records.
* :mod:`~lidframe.store.workers`: the workers a job's driver checked, and their environments
  (fingerprints: :mod:`lidframe.environment`).
* :mod:`~lidframe.store.jobs`: :class:`JobStore`, the one object callers hold (made by
  :func:`open_store`), and job records.

The names are imported on first use: a worker takes :func:`frame_rows` without the job store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.store.behaviour import Behaviour, Stats
    from lidframe.store.jobs import JobStore, Lease, PartitionState, job_differences, open_store
    from lidframe.store.results import PartitionRows, frame_rows

_EXPORTS = {
    "Behaviour": "lidframe.store.behaviour",
    "Stats": "lidframe.store.behaviour",
    "JobStore": "lidframe.store.jobs",
    "Lease": "lidframe.store.jobs",
    "PartitionRows": "lidframe.store.results",
    "PartitionState": "lidframe.store.jobs",
    "frame_rows": "lidframe.store.results",
    "job_differences": "lidframe.store.jobs",
    "open_store": "lidframe.store.jobs",
}
__all__ = [
    "Behaviour",
    "Stats",
    "JobStore",
    "Lease",
    "PartitionRows",
    "PartitionState",
    "frame_rows",
    "job_differences",
    "open_store",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
