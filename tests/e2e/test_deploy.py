"""Deploys as an operator makes them: separate ``dask scheduler`` and ``dask worker`` processes
started by hand (all on 127.0.0.1 here, standing in for several machines), a job attached with
``lidframe run --scheduler``.

* TLS: the scheduler, workers and client hold certificates of one authority made by the test; the
  job runs over ``tls://`` (the client's certificates from Dask's own configuration, as a user sets
  them), and a worker whose certificate another authority signed cannot join.
* Workers never receive the job database's address: every task a worker ran is searched for it.
* A worker SIGKILLed mid-job stays dead (no nanny) and another started mid-job joins and finishes
  the job; every row is done exactly once.
* SLURM: workers submitted as batch jobs by dask-jobqueue's ``SLURMCluster`` to a real SLURM
  controller (skipped where none answers; a single-node slurmctld + slurmd from Debian's
  ``slurm-wlm`` is enough, see README.md "Deploying").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import lidframe
from lidframe.cluster import DATABASE_CREDENTIAL_VARIABLES
from lidframe.store import open_store
from lidframe.testing import make_corpus
from tests.fixtures.clusters import HandStartedCluster
from tests.fixtures.paths import ECAPA_DIR, ROOT
from tests.fixtures.tls import make_authority

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = f"speechbrain:{ECAPA_DIR}"
SPY = ROOT / "tests" / "fixtures" / "task_spy.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve espeak clips in four languages, and their manifest."""
    root = tmp_path_factory.mktemp("deploy-corpus")
    make_corpus(root, ["en", "de", "es", "fr"], per_language=3, seed=11).to_csv(
        root / "manifest.csv", index=False
    )
    return root / "manifest.csv"


