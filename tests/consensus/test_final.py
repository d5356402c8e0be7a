"""The final map of the consensus probability (issue 24): isotonic and temperature maps, applied by
``decide`` and the frame operations, saved in the calibration file; old files behave as before."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from lidframe import ConfigError
from lidframe.consensus import (
    POLICIES,
    Calibration,
    ConsensusConfig,
    FinalMap,
    consensus_config,
    consensus_frame,
    consensus_rows,
    decide,
    isotonic_knots,
    load_calibration,
    supports,
)

LANGS = ("en", "de", "fr", "es", "it")


def _rows(n: int, seed: int) -> list[dict[str, list[tuple[str, float]] | None]]:
    """``n`` rows of two models' top-3 answers (some rows without one model)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict[str, list[tuple[str, float]] | None] = {}
        for alias in ("a", "b"):
            probs = rng.dirichlet(np.full(len(LANGS), 0.4))
            order = np.argsort(-probs)[:3]
            row[alias] = [(LANGS[k], float(probs[k])) for k in order]
        if i % 7 == 0:
            row["b"] = None
        rows.append(row)
    return rows


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            f"{a}_topk": [
                None if r[a] is None else [{"lang": x, "prob": p} for x, p in r[a]] for r in rows
            ]
            for a in ("a", "b")
        }
    )


def test_isotonic_knots_are_scikit_learns_pool_adjacent_violators():
    rng = np.random.default_rng(1)
    conf = np.round(rng.uniform(0, 1, 400), 2)  # ties: rows of one confidence are pooled first
    correct = rng.uniform(0, 1, 400) < conf**1.5
    x, y = isotonic_knots(conf, correct)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    fitted = IsotonicRegression(increasing=True).fit_transform(conf, correct.astype(float))
    levels = np.unique(np.round(fitted, 12))
    assert np.allclose(np.sort(y), levels, atol=1e-12)
    # each knot sits at the mean confidence of the rows of its level
    for xk, yk in zip(x, y, strict=True):
        assert xk == pytest.approx(conf[np.isclose(fitted, yk, atol=1e-12)].mean(), abs=1e-12)
    with pytest.raises(ConfigError, match="needs rows"):
        isotonic_knots([math.nan], [True])


def test_isotonic_map_is_monotone_and_keeps_every_answer():
    rows = _rows(300, 2)
    plain = ConsensusConfig("product")
    x, y = isotonic_knots(
        [decide(r, plain).prob for r in rows], [i % 3 != 0 for i in range(len(rows))]
    )
    mapped = FinalMap("isotonic", x=tuple(x), y=tuple(y))
    grid = np.linspace(0, 1, 501)
    values = [mapped.prob(float(p), [float(p)]) for p in grid]
    assert np.all(np.diff(values) >= 0)
    for policy in POLICIES:
        for final in (mapped, FinalMap("temperature", temperature=3.0)):
            calibrated = ConsensusConfig(policy, final=final)
            before = [decide(r, ConsensusConfig(policy)) for r in rows]
            after = [decide(r, calibrated) for r in rows]
            assert [d.lang for d in after] == [d.lang for d in before]
            assert [d.n_agree for d in after] == [d.n_agree for d in before]
            if final.kind == "isotonic":
                # the order of rows by probability is kept (ties may be made, never reversed);
                # a temperature depends on each row's other candidates too
                b = np.array([d.prob for d in before])
                a = np.array([d.prob for d in after])
                order = np.argsort(b, kind="stable")
                assert np.all(np.diff(a[order]) >= -1e-12)


def test_final_temperature_renormalises_the_final_distribution():
    """By hand: each candidate's support to the power 1/T, over their sum plus the left-over mass
    (weighted) to the same power; product leaves no mass out."""
    rows = _rows(40, 3)
    for policy in ("weighted", "product"):
        plain = ConsensusConfig(policy, temperatures={"a": 1.5})
        for t in (0.5, 2.0):
            config = ConsensusConfig(
                policy, temperatures={"a": 1.5}, final=FinalMap("temperature", temperature=t)
            )
            for row in rows:
                s = supports(row, plain)
                best = decide(row, plain)
                values = np.array(list(s.values()))
                rest = 1.0 - values.sum()
                rest = rest if rest > 1e-9 else 0.0
                want = s[best.lang] ** (1 / t) / ((values ** (1 / t)).sum() + rest ** (1 / t))
                got = decide(row, config)
                assert got.lang == best.lang
                assert got.prob == pytest.approx(want, abs=1e-12)
                if t > 1:
                    assert got.prob <= best.prob + 1e-12  # a temperature above 1 softens


def test_min_prob_compares_the_calibrated_probability():
    row = {"a": [("en", 0.9), ("de", 0.1)], "b": [("en", 0.8), ("fr", 0.2)]}
    halve = FinalMap("isotonic", x=(0.0, 1.0), y=(0.0, 0.5))
    assert decide(row, ConsensusConfig("product", min_prob=0.6)).lang == "en"
    calibrated = decide(row, ConsensusConfig("product", min_prob=0.6, final=halve))
    assert calibrated.lang == "und" and calibrated.prob < 0.5


