"""Evaluation: every number checked against an independent computation (scikit-learn, or plain
NumPy written differently) on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")
from sklearn.calibration import calibration_curve  # noqa: E402

import lidframe  # noqa: E402
from lidframe.eval import _metrics as metrics  # noqa: E402
from lidframe.eval import _regressions as compare_mod  # noqa: E402
from lidframe.eval import evaluation_text  # noqa: E402
from tests.fixtures.eval_data import (  # noqa: E402
    LANGS,
    NO_SPEECH_ROWS,
    NORWEGIAN,
    random_answers,
    results_frame,
    with_no_speech,
)
from tests.fixtures.paths import ECAPA_DIR  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_scikit_learn(seed):
    truth, predicted, _ = random_answers(600, seed)
    table = metrics.per_language(truth, predicted)
    assert metrics.accuracy(truth, predicted) == pytest.approx(
        sklearn_metrics.accuracy_score(truth, predicted)
    )
    langs = list(table.index)
    p, r, f, s = sklearn_metrics.precision_recall_fscore_support(
        truth, predicted, labels=langs, zero_division=0
    )
    np.testing.assert_allclose(table["precision"], p)
    np.testing.assert_allclose(table["recall"], r)
    np.testing.assert_allclose(table["f1"], f)
    np.testing.assert_array_equal(table["support"], s)
    present = sorted(set(truth))
    assert metrics.macro_f1(table) == pytest.approx(
        sklearn_metrics.f1_score(truth, predicted, labels=present, average="macro", zero_division=0)
    )
    matrix = sklearn_metrics.confusion_matrix(truth, predicted, labels=langs)
    confusions = metrics.confusions(truth, predicted, top=1000)
    for row in confusions.itertuples():
        i, j = langs.index(row.true), langs.index(row.predicted)
        assert row.rows == matrix[i, j]
        assert row.share_of_true == pytest.approx(matrix[i, j] / matrix[i].sum())
    off_diagonal = matrix.sum() - np.trace(matrix)
    assert confusions["rows"].sum() == off_diagonal
    assert list(confusions["rows"]) == sorted(confusions["rows"], reverse=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_metrics_match_scikit_learn(seed):
    truth, predicted, confidence = random_answers(800, seed)
    correct = truth == predicted
    assert metrics.brier_score(confidence, correct) == pytest.approx(
        sklearn_metrics.brier_score_loss(correct.astype(int), confidence)
    )
    prob_true, prob_pred = calibration_curve(
        correct.astype(int), confidence, n_bins=10, strategy="uniform"
    )
    table = metrics.reliability(confidence, correct, bins=10)
    filled = table[table["rows"] > 0]
    np.testing.assert_allclose(filled["accuracy"], prob_true)
    np.testing.assert_allclose(filled["confidence"], prob_pred)
    counts, _ = np.histogram(confidence, bins=np.linspace(0, 1, 11))
    np.testing.assert_array_equal(table["rows"], counts)
    nonempty = counts[counts > 0]
    ece = float(np.sum(nonempty / len(confidence) * np.abs(prob_true - prob_pred)))
    assert metrics.expected_calibration_error(confidence, correct) == pytest.approx(ece)


def test_coverage_curve_and_threshold_picker():
    truth, predicted, confidence = random_answers(400, 5)
    correct = truth == predicted
    curve = metrics.coverage_curve(confidence, correct)
    for row in curve.sample(25, random_state=0).itertuples():
        kept = confidence >= row.threshold
        assert row.rows == kept.sum()
        assert row.coverage == pytest.approx(kept.mean())
        assert row.accuracy == pytest.approx(correct[kept].mean())
    assert curve.iloc[0]["coverage"] == 1.0
    assert curve["coverage"].is_monotonic_decreasing
    target = 0.9
    best = metrics.threshold_for_accuracy(curve, target)
    # brute force: every threshold reaching the target, the one keeping most rows
    candidates = [
        (float((confidence >= t).mean()), -t)
        for t in np.unique(confidence)
        if correct[confidence >= t].mean() >= target
    ]
    coverage, neg_t = max(candidates)
    assert best["threshold"] == pytest.approx(-neg_t) and best["coverage"] == pytest.approx(
        coverage
    )
    assert best["accuracy"] >= target
    assert metrics.threshold_for_accuracy(curve, 1.01) is None


def test_long_tail_is_the_bottom_quartile_or_below_a_support():
    truth, predicted, _ = random_answers(600, 3)
    table = metrics.per_language(truth, predicted)
    support = table.loc[table["support"] > 0, "support"]
    tail = metrics.long_tail(table)
    assert set(tail.index) == set(support[support <= support.quantile(0.25)].index)
    assert set(metrics.long_tail(table, min_support=50).index) == set(support[support < 50].index)
    weakest = metrics.weakest(table, 3)
    assert list(weakest["f1"]) == sorted(table.loc[table["support"] > 0, "f1"])[:3]


def test_evaluate_scores_each_model_and_the_consensus_independently_checked():
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    from lidframe.languages import whisper_to_canonical
    from lidframe.results import LABELS_ATTR

    df = results_frame()
    unknown = lidframe.evaluate(df.copy(), confident=0.8)  # no label set recorded: zu is scored
    assert unknown["whisper_base"].unsupported == 0
    # as read_results gives them: the label sets the run recorded in its parts' metadata
    df.attrs[LABELS_ATTR] = {"whisper_base": [whisper_to_canonical(c) for c in LANGUAGES]}
    ev = lidframe.evaluate(df, label_sets={"ecapa": [*LANGS, "nb", "no"]}, confident=0.8)
    assert set(ev.sources) == {"whisper_base", "ecapa", "consensus"}
    assert ev.rows == 300 and ev.labelled == 290

    usable = df["label"].notna() & df["error"].isna()
    w = ev["whisper_base"]
    assert w.errors == 6 and w.unsupported == 5  # zu (Zulu) is not a Whisper language
    rows = df[usable & (df["label"] != "zu")]
    truth = rows["label"].replace(NORWEGIAN).to_numpy()
    pred = rows["whisper_base_lang"].replace(NORWEGIAN).to_numpy()
    assert w.scored == len(rows)
    assert w.accuracy == pytest.approx(sklearn_metrics.accuracy_score(truth, pred))
    assert w.macro_f1 == pytest.approx(
        sklearn_metrics.f1_score(
            truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0
        )
    )
    correct = truth == pred
    conf = rows["whisper_base_prob"].to_numpy()
    assert w.brier == pytest.approx(sklearn_metrics.brier_score_loss(correct.astype(int), conf))
    # "no" answers to "nb" labels count as right, shown as the codes the data holds
    assert w.per_language.loc["nb+no", "correct"] == 3
    assert "codes counted as one language (an equivalence of lidframe.languages): nb+no" in ev.notes
    expected_wrong = rows[(~correct) & (conf >= 0.8)]
    assert sorted(w.confidently_wrong["id"]) == sorted(expected_wrong["id"])
    assert list(w.confidently_wrong["confidence"]) == sorted(
        w.confidently_wrong["confidence"], reverse=True
    )

    e = ev["ecapa"]  # label set given: "zu" unsupported too
    assert e.unsupported == 5
    c = ev["consensus"]  # the consensus has no label set: zu rows are scored (and wrong)
    assert c.unsupported == 0 and c.scored == int(usable.sum())
    c_truth = df.loc[usable, "label"].replace(NORWEGIAN).to_numpy()
    assert c.accuracy == pytest.approx(
        np.mean(c_truth == df.loc[usable, "lang"].replace(NORWEGIAN).to_numpy())
    )

    # agreement: rows where both answered, checked directly
    both = df[usable].copy()
    for column in ("label", "whisper_base_lang", "ecapa_lang"):
        both[column] = both[column].replace(NORWEGIAN)
    agree = both["whisper_base_lang"] == both["ecapa_lang"]
    t = both["label"]
    table = ev.agreement
    assert table.loc["models agree", "rows"] == agree.sum()
    assert table.loc["models agree", "whisper_base right"] == pytest.approx(
        (both.loc[agree, "whisper_base_lang"] == t[agree]).mean()
    )
    dis = ~agree
    assert table.loc["models disagree", "ecapa right"] == pytest.approx(
        (both.loc[dis, "ecapa_lang"] == t[dis]).mean()
    )
    none_right = (both.loc[dis, "ecapa_lang"] != t[dis]) & (
        both.loc[dis, "whisper_base_lang"] != t[dis]
    )
    assert table.loc["models disagree", "none right"] == pytest.approx(none_right.mean())

    summary = ev.summary()
    assert list(summary.index) == ["whisper_base", "ecapa", "consensus"]
    assert "<table" in ev._repr_html_() and "whisper_base" in str(ev)
    assert ev.per_language()[("whisper_base", "support")].sum() == w.scored


def test_no_speech_on_labelled_speech_is_a_miss_with_its_own_rate():
    from lidframe.eval import evaluation_text

    before = results_frame()
    df = with_no_speech(before)
    ev = lidframe.evaluate(df, confident=0.8)
    usable = (df["label"].notna() & df["error"].isna()).to_numpy()
    silent = np.zeros(len(df), bool)
    silent[NO_SPEECH_ROWS] = True
    rows = df[usable]
    truth = rows["label"].replace(NORWEGIAN).to_numpy()
    missed = silent[usable]
    assert missed.sum() == 30 and (df.loc[usable & ~silent, "lang"] == "und").sum() > 0

    w = ev["whisper_base"]
    # scored, not skipped: the 30 no-speech rows are answers, and wrong ones
    assert w.errors == 6 and w.scored == usable.sum() == 284
    pred = rows["whisper_base_lang"].replace(NORWEGIAN).to_numpy()
    assert (pred[missed] == "und").all()
    assert w.accuracy == pytest.approx(sklearn_metrics.accuracy_score(truth, pred))
    assert w.accuracy < lidframe.evaluate(before)["whisper_base"].accuracy
    recall = sklearn_metrics.recall_score(truth, pred, labels=LANGS, average=None, zero_division=0)
    np.testing.assert_allclose(w.per_language.loc[LANGS, "recall"], recall)
    assert w.per_language.loc["und", ["support", "predicted", "correct"]].tolist() == [0, 30, 0]
    for lang in LANGS:  # per language: how many of its scored rows had no speech
        assert w.per_language.loc[lang, "no_speech"] == np.sum(missed & (truth == lang))
    assert w.no_speech == 30 and w.summary()["no_speech_rate"] == pytest.approx(30 / 284)
    # calibration over the answers that have a probability; no-speech rows are never confident
    conf = rows["whisper_base_prob"].to_numpy()
    has = np.isfinite(conf)
    assert has.sum() == 284 - 30
    correct = truth[has] == pred[has]
    assert w.brier == pytest.approx(
        sklearn_metrics.brier_score_loss(correct.astype(int), conf[has])
    )
    assert not set(w.confidently_wrong["id"]) & set(df.loc[silent, "id"])
    assert w.coverage.iloc[0]["coverage"] == pytest.approx(254 / 284)
    assert ("en", "und") in set(zip(w.confusions["true"], w.confusions["predicted"], strict=True))

    c = ev["consensus"]  # und of no speech counted; und of disagreement is a miss but not counted
    assert c.no_speech == 30 and c.scored == 284
    assert c.accuracy == pytest.approx(np.mean(truth == rows["lang"].replace(NORWEGIAN).to_numpy()))
    # the agreement table leaves no-speech rows out (the models did not listen to them)
    assert ev.agreement["rows"].sum() == 284 - 30

    # overall: every decoded row (unlabelled ones too); per labelled language: its decoded rows
    decoded = df["error"].isna().to_numpy()
    speech = ev.speech
    assert speech["decoded"] == 294 and speech["no_speech"] == 33
    assert speech["no_speech_rate"] == pytest.approx(33 / 294)
    seconds = df.loc[decoded, ["audio_seconds", "speech_seconds"]].astype(float)
    assert speech["audio_seconds"] == pytest.approx(seconds["audio_seconds"].sum())
    assert speech["speech_seconds"] == pytest.approx(seconds["speech_seconds"].sum())
    assert speech["median_speech_seconds"] == pytest.approx(np.median(seconds["speech_seconds"]))
    table = ev.speech_by_language
    assert table["rows"].sum() == 284 and table["no_speech"].sum() == 30
    for lang in table.index:
        mine = rows["label"].replace(NORWEGIAN).to_numpy() == lang
        assert table.loc[lang, "no_speech_rate"] == pytest.approx(missed[mine].mean())
        assert table.loc[lang, "median_audio_seconds"] == pytest.approx(
            np.median(rows.loc[mine, "audio_seconds"].astype(float))
        )

    record = json.loads(json.dumps(ev.record(), allow_nan=False))
    assert record["speech"]["no_speech"] == 33
    assert record["speech"]["per_language"]["en"]["no_speech"] == table.loc["en", "no_speech"]
    assert record["sources"]["whisper_base"]["per_language"]["und"]["predicted"] == 30
    assert "no speech: 33 of 294" in ev._repr_html_()
    text = evaluation_text(ev)
    assert f"no speech: 33 of 294 decoded rows ({33 / 294:.1%})" in text
    assert f"speech {speech['speech_seconds']:.1f} s" in text
    rates = table["no_speech_rate"]
    worst = min(rates.index[rates == rates.max()])  # highest rate, ties by code
    assert f"no speech most often in: {worst} " in text

    # a run that turned speech into no speech regresses: every such row right before is lost
    was_right = before.loc[silent & usable, "whisper_base_lang"] == df.loc[silent & usable, "label"]
    diff = compare_mod.compare(lidframe.evaluate(before), ev).overall.loc["whisper_base"]
    assert (diff["b"], diff["c"]) == (was_right.sum(), 0) and diff["regression"]


def test_results_without_speech_columns_have_no_speech_figures():
    from lidframe.eval import evaluation_text
    from lidframe.eval._speech_stats import has_speech_columns

    full = with_no_speech(results_frame())
    assert has_speech_columns(full) and {"audio_seconds", "speech_seconds"} <= set(full.columns)
    older = full.drop(columns=["audio_seconds", "speech_seconds"])  # written before VAD
    ev = lidframe.evaluate(older)
    assert ev.speech is None and ev.speech_by_language.empty
    assert "no_speech" not in ev.summary().columns
    assert "no_speech" not in ev["whisper_base"].per_language.columns
    assert ev.record()["speech"] is None and "no speech" not in evaluation_text(ev)
    # its und answers are misses all the same
    assert ev["whisper_base"].accuracy == lidframe.evaluate(full)["whisper_base"].accuracy

    no_vad = results_frame()  # --no-vad: speech_seconds null, nothing is und
    no_vad["audio_seconds"] = np.float32(4.0)
    no_vad["speech_seconds"] = pd.Series(np.nan, index=no_vad.index, dtype="float32")
    ev = lidframe.evaluate(no_vad)
    assert ev.speech == {"decoded": 294, "audio_seconds": 4.0 * 294, "median_audio_seconds": 4.0}
    assert list(ev.speech_by_language.columns) == ["rows", "median_audio_seconds"]
    assert "no_speech" not in ev.summary().columns
    assert "audio 1176.0 s (median 4.0 s a row)" in evaluation_text(ev)


@pytest.mark.slow
def test_evaluate_a_real_run_against_a_labelled_manifest(tmp_path):
    from lidframe.testing import make_corpus

    table = make_corpus(tmp_path, ["en", "de", "fr", "es"], per_language=3, seed=11)
    table[["id", "audio"]].to_csv(tmp_path / "unlabelled.csv", index=False)
    table.to_csv(tmp_path / "labels.csv", index=False)
    model = "speechbrain:" + str(ECAPA_DIR)
    lidframe.run(tmp_path / "unlabelled.csv", tmp_path / "out", [model], workers=1, progress=False)
    ev = lidframe.evaluate(tmp_path / "out", labels=tmp_path / "labels.csv")
    (alias,) = ev.sources
    result = ev[alias]
    parquet = pd.read_parquet(tmp_path / "out")
    truth = parquet["id"].map(table.set_index("id")["label"])
    assert result.scored == 12 and result.errors == 0
    assert result.accuracy == pytest.approx(
        sklearn_metrics.accuracy_score(truth, parquet[f"{alias}_lang"])
    )
    assert result.accuracy >= 0.9  # the project-made ECAPA knows these espeak voices
    # every voice is speech: none answered und, and the speech columns came through the Parquet
    assert result.no_speech == 0 and ev.speech["no_speech"] == 0 and ev.speech["decoded"] == 12
    assert 0 < ev.speech["speech_seconds"] <= ev.speech["audio_seconds"]
    # what produced the results: from the parts' provenance and the embedded job database
    run = ev.run
    assert run["job_id"].startswith("job-") and run["lidframe_version"] == lidframe.__version__
    assert run["rows"] == 12 and run["rows_per_second"] > 0 and run["job_status"] == "finished"
    (recorded,) = run["models"].values()
    assert recorded["name"] == model and recorded["weights"].startswith("sha256:")
    # without ground truth: no scores, a note, and what each row was answered
    bare = lidframe.evaluate(tmp_path / "out")
    assert bare.labelled == 0 and "No ground truth" in bare.notes[0]
    answered = parquet[f"{alias}_lang"].value_counts()
    assert bare.distribution[f"{alias} rows"].to_dict() == answered.to_dict()
    assert bare.run["job_id"] == run["job_id"] and bare.wrong.empty

    # stored beside the results and in the run's embedded job database, with job and environment
    from lidframe.eval import save_evaluation
    from lidframe.store import open_store

    saved = save_evaluation(ev, tmp_path / "out", name="first", labels=str(tmp_path / "labels.csv"))
    on_disk = json.loads(Path(saved["saved_to"]).read_text())
    assert saved["saved_to"].endswith("out/_lidframe_evaluations/first.json")
    assert on_disk["job_id"].startswith("job-") and on_disk["models"] == [model]
    assert on_disk["sources"][alias]["summary"]["accuracy"] == pytest.approx(result.accuracy)
    assert on_disk["environment"]["packages"]["lidframe"]
    assert len(pd.read_parquet(tmp_path / "out")) == 12  # the record does not disturb readers
    with open_store(f"sqlite:///{tmp_path}/out/_lidframe.sqlite") as store:
        (row,) = store.evaluations("first")
    assert row["eval_id"] == saved["eval_id"] and row["job_id"] == on_disk["job_id"]
    assert row["record"]["sources"][alias]["summary"]["scored"] == 12


def test_eval_command_prints_scores_thresholds_and_agreement(tmp_path):
    import subprocess
    import sys

    df = results_frame()
    (tmp_path / "out").mkdir()
    df.to_parquet(tmp_path / "out" / "part-00000.parquet", index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "eval", str(tmp_path / "out"), "--confident", "0.8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ev = lidframe.evaluate(df, confident=0.8)
    assert "290 labelled rows of 300" in proc.stdout
    for name, source in ev.sources.items():
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(name + " "))
        assert f"{source.accuracy:.3f}" in line and f"{source.ece:.3f}" in line
    assert "most confused: " in proc.stdout
    # accuracy per true language, labelled, lowest first (right/rows of each language)
    wb = ev["whisper_base"].per_language
    wb = wb[wb["support"] > 0]
    lowest = (wb["correct"] / wb["support"]).sort_values(kind="stable").index[0]
    first = f"{lowest} {wb.loc[lowest, 'correct'] / wb.loc[lowest, 'support']:.0%} "
    first += f"({wb.loc[lowest, 'correct']}/{wb.loc[lowest, 'support']})"
    assert f"accuracy per language, lowest first (rows right/rows): {first}" in proc.stdout
    assert "weakest" not in proc.stdout
    assert "ece and brier of each source's own probability" in proc.stdout
    assert "models disagree" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "eval", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "cannot read results" in missing.stderr


def test_mcnemar_p_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(0, 0), (3, 0), (10, 4), (40, 61), (7, 7), (300, 240)]:
        expected = stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
        assert compare_mod.mcnemar_p(b, c) == pytest.approx(expected, rel=1e-9)
    b, c = 6100, 5800  # beyond the exact range: chi-square with continuity correction
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    assert compare_mod.mcnemar_p(b, c) == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-9)


def _degraded(df: pd.DataFrame, lang: str, rows: int, seed: int = 0) -> pd.DataFrame:
    """``df`` with ``rows`` correct answers of ``lang`` (whisper_base) turned wrong."""
    out = df.copy()
    hit = out.index[(out["label"] == lang) & (out["whisper_base_lang"] == lang)]
    chosen = np.random.default_rng(seed).choice(hit, size=rows, replace=False)
    out.loc[chosen, "whisper_base_lang"] = "la"
    return out


def test_compare_flags_a_significant_per_language_drop_and_nothing_else():
    base = results_frame(n=1200, seed=21)
    a = lidframe.evaluate(base)
    worse = lidframe.evaluate(_degraded(base, "de", 40))
    result = compare_mod.compare(a, worse)
    assert result.regressed
    regs = result.regressions
    assert ("whisper_base", "de") in set(zip(regs["source"], regs["lang"], strict=True))
    assert set(regs["source"]) == {"whisper_base"}  # ecapa and consensus-by-other-rows unchanged
    row = result.per_language.set_index(["source", "lang"]).loc[("whisper_base", "de")]
    assert (row["b"], row["c"]) == (40, 0)
    # Holm over the languages of the source, computed here independently
    per = result.per_language[result.per_language["source"] == "whisper_base"]
    raw = per["p_raw"].to_numpy()
    order = np.argsort(raw)
    holm = np.minimum(1, np.maximum.accumulate((len(raw) - np.arange(len(raw))) * raw[order]))
    np.testing.assert_allclose(per["p"].to_numpy()[order], holm)

    same = compare_mod.compare(a, lidframe.evaluate(_degraded(base, "de", 1)))
    assert not same.regressed and "no significant regression" in str(same)
    better = compare_mod.compare(lidframe.evaluate(_degraded(base, "de", 40)), a)
    assert not better.regressed  # an improvement is not a regression


def test_compare_command_exits_1_on_regression(tmp_path):
    import subprocess
    import sys

    base = results_frame(n=1200, seed=21)
    for name, frame in (("a", base), ("b", _degraded(base, "de", 40)), ("c", base)):
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-00000.parquet", index=False)

    def lid(*args):
        return subprocess.run(
            [sys.executable, "-m", "lidframe.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    bad = lid("eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert bad.returncode == 1, bad.stderr
    assert "significant regression" in bad.stdout and "whisper_base" in bad.stdout
    good = lid("compare", str(tmp_path / "a"), str(tmp_path / "c"))
    assert good.returncode == 0 and "no significant regression" in good.stdout


def test_languages_show_as_the_codes_the_results_hold_and_merges_are_named():
    """Whisper answers Norwegian "nn": a user filtering the results for it must find what the
    evaluation shows, so no equivalence key ("no") the data does not hold is shown."""
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "label": ["sv", "sv", "sv", "en"],
            "whisper_base_lang": ["nn", "nn", "sv", "en"],
            "whisper_base_prob": [0.9, 0.8, 0.7, 0.9],
        }
    )
    ev = lidframe.evaluate(df)
    assert ev["whisper_base"].confusions[["true", "predicted", "rows"]].values.tolist() == [
        ["sv", "nn", 2]
    ]
    assert "nn" in ev["whisper_base"].per_language.index
    assert "no" not in ev["whisper_base"].per_language.index and not ev.notes
    assert "most confused: sv->nn 2" in evaluation_text(ev)

    # where the data holds two codes of one language, both are shown, and the merge is said
    df.loc[3, ["label", "whisper_base_lang"]] = ["no", "nn"]
    ev = lidframe.evaluate(df)
    assert ev["whisper_base"].per_language.loc["nn+no", ["support", "correct"]].tolist() == [1, 1]
    assert ev.notes == [
        "codes counted as one language (an equivalence of lidframe.languages): nn+no"
    ]
