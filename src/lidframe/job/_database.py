"""Which job database a run uses, opening it, and whether its job has anything left to do.

A run always keeps its state in a job database, so there is one code path: ``db`` names it (a
SQLAlchemy URL), else ``$LIDFRAME_DB``, else the embedded SQLite file in the output folder, where the
results are; ``db=False`` keeps no state, through a temporary SQLite file deleted afterwards. A job
found complete there is not run again: no cluster, no model, no work. ``lidframe status`` and
``lidframe jobs`` find an existing database the same way (:func:`find_job_database`); this module
is the only one that reads ``$LIDFRAME_DB``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from lidframe.errors import ConfigError, LidframeError
from lidframe.store import JobStore, open_store

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "database_url",
    "default_db",
    "find_job_database",
    "job_database",
    "nothing_to_do",
]

# The job database when a command names none (a SQLAlchemy URL).
ENVIRONMENT_VARIABLE = "LIDFRAME_DB"


def _named(db: str | None) -> str | None:
    """The database the user named: ``db``, else ``$LIDFRAME_DB``, else None."""
    return str(db) if db else os.environ.get(ENVIRONMENT_VARIABLE) or None


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
    if db is True:
        return default_db(out)
    return _named(db) or default_db(out)


def find_job_database(db: str | None = None, out: str | os.PathLike[str] | None = None) -> str:
    """The URL of an existing job database: ``db``, else ``$LIDFRAME_DB``, else the embedded one
    in the output folder ``out`` (which must exist). Raises :class:`LidframeError` when none is
    given or the output folder has none."""
    named = _named(db)
    if named:
        return named
    if out:
        out = os.fspath(out)
        path = default_db(out)
        if not os.path.exists(path.removeprefix("sqlite:///")):
            raise LidframeError(f"no job database in {out} (looked for {path})")
        return path
    raise LidframeError("say which job database: --db URL, $LIDFRAME_DB, or --out OUT")


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
