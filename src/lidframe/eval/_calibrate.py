"""Fit per-model temperatures and weights on labelled results, for calibrated consensus.

Models are confidently wrong in different ways; a temperature per model (``p ** (1/T)``,
renormalised) fixes each model's over- or under-confidence, and a weight per model (an exponent in
the product of distributions) says how much to trust it against the others. Both are fitted by
minimising the negative log-likelihood of the true labels: temperatures one model at a time on a
log-spaced grid, then weights on a grid (all combinations for up to three models, coordinate descent
beyond). A grid is plenty for a handful of parameters, is deterministic, and needs no optimiser
dependency. The result is a small JSON file that ``run`` and ``consensus`` accept.

This module depends on :mod:`lidframe.consensus` (it fits its settings), never the other way round:
the consensus reads the fitted :class:`~lidframe.Calibration`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lidframe.columns import model_columns
from lidframe.consensus import Calibration, ConsensusConfig, decide, supports, topk_pairs
from lidframe.errors import ConfigError
from lidframe.eval._metrics import expected_calibration_error
from lidframe.languages import DEFAULT_EQUIVALENCE, NO_LANGUAGE, LanguageEquivalence, label_code

__all__ = ["calibrate_results", "evaluate_consensus", "fit_calibration"]

_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.05, 20.0, 61))
_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_EPS = 1e-6


def calibrate_results(
    results: str,
    out: str | os.PathLike[str],
    *,
    models: Sequence[str] | None = None,
    policy: str = "product",
    storage_options: Mapping[str, Any] | None = None,
) -> Calibration:
    """Fit a calibration on the labelled rows of a run's results folder and save it to ``out``.

    ``models``: names or column aliases of the models to combine (default: every model of the
    results). ``storage_options``: fsspec options for reading ``results``.
    """
    from lidframe.columns import column_alias
    from lidframe.results import read_parts

    df = read_parts(results, storage_options)
    if models:
        aliases = list(dict.fromkeys(column_alias(m) for m in models))
    else:
        aliases = [c.removesuffix("_topk") for c in df.columns if c.endswith("_topk")]
    fitted = fit_calibration(df, aliases, policy=policy)
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


def evaluate_consensus(
    df: pd.DataFrame,
    aliases: Sequence[str],
    config: ConsensusConfig,
    label_column: str = "label",
) -> dict[str, float]:
    """Accuracy, ECE and NLL of the consensus over the labelled rows of ``df``."""
    answers, labels = _labelled_answers(df, aliases, label_column, config.equivalence)
    decisions = [decide(row, config) for row in answers]
    correct = np.array([d.lang == lab for d, lab in zip(decisions, labels, strict=True)])
    conf = np.array([d.prob for d in decisions], dtype=float)
    return {
        "rows": len(labels),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(conf, correct),
        "nll": _nll(answers, labels, config),
    }


def fit_calibration(
    df: pd.DataFrame,
    aliases: Sequence[str],
    *,
    policy: str = "product",
    label_column: str = "label",
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
    label_counts: Mapping[str, int] | None = None,
) -> Calibration:
    """Fit temperatures, then weights, on the labelled rows of a results frame.

    ``label_counts``: each model's number of labels by alias (default: from the label sets the run
    recorded with its results), as the run's consensus uses them.
    """
    from lidframe.results import LABELS_ATTR

    if not aliases:
        raise ConfigError("calibration needs at least one model")
    if label_counts is None:
        recorded = df.attrs.get(LABELS_ATTR) or {}
        label_counts = {alias: len(codes) for alias, codes in recorded.items()}
    counts = dict(label_counts)
    answers, labels = _labelled_answers(df, aliases, label_column, equivalence)
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

    before = ConsensusConfig(policy, label_counts=counts, equivalence=equivalence)
    after = ConsensusConfig(
        policy,
        temperatures=temperatures,
        weights=weights,
        label_counts=counts,
        equivalence=equivalence,
    )
    report = {
        "before": evaluate_consensus(df, aliases, before, label_column),
        "after": evaluate_consensus(df, aliases, after, label_column),
    }
    return Calibration(policy, temperatures, dict(weights), len(labels), report)
