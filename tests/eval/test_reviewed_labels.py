"""Reviewed labels in ``lidframe eval`` (issue 24): answers stored through
:class:`lidframe.review.Reviews` label the rows the manifest left unlabelled, never the others; a
job database without review tables leaves eval as it was. And the CLI's ``calibrate --final
--folds`` and ``eval``/``report --calibration``."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

import lidframe
from lidframe.cli import main
from lidframe.review import Reviews
from tests.eval.calibration_data import consensus_results
from tests.review.jobs import make_job

REVIEWED = "fr"


def _results(tmp_path, n: int = 200, db: str | None = None):
    """A finished job's results folder with its embedded database (or its database at ``db``);
    even rows carry a manifest label (the first model's answer)."""
    out = tmp_path / "results"
    out.mkdir()
    frame = make_job(db or f"sqlite:///{out}/_lidframe.sqlite", n=n, out=str(out))
    frame["label"] = [str(x) if i % 2 == 0 else None for i, x in enumerate(frame["m1_lang"])]
    frame.loc[frame["label"] == "<NA>", "label"] = None
    frame.drop(columns=[c for c in frame.columns if c.endswith("_windows")]).to_parquet(
        out / "part-00000.parquet", index=False
    )
    return out, frame


def _review(out, rows: int = 40) -> set[str]:
    """Answer ``rows`` rows of a random queue with the label ``fr``; returns their ids."""
    ids = set()
    with Reviews.for_results(out) as reviews:
        reviews.build("random", limit=rows, second_share=0)
        while (item := reviews.next("alice")) is not None:
            reviews.answer("alice", item.row, "label", REVIEWED)
            ids.add(item.id)
    return ids


def test_reviewed_labels_fill_the_unlabelled_rows_only(tmp_path, capsys):
    out, frame = _results(tmp_path)
    manifest = frame.set_index("id")["label"]
    before = lidframe.evaluate(out)
    assert before.label_sources == {} and before.labelled == manifest.notna().sum()
    reviewed = _review(out)
    filled = {i for i in reviewed if pd.isna(manifest[i])}
    assert filled and reviewed - filled  # some reviewed rows had a manifest label

    ev = lidframe.evaluate(out)
    assert ev.label_sources == {"manifest": int(manifest.notna().sum()), "reviewed": len(filled)}
    assert ev.labelled == manifest.notna().sum() + len(filled)
    truth = ev["m1"].rows.set_index("id")["truth"]
    assert len(truth) > 0
    for row_id, label in truth.items():
        expected = REVIEWED if row_id in filled else manifest[row_id]
        assert label == expected, row_id
    assert ev.record()["label_sources"] == ev.label_sources

    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    line = f"labels: {manifest.notna().sum()} from the manifest, {len(filled)} reviewed"
    assert line in printed
    stored = json.loads((out / "_lidframe_evaluations" / "latest.json").read_text())
    assert stored["label_sources"] == ev.label_sources


def test_reviewed_labels_are_read_from_the_database_lidframe_db_names(
    tmp_path, monkeypatch, capsys
):
    """A job kept in the database ``$LIDFRAME_DB`` names (not in the results folder) gives eval its
    reviewed labels, as ``lidframe status`` and ``lidframe review`` find it; ``--db`` still wins."""
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    out, frame = _results(tmp_path, db=url)
    assert not (out / "_lidframe.sqlite").exists()
    manifest = frame.set_index("id")["label"]
    monkeypatch.setenv("LIDFRAME_DB", url)
    reviewed = _review(out)
    filled = {i for i in reviewed if pd.isna(manifest[i])}
    assert filled
    expected = {"manifest": int(manifest.notna().sum()), "reviewed": len(filled)}
    ev = lidframe.evaluate(out)
    assert ev.label_sources == expected and ev.run["job_id"] == "job-review"
    capsys.readouterr()
    assert main(["eval", str(out), "--no-save"]) == 0
    assert f"{len(filled)} reviewed" in capsys.readouterr().out
    # Another job database in $LIDFRAME_DB: the one --db names is read.
    other = f"sqlite:///{tmp_path}/other.sqlite"
    make_job(other, n=20, job_id="other-job", out=str(tmp_path / "elsewhere"))
    monkeypatch.setenv("LIDFRAME_DB", other)
    assert lidframe.evaluate(out).label_sources == {}
    assert lidframe.evaluate(out, db=url).label_sources == expected


def test_a_job_database_from_before_review_leaves_eval_as_it_was(tmp_path, capsys):
    out, frame = _results(tmp_path)
    with sqlite3.connect(out / "_lidframe.sqlite") as conn:
        for table in ("lidframe_review_answers", "lidframe_review_items", "lidframe_review_queues"):
            conn.execute(f"DROP TABLE {table}")
    ev = lidframe.evaluate(out)
    assert ev.label_sources == {} and ev.labelled == frame["label"].notna().sum()
    assert ev.run["job_id"] == "job-review"  # the database is still read for the run's figures
    assert main(["eval", str(out), "--no-save"]) == 0
    assert "reviewed" not in capsys.readouterr().out


def test_no_reviews_and_no_label_column_is_still_no_ground_truth(tmp_path):
    out, frame = _results(tmp_path)
    frame.drop(columns=["label", *[c for c in frame if c.endswith("_windows")]]).to_parquet(
        out / "part-00000.parquet", index=False
    )
    ev = lidframe.evaluate(out)
    assert ev.labelled == 0 and ev.notes[0].startswith("No ground truth")
    reviewed = len(_review(out, rows=10))
    ev = lidframe.evaluate(out)
    assert ev.label_sources == {"manifest": 0, "reviewed": reviewed} and ev.labelled == reviewed
    assert not any(n.startswith("No ground truth") for n in ev.notes)


@pytest.fixture
def calibrated_results(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    consensus_results(240, seed=11).to_parquet(results / "part-00000.parquet", index=False)
    return results


@pytest.mark.parametrize(("final", "kind"), [("isotonic", "isotonic"), ("none", None)])
def test_calibrate_final_and_folds(calibrated_results, tmp_path, capsys, final, kind):
    out = tmp_path / "cal.json"
    argv = ["calibrate", str(calibrated_results), "--out", str(out), "--folds", "3"]
    assert main([*argv, "--final", final]) == 0
    saved = json.loads(out.read_text())
    assert (saved["final"] or {}).get("kind") == kind
    loaded = lidframe.load_calibration(out).final
    assert (loaded is None) if kind is None else (loaded is not None and loaded.kind == kind)
    assert "held out (3-fold" in capsys.readouterr().out


def test_eval_and_report_with_a_calibration_file(calibrated_results, tmp_path, capsys):
    cal = tmp_path / "cal.json"
    lidframe.fit_calibration(
        consensus_results(240, seed=11).iloc[:120], ["a", "b"], folds=0, final="isotonic"
    ).save(cal)
    capsys.readouterr()
    assert main(["eval", str(calibrated_results), "--calibration", str(cal)]) == 0
    printed = capsys.readouterr().out
    assert f"calibration (given: {cal}): consensus accuracy" in printed
    stored = json.loads((calibrated_results / "_lidframe_evaluations" / "latest.json").read_text())
    assert stored["calibration"]["final"] is not None
    assert set(stored["calibration"]["after"]) >= {"accuracy", "ece", "brier"}
    html = tmp_path / "report.html"
    argv = ["report", str(calibrated_results), "--html", str(html), "--calibration", str(cal)]
    assert main(argv) == 0
    text = html.read_text()
    assert '<h2 id="calibration">Calibration</h2>' in text
    assert "reliability diagram before and after calibration" in text
