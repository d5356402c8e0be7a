"""What produced the evaluated results: job, models (name, source, weights digest), lidframe version,
date, rows and rows/s, for the report's "Run" section.

Read from what is there, never required: the provenance every Parquet part carries
(:func:`lidframe.read_provenance`), and the job database (``db``, else ``$LIDFRAME_DB``, else the
embedded ``RESULTS/_lidframe.sqlite`` of a local results folder) for the job's status, time and
rows/s. The
database is opened without migrating it (a report never writes to someone's job database). A frame
evaluated directly says what it can through ``frame.attrs["lidframe_provenance"]`` (a dict as
:func:`~lidframe.read_provenance` returns); every missing figure is None, shown as "unknown".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PROVENANCE_ATTR", "UNKNOWN", "job_database", "model_rows", "run_info", "run_rows"]

# Key of ``DataFrame.attrs`` whose dict is taken as the provenance of a frame evaluated directly.
PROVENANCE_ATTR = "lidframe_provenance"
UNKNOWN = "unknown"


def run_info(
    results: Any,
    aliases: Sequence[str],
    rows: int,
    *,
    db: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's metadata: ``results``, ``job_id``, ``lidframe_version``, ``created`` (when the
    first part was written), ``job_status``, ``seconds`` and ``rows_per_second`` (first partition
    started to last finished, from the job database), ``rows`` (evaluated) and ``models`` (per
    alias: ``name``, ``family``, ``source``, ``dtype``, ``weights``). None where unknown."""
    from lidframe.errors import LidframeError
    from lidframe.results import read_provenance

    path = None if hasattr(results, "columns") else os.fspath(results)
    record: dict[str, Any] = dict((attrs or {}).get(PROVENANCE_ATTR) or {})
    if path is not None:
        try:
            record = read_provenance(path, storage_options)
        except LidframeError:
            record = {}
    found = record.get("models")
    recorded: dict[str, Any] = found if isinstance(found, dict) else {}
    models = {
        alias: {
            key: (recorded.get(alias) or {}).get(key)
            for key in ("name", "family", "source", "dtype", "weights")
        }
        for alias in [*aliases, *(a for a in recorded if a not in aliases)]
    }
    info: dict[str, Any] = {
        "results": path,
        "job_id": record.get("job_id"),
        "lidframe_version": record.get("lidframe_version"),
        "created": record.get("created"),
        "job_status": None,
        "seconds": None,
        "rows_per_second": None,
        "rows": rows,
        "models": models,
    }
    info.update(_job_figures(path, info["job_id"], db))
    return info


def job_database(path: str | None, db: str | None) -> str | None:
    """The job database as every command finds it (:func:`lidframe.job.find_job_database`):
    ``db``, else ``$LIDFRAME_DB``, else the embedded database of the local results folder
    ``path``; None when there is none (a report does without)."""
    from lidframe.errors import LidframeError
    from lidframe.job import find_job_database

    local = path if path is not None and "://" not in path else None
    try:
        return find_job_database(db, local)
    except LidframeError:
        return None


def _job_figures(path: str | None, job_id: str | None, db: str | None) -> dict[str, Any]:
    """Status, time and rows/s of the job from its database; nothing when there is none."""
    db = job_database(path, db)
    if db is None or (job_id is None and path is None):
        return {}
    from lidframe.store import open_store

    try:
        with open_store(db, migrate_schema=False, retry_deadline_s=5.0) as store:
            if job_id is None:
                where = os.path.abspath(path) if path and "://" not in path else path
                job = store.job_for_out(str(where))
                job_id = None if job is None else job["job_id"]
            if job_id is None:
                return {}
            status = store.status(job_id)
            behaviour = _behaviour(store, job_id)
    except Exception:  # noqa: BLE001 - an unreadable or older database leaves the figures unknown
        return {}
    out: dict[str, Any] = {"job_id": job_id, "job_status": status.job.get("status"), **behaviour}
    if status.seconds > 0:
        out["seconds"] = status.seconds
        out["rows_per_second"] = status.rows_per_second
    return out


def _behaviour(store: Any, job_id: str) -> dict[str, Any]:
    """``partitions`` (the answer's behaviour partition by partition) and ``workers`` (one row
    per worker: rows, language mix, agreement, und and error rates, mean probability), from the
    behaviour stored with the job (:mod:`lidframe.store.behaviour`); nothing for a job stored
    before it."""
    import pandas as pd

    partitions = store.partition_behaviour(job_id)
    if not partitions:
        return {}
    workers = []
    for worker, b in sorted(store.behaviour(job_id, by_worker=True).items(), key=str):
        a = b.answer
        workers.append(
            {
                "worker": worker or "(no worker)",
                "host": b.host,
                "rows": a.rows,
                "languages": a.mix(),
                "agreement": a.agreement if len(b.models) > 1 else None,
                "und rate": a.rate(a.und),
                "error rate": a.rate(a.errors),
                "mean probability": a.expected_accuracy,
            }
        )
    return {"partitions": pd.DataFrame(partitions), "workers": pd.DataFrame(workers)}


def _known(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def run_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's figures as ``(what, value)`` text pairs, "unknown" where unknown."""
    seconds, rate = info.get("seconds"), info.get("rows_per_second")
    return [
        ("results", _known(info.get("results") or "a data frame")),
        ("job", _known(info.get("job_id"))),
        ("job status", _known(info.get("job_status"))),
        ("lidframe version", _known(info.get("lidframe_version"))),
        ("results written", _known(info.get("created"))),
        ("rows evaluated", _known(info.get("rows"))),
        (
            "job time",
            UNKNOWN
            if seconds is None
            else f"{seconds:.1f} s, from the first partition's start to the last one's finish",
        ),
        ("rows/s", UNKNOWN if rate is None else f"{rate:.2f}, over the job time"),
    ]


def model_rows(info: Mapping[str, Any]) -> list[dict[str, str]]:
    """One text row per model: alias, name, family, source, dtype and weights digest."""
    return [
        {"alias": alias, **{k: _known(v) for k, v in fields.items()}}
        for alias, fields in (info.get("models") or {}).items()
    ]
