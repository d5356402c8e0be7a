"""The report's behaviour section (``lidframe.eval.report``): a real job's answer partition by
partition and per worker, read from the behaviour its database stored; none without a database.

The job runs ``loudness`` (``en`` loud, ``de`` quiet) on a thread cluster in this process, its
database in its results folder: partitions 0-1 are loud clips only, 2-3 half loud, half quiet.
Every clip is labelled ``en``: the loud ones are right, the quiet ones wrong, while the model's
probability is 0.9 for each (the mean loudness of a loud clip, one minus it of a quiet one), so the
expected accuracy stays at 0.9 while the measured one falls from 1 to 0.5 in partitions 2-3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.eval.report import render_report
from lidframe.testing import write_wav
from tests.fixtures.models import register_loudness

pytestmark = pytest.mark.timeout(300)


def test_the_report_shows_the_answer_over_the_partitions_and_per_worker(tmp_path, local_cluster):
    register_loudness()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        loud = i < 4 or i % 2 == 1
        write_wav(tmp_path / f"c{i}.wav", (0.9 if loud else 0.1) * np.sign(
            rng.standard_normal(4000)), 16_000)  # fmt: skip
        rows.append({"id": f"c{i}", "audio": str(tmp_path / f"c{i}.wav"), "label": "en"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    client = local_cluster(1, processes=False).client
    out = tmp_path / "out"
    lidframe.run(
        tmp_path / "m.csv", out, ["loudness:x"], client=client, partition_rows=2, progress=False,
        speech=lidframe.SpeechConfig(vad=False),
    )  # fmt: skip
    ev = lidframe.evaluate(out)
    partitions = ev.run["partitions"]
    assert partitions["partition"].tolist() == [0, 1, 2, 3]
    assert [d.get("en", 0) for d in partitions["langs"]] == [2, 2, 1, 1]
    assert partitions["labelled"].tolist() == [2, 2, 2, 2]
    assert partitions["correct"].tolist() == [2, 2, 1, 1]
    assert (partitions["prob_sum"] / partitions["answered"]).round(3).tolist() == [0.9] * 4
    workers = ev.run["workers"]
    worker = next(iter(client.scheduler_info()["workers"]))
    assert workers["worker"].tolist() == [worker] and workers["rows"].tolist() == [8]
    assert workers["languages"].tolist() == ["en 75%, de 25%"]
    page = render_report(ev)
    assert '<h2 id="behaviour">Behaviour over the job</h2>' in page
    assert 'alt="the answer over the job&#x27;s partitions"' in page
    assert f"<td>{worker}</td>" in page
    assert "<h3>Expected against measured accuracy</h3>" in page
    assert "Over the job: expected 0.900 (" in page and "measured 0.750 on the 8 rows" in page
    assert 'alt="expected against measured accuracy over the job&#x27;s partitions"' in page

    # a job without labels has no measured accuracy to set against the expected one
    ev.run["partitions"] = partitions.assign(labelled=0, correct=0)
    unlabelled = render_report(ev)
    assert 'id="behaviour"' in unlabelled and "Expected against measured" not in unlabelled

    # results without their job database: no such section
    (out / "_lidframe.sqlite").unlink()
    assert 'id="behaviour"' not in render_report(lidframe.evaluate(out))
