"""Where evaluations are kept: a JSON file beside the results, and the job database when there is one.

A record says what was evaluated (results folder, labels, job, models, weights hashes), in which
environment, with which settings, and the scores (per source: summary and per-language table), so
later runs can be compared against it and a regression traced to a change of model or environment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from typing import Any

import fsspec

from lidframe.eval._evaluate import Evaluation

__all__ = ["evaluation_record", "save_evaluation", "weights_hashes"]

FOLDER = "_lidframe_evaluations"  # pyarrow and dask skip names starting with "_"


def weights_hashes(models: Sequence[str]) -> dict[str, str | None]:
    """sha256 of each model's weights where lidframe knows it without loading (packaged weights)."""
    from lidframe.models import parse_model
    from lidframe.models.whisper_weights import packaged_sha256

    out: dict[str, str | None] = {}
    for name in models:
        try:
            spec = parse_model(name)
        except Exception:  # noqa: BLE001 - an unknown name is recorded without a hash
            out[name] = None
            continue
        source = spec.source
        out[name] = (
            packaged_sha256(source.removeprefix("packaged:"))
            if source.startswith("packaged:")
            else None
        )
    return out


def evaluation_record(
    ev: Evaluation,
    *,
    name: str,
    results: str,
    labels: str | None,
    job: dict[str, Any] | None,
) -> dict[str, Any]:
    from lidframe.environment import fingerprint

    models = list(job["models"]) if job else [s for s in ev.sources if s != "consensus"]
    return {
        "name": name,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
        "labels": labels,
        "job_id": job["job_id"] if job else None,
        "models": models,
        "weights": weights_hashes(models) if job else {},
        "job_environment": job["environment"] if job else None,
        "environment": fingerprint().record(),
        **ev.record(),
    }


def save_evaluation(
    ev: Evaluation,
    results: str | os.PathLike[str],
    *,
    name: str = "latest",
    labels: str | None = None,
    db: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``RESULTS/_lidframe_evaluations/NAME.json`` and, when a job database is known (``db``,
    or the embedded one in a local results folder), a ``lidframe_evaluations`` row. Returns the record
    with ``saved_to`` (the JSON path) and ``eval_id`` (or None)."""
    results = os.fspath(results)
    local = "://" not in results
    where = os.path.abspath(results) if local else results
    if db is None and local and os.path.exists(os.path.join(where, "_lidframe.sqlite")):
        db = f"sqlite:///{where}/_lidframe.sqlite"
    job = None
    store = None
    if db:
        from lidframe.store import open_store

        store = open_store(db)
        job = store.job_for_out(where)
    try:
        record = evaluation_record(ev, name=name, results=where, labels=labels, job=job)
        path = f"{where.rstrip('/')}/{FOLDER}/{name}.json"
        fs, target = fsspec.core.url_to_fs(path, **(storage_options or {}))
        fs.makedirs(os.path.dirname(target) if local else target.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(target, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=str)
        eval_id = None
        if store is not None:
            eval_id = store.add_evaluation(name, where, record, job["job_id"] if job else None)
    finally:
        if store is not None:
            store.close()
    return {**record, "saved_to": path, "eval_id": eval_id}
