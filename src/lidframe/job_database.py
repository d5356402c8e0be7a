"""Which job database a run uses, opening it, and whether its job has anything left to do.

A run always keeps its state in a job database, so there is one code path: ``db`` names it (a
SQLAlchemy URL), else ``$LIDFRAME_DB``, else the embedded SQLite file in the output folder, where the
results are; ``db=False`` keeps no state, through a temporary SQLite file deleted afterwards. A job
found complete there is not run again: no cluster, no model, no work.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from lidframe.errors import ConfigError
from lidframe.store import open_store
from lidframe.store.jobs import JobStore

__all__ = ["database_url", "default_db", "job_database", "nothing_to_do"]


def default_db(out: str) -> str:
    """The embedded default: ``OUT/_lidframe.sqlite`` (pyarrow and dask skip ``_`` files)."""
    if "://" in out and not out.startswith("file://"):
        raise ConfigError(
            f"the output {out!r} is not a local folder, so there is no default job database: "
            "pass --db postgresql+psycopg://... (or sqlite:///FILE), or --no-db"
        )
    path = os.path.abspath(out.removeprefix("file://"))
    return f"sqlite:///{path}/_lidframe.sqlite"


def database_url(db: str | bool | None, out: str) -> str | None:
    """The job database's URL (None: a temporary one, for ``db=False``)."""
    if db is False or db == "":
        return None
    if db is None:
        return os.environ.get("LIDFRAME_DB") or default_db(out)
    if db is True:
        return default_db(out)
    return str(db)


@contextmanager
def job_database(url: str | None) -> Iterator[tuple[JobStore, bool]]:
    """The job's store and whether it is kept (``url`` None: a temporary SQLite file)."""
    if url is None:
        folder = tempfile.mkdtemp(prefix="lidframe-nodb-")
        try:
            with open_store(f"sqlite:///{folder}/jobs.sqlite") as store:
                yield store, False
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    with open_store(url) as store:
        yield store, True


def nothing_to_do(store: JobStore, job_id: str) -> bool:
    """The job exists, is planned, and every partition is done, or dead with its rows written."""
    job = store.job(job_id)
    if job is None or not job["planned"]:
        return False
    states = store.states(job_id)
    return not (states.get("pending") or states.get("running")) and not store.dead_without_rows(
        job_id, limit=1
    )
