"""Durable jobs under real failures: real worker processes that are SIGKILLed, a client process that is
SIGKILLed and run again, PostgreSQL connections terminated mid-run, and an input that kills every
worker that touches it. Each test checks that every manifest row ends up exactly once in the
database and in Parquet.

The cluster is a real ``LocalCluster`` of worker processes (with nannies that restart them) started
by the test; the job runs through the ``lidframe run`` command in a separate process, attached to it
with ``--scheduler``, so killing the client kills a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed.diagnostics.plugin import WorkerPlugin

import lidframe
from lidframe.models import LidModel
from lidframe.store import open_store
from lidframe.testing import make_corpus, sine, write_wav
from tests.fixtures.paths import ECAPA_DIR

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ECAPA = str(ECAPA_DIR)
MODEL = f"speechbrain:{ECAPA}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 espeak clips in six languages, and their manifest."""
    root = tmp_path_factory.mktemp("jobs-corpus")
    table = make_corpus(root, ["en", "de", "es", "fr", "it", "pl"], per_language=4, seed=3)
    table.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _command(
    manifest: Path, out: Path, db: str, job: str, scheduler: str, *extra: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lidframe.cli",
        "run",
        str(manifest),
        "--out",
        str(out),
        "--db",
        db,
        "--job",
        job,
        "--scheduler",
        scheduler,
        "--no-progress",
        *extra,
    ]


