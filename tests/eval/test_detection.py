"""Rows labelled ``und`` (no speech): left out of every language figure, scored as a detection task
(precision and recall of the ``und`` answers), each number checked against scikit-learn or a
plain count written differently."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")

import lidframe  # noqa: E402
from lidframe.eval import evaluation_text  # noqa: E402
from tests.fixtures.eval_data import LANGS, NO_SPEECH_ROWS, NORWEGIAN, results_frame, with_no_speech  # noqa: E402

# Labelled "und" below: answered und for no speech (30-37), answered a language (100-105: voice
# activity heard speech in a silent file), and failed to decode (20-21: no answer).
HEARD_SILENCE = [*range(30, 38)]
HEARD_SPEECH = [*range(100, 106)]
FAILED = [20, 21]


def _with_und_labels(tag: str = "und") -> pd.DataFrame:
    df = with_no_speech(results_frame())
    df.loc[[*HEARD_SILENCE, *HEARD_SPEECH, *FAILED], "label"] = tag
    return df


def test_rows_labelled_und_are_no_language_and_a_detection_task():
    df = _with_und_labels()
    ev = lidframe.evaluate(df, confident=0.8)
    silent = (df["label"] == "und").to_numpy()
    decoded = df["error"].isna().to_numpy()
    labelled = df["label"].notna().to_numpy()
    assert ev.labelled == labelled.sum() == 290 and ev.no_language == 16

    # the languages: scored on the rows with a language label only
    speech = labelled & ~silent & decoded
    truth = df.loc[speech, "label"].replace(NORWEGIAN).to_numpy()
    for name, column in [("whisper_base", "whisper_base_lang"), ("consensus", "lang")]:
        s = ev[name]
        assert s.labelled == (labelled & ~silent).sum() == 274 and s.scored == speech.sum() == 270
        pred = df.loc[speech, column].replace(NORWEGIAN).to_numpy()
        assert s.accuracy == pytest.approx(sklearn_metrics.accuracy_score(truth, pred))
        recall = sklearn_metrics.recall_score(truth, pred, labels=LANGS, average=None)
        np.testing.assert_allclose(s.per_language.loc[LANGS, "recall"], recall)
        # und is an answer (the speech rows' misses), never a true language
        assert s.per_language.loc["und", "support"] == 0
        assert s.per_language.loc["und", "predicted"] == (pred == "und").sum()
        assert set(s.rows["truth"]) <= {*LANGS, "nb+no", "zu"}

        # no speech: positive = und, over the labelled rows that decoded
        judged = labelled & decoded
        y_true = silent[judged]
        y_said = (df.loc[judged, column] == "und").to_numpy()
        d = s.detection
        assert (d.labelled, d.errors) == (16, 2)
        assert d.tp == np.sum(y_true & y_said) and d.fn == np.sum(y_true & ~y_said)
        assert d.fp == np.sum(~y_true & y_said)
        assert d.precision == pytest.approx(sklearn_metrics.precision_score(y_true, y_said))
        assert d.recall == pytest.approx(sklearn_metrics.recall_score(y_true, y_said))
    # whisper_base says und for no speech only; the consensus also where its models disagree
    w, c = ev["whisper_base"].detection, ev["consensus"].detection
    assert (w.tp, w.fp, w.fn) == (8, 30 - 8, 6) and w.recall == 8 / 14
    assert c.tp > w.tp and c.fp > w.fp

    # the agreement and speech tables are of the languages
    assert ev.agreement["rows"].sum() == 270 - (30 - 8)
    assert "und" not in ev.speech_by_language.index
    # a silent row heard as a language is a wrong row to listen to; one answered und is not
    wrong = set(ev.wrong["id"])
    assert {f"r{i}" for i in HEARD_SPEECH} <= wrong and not {f"r{i}" for i in HEARD_SILENCE} & wrong
    assert set(ev.wrong.loc[ev.wrong["true"] == "und", "id"]) == {f"r{i}" for i in HEARD_SPEECH}

    record = json.loads(json.dumps(ev.record(), allow_nan=False))
    assert record["no_language"] == 16
    assert record["no_speech_detection"]["whisper_base"] == {
        "labelled": 16, "errors": 2, "tp": 8, "fp": 22, "fn": 6,
        "precision": pytest.approx(8 / 30), "recall": pytest.approx(8 / 14),
    }  # fmt: skip
    table = ev.no_speech_detection()
    assert list(table.index) == ["whisper_base", "ecapa", "consensus"]
    assert table.loc["ecapa", ["tp", "fn"]].tolist() == [8, 6]

    text = evaluation_text(ev)
    assert (
        "290 labelled rows of 300; 16 of them labelled und (no speech): scored as no-speech "
        "detection, left out of language accuracy"
    ) in text
    assert "16 rows labelled und, 2 with an error (no answer)" in text
    detection = text.split("as a detection task", 1)[1]
    line = next(ln for ln in detection.splitlines() if ln.startswith("whisper_base "))
    assert line.split() == ["whisper_base", "16", "8", "22", "6", "0.267", "0.571"]
    assert "no speech (label und): detection" in ev._repr_html_()


def test_zxx_is_und():
    und, zxx = (lidframe.evaluate(_with_und_labels(tag)) for tag in ("und", "ZXX"))
    assert zxx.no_language == und.no_language == 16
    assert zxx.record()["sources"] == und.record()["sources"]
    assert zxx.no_speech_detection().equals(und.no_speech_detection())


def test_without_und_labels_precision_and_recall_are_not_given_nor_printed():
    df = with_no_speech(results_frame())
    ev = lidframe.evaluate(df)
    assert ev.no_language == 0
    d = ev["whisper_base"].detection
    # the speech rows answered und are counted (they are misses in accuracy) ...
    assert (d.labelled, d.tp, d.fn) == (0, 0, 0)
    labelled_speech = df["label"].notna() & df["error"].isna()
    assert d.fp == (labelled_speech & (df["whisper_base_lang"] == "und")).sum() == 30
    assert d.fp == len([r for r in NO_SPEECH_ROWS if r >= 30])
    # ... but with nothing labelled und, neither a precision nor a recall says anything
    assert math.isnan(d.precision) and math.isnan(d.recall)
    assert ev.record()["no_speech_detection"]["whisper_base"]["precision"] is None
    text = evaluation_text(ev)
    assert "detection" not in text and "labelled und" not in text
    assert "290 labelled rows of 300; 6 rows with an error (no answer), not scored\n" in text


def test_results_labelled_und_only_have_detection_and_no_language_scores():
    df = with_no_speech(results_frame())
    df["label"] = "und"
    ev = lidframe.evaluate(df)
    assert ev.labelled == ev.no_language == 300
    s = ev["whisper_base"]
    assert s.scored == 0 and math.isnan(s.accuracy)
    assert (s.detection.tp, s.detection.fn) == (33, 294 - 33)
    assert s.detection.precision == 1.0
    assert "300 of them labelled und" in evaluation_text(ev)
