"""One environment per job (``lidframe.job._environments``) on real worker processes: two of a
``LocalCluster`` and one ``dask worker`` started by hand with another soxr first on its
``PYTHONPATH`` (``tests.fixtures.environments``: a release from the package registry), as a node
whose image drifted.

The job gives that worker no partitions, names its difference in one line (a warning, a Dask event,
the job database, ``lidframe status``), and every row is done by the two others; with
``allow_mixed_environments`` it works too, and the parts it made name its environment. A model
whose torch weights one worker process loads with noise is found by the weights digest when that
worker's first partition ends: nothing of it is kept and the worker is refused.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import lidframe
from lidframe.environment import TOPIC, fingerprint
from lidframe.job import job_status
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.results import part_files
from lidframe.store import open_store
from tests.fixtures.clusters import dask_worker_process, start_local_cluster
from tests.fixtures.models import loudness_manifest, register_loudness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COMMON = {"partition_rows": 2, "progress": False, "speech": lidframe.SpeechConfig(vad=False)}


class _Fleet:
    """Two LocalCluster workers with this process's environment, and ``odd``: another soxr."""

    def __init__(self, client: Any, odd: str, soxr: Any) -> None:
        self.client, self.odd, self.soxr = client, odd, soxr


@pytest.fixture(scope="module")
def fleet(other_soxr):
    register_loudness()
    with start_local_cluster(2, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as running:
        env = {"PYTHONPATH": other_soxr.pythonpath()}
        with dask_worker_process(running.client, env=env) as odd:
            yield _Fleet(running.client, odd, other_soxr)


def _stored(out: Path, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with open_store(f"sqlite:///{out / '_lidframe.sqlite'}") as store:
        by_worker = store.behaviour(job_id, by_worker=True)
        return {w: b.answer.rows for w, b in by_worker.items()}, store.workers(job_id)


def _part_environments(out: Path) -> set[str]:
    return {
        json.loads(pq.read_schema(p).metadata[b"lidframe"])["environment"]
        for p in part_files(str(out))
    }


def test_a_worker_with_another_soxr_gets_no_partitions_and_is_named(fleet, tmp_path, caplog):
    manifest = loudness_manifest(tmp_path, 48)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        summary = lidframe.run(manifest, out, ["loudness:x"], client=fleet.client, **COMMON)
    assert summary.ok and summary.rows == 48
    soxr = fleet.soxr
    expected = (
        f"worker {fleet.odd} (host {fingerprint().host}): soxr {soxr.version} != "
        f"{soxr.installed} of the job; no partitions (--allow-mixed-environments to allow)"
    )
    warned = [r.getMessage() for r in caplog.records if fleet.odd in r.getMessage()]
    assert warned == [expected], (warned, soxr.origin)
    rows, workers = _stored(out, summary.job_id)
    assert fleet.odd not in rows and sum(rows.values()) == 48 and len(rows) == 2, rows
    verdicts = {w["worker"]: w["verdict"] for w in workers}
    assert verdicts == {**{w: "same" for w in rows}, fleet.odd: "refused"}, verdicts
    (odd,) = [w for w in workers if w["worker"] == fleet.odd]
    assert odd["difference"] == f"soxr {soxr.version} != {soxr.installed} of the job"
    assert odd["fingerprint"]["packages"]["soxr"] == soxr.version
    # the job records the environment it started with; every part names it
    with open_store(f"sqlite:///{out / '_lidframe.sqlite'}") as store:
        recorded = store.job(summary.job_id)["environment"]
    assert recorded["digest"] == fingerprint().digest and "loudness_x" in recorded["models"]
    assert _part_environments(out) == {fingerprint().digest}
    # status says it from the database, in the same one line
    text = job_status(summary.job_id, out=out)
    assert f"  {expected}" in text.splitlines(), text
    assert "environment " + fingerprint().digest in text
    events = [e[1] for e in fleet.client.get_events(TOPIC) if e[1].get("job") == summary.job_id]
    assert [(e["worker"], e["verdict"]) for e in events] == [(fleet.odd, "refused")]
    # the worker reported its environment when it joined (the plugin's event)
    joined = [e[1] for e in fleet.client.get_events(TOPIC) if "job" not in e[1]]
    assert fleet.odd in {e["worker"] for e in joined}


def test_with_mixed_environments_allowed_it_works_and_its_parts_say_so(fleet, tmp_path, caplog):
    manifest = loudness_manifest(tmp_path, 48)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        summary = lidframe.run(
            manifest,
            out,
            ["loudness:x"],
            client=fleet.client,
            allow_mixed_environments=True,
            **COMMON,
        )
    assert summary.ok and summary.rows == 48
    rows, workers = _stored(out, summary.job_id)
    assert rows.get(fleet.odd, 0) > 0 and sum(rows.values()) == 48, rows
    odd = {w["worker"]: w for w in workers}[fleet.odd]
    assert odd["verdict"] == "allowed"
    assert odd["line"].endswith("of the job; allowed (--allow-mixed-environments)")
    assert any(fleet.odd in r.getMessage() for r in caplog.records)
    environments = _part_environments(out)
    assert fingerprint().digest in environments and odd["environment"] in environments
    assert len(environments) == 2
    text = job_status(summary.job_id, out=out)
    assert "1 allowed" in text and odd["line"] in text


def register_noisytorch(marker: Path) -> None:
    """``noisytorch``: ``en``/``de`` from the loudness through a torch linear layer, whose
    weights every worker process but the first to load the model (it writes its pid to
    ``marker``) loads with seeded noise: a truncated weights file on one node."""
    import torch

    class NoisyTorch(LidModel):
        def __init__(self, spec: ModelSpec, noisy: bool) -> None:
            super().__init__(spec)
            self.layer = torch.nn.Linear(2, 2, bias=False)
            weights = torch.eye(2)
            if noisy:
                weights += torch.from_numpy(np.random.default_rng(3).normal(0, 0.01, (2, 2)))
            with torch.no_grad():
                self.layer.weight.copy_(weights)

        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de")

        def forward(self, batch):  # type: ignore[no-untyped-def]
            loud = ((batch.values.abs() * batch.mask).sum(-1) / batch.lengths).clamp(0, 1)
            with torch.no_grad():
                return torch.softmax(8 * self.layer(torch.stack([loud, 1 - loud], -1)), -1)

    def factory(spec: ModelSpec) -> LidModel:
        try:
            with open(marker, "x") as fh:
                fh.write(str(os.getpid()))
        except FileExistsError:
            pass
        return NoisyTorch(spec, noisy=marker.read_text() != str(os.getpid()))

    register_family("noisytorch", factory)


def test_a_worker_that_loaded_other_weights_keeps_nothing_and_is_refused(fleet, tmp_path):
    """The first process to load the model is the one the job loads it on before work (it then
    has the job's weights); the other LocalCluster worker loads noisy weights, which the digest
    finds once its first partition is computed: nothing of it is staged or stored, the partition
    goes to another worker without an attempt counted, and the worker is named."""
    register_noisytorch(tmp_path / "first")
    manifest = loudness_manifest(tmp_path, 48)
    out = tmp_path / "out"
    summary = lidframe.run(manifest, out, ["noisytorch:z"], client=fleet.client, **COMMON)
    assert summary.ok and summary.rows == 48
    first = int((tmp_path / "first").read_text())
    pids = fleet.client.run(os.getpid)
    clean = next(w for w, p in pids.items() if p == first)
    rows, workers = _stored(out, summary.job_id)
    assert rows == {clean: 48}, (rows, clean)
    verdicts = {w["worker"]: (w["verdict"], w["difference"]) for w in workers}
    noisy = [w for w, (v, d) in verdicts.items() if d and d.startswith("weights of noisytorch_z ")]
    assert len(noisy) == 1 and noisy[0] not in (clean, fleet.odd), verdicts
    assert verdicts[noisy[0]][0] == "refused"
    assert verdicts[fleet.odd][0] == "refused"
    frame = pd.read_parquet(out)
    assert len(frame) == 48 and frame["error"].isna().all()
    assert all(
        json.loads(pq.read_schema(p).metadata[b"lidframe"])["models"]["noisytorch_z"]["weights"]
        == workers_weights(out, summary.job_id)
        for p in part_files(str(out))
    )


def workers_weights(out: Path, job_id: str) -> str:
    """The weights digest the job recorded for ``noisytorch_z``."""
    with open_store(f"sqlite:///{out / '_lidframe.sqlite'}") as store:
        return str(store.job(job_id)["environment"]["models"]["noisytorch_z"])
