"""Fit a consensus calibration on labelled results: per-model temperatures and weights, then a map
of the final consensus probability, chosen and judged on k-fold held-out rows.

Models are confidently wrong in different ways; a temperature per model (``p ** (1/T)``,
renormalised) fixes each model's over- or under-confidence, and a weight per model (an exponent in
the product of distributions) says how much to trust it against the others. Both are fitted by
minimising the negative log-likelihood of the true labels: temperatures one model at a time on a
log-spaced grid, then weights on a grid (all combinations for up to three models, coordinate descent
beyond). A grid is plenty for a handful of parameters, is deterministic, and needs no optimiser
dependency.

That leaves the combination over-confident (models that agree multiply their confidence, issue
24), so a :class:`~lidframe.consensus.FinalMap` is fitted on the final consensus output: a single
temperature on the final distribution (grid, minimising the log loss of "the answer is right"), or
isotonic regression of "the answer is right" on the top probability (pool-adjacent-violators,
NumPy; its values kept within ``0.5 / rows`` of 0 and 1). The rule: isotonic is a candidate only
from :data:`ISOTONIC_MIN_ROWS` labelled rows (below, its steps follow the noise of a few rows per
bin); the candidate with the lower k-fold held-out ECE is kept, a temperature on a tie (one
parameter). Neither changes an answer, so accuracy is that of the per-model settings.

Held-out figures (``report["heldout"]``): the labelled rows are split into ``folds`` folds (a seeded
permutation); for each, everything is fitted on the other folds and applied to it, and the
held-out answers of all folds are scored together: the uncalibrated consensus (the policy alone),
the per-model temperatures and weights, and each final map. Accuracy counts every labelled row;
ECE, NLL and Brier are of the top-label probability (NLL: ``-log p`` when right, ``-log(1 - p)``
when wrong), over rows with a probability. The file's map is then refitted on all rows. The chosen
map's held-out figures are slightly optimistic: the same folds chose it between two.

Labels: ``fit_calibration`` takes any frame of labelled rows with the models' ``{alias}_topk``
columns and a label column (``label_column``), whatever the labels' source: a labelled manifest's
(what ``lidframe calibrate`` reads), or reviewed labels joined in by ``id``.

This module depends on :mod:`lidframe.consensus` (it fits its settings), never the other way round:
the consensus reads the fitted :class:`~lidframe.Calibration`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lidframe.columns import model_columns
from lidframe.consensus import (
    FINAL_KINDS,
    REST_TOLERANCE,
    Calibration,
    ConsensusConfig,
    FinalMap,
    decide,
    isotonic_knots,
    supports,
    topk_pairs,
)
from lidframe.errors import ConfigError
from lidframe.eval._metrics import brier_score, expected_calibration_error
from lidframe.languages import DEFAULT_EQUIVALENCE, NO_LANGUAGE, LanguageEquivalence, label_code

__all__ = [
    "FOLDS",
    "ISOTONIC_MIN_ROWS",
    "calibrate_results",
    "evaluate_consensus",
    "fit_calibration",
    "fold_of",
    "top_label_nll",
]

_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.05, 20.0, 61))
# The final temperature: a finer grid (one parameter, vectorised), 1 included.
_FINAL_TEMPERATURES = np.unique(np.append(np.geomspace(0.05, 20.0, 241), 1.0))
_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_EPS = 1e-6
# Held-out folds of the fit's figures and of the choice of the final map.
FOLDS = 5
# Isotonic regression is a candidate for the final map from this many labelled rows: 5 folds
# leave 160 rows to fit on, 16 per probability decile.
ISOTONIC_MIN_ROWS = 200
# The fold split's seed (the figures are reproducible).
_SEED = 0


def calibrate_results(
    results: str,
    out: str | os.PathLike[str],
    *,
    models: Sequence[str] | None = None,
    policy: str = "product",
    storage_options: Mapping[str, Any] | None = None,
    folds: int = FOLDS,
    final: str | None = "auto",
) -> Calibration:
    """Fit a calibration on the labelled rows (the manifest's ``label`` column) of a run's results
    folder and save it to ``out`` (:func:`fit_calibration`).

    ``models``: names or column aliases of the models to combine (default: every model of the
    results). ``storage_options``: fsspec options for reading ``results``. ``folds``: of the
    held-out figures and the choice of the final map. ``final``: the final map's kind, as
    :func:`fit_calibration` takes it.
    """
    from lidframe.columns import column_alias
    from lidframe.results import read_parts

    df = read_parts(results, storage_options)
    if models:
        aliases = list(dict.fromkeys(column_alias(m) for m in models))
    else:
        aliases = [c.removesuffix("_topk") for c in df.columns if c.endswith("_topk")]
    fitted = fit_calibration(df, aliases, policy=policy, folds=folds, final=final)
    fitted.save(out)
    return fitted


def _labelled_answers(
    df: pd.DataFrame, aliases: Sequence[str], label_column: str, equivalence: LanguageEquivalence
) -> tuple[list[dict[str, list[tuple[str, float]] | None]], list[str]]:
    if label_column not in df.columns:
        raise ConfigError(f"calibration needs ground truth: no {label_column!r} column")
    for alias in aliases:
        if model_columns(alias)[2] not in df.columns:
            raise ConfigError(f"no column {model_columns(alias)[2]!r} for model {alias!r}")
    answers, labels = [], []
    for _, row in df.iterrows():
        label = row[label_column]
        if label is None or label is pd.NA or (isinstance(label, float) and math.isnan(label)):
            continue
        if label_code(str(label)) == NO_LANGUAGE:
            continue  # labelled no speech: no language to calibrate towards
        answers.append({a: topk_pairs(row[model_columns(a)[2]]) for a in aliases})
        labels.append(equivalence.key(str(label)))
    if not labels:
        raise ConfigError("calibration needs labelled rows; none has a language label")
    return answers, labels


def _nll(
    answers: Sequence[Mapping[str, Any]], labels: Sequence[str], config: ConsensusConfig
) -> float:
    total = 0.0
    for row, label in zip(answers, labels, strict=True):
        total -= math.log(max(supports(row, config).get(label, 0.0), _EPS))
    return total / len(labels)


def top_label_nll(confidence: Any, correct: Any) -> float:
    """Mean negative log-likelihood of "the answer is right" under its probability (``-log p``
    when right, ``-log(1 - p)`` when wrong, ``p`` kept within 1e-6 of 0 and 1), over rows with a
    probability; NaN without one."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    keep = np.isfinite(conf)
    if not keep.any():
        return float("nan")
    p = np.clip(conf[keep], _EPS, 1.0 - _EPS)
    return float(-np.mean(np.where(hit[keep], np.log(p), np.log1p(-p))))


@dataclass(frozen=True)
class _Outputs:
    """The consensus of labelled rows under one configuration, before any final map."""

    # The answer's support per row (NaN when no model answered).
    prob: np.ndarray
    # Whether the answer is the label.
    correct: np.ndarray
    # Every candidate's support per row, zero-padded (what a final temperature renormalises).
    supports: np.ndarray

    def take(self, index: np.ndarray) -> _Outputs:
        return _Outputs(self.prob[index], self.correct[index], self.supports[index])


def _outputs(
    answers: Sequence[Mapping[str, Any]], labels: Sequence[str], config: ConsensusConfig
) -> _Outputs:
    plain = ConsensusConfig(
        config.policy,
        weights=config.weights,
        temperatures=config.temperatures,
        label_counts=config.label_counts,
        equivalence=config.equivalence,
    )
    probs, correct, rows = [], [], []
    for row, label in zip(answers, labels, strict=True):
        decision = decide(row, plain)
        probs.append(decision.prob)
        correct.append(decision.lang == label)
        rows.append(list(supports(row, plain).values()))
    width = max((len(r) for r in rows), default=0) or 1
    matrix = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        matrix[i, : len(r)] = r
    return _Outputs(np.asarray(probs, dtype=float), np.asarray(correct, dtype=bool), matrix)


def _final_prob(final: FinalMap | None, out: _Outputs) -> np.ndarray:
    """:meth:`FinalMap.prob` of every row at once."""
    if final is None:
        return out.prob
    if final.kind == "isotonic":
        return np.interp(out.prob, final.x, final.y)
    return _temperature_prob(out, final.power())


def _temperature_prob(out: _Outputs, power: float) -> np.ndarray:
    positive = np.clip(out.supports, 0.0, None)
    rest = 1.0 - positive.sum(axis=1)
    rest = np.where(rest > REST_TOLERANCE, rest, 0.0)
    norm = (positive**power).sum(axis=1) + rest**power
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.clip(out.prob, 0.0, None) ** power / norm
    return np.where(norm > 0, np.clip(scaled, 0.0, 1.0), out.prob)


def _fit_final(kind: str, out: _Outputs) -> FinalMap:
    """A final map of ``kind`` fitted on ``out`` (rows without a probability are left out)."""
    keep = np.isfinite(out.prob)
    if not keep.any():
        return FinalMap("temperature")
    if kind == "isotonic":
        x, y = isotonic_knots(out.prob[keep], out.correct[keep])
        # Never exactly 0 or 1: n rows cannot tell certainty from one error in 2n (clipping keeps
        # the map non-decreasing).
        margin = 0.5 / int(keep.sum())
        return FinalMap("isotonic", x=tuple(x), y=tuple(np.clip(y, margin, 1.0 - margin)))
    fitted = out.take(keep)
    losses = [
        top_label_nll(_temperature_prob(fitted, 1.0 / t), fitted.correct)
        for t in _FINAL_TEMPERATURES
    ]
    return FinalMap("temperature", temperature=float(_FINAL_TEMPERATURES[int(np.argmin(losses))]))


def _figures(prob: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    return {
        "rows": len(correct),
        "accuracy": float(np.mean(correct)) if len(correct) else float("nan"),
        "ece": expected_calibration_error(prob, correct),
        "nll": top_label_nll(prob, correct),
        "brier": brier_score(prob, correct),
    }


def evaluate_consensus(
    df: pd.DataFrame,
    aliases: Sequence[str],
    config: ConsensusConfig,
    label_column: str = "label",
) -> dict[str, float]:
    """Accuracy, ECE and NLL (of the true label under the combined distribution, before any final
    map) of the consensus over the labelled rows of ``df``; ECE of ``consensus_prob`` as the
    config gives it (its final map included)."""
    answers, labels = _labelled_answers(df, aliases, label_column, config.equivalence)
    return _in_sample(answers, labels, config)


def _per_model(
    answers: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    aliases: Sequence[str],
    policy: str,
    counts: Mapping[str, int],
    equivalence: LanguageEquivalence,
) -> ConsensusConfig:
    """Temperatures (one model at a time), then weights, minimising the NLL of the labels."""
    temperatures: dict[str, float] = {}
    for alias in aliases:
        single = [{alias: row[alias]} for row in answers]
        scores = {
            t: _nll(
                single,
                labels,
                ConsensusConfig(
                    "product",
                    temperatures={alias: t},
                    label_counts=counts,
                    equivalence=equivalence,
                ),
            )
            for t in _TEMPERATURES
        }
        temperatures[alias] = min(scores, key=lambda t: scores[t])

    def objective(weights: Mapping[str, float]) -> float:
        if not any(weights.values()):
            return math.inf
        config = ConsensusConfig(
            policy,
            temperatures=temperatures,
            weights=weights,
            label_counts=counts,
            equivalence=equivalence,
        )
        return _nll(answers, labels, config)

    if len(aliases) <= 3:
        grid = (
            dict(zip(aliases, combo, strict=True))
            for combo in itertools.product(_WEIGHTS, repeat=len(aliases))
        )
        weights = min(grid, key=objective)
    else:
        weights = {a: 1.0 for a in aliases}
        for _ in range(2):
            for alias in aliases:
                weights = min(({**weights, alias: w} for w in _WEIGHTS), key=objective)
    return ConsensusConfig(
        policy,
        temperatures=temperatures,
        weights=dict(weights),
        label_counts=counts,
        equivalence=equivalence,
    )


def fold_of(rows: int, folds: int, seed: int = _SEED) -> np.ndarray:
    """Each row's held-out fold (0 to ``folds - 1``): a seeded permutation dealt round-robin, so
    the folds' sizes differ by at most one."""
    order = np.random.default_rng(seed).permutation(rows)
    fold = np.empty(rows, dtype=int)
    fold[order] = np.arange(rows) % folds
    return fold


def _heldout(
    answers: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    aliases: Sequence[str],
    policy: str,
    counts: Mapping[str, int],
    equivalence: LanguageEquivalence,
    folds: int,
    kinds: Sequence[str],
) -> dict[str, Any]:
    """The k-fold held-out figures of each stage, and of each final map of ``kinds``."""
    n = len(labels)
    fold = fold_of(n, folds)
    plain = ConsensusConfig(policy, label_counts=counts, equivalence=equivalence)
    uncalibrated = _outputs(answers, labels, plain)
    prob = {name: np.full(n, np.nan) for name in ("temperatures", *kinds)}
    correct = np.zeros(n, dtype=bool)
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero(fold != k)
        train_answers = [answers[int(i)] for i in train]
        train_labels = [labels[int(i)] for i in train]
        config = _per_model(train_answers, train_labels, aliases, policy, counts, equivalence)
        seen = _outputs(train_answers, train_labels, config)
        unseen = _outputs([answers[int(i)] for i in test], [labels[int(i)] for i in test], config)
        correct[test] = unseen.correct
        prob["temperatures"][test] = unseen.prob
        for kind in kinds:
            prob[kind][test] = _final_prob(_fit_final(kind, seen), unseen)
    stages = {"uncalibrated": _figures(uncalibrated.prob, uncalibrated.correct)}
    stages["temperatures"] = _figures(prob["temperatures"], correct)
    candidates = {kind: _figures(prob[kind], correct) for kind in kinds}
    return {"folds": folds, "rows": n, "stages": stages, "candidates": candidates}


def fit_calibration(
    df: pd.DataFrame,
    aliases: Sequence[str],
    *,
    policy: str = "product",
    label_column: str = "label",
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
    label_counts: Mapping[str, int] | None = None,
    folds: int = FOLDS,
    final: str | None = "auto",
) -> Calibration:
    """Fit temperatures, then weights, then the final map on the labelled rows of a results
    frame, with ``folds``-fold held-out figures (see the module).

    ``df``: rows with the models' ``{alias}_topk`` columns and a label in ``label_column``,
    whatever the labels' source (rows without a label, or labelled ``und``, are left out).
    ``label_counts``: each model's number of labels by alias (default: from the label sets the run
    recorded with its results), as the run's consensus uses them. ``final``: ``"auto"`` (chosen by
    held-out ECE, see the module), ``"temperature"`` or ``"isotonic"`` (that map), or None (no
    final map, as before issue 24). ``folds``: 0 fits without held-out figures (``auto`` then
    takes a temperature); so do fewer than two labelled rows per fold.
    """
    from lidframe.results import LABELS_ATTR

    if not aliases:
        raise ConfigError("calibration needs at least one model")
    if folds == 1 or folds < 0:
        raise ConfigError(f"calibration folds must be 0 (none) or at least 2, got {folds}")
    if final not in ("auto", None, *FINAL_KINDS):
        raise ConfigError(
            f"final calibration must be 'auto', None or one of {FINAL_KINDS}, got {final!r}"
        )
    if label_counts is None:
        recorded = df.attrs.get(LABELS_ATTR) or {}
        label_counts = {alias: len(codes) for alias, codes in recorded.items()}
    counts = dict(label_counts)
    answers, labels = _labelled_answers(df, aliases, label_column, equivalence)
    n = len(labels)
    after = _per_model(answers, labels, aliases, policy, counts, equivalence)
    before = ConsensusConfig(policy, label_counts=counts, equivalence=equivalence)
    report: dict[str, Any] = {
        "before": _in_sample(answers, labels, before),
        "after": _in_sample(answers, labels, after),
    }
    if final == "auto":
        kinds = ["temperature", *(["isotonic"] if n >= ISOTONIC_MIN_ROWS else [])]
    else:
        kinds = [] if final is None else [final]
    kind = final
    if folds and n >= 2 * folds:
        heldout = _heldout(answers, labels, aliases, policy, counts, equivalence, folds, kinds)
        ece = {k: heldout["candidates"][k]["ece"] for k in kinds}
        if final == "auto":
            kind = min(kinds, key=lambda k: (ece[k], k != "temperature"))
            report["chosen"] = _why(kind, ece, n)
        if kind is not None:
            heldout["stages"]["final"] = heldout["candidates"][kind]
        report["heldout"] = heldout
    elif final == "auto":
        kind = "temperature"
        report["chosen"] = f"temperature: {n} labelled rows, no {folds}-fold held-out figures"
    if kind is None:
        return Calibration(policy, dict(after.temperatures), dict(after.weights), n, report)
    fitted = _outputs(answers, labels, after)
    mapped = _fit_final(kind, fitted)
    report["final"] = _figures(_final_prob(mapped, fitted), fitted.correct)
    return Calibration(
        policy, dict(after.temperatures), dict(after.weights), n, report, final=mapped
    )


def _why(kind: str, ece: Mapping[str, float], rows: int) -> str:
    if "isotonic" not in ece:
        return (
            f"temperature: isotonic needs at least {ISOTONIC_MIN_ROWS} labelled rows "
            f"({rows} here); held-out ECE {ece['temperature']:.3f}"
        )
    other = "temperature" if kind == "isotonic" else "isotonic"
    return f"{kind}: held-out ECE {ece[kind]:.3f} against {ece[other]:.3f} for {other}" + (
        " (a tie keeps the temperature)" if ece[kind] == ece[other] else ""
    )


def _in_sample(
    answers: Sequence[Mapping[str, Any]], labels: Sequence[str], config: ConsensusConfig
) -> dict[str, float]:
    """Accuracy, ECE and NLL (of the true label) of ``config`` on the fitted rows."""
    decisions = [decide(row, config) for row in answers]
    correct = np.array([d.lang == lab for d, lab in zip(decisions, labels, strict=True)])
    conf = np.array([d.prob for d in decisions], dtype=float)
    return {
        "rows": len(labels),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(conf, correct),
        "nll": _nll(answers, labels, config),
    }
