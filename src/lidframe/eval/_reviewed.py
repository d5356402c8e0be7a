"""Reviewed labels as ground truth for ``lidframe eval`` (issue 24): the labels reviewers gave in
the job database (:func:`lidframe.review.reviewed_manifest`), by row ``id``, for the rows whose
manifest has no label. A reviewed label never overrides a manifest's (or ``--labels``') label.

The job database is found as the report's "Run" section finds it, which is how every command finds
it (:mod:`~lidframe.eval._run_info`: ``db``, else ``$LIDFRAME_DB``, else the embedded one of a local
results folder) and opened without migrating it. A job
without a database, or whose database predates review (no review tables), has no reviewed labels;
that is not an error, and nothing is said about it.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from lidframe.eval._run_info import job_database

__all__ = ["fill_reviewed", "reviewed_labels"]


def reviewed_labels(results: Any, job_id: str | None, db: str | None) -> pd.Series:
    """The job's reviewed labels indexed by row ``id`` (as text); empty when there are none."""
    import sqlalchemy as sa

    from lidframe.errors import LidframeError
    from lidframe.review import Reviews, reviewed_manifest
    from lidframe.store import open_store
    from lidframe.store.schema import review_answers

    none = pd.Series([], dtype="string", index=pd.Index([], dtype="string", name="id"))
    path = None if hasattr(results, "columns") else os.fspath(results)
    url = job_database(path, db)
    if url is None or job_id is None:
        return none
    try:
        with open_store(url, migrate_schema=False, retry_deadline_s=5.0) as store:
            # A database written before review (Alembic 0009) has no answers table.
            if not sa.inspect(store.engine).has_table(review_answers.name):
                return none
            manifest = reviewed_manifest(Reviews(store, job_id))
    except (LidframeError, sa.exc.SQLAlchemyError):
        # An unreachable or unreadable database leaves the labels as given, as it leaves the
        # run's figures unknown (_run_info): the evaluation is of the results, not of the store.
        return none
    return pd.Series(manifest["label"].to_numpy(), index=pd.Index(manifest["id"], name="id"))


def fill_reviewed(df: pd.DataFrame, reviewed: pd.Series) -> int:
    """Set ``label`` from ``reviewed`` on the rows of ``df`` without one (in place); returns how
    many rows were filled."""
    if reviewed.empty or "id" not in df.columns:
        return 0
    found = df["id"].astype("string").map(reviewed)
    fill = df["label"].isna().to_numpy() & found.notna().to_numpy()
    if not fill.any():
        return 0
    labels = df["label"].astype(object)
    labels[fill] = found[fill].astype(object)
    df["label"] = labels
    return int(fill.sum())
