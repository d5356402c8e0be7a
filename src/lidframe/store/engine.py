"""Connect to the job database, bring its schema up to date, and keep writes going through blips.

* URLs: ``postgresql+psycopg://user@host/db`` (``postgresql://`` is read as psycopg 3) or
  ``sqlite:///path.db``. Credentials in the URL are never printed (:func:`safe_url`).
* SQLite: WAL journal, foreign keys on, and every transaction starts with ``BEGIN IMMEDIATE`` so
  concurrent claimers serialise instead of failing with "database is locked" on upgrade.
* PostgreSQL: ``application_name=lidframe`` (visible in ``pg_stat_activity``), pre-ping on checkout
  so a connection the server dropped is replaced, and migrations under an advisory lock so two
  processes starting at once do not both create the tables.
* :func:`db_epoch`: seconds since the epoch on the *database's* clock. Leases compare against it, so
  drivers on machines with skewed clocks still agree on who holds what.
* :func:`retrying`: reruns a whole transaction after a lost connection, with backoff, up to a deadline,
  then raises :class:`StoreError`. Transactions are atomic, so a retry never sees half of one.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from lidframe.errors import ConfigError, StoreError

__all__ = ["create_engine", "db_epoch", "migrate", "retrying", "safe_url"]

T = TypeVar("T")
_MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_KEY = 0x1D_F7A3E  # pg_advisory_lock key for migrations


def parse_url(db: str) -> URL:
    try:
        url = make_url(db)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"--db: {db!r} is not a database URL (postgresql+psycopg://... or sqlite:///FILE)"
        ) from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(f"--db: only PostgreSQL and SQLite are supported, got {url.drivername!r}")
    return url


def safe_url(db: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    url = db if isinstance(db, URL) else parse_url(db)
    return url.render_as_string(hide_password=True)


def create_engine(db: str | URL) -> Engine:
    """An engine for ``db`` configured as described in the module docstring."""
    url = db if isinstance(db, URL) else parse_url(db)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            try:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"--db {safe_url(url)}: cannot make the SQLite file's folder: {exc}"
                ) from exc
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ConfigError("PostgreSQL needs psycopg 3: pip install 'lidframe[postgres]'") from exc
    connect_args: dict[str, Any] = {
        "application_name": "lidframe",
        "connect_timeout": 10,
        # No server-side prepared statements: each statement is planned with its values. The
        # partition ``state`` is skewed (a job is mostly done, or mostly pending), and a cached
        # generic plan for ``state = $1`` walked every done partition to find a pending one
        # (measured: 75 ms per claim at 1 M partitions half done, 9 ms without; benchmarks/scale.py).
        # Connection poolers (PgBouncer in transaction mode) need this too.
        "prepare_threshold": None,
    }
    # Read libpq's credential variables once, now: the process scrubs them from its environment
    # while it runs a local cluster (workers never see database credentials), and a connection made
    # later (after a lost one) must still authenticate.
    if url.password is None and os.environ.get("PGPASSWORD"):
        connect_args["password"] = os.environ["PGPASSWORD"]
    if os.environ.get("PGPASSFILE"):
        connect_args["passfile"] = os.environ["PGPASSFILE"]
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=4,
        max_overflow=4,
        connect_args=connect_args,
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic), creating the tables on first use."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class db_epoch(FunctionElement[float]):
    """Seconds since the epoch on the database server's clock."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_epoch, "postgresql")
def _epoch_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_epoch, "sqlite")
def _epoch_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


# SQLSTATE classes that no retry can fix: wrong password or role (28), no such database (3D),
# insufficient privilege and other statement errors (42), data errors such as a NUL byte (22).
_PERMANENT_SQLSTATE_CLASSES = ("28", "3D", "42", "22")
# Messages of refusals that arrive without a SQLSTATE (libpq reports some before the session starts).
_PERMANENT_MESSAGES = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
    "unable to open database file",
    "attempt to write a readonly database",
    "file is not a database",
)


def is_permanent(exc: BaseException) -> bool:
    """A refusal that retrying cannot fix: authentication, a missing database, a bad statement."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or ""
    if code[:2] in _PERMANENT_SQLSTATE_CLASSES:
        return True
    text = str(orig).lower()
    return any(message in text for message in _PERMANENT_MESSAGES)


# SQLSTATEs a rerun of the whole transaction can get past on PostgreSQL: a serialisation failure,
# a deadlock (the other transaction won), too many connections, and the server shutting down or
# starting up (57P01-57P03); a lost connection is class 08 or has no SQLSTATE at all.
_TRANSIENT_SQLSTATES = ("40001", "40P01", "53300", "57P01", "57P02", "57P03")
# SQLite's primary result codes for "another connection holds the lock": SQLITE_BUSY (database is
# locked) and SQLITE_LOCKED (a table is locked); their extended codes share the low byte.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_BUSY_MESSAGES = (
    "database is locked",
    "database table is locked",
    "database schema is locked",
)


def is_transient(exc: BaseException) -> bool:
    """A failure that rerunning the whole transaction can get past: a lost or refused connection,
    a serialisation failure or deadlock (PostgreSQL), a locked database file (SQLite). A statement
    that fails on its own (a syntax error, a missing table, a constraint violation, bad data)
    fails the same way again and is not transient, on either database: SQLite reports many of
    those as ``OperationalError`` too, so the class alone says nothing there."""
    if is_permanent(exc):
        return False
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        return any(m in str(orig).lower() for m in _SQLITE_BUSY_MESSAGES)
    code = getattr(orig, "sqlstate", None) or ""
    if code == "23505":
        # Two processes committed rows with the same id at once: run again, and the second
        # sees the first's row and stores its own as a duplicate_id error.
        diag = getattr(orig, "diag", None)
        return getattr(diag, "constraint_name", None) == "ux_lidframe_results_job_row_id"
    if code:
        return code in _TRANSIENT_SQLSTATES or code.startswith("08")
    # No SQLSTATE: the driver's own report of a connection that failed or went away (libpq says
    # so before any statement runs: refused, reset, closed by the server).
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def retrying(fn: Callable[[], T], what: str, deadline_s: float = 120.0) -> T:
    """Run ``fn`` (one whole transaction); after a transient failure run it again, until a deadline."""
    started = time.monotonic()
    delay = 0.05
    while True:
        try:
            return fn()
        except sa.exc.SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            if not is_transient(exc):
                text = " ".join(str(cause).split())  # one line: drivers add newlines and hints
                raise StoreError(f"{what}: {type(cause).__name__}: {text}") from exc
            if time.monotonic() - started + delay > deadline_s:
                text = " ".join(str(cause).split())
                raise StoreError(
                    f"{what}: the database stayed unreachable for {deadline_s:.0f} s: {text}"
                ) from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)