def _cluster_env(**extra: str) -> dict[str, str]:
    """What the cluster's processes start with: this environment without database credentials
    (a worker machine has none), one thread per library."""
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_CREDENTIAL_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _workers(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """``{name: address}`` of the workers the scheduler has now."""
    return {str(w["name"]): a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}


def _run(manifest: Path, out: Path, db: str, job: str, address: str, env: dict[str, str]):  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "lidframe.cli", "run", str(manifest), "--out", str(out)]
    command += ["--db", db, "--job", job, "--scheduler", address, "--models", MODEL]
    command += ["--partition-rows", "1", "--no-progress"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _done_once(manifest: Path, out: Path, db: str, job: str) -> dict[str, int]:
    """Every manifest row once in Parquet and once in the database; partitions done per worker."""
    expected = sorted(pd.read_csv(manifest)["id"])
    parquet = pd.read_parquet(out)
    assert sorted(parquet["id"]) == expected and parquet["id"].is_unique
    with open_store(db) as store:
        results = store.results(job)
        assert sorted(results["row_id"]) == expected and results["row_id"].is_unique
        assert set(store.partitions(job)["state"]) == {"done"}
        workers = Counter(str(p["worker"]) for p in store.partition_behaviour(job))
    return dict(workers)


def test_a_job_over_tls_and_a_worker_of_another_authority_cannot_join(corpus, tmp_path):
    fleet = make_authority(tmp_path / "pki", "fleet")
    rogue = make_authority(tmp_path / "rogue", "rogue")  # self-signed by an authority nobody trusts
    secret = "db-secret-7f3a91"  # in the database's path: it must reach no worker
    db = f"sqlite:///{tmp_path / secret / 'jobs.sqlite'}"
    (tmp_path / secret).mkdir()
    spy = tmp_path / "tasks"
    env = _cluster_env(LIDFRAME_TEST_TASK_SPY=str(spy))
    with HandStartedCluster(tmp_path, tls=fleet, env=env) as cluster, cluster.client() as client:
        assert cluster.address.startswith("tls://127.0.0.1:")
        cluster.start_worker("good", extra=["--preload", str(SPY)])
        _wait(lambda: "good" in _workers(client), 120, "the worker with the fleet's certificate")
        good = _workers(client)["good"]

        # The fleet's authority is public; the intruder's own certificate is what gives it away.
        forged = (fleet.ca, rogue.cert, rogue.key)
        intruder = cluster.start_worker("intruder", tls=forged, extra=["--death-timeout", "10"])
        _wait(lambda: intruder.poll() is not None, 120, "the intruder gives up")
        assert intruder.returncode != 0
        assert list(_workers(client)) == ["good"]
        refusals = [
            line for line in cluster.log("scheduler").splitlines() if "TLS handshake failed" in line
        ]
        assert refusals and all("certificate verify failed" in line for line in refusals), refusals

        # The client's certificates from Dask's configuration, as a user sets them (or in
        # ~/.config/dask/distributed.yaml); the database address only on the client's side.
        client_env = {
            **os.environ,
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(fleet.ca),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(fleet.cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(fleet.key),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        }
        out = tmp_path / "out"
        proc = _run(corpus, out, db, "tls", cluster.address, client_env)
        output, _ = proc.communicate(timeout=500)
        assert proc.returncode == 0, output
        assert list(_workers(client)) == ["good"]

    assert _done_once(corpus, out, db, "tls") == {good: 12}
    sent = b"".join(path.read_bytes() for path in spy.glob("*.bin"))
    assert str(out).encode() in sent  # the spy sees the job's tasks and their paths ...
    assert secret.encode() not in sent  # ... and none carried the database's address
    assert b"jobs.sqlite" not in sent


def test_a_worker_killed_mid_job_and_one_joining_mid_job_leave_every_row_done_once(
    corpus, tmp_path
):
    db = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    out = tmp_path / "out"
    with HandStartedCluster(tmp_path, env=_cluster_env()) as cluster, cluster.client() as client:
        first = cluster.start_worker("first")
        _wait(lambda: "first" in _workers(client), 120, "the first worker")
        victim = _workers(client)["first"]
        with open_store(db) as store:
            proc = _run(corpus, out, db, "hand", cluster.address, dict(os.environ))

            def done() -> int:
                assert proc.poll() is None, "the run ended before the worker was killed"
                return 0 if store.job("hand") is None else store.states("hand").get("done", 0)

            try:
                _wait(lambda: done() >= 3, 300, "three partitions done")
                first.send_signal(signal.SIGKILL)  # mid-partition: no goodbye to the scheduler
                first.wait(timeout=30)
                _wait(lambda: "first" not in _workers(client), 60, "the scheduler notices")
                cluster.start_worker("second")  # joins a running job
                _wait(lambda: "second" in _workers(client), 120, "the second worker")
                joined = _workers(client)["second"]
                output, _ = proc.communicate(timeout=400)
            finally:
                proc.kill()
        assert proc.returncode == 0, output
    by_worker = _done_once(corpus, out, db, "hand")
    assert by_worker.keys() == {victim, joined}, by_worker
    assert by_worker[victim] >= 3 and by_worker[joined] >= 1
    assert sum(by_worker.values()) == 12


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and "up" in done.stdout


@pytest.mark.skipif(not _slurm_answers(), reason="no SLURM controller answers here")
def test_a_job_on_workers_that_slurm_starts(corpus, tmp_path):
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    from distributed import Client

    logs = tmp_path / "slurm-logs"
    with dask_jobqueue.SLURMCluster(
        cores=1,
        processes=1,
        memory="2GiB",
        walltime="00:15:00",
        python=sys.executable,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        worker_extra_args=["--preload", "lidframe.cluster"],
        local_directory=str(tmp_path / "scratch"),
        log_directory=str(logs),
        job_script_prologue=["export OMP_NUM_THREADS=1"],
    ) as cluster, Client(cluster) as client:  # fmt: skip
        cluster.scale(jobs=1)
        client.wait_for_workers(1, timeout=300)
        out = tmp_path / "out"
        db = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
        summary = lidframe.run(
            corpus, out, models=[MODEL], client=client, db=db, job="slurm",
            partition_rows=4, progress=False,
        )  # fmt: skip
        assert summary.rows == 12
        # the workers really are SLURM jobs
        squeue = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True)
        assert "dask-worker" in squeue.stdout, squeue.stdout
    assert sum(_done_once(corpus, out, db, "slurm").values()) == 3
