"""Calibrated consensus on a labelled held-out split, with both real models."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import dask
import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe import ConfigError
from lidframe.columns import column_alias
from lidframe.consensus import Calibration, ConsensusConfig, consensus_config, load_calibration
from lidframe.eval import evaluate_consensus, expected_calibration_error, fit_calibration
from lidframe.testing import make_corpus
from tests.eval.calibration_data import overconfident_results
from tests.fixtures.paths import ECAPA_DIR

MODEL_DIR = ECAPA_DIR
LANGS = ("cs", "de", "en", "es", "fi", "fr", "hu", "it", "nl", "pl", "ru", "sv")


def test_ece_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 500)
    correct = rng.uniform(0, 1, 500) < conf**2
    expected = 0.0
    for lo in np.linspace(0, 1, 11)[:-1]:
        hi = lo + 0.1
        mask = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if mask.any():
            expected += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(expected, abs=1e-9)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert np.isnan(expected_calibration_error([], []))


def test_calibration_needs_labels():
    df = pd.DataFrame({"m_topk": [[{"lang": "de", "prob": 0.9}]]})
    with pytest.raises(ConfigError, match="no 'label' column"):
        fit_calibration(df, ["m"])


def test_consensus_takes_a_calibration_file_or_any_fitted_settings(tmp_path):
    report = {w: {"accuracy": 0.5, "ece": 0.25, "nll": 1.0} for w in ("before", "after")}
    cal = Calibration("weighted", {"a_b": 0.5, "c": 2.0}, {"a_b": 1.5, "c": 0.0}, 7, report)
    cal.save(tmp_path / "cal.json")
    assert load_calibration(tmp_path / "cal.json") == cal
    expected = cal.consensus_config(min_prob=0.2)
    fitted = SimpleNamespace(policy=cal.policy, weights=cal.weights, temperatures=cal.temperatures)
    for given in (tmp_path / "cal.json", str(tmp_path / "cal.json"), cal, fitted):
        assert consensus_config(calibration=given, min_prob=0.2) == expected
    with pytest.raises(ConfigError, match="not both"):
        consensus_config(calibration=cal, weights={"c": 1.0})
    with pytest.raises(ConfigError, match="not found"):
        consensus_config(calibration=tmp_path / "missing.json")
    assert cal.describe(tmp_path / "cal.json").splitlines() == [
        f"calibrated a_b, c on 7 labelled rows -> {tmp_path / 'cal.json'}",
        "  a_b: temperature 0.500, weight 1.5",
        "  c: temperature 2.000, weight 0",
        f"  the {cal.policy} consensus of each row's top-k answers, on the fitted rows (ECE of "
        "its probability; `lidframe eval` gives each model's own):",
        "  before: accuracy 0.500, ECE 0.250, NLL 1.000",
        "  after: accuracy 0.500, ECE 0.250, NLL 1.000",
    ]


@pytest.fixture(scope="module")
def labelled_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    corpus = make_corpus(root, languages=list(LANGS), per_language=8, seed=1234)
    corpus["audio"] = [str(root / a) for a in corpus["audio"]]
    manifest = root / "manifest.csv"
    corpus[["audio", "label"]].to_csv(manifest, index=False)
    models = ["whisper-base", f"speechbrain:{MODEL_DIR}"]
    with dask.config.set(scheduler="synchronous"):
        ddf = lidframe.read_manifest(manifest, partition_rows=1000)
        df = lidframe.identify(ddf, models, device="cpu").compute()
    return df.reset_index(drop=True), [column_alias(m) for m in models], root


@pytest.mark.slow
def test_calibrated_consensus_beats_each_model_on_heldout(labelled_results, tmp_path):
    df, aliases, _ = labelled_results
    every_other = df.groupby("label").cumcount() % 2 == 0
    fit, held = df[every_other], df[~every_other]
    calibration = fit_calibration(fit, aliases, policy="product")
    calibration.save(tmp_path / "cal.json")
    again = load_calibration(tmp_path / "cal.json")
    assert again == calibration

    calibrated = evaluate_consensus(held, aliases, again.consensus_config())
    singles = {a: evaluate_consensus(held, [a], ConsensusConfig("product")) for a in aliases}
    print(f"held-out calibrated consensus {calibrated}; single models {singles}; fit {calibration}")
    assert calibrated["accuracy"] >= max(s["accuracy"] for s in singles.values())
    assert all(calibrated["ece"] < s["ece"] for s in singles.values())


@pytest.mark.slow
def test_calibrate_command_and_run_with_calibration(labelled_results, tmp_path):
    df, aliases, _ = labelled_results
    results = tmp_path / "results"
    results.mkdir()
    df.to_parquet(results / "part-00000.parquet", index=False)
    out = tmp_path / "cal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "calibrate", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"on {len(df)} labelled rows" in proc.stdout and out.is_file()
    cal = load_calibration(out)
    assert set(cal.temperatures) == set(aliases)
    with dask.config.set({"scheduler": "synchronous", "dataframe.convert-string": False}):
        out_ddf = lidframe.consensus(dask.dataframe.from_pandas(df, npartitions=2), calibration=cal)
    assert (out_ddf["consensus_method"].compute() == "product[2/2]").all()
    with pytest.raises(ConfigError, match="not a lidframe calibration"):
        (tmp_path / "bad.json").write_text("{}")
        load_calibration(tmp_path / "bad.json")


def _topk(rng: np.random.Generator, langs: tuple[str, ...], right: str | None) -> list[dict]:
    probs = rng.dirichlet(np.ones(len(langs)))
    if right is not None:
        probs[langs.index(right)] += 1.0
        probs /= probs.sum()
    order = np.argsort(-probs)
    return [{"lang": langs[k], "prob": float(probs[k])} for k in order]


def test_rows_labelled_no_language_are_left_out_of_the_fit():
    """Rows labelled ``und``/``zxx`` (silence, tones) have no language to calibrate towards: with
    or without them, the same fit on the same rows."""
    rng = np.random.default_rng(3)
    langs = ("en", "de", "fr")
    labels = [langs[i % 3] for i in range(60)]
    df = pd.DataFrame(
        {
            "label": labels,
            "a_topk": [_topk(rng, langs, lab if i % 4 else None) for i, lab in enumerate(labels)],
            "b_topk": [_topk(rng, langs, lab if i % 3 else None) for i, lab in enumerate(labels)],
        }
    )
    silent = pd.DataFrame(
        {
            "label": ["und", "zxx", "und", "UND"],
            # no speech found (no answer), and speech heard in silence (an answer)
            "a_topk": [None, None, _topk(rng, langs, "en"), _topk(rng, langs, None)],
            "b_topk": [None, None, _topk(rng, langs, "de"), _topk(rng, langs, None)],
        }
    )
    fitted = fit_calibration(df, ["a", "b"], policy="product")
    assert fitted.rows == 60
    assert fit_calibration(pd.concat([silent, df]), ["a", "b"], policy="product") == fitted
    with pytest.raises(ConfigError, match="none has a language label"):
        fit_calibration(silent, ["a", "b"])


def _ece_by_hand(conf: np.ndarray, right: np.ndarray) -> float:
    """Ten equal-width bins, [0, 0.1), ..., [0.9, 1]: the share of rows times |accuracy - mean
    confidence| of each bin, rows without a probability left out."""
    keep = ~np.isnan(conf)
    conf, right = conf[keep], right[keep].astype(float)
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (conf >= lo) & ((conf < hi) if b < 9 else (conf <= hi))
        if inside.sum():
            total += inside.sum() / len(conf) * abs(right[inside].mean() - conf[inside].mean())
    return total


def _top_nll_by_hand(conf: np.ndarray, right: np.ndarray) -> float:
    keep = ~np.isnan(conf)
    p = np.clip(conf[keep], 1e-6, 1 - 1e-6)
    return float(
        np.mean(
            [-math.log(q) if r else -math.log(1 - q) for q, r in zip(p, right[keep], strict=True)]
        )
    )


def test_heldout_figures_match_an_independent_computation():
    """Each held-out figure of the fit, recomputed here: for each fold a calibration fitted on the
    other folds alone (no held-out figures of its own), applied to the fold by the consensus's
    frame code, and the pooled answers scored by hand."""
    from lidframe.consensus import consensus_frame
    from lidframe.eval._calibrate import ISOTONIC_MIN_ROWS, fold_of

    df = overconfident_results(ISOTONIC_MIN_ROWS + 20, seed=5)
    fitted = fit_calibration(df, ["a", "b"], policy="product", folds=5)
    held = fitted.report["heldout"]
    assert held["folds"] == 5 and held["rows"] == len(df) == fitted.rows
    assert set(held["candidates"]) == {"temperature", "isotonic"}
    fold = fold_of(len(df), 5)
    assert sorted(np.bincount(fold)) == [44] * 5
    truth = df["label"].to_numpy(dtype=object)

    def pooled(final: str | None) -> tuple[np.ndarray, np.ndarray]:
        prob, lang = np.full(len(df), np.nan), np.empty(len(df), dtype=object)
        for k in range(5):
            train = df[fold != k]
            cal = fit_calibration(train, ["a", "b"], policy="product", folds=0, final=final)
            out = consensus_frame(df[fold == k], ["a", "b"], cal.consensus_config())
            prob[fold == k] = out["consensus_prob"].to_numpy(dtype=float)
            lang[fold == k] = out["lang"].to_numpy(dtype=object)
        return prob, lang == truth

    plain = consensus_frame(df, ["a", "b"], ConsensusConfig("product"))
    cases = {
        "uncalibrated": (
            plain["consensus_prob"].to_numpy(float),
            plain["lang"].to_numpy() == truth,
        ),
        "temperatures": pooled(None),
    }
    figures = {"uncalibrated": held["stages"]["uncalibrated"]}
    figures["temperatures"] = held["stages"]["temperatures"]
    for kind in ("temperature", "isotonic"):
        cases[kind] = pooled(kind)
        figures[kind] = held["candidates"][kind]
    for name, (prob, right) in cases.items():
        got = figures[name]
        assert got["accuracy"] == pytest.approx(right.mean(), abs=1e-12), name
        assert got["ece"] == pytest.approx(_ece_by_hand(prob, right), abs=1e-9), name
        assert got["brier"] == pytest.approx(np.nanmean((prob - right) ** 2), abs=1e-9), name
        # near 1, -log(1 - p) magnifies the last bits in which the two consensus codes differ
        assert got["nll"] == pytest.approx(_top_nll_by_hand(prob, right), rel=1e-5), name
    # a final map never changes an answer: the same held-out accuracy as the per-model settings
    for kind in ("temperature", "isotonic"):
        assert figures[kind]["accuracy"] == figures["temperatures"]["accuracy"]
    # the consensus of over-confident models is over-confident; the final map fixes most of it
    chosen = min(("temperature", "isotonic"), key=lambda k: (figures[k]["ece"], k != "temperature"))
    assert fitted.final is not None and fitted.final.kind == chosen
    assert fitted.report["chosen"].startswith(chosen)
    assert held["stages"]["final"] == figures[chosen]
    assert figures[chosen]["ece"] < figures["temperatures"]["ece"]
    assert figures[chosen]["ece"] < figures["uncalibrated"]["ece"]
    lines = fitted.describe("cal.json").splitlines()
    assert lines[-4].startswith("  held out (5-fold, 220 rows")
    assert [line.split()[0] for line in lines[-3:]] == ["uncalibrated", "temperatures", "final"]


def test_isotonic_only_from_enough_rows_and_no_final_map_on_request():
    from lidframe.eval._calibrate import ISOTONIC_MIN_ROWS

    few = overconfident_results(ISOTONIC_MIN_ROWS - 1, seed=6)
    fitted = fit_calibration(few, ["a", "b"], policy="product", folds=3)
    assert list(fitted.report["heldout"]["candidates"]) == ["temperature"]
    assert fitted.final is not None and fitted.final.kind == "temperature"
    assert f"at least {ISOTONIC_MIN_ROWS}" in fitted.report["chosen"]
    none = fit_calibration(few, ["a", "b"], policy="product", folds=0, final=None)
    assert none.final is None and "heldout" not in none.report
    assert (none.temperatures, none.weights) == (fitted.temperatures, fitted.weights)
    with pytest.raises(ConfigError, match="folds must be"):
        fit_calibration(few, ["a", "b"], folds=1)
    with pytest.raises(ConfigError, match="final calibration must be"):
        fit_calibration(few, ["a", "b"], final="platt")
