"""A job: a resumable run of the kernel over a whole manifest, on a Dask cluster, under leases.

The driver (the process that calls :func:`run`) is the only one that talks to the job database: it
plans the manifest into it beside the work, claims partitions under leases, submits one task per
partition, renews its leases, commits each partition's rows with its lease token, and promotes its
staged part. Workers run one module (``_worker``), read audio, write staged parts and hand rows
back; they hold no database credentials. So work is stateless, retryable, resumable and never
double-counted. Modules, each importing only those above it:

* ``_interrupts``: Ctrl-C and SIGTERM that stop a job even when Python loses their exception.
* ``_progress``: the progress bar (a widget in Jupyter, text elsewhere).
* ``_config``: :class:`RunConfig`, every setting declared once and validated in one place, and
  :class:`JobSettings` (how hard the driver tries).
* ``_identity``: :class:`JobSpec`, what a job id derives from (manifest, output, models, settings).
* ``_database``: which job database (``db``, ``$LIDFRAME_DB``, or ``OUT/_lidframe.sqlite``).
* ``_environments``: one environment per job: the job's fingerprint, and each worker's checked
  against it (:class:`~lidframe.job._environments.Environments`; :mod:`lidframe.environment`).
* ``_queries``: :func:`job_status`, :func:`watch_job`, :func:`job_drift` and :func:`jobs_table`
  (``lidframe status``, ``lidframe watch``, ``lidframe drift``, ``lidframe jobs``).
* ``_worker``: the one module that runs on workers: a partition's rows identified, with consensus,
  staged under the lease token.
* ``_promotion``: staged parts become results once the database accepted their commit.
* ``_planner``: the manifest planned into the database in a thread, beside the work.
* ``_stalls``: tasks that went quiet, and their workers restarted.
* ``_preflight``: the models loaded on a worker before any partition is scheduled.
* ``_precision``: half precision only after a check against float32 on a worker.
* ``_driver``: the loop: claim, submit, collect, commit, give up on stalls.
* ``_summary``: :class:`RunSummary`, what a run hands back, read from the database.
* ``_run``: :func:`run`, in phases.

Where a partition becomes dead: the driver fails an attempt (``_driver``: a task that raised or
went quiet), and the database marks the partition dead at ``max_attempts``
(:meth:`lidframe.store.JobStore.fail`); the driver then has a worker write its rows with a
``dead_partition`` error (``_worker.dead_partition``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.job._config import JobSettings, RunConfig
    from lidframe.job._database import default_db, find_job_database
    from lidframe.job._identity import JobSpec
    from lidframe.job._interrupts import interrupts_that_stick, raise_pending
    from lidframe.job._planner import plan_job
    from lidframe.job._precision import CPU_HALF_ROWS, check_precision
    from lidframe.job._promotion import reconcile_parts
    from lidframe.job._queries import (
        job_drift,
        job_status,
        jobs_table,
        reference_behaviour,
        watch_job,
    )
    from lidframe.job._run import run
    from lidframe.job._summary import RunSummary

_EXPORTS = {
    "CPU_HALF_ROWS": "lidframe.job._precision",
    "JobSettings": "lidframe.job._config",
    "JobSpec": "lidframe.job._identity",
    "RunConfig": "lidframe.job._config",
    "RunSummary": "lidframe.job._summary",
    "check_precision": "lidframe.job._precision",
    "default_db": "lidframe.job._database",
    "find_job_database": "lidframe.job._database",
    "interrupts_that_stick": "lidframe.job._interrupts",
    "job_drift": "lidframe.job._queries",
    "job_status": "lidframe.job._queries",
    "jobs_table": "lidframe.job._queries",
    "plan_job": "lidframe.job._planner",
    "raise_pending": "lidframe.job._interrupts",
    "reconcile_parts": "lidframe.job._promotion",
    "reference_behaviour": "lidframe.job._queries",
    "run": "lidframe.job._run",
    "watch_job": "lidframe.job._queries",
}
__all__ = [
    "CPU_HALF_ROWS",
    "JobSettings",
    "JobSpec",
    "RunConfig",
    "RunSummary",
    "check_precision",
    "default_db",
    "find_job_database",
    "interrupts_that_stick",
    "job_drift",
    "job_status",
    "jobs_table",
    "plan_job",
    "raise_pending",
    "reconcile_parts",
    "reference_behaviour",
    "run",
    "watch_job",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
