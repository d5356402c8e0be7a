"""Drift (``lidframe.observe``) between real jobs whose inputs differ in language mix, and not
between two runs of the same manifest; the live warning of ``run(reference=...)``, given once.

The jobs are real (``lidframe.run`` on a thread cluster in this process, each job's database in its
results folder) with the ``loudness`` model (``en`` for loud clips, ``de`` for quiet ones, with the
same confidence either way), so a manifest of more loud clips moves the language shares and nothing
else.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.cli import main
from lidframe.errors import LidframeError
from lidframe.job import job_drift
from lidframe.observe import DriftThresholds, compare
from lidframe.observe._drift import js_distance, psi
from lidframe.store import Behaviour, Stats
from lidframe.testing import write_wav
from tests.fixtures.models import register_loudness

pytestmark = pytest.mark.timeout(300)

COMMON = {
    "partition_rows": 2,
    "progress": False,
    "speech": lidframe.SpeechConfig(vad=False),  # the clips are noise of two loudnesses
}


def _manifest(folder: Path, loud: list[bool]) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, is_loud in enumerate(loud):
        path = folder / f"c{i}.wav"
        write_wav(path, (0.9 if is_loud else 0.1) * np.sign(rng.standard_normal(4000)), 16_000)
        rows.append({"id": f"c{i:02d}", "audio": str(path)})
    pd.DataFrame(rows).to_csv(folder / "m.csv", index=False)
    return folder / "m.csv"


@pytest.fixture
def jobs(tmp_path, local_cluster):
    """Job ``even`` (6 loud and 6 quiet clips), ``again`` (the same manifest, another folder) and
    ``loud`` (11 loud, 1 quiet); their output folders, and the cluster's client."""
    register_loudness()
    client = local_cluster(1, processes=False).client
    even = _manifest(tmp_path / "even", [i % 2 == 1 for i in range(12)])
    loud = _manifest(tmp_path / "loud", [i != 0 for i in range(12)])
    outs = {}
    for name, manifest in (("even", even), ("again", even), ("loud", loud)):
        outs[name] = tmp_path / f"out-{name}"
        lidframe.run(manifest, outs[name], ["loudness:x"], client=client, **COMMON)
    return outs, client, loud


def test_drift_flags_the_language_shares_of_another_mix_and_not_a_rerun(jobs, capsys):
    outs, _, _ = jobs
    same = job_drift(None, str(outs["even"]), out=outs["again"])
    assert (
        not same and same.checks and all(c.value == pytest.approx(0, abs=1e-9) for c in same.checks)
    )
    moved = job_drift(None, str(outs["even"]), out=outs["loud"])
    assert [(c.statistic, c.of) for c in moved.moved] == [("languages", "answer")]
    check = moved.moved[0]
    # shares 50/50 -> 11/12, 1/12 (Jensen-Shannon distance, base 2)
    assert check.value == pytest.approx(js_distance({"en": 6, "de": 6}, {"en": 11, "de": 1}))
    assert check.before == "de 50%, en 50%" and check.after == "en 92%, de 8%"
    assert {c.statistic for c in moved.checks} == {"languages", "confidence", "und rate",
                                                   "error rate"}  # fmt: skip

    # the command: exit 0 for the rerun, 1 for the other mix, naming what moved and by how much
    assert main(["drift", "--out", str(outs["again"]), "--reference", str(outs["even"])]) == 0
    assert "0 of 4 statistics moved" in capsys.readouterr().out
    assert main(["drift", "--out", str(outs["loud"]), "--reference", str(outs["even"])]) == 1
    text = capsys.readouterr().out
    assert "1 of 4 statistics moved" in text
    assert "languages of answer" in text and "MOVED" in text and "de 50%, en 50% -> en 92%" in text
    # a looser threshold lets it pass
    argv = [
        "drift",
        "--out",
        str(outs["loud"]),
        "--reference",
        str(outs["even"]),
        "--max-js",
        "0.5",
    ]
    assert main(argv) == 0
    # an unknown reference is a one-line error, exit 2
    assert main(["drift", "--out", str(outs["loud"]), "--reference", "no-such-job"]) == 2
    assert "--reference no-such-job: no job of that id" in capsys.readouterr().err


def test_a_run_with_a_reference_warns_once_and_records_an_event(jobs, tmp_path, caplog):
    outs, client, loud = jobs
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        lidframe.run(
            loud, tmp_path / "live", ["loudness:x"], client=client,
            reference=str(outs["even"]), check_every=1, **COMMON,
        )  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if "drift against" in r.getMessage()]
    assert len(warnings) == 1, warnings  # six partitions, each checked; warned the first time
    assert "languages of answer Jensen-Shannon" in warnings[0] and "> 0.1" in warnings[0]
    events = client.get_events("lidframe-drift")
    assert len(events) == 1 and events[0][1]["reference"].startswith("job ")
    # a reference that is not there stops the run before any work
    with pytest.raises(LidframeError, match="--reference nowhere"):
        lidframe.run(loud, tmp_path / "x", ["loudness:x"], client=client,
                     reference="nowhere", **COMMON)  # fmt: skip


def test_the_statistics_on_known_values():
    assert js_distance({"en": 5}, {"en": 7}) == 0.0
    assert js_distance({"en": 5}, {"de": 5}) == pytest.approx(1.0)
    assert psi([10] * 10, [10] * 10) == 0.0
    # PSI of 50/50 against 90/10 over two bins: 0.4 ln(0.9/0.5) + 0.4 ln(0.5/0.1)... signed terms
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi([5, 5] + [0] * 8, [9, 1] + [0] * 8) == pytest.approx(expected, rel=1e-3)
    a = Behaviour({"*": Stats(rows=100, answered=90, und=5, errors=5, prob=[0] * 9 + [90])})
    b = Behaviour({"*": Stats(rows=100, answered=80, und=12, errors=8, prob=[0] * 9 + [80])})
    a.answer.langs.update({"en": 90})
    b.answer.langs.update({"en": 80})
    drift = compare(b, a, thresholds=DriftThresholds(rates=0.05))
    assert [c.statistic for c in drift.moved] == ["und rate"]
    assert drift.line() == "und rate of answer difference 0.070 > 0.05"
    with pytest.raises(lidframe.errors.ConfigError, match="languages must be a number above 0"):
        DriftThresholds(languages=0)
