"""Calibrated consensus on a labelled held-out split, with both real models."""

from __future__ import annotations

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
