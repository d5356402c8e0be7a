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

Usage: python benchmarks/behaviour.py [--rows 128,1000,10000]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from lidframe.store import open_store
from lidframe.store.behaviour import replace_behaviour
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
