"""Metrics over labelled rows: plain NumPy/pandas, checked in tests against scikit-learn.

Conventions (the ones LID evaluation needs, stated once):

* Codes are compared as given; callers map them through a
  :class:`~lidframe.languages.LanguageEquivalence` first (``no``/``nb`` are one language).
* ``macro_f1`` averages over the languages that occur in the ground truth (support > 0): a model's
  stray answers lower the precision of the languages they are confused with, not the average's
  denominator. (scikit-learn: ``f1_score(..., labels=true languages, average="macro")``.)
* The counts (:func:`per_language_frame`, :func:`confusions_frame`, :func:`accuracy_frame`) are
  groupby/merge over a frame of ``truth`` and ``predicted`` columns: the same code on a pandas or
  a cuDF frame. Calibration (ECE, Brier, reliability, coverage) is NumPy on the host.
* Calibration is of the *top-label* confidence: ``confidence`` is the probability of the answer,
  ``correct`` whether the answer is right. ECE uses equal-width bins; Brier is the mean squared
  difference between confidence and correctness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "accuracy",
    "accuracy_frame",
    "brier_score",
    "confusion_table",
    "confusions",
    "confusions_frame",
    "coverage_curve",
    "expected_calibration_error",
    "long_tail",
    "macro_f1",
    "per_language",
    "per_language_frame",
    "reliability",
    "threshold_for_accuracy",
    "weakest",
]


def _finite(confidence: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    keep = np.isfinite(conf)
    return conf[keep], hit[keep]


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width confidence bins: sum over bins of |accuracy - confidence| x share.

    A confidence of exactly 0 falls in the first bin and 1 in the last. Rows with a NaN confidence
    are left out. Returns NaN when no row is left.
    """
    conf, hit = _finite(confidence, correct)
    if conf.size == 0:
        return float("nan")
    index = np.clip((conf * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return float(total)


def brier_score(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Mean of (confidence - correct)^2 over rows with a finite confidence (NaN if none)."""
    conf, hit = _finite(confidence, correct)
    return float(np.mean((conf - hit) ** 2)) if conf.size else float("nan")


def reliability(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """The reliability diagram's table: per equal-width bin, rows, mean confidence, accuracy."""
    conf, hit = _finite(confidence, correct)
    index = np.clip((conf * bins).astype(int), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        rows.append(
            {
                "bin_low": b / bins,
                "bin_high": (b + 1) / bins,
                "rows": int(mask.sum()),
                "confidence": float(conf[mask].mean()) if mask.any() else float("nan"),
                "accuracy": float(hit[mask].mean()) if mask.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def accuracy(truth: ArrayLike, predicted: ArrayLike) -> float:
    """Share of rows whose answer is the truth (NaN without rows)."""
    return accuracy_frame(_pairs(truth, predicted))


def accuracy_frame(pairs: Any) -> float:
    """:func:`accuracy` of a frame with ``truth`` and ``predicted`` columns, pandas or cuDF."""
    if not len(pairs):
        return float("nan")
    return float((pairs["truth"] == pairs["predicted"]).astype("float64").mean())


def _pairs(truth: ArrayLike, predicted: ArrayLike) -> pd.DataFrame:
    return pd.DataFrame(
        {"truth": np.asarray(truth, dtype=object), "predicted": np.asarray(predicted, dtype=object)}
    )


def per_language(truth: ArrayLike, predicted: ArrayLike) -> pd.DataFrame:
    """Precision, recall, F1, support and answer count per language (union of true and predicted).

    Indexed by language, sorted by support (descending) then code. A language never predicted has
    precision 0; one never true has recall 0 and support 0.
    """
    return per_language_frame(_pairs(truth, predicted))


def _counts(frame: Any, column: str, name: str) -> Any:
    """``(lang, name)``: rows per value of ``column``."""
    counts = frame.groupby(column).size().rename("rows").reset_index()
    return counts.rename(columns={column: "lang", "rows": name})


def per_language_frame(pairs: Any) -> Any:
    """:func:`per_language` of a frame with ``truth`` and ``predicted`` columns (no nulls), pandas
    or cuDF (groupby and merge only: the table is of the frame's library)."""
    hits = pairs[pairs["truth"] == pairs["predicted"]]
    table = _counts(pairs, "truth", "support").merge(
        _counts(pairs, "predicted", "predicted"), on="lang", how="outer"
    )
    table = table.merge(_counts(hits, "truth", "correct"), on="lang", how="left")
    for name in ("support", "predicted", "correct"):
        table[name] = table[name].fillna(0).astype("int64")
    correct = table["correct"].astype("float64")
    precision = (correct / table["predicted"].where(table["predicted"] > 0, 1)).astype("float64")
    recall = (correct / table["support"].where(table["support"] > 0, 1)).astype("float64")
    both = precision + recall
    table["precision"], table["recall"] = precision, recall
    table["f1"] = (2 * precision * recall / both.where(both > 0, 1.0)).where(both > 0, 0.0)
    table = table.sort_values(["support", "lang"], ascending=[False, True])
    return table.set_index("lang")


def macro_f1(table: pd.DataFrame) -> float:
    """Mean F1 over the languages of a :func:`per_language` table that occur in the truth."""
    present = table[table["support"] > 0]
    return float(present["f1"].mean()) if len(present) else float("nan")


def confusions(truth: ArrayLike, predicted: ArrayLike, top: int = 20) -> pd.DataFrame:
    """The most frequent (true, predicted) pairs with true != predicted, and their share of the true
    language's rows."""
    return confusions_frame(_pairs(truth, predicted), top)


def confusions_frame(pairs: Any, top: int = 20) -> Any:
    """:func:`confusions` of a frame with ``truth`` and ``predicted`` columns, pandas or cuDF."""
    wrong = pairs[pairs["truth"] != pairs["predicted"]]
    counts = wrong.groupby(["truth", "predicted"]).size().rename("rows").reset_index()
    counts = counts.rename(columns={"truth": "true"})
    support = _counts(pairs, "truth", "support").rename(columns={"lang": "true"})
    counts = counts.merge(support, on="true", how="left")
    counts["rows"] = counts["rows"].astype("int64")
    counts["share_of_true"] = counts["rows"] / counts["support"]
    counts = counts.sort_values(["rows", "true", "predicted"], ascending=[False, True, True])
    return counts[["true", "predicted", "rows", "share_of_true"]].head(top).reset_index(drop=True)


def confusion_table(
    truth: ArrayLike, predicted: ArrayLike, languages: Sequence[str], outsiders: int = 8
) -> pd.DataFrame:
    """Counts of answers per true language: one row per code of ``languages`` (in order), one column
    per code of ``languages``, then the ``outsiders`` most frequent answers outside them (each by
    its code: an ``sv`` row answered ``no`` shows under ``no``), then ``und`` when answered, then
    ``other (k languages)`` for the remaining k answered codes (no such column when k is 0).

    Rows whose truth is not in ``languages`` are left out. No index or column names, so the table
    shows as it reads.
    """
    t = pd.Series(np.asarray(truth, dtype=object)).astype(str)
    p = pd.Series(np.asarray(predicted, dtype=object)).astype(str)
    langs = [str(x) for x in languages]
    keep = t.isin(langs).to_numpy()
    t, p = t[keep], p[keep]
    counts = p[~p.isin([*langs, "und"])].value_counts()
    outside = sorted(counts.index, key=lambda code: (-counts[code], code))
    named = outside[:outsiders]
    rest = len(outside) - len(named)
    und = ["und"] if "und" not in langs and (p == "und").any() else []
    other = f"other ({rest} language{'s' if rest != 1 else ''})"
    shown = [*langs, *named, *und]
    column = p.where(p.isin(shown), other)
    table = pd.crosstab(t, column).reindex(
        index=langs, columns=[*shown, *([other] if rest else [])], fill_value=0
    )
    table.index.name = None
    table.columns.name = None
    return table.astype(int)


def long_tail(table: pd.DataFrame, min_support: int | None = None) -> pd.DataFrame:
    """Languages of the tail: support below ``min_support``, or (by default) in the bottom quartile
    of support among the languages that occur. Sorted weakest first (F1, then support)."""
    present = table[table["support"] > 0]
    if present.empty:
        return present
    cut = min_support if min_support is not None else float(present["support"].quantile(0.25))
    tail = (
        present[present["support"] < cut]
        if min_support is not None
        else present[present["support"] <= cut]
    )
    return weakest(tail, len(tail))


def weakest(table: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` languages (support > 0) with the lowest F1, ties broken by lower support then code."""
    present = table[table["support"] > 0].reset_index()
    present = present.sort_values(["f1", "support", "lang"], ascending=[True, True, True])
    return present.head(n).set_index("lang")


def coverage_curve(
    confidence: ArrayLike, correct: ArrayLike, thresholds: ArrayLike | None = None
) -> pd.DataFrame:
    """Accuracy against coverage as a confidence threshold rises.

    For each threshold ``t``: the rows with confidence >= t are kept; ``coverage`` is their share of
    all rows (a NaN confidence is never kept), ``accuracy`` their accuracy. Default thresholds: every
    distinct confidence, plus 0.
    """
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    if thresholds is None:
        finite = conf[np.isfinite(conf)]
        thresholds = np.unique(np.concatenate([[0.0], finite]))
    rows = []
    n = conf.size
    for t in np.asarray(thresholds, dtype=float):
        kept = np.isfinite(conf) & (conf >= t)
        k = int(kept.sum())
        rows.append(
            {
                "threshold": float(t),
                "rows": k,
                "coverage": k / n if n else float("nan"),
                "accuracy": float(hit[kept].mean()) if k else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def threshold_for_accuracy(curve: pd.DataFrame, target: float) -> dict[str, float] | None:
    """The lowest threshold whose kept rows reach ``target`` accuracy (the most coverage for it);
    None when no threshold does."""
    ok = curve[(curve["accuracy"] >= target) & (curve["rows"] > 0)]
    if ok.empty:
        return None
    best = ok.sort_values(["coverage", "threshold"], ascending=[False, True]).iloc[0]
    return {k: float(best[k]) for k in ("threshold", "coverage", "accuracy", "rows")}
