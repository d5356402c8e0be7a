"""The worker that answers differently (``lidframe.job._watch``, ``lidframe.observe.outliers``) on
real worker processes, one of which runs a deliberately damaged model.

Three worker processes under nannies; two models: ``loudness`` (``en`` loud, ``de`` quiet) and
``noisyloud``, the same answer from a small weight matrix, whose weights get Gaussian noise added
in the first worker process that loads it (a truncated or corrupted weights file on one node).
There it answers ``en`` for every clip, so on that worker the models agree on half the rows, and on
the others on all of them. Each partition holds two loud and two quiet clips, so an honest worker's
share of languages is the fleet's exactly.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.job import job_status
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.store import open_store
from lidframe.store.behaviour import ANSWER
from tests.fixtures.clusters import start_local_cluster
from tests.fixtures.models import loudness_manifest, register_loudness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODELS = ["loudness:x", "noisyloud:y"]
COMMON = {
    "partition_rows": 4,
    "progress": False,
    "speech": lidframe.SpeechConfig(vad=False),
    "check_every": 1,
    # every partition is two loud and two quiet clips, so one partition says a worker's mix
    "fleet_min_rows": 4,
}


def register_noisyloud(marker: Path) -> None:
    """``noisyloud``: ``en``/``de``/``fr`` from the loudness through a 3x2 weight matrix; the first
        worker process to load it (it creates ``marker`` and writes its pid there) adds seeded noise to
        the matrix, and answers ``en`` for every clip. While the file :func:`failing` names exists, the
    damaged model also raises on every call, until it has raised on the kernel's known-good clip (a
    second of quiet noise) as many times as the file says: with one, its next partition fails once
    (the job's ``task_retries=0``: no Dask retry, which could land on a healthy worker), and then it
    answers again."""
    failing_flag = failing(marker)

    class NoisyLoud(LidModel):
        weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        damaged = False

        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de", "fr")

        def forward(self, batch):  # type: ignore[no-untyped-def]
            import torch

            loud = ((batch.values.abs() * batch.mask).sum(-1) / batch.lengths).clamp(0, 1)
            if self.damaged and failing_flag.exists():
                if len(loud) == 1 and float(loud[0]) < 0.05:  # the known-good clip
                    left = int(failing_flag.read_text()) - 1
                    if left:
                        failing_flag.write_text(str(left))
                    else:
                        failing_flag.unlink()
                raise RuntimeError("the damaged device fails")
            features = torch.stack([loud, 1 - loud], -1).double()
            logits = 8 * features @ torch.from_numpy(self.weights).T
            return torch.softmax(logits, -1).float()

    def factory(spec: ModelSpec) -> LidModel:
        import os

        model = NoisyLoud(spec)
        try:
            with open(marker, "x") as fh:
                fh.write(str(os.getpid()))
        except FileExistsError:
            pass
        if marker.read_text() == str(os.getpid()):
            noise = np.random.default_rng(7).normal(0, 1.5, NoisyLoud.weights.shape)
            model.weights = NoisyLoud.weights + noise
            model.damaged = True
        return model

    register_family("noisyloud", factory)


def failing(marker: Path) -> Path:
    """While this file exists the damaged model fails (see :func:`register_noisyloud`)."""
    return marker.with_name(marker.name + "-failing")


class _Fleet:
    """Three single-threaded worker processes under nannies, one of them damaged."""

    def __init__(self, client: Any, marker: Path) -> None:
        self.client, self.marker = client, marker

    @property
    def damaged(self) -> str:
        """The address of the worker process that damaged its model (known once it loaded it)."""
        pid = int(self.marker.read_text())
        return next(a for a, p in self.client.run(os.getpid).items() if p == pid)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    register_loudness()
    marker = tmp_path_factory.mktemp("fleet") / "damaged"
    register_noisyloud(marker)
    with start_local_cluster(3, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as running:
        yield _Fleet(running.client, marker)


def test_the_worker_with_a_damaged_model_is_named_and_the_others_are_not(fleet, tmp_path, caplog):
    client = fleet.client
    manifest = loudness_manifest(tmp_path, 96)
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        summary = lidframe.run(manifest, tmp_path / "out", MODELS, client=client, **COMMON)
    damaged = fleet.damaged
    named = [r.getMessage() for r in caplog.records if "answers differently" in r.getMessage()]
    with open_store(f"sqlite:///{tmp_path / 'out' / '_lidframe.sqlite'}") as store:
        by_worker = store.behaviour(summary.job_id, by_worker=True)
    rows = {w: (b.answer.rows, b.answer.agreement) for w, b in by_worker.items()}
    assert len(named) == 1, (named, rows, damaged)  # once, however many checks saw it
    assert named[0].startswith(f"worker {damaged} (host ")
    assert "agreement of answer difference 0.500 > 0.1" in named[0], named[0]
    # its environment is the job's: what answers differently is not the software (issue 26)
    with open_store(f"sqlite:///{tmp_path / 'out' / '_lidframe.sqlite'}") as store:
        (digest,) = {w["environment"] for w in store.workers(summary.job_id)}
    assert f"(host {socket.gethostname()}, environment the job's ({digest}))" in named[0]
    events = client.get_events("lidframe-fleet")
    assert [e[1]["worker"] for e in events if e[1]["job"] == summary.job_id] == [damaged]
    with open_store(f"sqlite:///{tmp_path / 'out' / '_lidframe.sqlite'}") as store:
        by_worker = store.behaviour(summary.job_id, by_worker=True)
    assert damaged in by_worker and len(by_worker) == 3  # not quarantined: it kept working
    agreement = {w: b.stats[ANSWER].agreement for w, b in by_worker.items()}
    assert agreement[damaged] < 0.75 and all(
        a == 1.0 for w, a in agreement.items() if w != damaged
    ), agreement
    # lidframe status names it too, from the database
    text = job_status(summary.job_id, out=tmp_path / "out", fleet_min_rows=4)
    assert f"worker {damaged} (host " in text and text.count("answers differently") == 1
    assert f"environment the job's ({digest})) answers differently" in text


def test_quarantine_gives_it_no_more_partitions_and_redoes_its_own_elsewhere(
    fleet, tmp_path, caplog
):
    client = fleet.client
    manifest = loudness_manifest(tmp_path, 96)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        summary = lidframe.run(manifest, out, MODELS, client=client, quarantine=True, **COMMON)
    damaged = fleet.damaged
    assert summary.ok and summary.rows == 96
    messages = [r.getMessage() for r in caplog.records]
    with open_store(f"sqlite:///{out / '_lidframe.sqlite'}") as store:
        by_worker = store.behaviour(summary.job_id, by_worker=True)
        parts = store.partitions(summary.job_id)
    rows_by_worker = {w: b.answer.rows for w, b in by_worker.items()}
    quarantined = f"quarantined worker {damaged}: it gets no more"
    assert any(m.startswith(quarantined) for m in messages), (messages, rows_by_worker)
    # every stored partition was computed by a healthy worker, and the answers are all healthy
    assert damaged not in by_worker and len(by_worker) == 2
    assert (parts["state"] == "done").all()
    rows = pd.read_parquet(out)
    assert len(rows) == 96 and rows["agree"].all()
    assert (rows["noisyloud_y_lang"] == rows["loudness_x_lang"]).all()


def test_quarantine_also_redoes_the_partitions_that_died_of_its_failures(fleet, tmp_path, caplog):
    """The damaged worker's first partition fails (its model raises on every clip and on the
    known-good one; no Dask retry) and, with one attempt allowed, dies; it then answers
    differently, is quarantined, and none of its attempts counts: the dead partition is redone
    on the healthy workers with the ones it computed, and the job ends with every row answered."""
    client = fleet.client
    manifest = loudness_manifest(tmp_path, 96)
    out = tmp_path / "out"
    flag = failing(fleet.marker)
    flag.write_text("1")
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        summary = lidframe.run(
            manifest,
            out,
            MODELS,
            client=client,
            quarantine=True,
            max_attempts=1,
            task_retries=0,
            **COMMON,
        )
    damaged = fleet.damaged
    messages = [r.getMessage() for r in caplog.records]
    assert not flag.exists(), messages  # its first partition failed
    died = [m for m in messages if "attempt 1 failed: ModelError: model noisyloud_y" in m]
    assert len(died) == 1, messages
    quarantined = [m for m in messages if m.startswith(f"quarantined worker {damaged}: ")]
    assert len(quarantined) == 1, messages
    assert "and the 1 that died of its 1 failed attempts are redone elsewhere" in quarantined[0]
    assert summary.ok and summary.rows == 96 and summary.dead == 0, summary
    with open_store(f"sqlite:///{out / '_lidframe.sqlite'}") as store:
        by_worker = store.behaviour(summary.job_id, by_worker=True)
        parts = store.partitions(summary.job_id)
    assert (parts["state"] == "done").all(), parts
    assert damaged not in by_worker and len(by_worker) == 2
    rows = pd.read_parquet(out)
    assert len(rows) == 96 and rows["error"].isna().all() and rows["agree"].all()