def _wait_for_done(db: str, job: str, at_least: int, proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with open_store(db) as store:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before the failure could be injected"
            if store.job(job) is not None:
                done = store.states(job).get("done", 0)
                if done >= at_least:
                    return done
            time.sleep(0.1)
    raise AssertionError(f"{job}: fewer than {at_least} partitions done after {timeout} s")


def _assert_exactly_once(manifest: Path, out: Path, db: str, job: str) -> pd.DataFrame:
    """Every manifest row once in the database and once in Parquet, with the same answers."""
    expected = pd.read_csv(manifest)["id"].tolist()
    with open_store(db) as store:
        results = store.results(job)
        predictions = store.predictions(job)
        parts = store.partitions(job)
    assert sorted(results["row_id"]) == sorted(expected)
    assert results["row_id"].is_unique
    files = sorted(p for p in os.listdir(out) if p.endswith(".parquet"))
    assert files == [f"part-{k:05d}.parquet" for k in range(len(parts))]
    parquet = pd.read_parquet(out)
    assert sorted(parquet["id"]) == sorted(expected)
    assert parquet["id"].is_unique
    # both hold the same rows with the same answers
    alias = next(c for c in parquet.columns if c.endswith("_lang")).removesuffix("_lang")
    db_langs = predictions[predictions["model"] == alias].set_index("row_id")["lang"]
    pq_langs = parquet.set_index("id")[f"{alias}_lang"]

    def plain(series: pd.Series) -> dict[str, str | None]:
        return {str(k): (None if pd.isna(v) else str(v)) for k, v in series.items()}

    assert plain(db_langs) == plain(pq_langs)
    return parts


def test_sigkill_of_a_worker_mid_job_loses_and_duplicates_nothing(
    corpus, cluster, pg_url, tmp_path
):
    address, client = cluster
    out = tmp_path / "out"
    cmd = _command(
        corpus, out, pg_url, "kill-worker", address, "--models", "whisper-base",
        "--partition-rows", "2", "--batch-size", "2",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_done(pg_url, "kill-worker", 6, proc, timeout=300)  # 6 of 12 partitions
        before = client.run(os.getpid)
        victim = next(iter(before.values()))
        os.kill(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert victim not in client.run(os.getpid).values()  # it really died (the nanny restarted it)
    parts = _assert_exactly_once(corpus, out, pg_url, "kill-worker")
    assert (parts["state"] == "done").all()
    assert "job kill-worker finished" in output


def test_killed_client_resumes_without_redoing_committed_partitions(
    corpus, cluster, pg_url, tmp_path
):
    address, _ = cluster
    out = tmp_path / "out"
    cmd = _command(
        corpus, out, pg_url, "kill-client", address, "--models", "whisper-base",
        "--partition-rows", "2", "--batch-size", "2", "--lease-seconds", "4",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_done(pg_url, "kill-client", 5, proc, timeout=300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with open_store(pg_url) as store:
        snapshot = store.partitions("kill-client").set_index("partition")
    committed = snapshot[snapshot["state"] == "done"]
    interrupted = snapshot[snapshot["state"] == "running"].index.tolist()
    assert len(committed) >= 5 and interrupted, snapshot[["state", "attempts"]]
    mtimes = {k: (out / f"part-{k:05d}.parquet").stat().st_mtime_ns for k in committed.index}

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(committed)} already done" in again.stdout

    parts = _assert_exactly_once(corpus, out, pg_url, "kill-client").set_index("partition")
    assert (parts["state"] == "done").all()
    # committed partitions were not redone: same lease, same finish time, same file
    for k in committed.index:
        assert parts.loc[k, "lease_token"] == committed.loc[k, "lease_token"]
        assert parts.loc[k, "finished_at"] == committed.loc[k, "finished_at"]
        assert parts.loc[k, "attempts"] == 1
        assert (out / f"part-{k:05d}.parquet").stat().st_mtime_ns == mtimes[k]
    # the ones the dead client held were taken over once their leases expired
    assert all(parts.loc[k, "attempts"] == 2 for k in interrupted)

    # a finished job does no new work
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "0 partitions done by this run" in third.stdout
    with open_store(pg_url) as store:
        assert (
            store.partitions("kill-client")["lease_token"].tolist() == parts["lease_token"].tolist()
        )


def test_terminated_database_connections_mid_run_are_survived(
    corpus, cluster, pg_url, postgres, tmp_path
):
    address, _ = cluster
    out = tmp_path / "out"
    cmd = _command(
        corpus, out, pg_url, "pg-terminate", address, "--models", MODEL, "--partition-rows", "1"
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_done(pg_url, "pg-terminate", 1, proc, timeout=300)
        with postgres.terminating(interval=0.2, limit=40) as killed:
            output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert len(killed) >= 3, "no lidframe connection was terminated during the run"
    parts = _assert_exactly_once(corpus, out, pg_url, "pg-terminate")
    assert (parts["state"] == "done").all()
    assert (parts["attempts"] == 1).all()  # a database blip costs no attempt
    assert (parts["rows"] == 1).all()


# -- a partition that kills its worker every time -----------------------------------------------

POISON_SAMPLES = 12_432  # a 0.777 s clip at 16 kHz: the input that kills whatever touches it


class PoisonLid(LidModel):
    """A model family that dies (SIGKILL of its own process) on one particular clip length."""

    @property
    def labels(self):
        return ("en", "de")

    def predict_batch(self, waveforms):
        for w in waveforms:
            if len(w) == POISON_SAMPLES:
                os.kill(os.getpid(), signal.SIGKILL)
        return np.tile(np.array([[0.75, 0.25]], dtype=np.float32), (len(waveforms), 1))


def _register_poison() -> None:
    from lidframe.models import register_family

    register_family("poison", PoisonLid)


class RegisterPoison(WorkerPlugin):
    """Dask worker plugin: registers the poison family in every worker, restarted ones included."""

    name = "lidframe-test-poison"

    def setup(self, worker):
        _register_poison()


def test_a_partition_that_kills_its_worker_every_time_ends_dead(
    corpus, pg_url, tmp_path, local_cluster
):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    manifest = pd.read_csv(corpus)
    poison = tmp_path / "poison.wav"
    write_wav(poison, sine(POISON_SAMPLES / 16_000), 16_000)
    assert len(sine(POISON_SAMPLES / 16_000)) == POISON_SAMPLES
    rows = manifest.to_dict("records")
    rows.insert(12, {"id": "poison", "audio": str(poison), "label": "en"})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).assign(
        audio=lambda d: [a if a.startswith("/") else str(corpus.parent / a) for a in d["audio"]]
    ).to_csv(path, index=False)

    _register_poison()
    out = tmp_path / "out"
    # Dask's own worker-loss recovery, with a low limit: a task on a worker that dies is moved to
    # another worker once; a task that kills a second worker fails (KilledWorker): one attempt.
    with local_cluster(
        n_workers=2,
        config={"distributed.scheduler.allowed-failures": 1},
        plugins=[RegisterPoison()],
    ) as c:
        summary = lidframe.run(
            path,
            out,
            ["poison:any"],
            scheduler=c.address,
            partition_rows=5,
            db=pg_url,
            job="poison",
            max_attempts=2,
            progress=False,
            speech=lidframe.SpeechConfig(vad=False),  # tones: the model must hear the poison
        )
    assert summary.status == "finished_with_dead" and summary.dead == 1
    parts = _assert_exactly_once(path, out, pg_url, "poison").set_index("partition")
    assert parts.loc[2, "state"] == "dead" and parts.loc[2, "attempts"] == 2
    assert "KilledWorker" in parts.loc[2, "last_error"]
    others = parts.drop(index=2)
    # every other partition finishes (one that shared a worker with the poison may have needed a
    # second attempt: Dask counts every task on a lost worker)
    assert (others["state"] == "done").all()
    # the dead partition's rows are there, each saying why, in the database and in Parquet
    with open_store(pg_url) as store:
        results = store.results("poison").set_index("row_id")
    dead_rows = results[results["partition"] == 2]
    assert len(dead_rows) == 5 and "poison" in dead_rows.index
    assert dead_rows["error"].str.startswith("dead_partition: KilledWorker").all()
    assert (dead_rows["error_category"] == "dead_partition").all()
    parquet = pd.read_parquet(out / "part-00002.parquet")
    assert parquet["error"].str.startswith("dead_partition: ").all()
    assert parquet["poison_any_lang"].isna().all()
    alive = results[results["partition"] != 2]
    assert alive["error"].isna().all()


def test_sql_looking_manifest_strings_round_trip_through_a_run(pg_url, tmp_path):
    names = [
        "x'); DROP TABLE lidframe_results; --",
        "%(audio)s %s %% $1 ? :name",
        'quote " and back\\slash',
        "ünïcødé 音声 🎧",
    ]
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    rows = []
    for i, name in enumerate(names):
        write_wav(audio_dir / f"{name}.wav", sine(1.0 + 0.1 * i), 16_000)
        rows.append({"id": f"{name} #{i}", "audio": f"audio/{name}.wav"})
    rows.append({"id": "'; SELECT pg_sleep(30); --", "audio": "audio/missing'; --.wav"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = tmp_path / "out"
    # 1 s leases: a partition of two whisper-base clips (about 1.5 s) outlives its lease and must
    # be renewed
    summary = lidframe.run(
        manifest,
        out,
        ["whisper-base"],
        workers=1,
        partition_rows=2,
        db=pg_url,
        lease_seconds=1,
        progress=False,
        # tones, heard whole on a padded 30 s: whisper takes its time over each
        speech=lidframe.SpeechConfig(vad=False, context="full"),
    )
    assert summary.rows == len(rows) and summary.errors == 1
    with open_store(pg_url) as store:
        results = store.results(summary.job_id).sort_values("row")
        parts = store.partitions(summary.job_id)
    assert (parts["attempts"] == 1).all() and (parts["state"] == "done").all()
    assert parts["seconds"].max() > 1.0  # a task really ran longer than its lease
    expected_audio = [str(tmp_path / r["audio"]) for r in rows]
    assert results["row_id"].tolist() == [r["id"] for r in rows]
    assert results["audio"].tolist() == expected_audio
    assert results["error"].iloc[-1].startswith("not_found: ")
    parquet = pd.read_parquet(out).sort_values("audio")
    assert sorted(parquet["id"]) == sorted(r["id"] for r in rows)
    assert sorted(parquet["audio"]) == sorted(expected_audio)
