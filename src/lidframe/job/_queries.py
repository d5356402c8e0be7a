"""What a job database says about its jobs: which database, one job's progress, the list of jobs.

The ``lidframe status``, ``lidframe watch``, ``lidframe drift`` and ``lidframe jobs`` commands print
these; a notebook can call them too. A job's status includes what its models said so far (language
mix, agreement, ``und`` and row-error rates: :mod:`lidframe.store.behaviour`), summed by SQL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lidframe.errors import LidframeError
from lidframe.job._database import default_db, find_job_database

if TYPE_CHECKING:
    from lidframe.observe import Drift, DriftThresholds
    from lidframe.store import Behaviour, JobStore

__all__ = ["job_drift", "job_status", "jobs_table", "reference_behaviour", "watch_job"]


def job_status(
    job: str | None = None,
    *,
    db: str | None = None,
    out: str | os.PathLike[str] | None = None,
    fleet_min_rows: int = 200,
) -> str:
    """A job's progress by partition state and what its models said, as text (default: the
    newest job of the database), naming any worker whose answers depart from the others' once
    it and the rest have ``fleet_min_rows`` rows.

    The database is found by :func:`find_job_database` from ``db`` and ``out``.
    """
    from lidframe.store import open_store

    with open_store(find_job_database(db, out)) as store:
        job = _job_or_newest(store, job)
        return _status_text(store, job, fleet_min_rows)[0]


def watch_job(
    job: str | None = None,
    *,
    db: str | None = None,
    out: str | os.PathLike[str] | None = None,
    every: float = 2.0,
    fleet_min_rows: int = 200,
) -> Iterator[tuple[str, str]]:
    """``(status text, job state)`` of a job every ``every`` seconds, the last one once it is no
    longer ``running`` (default: the newest job of the database; see :func:`job_status`)."""
    from lidframe.store import open_store

    with open_store(find_job_database(db, out)) as store:
        job = _job_or_newest(store, job)
        while True:
            text, state = _status_text(store, job, fleet_min_rows)
            yield text, state
            if state != "running":
                return
            time.sleep(every)


def _job_or_newest(store: JobStore, job: str | None) -> str:
    """``job``, or the newest job of ``store`` when None (a LidframeError when it has none)."""
    if job is not None:
        return job
    listed = store.jobs()
    if not listed:
        raise LidframeError(f"no jobs in {store.url}")
    return str(listed[0]["job_id"])


def _status_text(store: JobStore, job: str, fleet_min_rows: int) -> tuple[str, str]:
    """A job's status as text, with the workers whose answers depart from the others' named
    (:func:`lidframe.observe.outliers`, judged once they have ``fleet_min_rows`` rows) and those
    whose environment differs from the job's (:func:`environment_lines`), and its state."""
    from lidframe.job._environments import environment_lines
    from lidframe.observe import FleetThresholds, outliers

    status = store.status(job)
    lines = [str(status)]
    by_worker = store.behaviour(job, by_worker=True)
    found = outliers(by_worker, FleetThresholds(min_rows=fleet_min_rows))
    checked = {w["worker"]: w for w in store.workers(job)} if found else {}
    for outlier in found:
        seen = checked.get(outlier.worker)
        if seen is not None:  # its environment: what differs from the job's, or the job's
            environment = seen["difference"] or f"the job's ({seen['environment']})"
            outlier = replace(outlier, environment=environment)
        lines.append(f"  {outlier}")
    lines += environment_lines(store, job, status.job.get("environment"))
    return "\n".join(lines), str(status.job["status"])


def job_drift(
    job: str | None,
    reference: str,
    *,
    db: str | None = None,
    out: str | os.PathLike[str] | None = None,
    thresholds: DriftThresholds | None = None,
) -> Drift:
    """What moved between a job's behaviour and a reference's (:func:`lidframe.observe.compare`):
    ``reference`` is another job of the same database, or a results folder (the newest job of the
    job database in it). ``job`` None: the newest job of the database."""
    from lidframe.observe import compare
    from lidframe.store import open_store

    with open_store(find_job_database(db, out)) as store:
        job = _job_or_newest(store, job)
        if store.job(job) is None:
            raise LidframeError(f"no job {job!r} in {store.url}")
        current = _stored_behaviour(store, job)
        name, then = reference_behaviour(store, reference)
    return compare(current, then, thresholds=thresholds, names=(job, name))


def reference_behaviour(store: JobStore, reference: str) -> tuple[str, Behaviour]:
    """``(name, summed behaviour)`` of ``reference``: a job of ``store``'s database, or a results
    folder with a job database (its newest job). Raises :class:`LidframeError` naming it when it
    is neither, or has no behaviour stored."""
    from lidframe.store import open_store

    if store.job(reference) is not None:
        return f"job {reference}", _stored_behaviour(store, reference)
    path = default_db(reference).removeprefix("sqlite:///")
    if os.path.isdir(reference) and os.path.exists(path):
        with open_store(default_db(reference)) as other:
            listed = other.jobs()
            if listed:
                job = listed[0]["job_id"]
                return f"job {job} ({reference})", _stored_behaviour(other, job)
    raise LidframeError(
        f"--reference {reference}: no job of that id in {store.url}, nor a results folder with a "
        "job database"
    )


def _stored_behaviour(store: JobStore, job: str) -> Behaviour:
    found = store.behaviour(job).get(None)
    if found is None:
        raise LidframeError(
            f"job {job} has no behaviour stored (no partition done, or it ran before lidframe "
            "stored behaviour): run it again with --overwrite"
        )
    return found


def jobs_table(*, db: str | None = None, out: str | os.PathLike[str] | None = None) -> str:
    """The jobs of a job database, newest first, one line each: id, status, creation time,
    partitions, done and dead partitions, manifest. The database is found by
    :func:`find_job_database` from ``db`` and ``out``."""
    from lidframe.store import open_store

    with open_store(find_job_database(db, out)) as store:
        listed = store.jobs()
        if not listed:
            return f"no jobs in {store.url}"
        return _table(listed)


def _table(listed: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"{'job':<28} {'status':<20} {'created':<20} {'parts':>7} {'done':>7} {'dead':>5}  manifest"
    ]
    for j in listed:
        created = str(j["created_at"])[:19]
        states = j["states"]
        lines.append(
            f"{j['job_id']:<28} {j['status']:<20} {created:<20} {j['n_partitions']:>7} "
            f"{states.get('done', 0):>7} {states.get('dead', 0):>5}  {j['manifest']}"
        )
    return "\n".join(lines)
