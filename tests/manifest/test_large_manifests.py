"""Manifests at scale: planned as a stream, bad rows and duplicate ids as row errors, edits detected,
settings declared once, and one run path with or without a job database.

The model here is a trivial family registered in this process and (through a worker plugin) in the
cluster's workers, so what is exercised is planning, orchestration and bookkeeping, not inference.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from distributed.diagnostics.plugin import WorkerPlugin

import lidframe
from lidframe import ManifestError
from lidframe.audio import AudioConfig
from lidframe.job import RunConfig
from lidframe.manifest import ManifestChanged, open_manifest, plan_partitions, read_partition
from lidframe.models import LidModel
from lidframe.results import read_parts
from lidframe.settings import identity
from lidframe.store import open_store
from lidframe.store.schema import results
from lidframe.testing import sine, write_wav
from tests.fixtures.paths import ROOT

FAMILY = "test-trivial"


class TrivialLid(LidModel):
    """Answers from the clip's length alone: deterministic, instant."""

    @property
    def labels(self):
        return ("en", "de")

    def predict_batch(self, waveforms):
        p = np.array([0.7 if len(w) % 2 else 0.3 for w in waveforms], dtype=np.float32)
        return np.stack([p, 1 - p], axis=1)


def _register() -> None:
    from lidframe.models import register_family

    register_family(FAMILY, TrivialLid)


class RegisterTrivial(WorkerPlugin):
    name = "lidframe-test-trivial"

    def setup(self, worker):
        _register()


@pytest.fixture
def trivial_cluster(cluster):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _register()
    address, client = cluster
    client.register_plugin(RegisterTrivial())
    return address


def _clips(folder: Path) -> list[str]:
    names = []
    for i, seconds in enumerate((0.5, 0.55)):
        write_wav(folder / f"c{i}.wav", sine(seconds), 16_000)
        names.append(f"c{i}.wav")
    return names


def _big_manifest(folder: Path, rows: int, fmt: str) -> Path:
    """``rows`` rows over two real clips, ids ``r000000000``..., written in chunks."""
    clips = _clips(folder)
    path = folder / f"manifest.{fmt}"
    chunk = 500_000
    writer = None
    with open(path, "w") if fmt == "csv" else open(os.devnull, "w") as text:
        if fmt == "csv":
            text.write("id,audio\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.char.add("r", np.char.zfill(np.arange(start, start + n).astype(str), 9))
            audio = np.array(clips)[np.arange(start, start + n) % len(clips)]
            if fmt == "csv":
                text.write(
                    "".join(f"{i},{a}\n" for i, a in zip(ids.tolist(), audio.tolist(), strict=True))
                )
            else:
                table = pa.table({"id": ids.astype(object), "audio": audio.astype(object)})
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table, row_group_size=chunk)
    if writer is not None:
        writer.close()
    return path


