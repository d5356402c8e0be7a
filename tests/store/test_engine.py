"""Which database failures a transaction is rerun after (:func:`lidframe.store.engine.is_transient`),
on real engines: a locked SQLite file, a serialisation failure, a deadlock and a terminated
connection on PostgreSQL are transient; a statement that fails on its own (a syntax error, a missing
table, a constraint violation) is not, and :func:`retrying` reports it at once, in one line."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from lidframe.errors import StoreError
from lidframe.store.engine import create_engine, is_transient, retrying

pytestmark = pytest.mark.postgres


def _failure(engine: sa.Engine, *statements: str) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    return caught.value


def _table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, 0), (2, 0)"))


@pytest.mark.parametrize(
    "statement",
    [
        "SELEC 1",  # a syntax error
        "SELECT * FROM no_such_table",
        "INSERT INTO t VALUES (1, 0)",  # the primary key again
        "SELECT no_such_column FROM t",
    ],
)
def test_a_failing_statement_is_not_transient(db_url, statement):
    engine = create_engine(db_url)
    _table(engine)
    failure = _failure(engine, statement)
    assert not is_transient(failure)
    calls = []

    def attempt() -> None:
        calls.append(1)
        with engine.begin() as conn:
            conn.execute(sa.text(statement))

    with pytest.raises(StoreError) as caught:
        retrying(attempt, "a test statement", deadline_s=60)
    assert len(calls) == 1  # reported at once, not retried until the deadline
    assert "\n" not in str(caught.value) and "a test statement" in str(caught.value)
    engine.dispose()


def test_a_locked_sqlite_file_is_transient(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/locked.sqlite"
    holder = create_engine(url)
    _table(holder)
    impatient = sa.create_engine(url, connect_args={"timeout": 0})  # fail at once, not wait 60 s
    with holder.begin() as conn:  # BEGIN IMMEDIATE: the write lock, held
        conn.execute(sa.text("UPDATE t SET v = 1 WHERE k = 1"))
        failure = _failure(impatient, "BEGIN IMMEDIATE")
    assert "locked" in str(failure.orig)
    assert is_transient(failure)
    holder.dispose()
    impatient.dispose()


def test_serialisation_failures_deadlocks_and_lost_connections_are_transient(pg_url, postgres):
    engine = create_engine(pg_url)
    _table(engine)
    # A serialisation failure: two REPEATABLE READ transactions update one row.
    with engine.connect() as a, engine.connect() as b:
        a = a.execution_options(isolation_level="REPEATABLE READ")
        b = b.execution_options(isolation_level="REPEATABLE READ")
        with a.begin():
            a.execute(sa.text("SELECT v FROM t WHERE k = 1")).all()
            with b.begin():
                b.execute(sa.text("UPDATE t SET v = v + 1 WHERE k = 1"))
            with pytest.raises(sa.exc.DBAPIError) as caught:
                a.execute(sa.text("UPDATE t SET v = v + 1 WHERE k = 1"))
    assert caught.value.orig.sqlstate == "40001" and is_transient(caught.value)

    # A deadlock: two transactions lock the two rows in opposite orders.
    both = threading.Barrier(2)
    failures: list[BaseException] = []

    def lock(first: int, second: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE t SET v = v + 1 WHERE k = :k"), {"k": first})
                both.wait(timeout=30)
                conn.execute(sa.text("UPDATE t SET v = v + 1 WHERE k = :k"), {"k": second})
        except sa.exc.DBAPIError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=lock, args=order) for order in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    (deadlock,) = failures
    assert deadlock.orig.sqlstate == "40P01" and is_transient(deadlock)

    # A connection the server terminated.
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with postgres.admin().connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(sa.text("SELECT 1"))
    assert is_transient(caught.value)
    engine.dispose()