def test_frame_operations_apply_the_final_map_as_decide_does():
    frame = _frame(_rows(2100, 4))  # past FRAME_OPS_ROWS: the frame operations
    maps = (
        FinalMap("temperature", temperature=2.0),
        FinalMap("isotonic", x=(0.3, 0.6, 0.95), y=(0.2, 0.5, 0.9)),
    )
    for final in maps:
        for policy in ("weighted", "product", "majority"):
            config = ConsensusConfig(policy, weights={"b": 2.0}, final=final)
            got = consensus_frame(frame, ["a", "b"], config)
            want = consensus_rows(frame, ["a", "b"], config)
            assert got["lang"].tolist() == want["lang"].tolist()
            assert np.allclose(
                got["consensus_prob"].to_numpy(float),
                want["consensus_prob"].to_numpy(float),
                atol=1e-9,
            )


def test_a_format_1_file_loads_without_a_final_map_and_gives_the_same_consensus(tmp_path):
    """A calibration written before issue 24 (no ``format``, no ``final``) loads, gives exactly
    the consensus it gave, and is recorded in a job's identity as it was (the same job id)."""
    old = {
        "policy": "weighted",
        "temperatures": {"a": 0.7, "b": 1.8},
        "weights": {"a": 1.0, "b": 0.5},
        "rows": 120,
        "report": {"before": {"accuracy": 0.5, "ece": 0.2, "nll": 1.0}},
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    cal = load_calibration(tmp_path / "old.json")
    assert cal.final is None and cal.identity() == old
    frame = _frame(_rows(60, 5))
    config = consensus_config(calibration=tmp_path / "old.json")
    assert config == ConsensusConfig(
        "weighted", weights=old["weights"], temperatures=old["temperatures"]
    )
    got = consensus_frame(frame, ["a", "b"], config)
    by_hand = consensus_frame(
        frame,
        ["a", "b"],
        ConsensusConfig("weighted", weights=old["weights"], temperatures=old["temperatures"]),
    )
    pd.testing.assert_frame_equal(got, by_hand)
    from lidframe.job import RunConfig

    run = RunConfig.of(models=("whisper-base", "whisper-tiny"), calibration=tmp_path / "old.json")
    assert run.identity()["calibration"] == old


def test_format_2_round_trip_and_newer_formats_refused(tmp_path):
    final = FinalMap("isotonic", x=(0.1, 0.5, 0.9), y=(0.05, 0.4, 0.97))
    cal = Calibration("product", {"a": 1.2}, {"a": 1.0}, 300, {"chosen": "isotonic"}, final)
    cal.save(tmp_path / "cal.json")
    data = json.loads((tmp_path / "cal.json").read_text())
    assert data["format"] == 2
    assert data["final"] == {"kind": "isotonic", "x": [0.1, 0.5, 0.9], "y": [0.05, 0.4, 0.97]}
    again = load_calibration(tmp_path / "cal.json")
    assert again == cal and again.consensus_config().final == final
    assert cal.identity()["final"] == data["final"]
    temperature = Calibration("product", {}, {}, 10, final=FinalMap("temperature", temperature=2))
    temperature.save(tmp_path / "t.json")
    assert load_calibration(tmp_path / "t.json") == temperature
    (tmp_path / "new.json").write_text(json.dumps({**data, "format": 3}))
    with pytest.raises(ConfigError, match="newer than this lidframe"):
        load_calibration(tmp_path / "new.json")
    (tmp_path / "bad.json").write_text(json.dumps({**data, "final": {"kind": "spline"}}))
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="strictly increasing"):
        FinalMap("isotonic", x=(0.5, 0.5), y=(0.1, 0.2))
    with pytest.raises(ConfigError, match="must be a FinalMap"):
        ConsensusConfig("product", final="isotonic")  # type: ignore[arg-type]


def test_run_with_a_calibration_file_applies_the_final_map(tmp_path, local_cluster):
    """``lidframe.run(..., calibration=FILE)``: the job's workers write the calibrated
    probability (here an isotonic map that halves it) beside the answers the models' consensus
    gives without the map."""
    import dataclasses

    import lidframe
    from lidframe.columns import column_alias
    from tests.fixtures.models import loudness_manifest, register_loudness

    register_loudness()
    manifest = loudness_manifest(tmp_path, 6, labels=True)
    models = ["loudness:x", "loudness:y"]
    aliases = [column_alias(m) for m in models]
    halve = FinalMap("isotonic", x=(0.0, 1.0), y=(0.0, 0.5))
    cal = Calibration("product", {aliases[0]: 0.5, aliases[1]: 2.0}, {a: 1.0 for a in aliases}, 6)
    cal = dataclasses.replace(cal, final=halve)
    cal.save(tmp_path / "cal.json")
    local_cluster(1)
    summary = lidframe.run(
        manifest,
        tmp_path / "out",
        models,
        calibration=tmp_path / "cal.json",
        partition_rows=3,
        db=False,
        speech=lidframe.SpeechConfig(vad=False),
        progress=False,
    )
    assert summary.ok and summary.rows == 6, summary
    got = pd.read_parquet(tmp_path / "out").sort_values("id").reset_index(drop=True)
    inputs = got.drop(columns=["lang", "agree", "n_agree", "consensus_prob", "consensus_method"])
    # the run's consensus spreads left-out mass over each model's 2 labels
    calibrated = cal.consensus_config(label_counts=dict.fromkeys(aliases, 2))
    plain = consensus_rows(inputs, aliases, dataclasses.replace(calibrated, final=None))
    assert got["lang"].tolist() == plain["lang"].tolist()
    assert np.allclose(got["consensus_prob"], 0.5 * plain["consensus_prob"], atol=1e-6)
    assert (got["consensus_prob"] <= 0.5 + 1e-9).all() and got["lang"].isin(["en", "de"]).all()