# -- planning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_two_million_row_manifest_is_planned_as_a_stream(tmp_path, fmt):
    path = _big_manifest(tmp_path, 2_000_000, fmt)
    started = time.perf_counter()
    manifest = open_manifest(path)
    parts = plan_partitions(manifest, 128)
    first = next(parts)
    to_first = time.perf_counter() - started
    rest = list(parts)
    assert to_first < 5.0  # no pass over the manifest before the first partition
    everything = [first, *rest]
    assert len(everything) == -(-2_000_000 // 128)
    assert [p.partition for p in everything] == list(range(len(everything)))
    assert all(a.row_stop == b.row_start for a, b in itertools.pairwise(everything))
    assert everything[-1].row_stop == 2_000_000
    # any partition reads alone, with its global row numbers
    middle = read_partition(manifest, everything[7_000])
    assert middle.index.tolist() == list(range(7_000 * 128, 7_001 * 128))
    assert middle["id"].tolist() == [f"r{i:09d}" for i in range(7_000 * 128, 7_001 * 128)]
    assert middle["error"].isna().all()
    # planning resumes after a partition already planned, with the same partitions
    assert list(plan_partitions(manifest, 128, after=everything[-3])) == everything[-2:]


def test_a_manifest_edited_after_planning_is_refused_when_read(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,audio\na,x.wav\nb,y.wav\n")
    manifest = open_manifest(path)
    (part,) = list(plan_partitions(manifest, 10))
    stat = path.stat()
    path.write_text("id,audio\na,x.wav\nb,z.wav\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    assert open_manifest(path).identity == manifest.identity  # storage cannot tell...
    with pytest.raises(ManifestChanged, match="changed while its job ran"):
        read_partition(manifest, part)  # ...the content digest can


def test_bad_rows_keep_their_place_with_their_own_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "id,audio,label,offset\n"
        "a,a.wav,en,0\n"
        "b,,en,0\n"  # no audio
        "c,c.wav,klingon,0\n"  # unknown label
        "d,d.wav,en,soon\n"  # offset not a number
        "e,e.wav,en,0,extra\n"  # a field too many
        "f,f.wav,de,1.5\n"
    )
    manifest = open_manifest(path)
    (part,) = list(plan_partitions(manifest, 100))
    rows = read_partition(manifest, part)
    assert rows["id"].tolist() == ["a", "b", "c", "d", "bad-row-4", "f"]
    errors = rows["error"].tolist()
    assert errors[0] is pd.NA and errors[5] is pd.NA
    assert errors[1] == "bad_row: row 1: column 'audio' is empty"
    assert errors[2].startswith("bad_row: row 2: column 'label': 'klingon'")
    assert errors[3].startswith("bad_row: row 3: column 'offset': 'soon' is not a number")
    assert errors[4] == "bad_row: row 4: the line has 5 fields, the header has 4"


# -- settings declared once ---------------------------------------------------------------------


def test_every_setting_declares_whether_it_changes_results():
    for cls in (RunConfig, AudioConfig):
        for f in dataclasses.fields(cls):
            assert "lidframe.identity" in f.metadata, f"{cls.__name__}.{f.name}"

    @dataclasses.dataclass(frozen=True)
    class Undeclared:
        new_setting: int = 3

    with pytest.raises(TypeError, match="new_setting does not declare"):
        identity(Undeclared())
    base = RunConfig()
    assert RunConfig(top_k=3).identity() != base.identity()
    assert RunConfig(audio=AudioConfig(max_window=10.0)).identity() != base.identity()
    assert RunConfig(batch_size=32, workers=7, lease_seconds=5).identity() == base.identity()
    assert RunConfig(audio=AudioConfig(io_timeout=3.0)).identity() == base.identity()
    with pytest.raises(lidframe.ConfigError, match="unknown setting"):
        RunConfig.of(batchsize=3)


# -- whole jobs ---------------------------------------------------------------------------------


def _rows_frame(out: Path) -> pd.DataFrame:
    return read_parts(str(out)).reset_index(drop=True)


def test_duplicate_ids_far_apart_are_row_errors_naming_both_rows(tmp_path, trivial_cluster):
    clips = _clips(tmp_path)
    ids = [f"id{i}" for i in range(40)]
    ids[37] = "id1"  # far from row 1, in another partition
    rows = [{"id": i, "audio": clips[k % 2]} for k, i in enumerate(ids)]
    rows[20]["audio"] = ""  # and a bad row
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "out"
    summary = lidframe.run(
        tmp_path / "m.csv",
        out,
        [f"{FAMILY}:x"],
        scheduler=trivial_cluster,
        partition_rows=4,
        progress=False,
    )
    assert summary.ok and summary.rows == 40
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        results = store.results(summary.job_id).set_index("row")
        predictions = store.predictions(summary.job_id)
    assert len(results) == 40
    dup_rows = results.index[results["error_category"] == "duplicate_id"].tolist()
    assert len(dup_rows) == 1 and dup_rows[0] in (1, 37)
    other = 37 if dup_rows[0] == 1 else 1
    message = results.loc[dup_rows[0], "error"]
    assert f"of row {dup_rows[0]}" in message and f"also the id of row {other}" in message
    assert results.loc[20, "error"] == "bad_row: row 20: column 'audio' is empty"
    # one per row and model (null for the bad row), none for the duplicate: its id keeps the first's
    assert len(predictions) == 39 and (predictions["row_id"] == "id1").sum() == 1
    frame = _rows_frame(out)
    assert len(frame) == 40
    in_parquet = frame[frame["error"].fillna("").str.startswith("duplicate_id")]
    assert in_parquet["error"].tolist() == [message]
    assert in_parquet[f"{FAMILY.replace('-', '_')}_x_lang"].isna().all()
    answered = frame[frame["error"].isna()]
    assert len(answered) == 38 and answered[f"{FAMILY.replace('-', '_')}_x_lang"].notna().all()


def test_no_db_and_a_database_give_identical_parquet(tmp_path, trivial_cluster):
    path = _big_manifest(tmp_path, 300, "parquet")
    frames = []
    for name, db in (("nodb", False), ("db", None)):
        out = tmp_path / name
        summary = lidframe.run(
            path,
            out,
            [f"{FAMILY}:x"],
            scheduler=trivial_cluster,
            partition_rows=32,
            db=db,
            progress=False,
        )
        assert summary.ok and summary.rows == 300
        frames.append(_rows_frame(out))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["id"].tolist() == [f"r{i:09d}" for i in range(300)]


def test_an_edited_manifest_is_detected_on_the_next_run(tmp_path, trivial_cluster):
    clips = _clips(tmp_path)
    path = tmp_path / "m.csv"
    pd.DataFrame({"audio": clips * 3}).to_csv(path, index=False)
    out = tmp_path / "out"
    run = dict(scheduler=trivial_cluster, partition_rows=2, progress=False)
    first = lidframe.run(path, out, [f"{FAMILY}:x"], **run)
    assert first.ok
    with open(path, "a") as fh:
        fh.write("c0.wav\n")
    with pytest.raises(ManifestError, match=rf"manifest changed .* since job {first.job_id}"):
        lidframe.run(path, out, [f"{FAMILY}:x"], **run)
    with pytest.raises(lidframe.LidframeError, match="differs in manifest_digest"):
        lidframe.run(path, out, [f"{FAMILY}:x"], job=first.job_id, **run)
    again = lidframe.run(path, out, [f"{FAMILY}:x"], overwrite=True, **run)
    assert again.ok and again.rows == 7 and again.job_id != first.job_id


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.manifest.test_large_manifests import _register
    from lidframe.cli import main
    _register()
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_two_million_row_job_starts_at_once_and_resumes_without_redoing_work(
    tmp_path, trivial_cluster, fmt
):
    path = _big_manifest(tmp_path, 2_000_000, fmt)
    out = tmp_path / "out"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT)))
    db = f"sqlite:///{tmp_path}/jobs.sqlite"
    argv = [
        sys.executable, str(script), "run", str(path), "--out", str(out), "--models",
        f"{FAMILY}:x", "--scheduler", trivial_cluster, "--db", db, "--no-progress",
    ]  # fmt: skip
    engine = sa.create_engine(db)

    def done() -> dict[int, str]:
        with engine.connect() as conn:
            try:
                return dict(
                    conn.execute(
                        sa.text(
                            "SELECT partition, lease_token FROM lidframe_partitions "
                            "WHERE state = 'done'"
                        )
                    ).all()
                )
            except sa.exc.OperationalError:  # not created yet
                return {}

    def run_until(at_least: int) -> tuple[float, dict[int, str]]:
        started = time.monotonic()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = None
        try:
            while time.monotonic() - started < 240:
                found = done()
                if found and first is None:
                    first = time.monotonic() - started
                if len(found) >= at_least:
                    break
                assert child.poll() is None, child.communicate()
                time.sleep(0.2)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 130, stderr
        assert "kept its state" in stderr
        assert first is not None
        return first, done()

    first_s, before = run_until(3)
    # Work starts in seconds, whatever the manifest's size (imports, cluster attach and model
    # preflight included).
    assert first_s < 60, first_s
    _, after = run_until(len(before) + 3)
    assert len(after) > len(before)
    # nothing done before was redone: same lease tokens, one attempt, one set of rows
    assert {k: after[k] for k in before} == before
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT partition, count(*) FROM lidframe_results GROUP BY partition")
        ).all()
        attempts = dict(
            conn.execute(
                sa.text("SELECT partition, attempts FROM lidframe_partitions WHERE state='done'")
            ).all()
        )
    assert dict(rows) == {k: 128 for k in after}
    assert all(attempts[k] == 1 for k in before)
    with engine.connect() as conn:
        n, planned = conn.execute(sa.text("SELECT n_partitions, planned FROM lidframe_jobs")).one()
    assert (n, bool(planned)) == (-(-2_000_000 // 128), True)
    engine.dispose()


def test_two_orchestrators_share_one_job_on_postgresql(tmp_path, trivial_cluster, pg_url):
    """The same command twice at once, against one cluster and one PostgreSQL: both plan (each
    partition is inserted once), both claim, every partition is done once, and both exit 0."""
    import re

    path = _big_manifest(tmp_path, 3_000, "csv")
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT)))
    argv = [
        sys.executable, str(script), "run", str(path), "--out", str(tmp_path / "out"),
        "--models", f"{FAMILY}:x", "--scheduler", trivial_cluster, "--db", pg_url,
        "--job", "shared", "--partition-rows", "16", "--no-progress",
    ]  # fmt: skip
    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    by_run = [int(re.search(r"(\d+) partitions done by this run", o).group(1)) for o, _ in outputs]
    with open_store(pg_url) as store:
        parts = store.partitions("shared")
        results = store.results("shared")
    assert len(parts) == -(-3_000 // 16) and (parts["state"] == "done").all()
    assert sum(by_run) == len(parts)  # none done twice
    assert (parts["attempts"] == 1).all()
    assert results["row"].tolist() == list(range(3_000))
    assert results["row_id"].tolist() == [f"r{i:09d}" for i in range(3_000)]


def test_status_of_a_job_with_a_million_partitions_is_correct(tmp_path, db_url):
    """Correctness only: the benchmark (benchmarks/scale.py) prints how fast it is."""
    from lidframe.job import plan_job
    from lidframe.store.results import PartitionRows

    path = tmp_path / "m.csv"
    with open(path, "w") as fh:
        fh.write("id,audio\n")
        fh.writelines(f"r{i},c{i % 7}.wav\n" for i in range(1_000_000))
    manifest = open_manifest(path)
    with open_store(db_url) as store:
        store.ensure_job(
            "million",
            fingerprint="f",
            manifest=str(path),
            manifest_digest=manifest.identity,
            out=str(tmp_path / "out"),
            models=["m"],
            config={},
            environment={},
        )
        assert plan_job(store, "million", manifest, 1) == 1_000_000
        leases = store.claim("million", "me", 5, lease_s=60, max_attempts=1)
        assert [lease.partition for lease in leases] == [0, 1, 2, 3, 4]
        for lease in leases[:3]:
            row = ("million", f"r{lease.partition}", lease.row_start, lease.partition, "a.wav")
            row += (None,) * (len(results.columns) - len(row))
            assert store.commit("million", lease, PartitionRows([row], []))
        assert store.fail("million", leases[3], "boom", max_attempts=1) == "dead"
        status = store.status("million")
        jobs = {j["job_id"]: j for j in store.jobs()}
    assert status.job["n_partitions"] == 1_000_000 and status.job["planned"]
    assert status.states == {"done": 3, "dead": 1, "running": 1, "pending": 999_995}
    assert status.rows_done == 3 and status.attempts == 5
    assert status.dead == [(3, "boom")]
    assert "partitions 1000000: done 3, running 1, pending 999995, dead 1" in str(status)
    assert jobs["million"]["states"] == status.states
