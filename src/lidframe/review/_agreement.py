"""What the answers say: agreement between reviewers, and the job's accuracy with its uncertainty.

* :func:`cohen_kappa`: Cohen's kappa over the rows a first and a second reviewer both labelled,
  ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` from each reviewer's own label shares.
* :func:`estimate_accuracy`: the share of the job's answers a reviewer confirms, from the reviews of
  the ``random`` queue (a sample stratified by predicted language). Each language's accuracy is
  weighted by its share of the job's rows (the stratified estimator), so a language reviewed more
  than its share does not tilt the estimate. The interval is Wilson's score interval on that
  estimate with the effective sample size ``n_eff = p (1 - p) / V``, where ``V`` is the stratified
  variance ``sum W_h^2 p_h (1 - p_h) / n_h (1 - n_h / N_h)`` (finite population corrected); the
  plain normal interval collapses to zero width when every reviewed row is right, Wilson's does
  not. With ``V = 0`` (every stratum all right or all wrong) ``n_eff`` is the rows reviewed.

Rows answered ``unsure`` are left out of both (they say nothing either way); a language no reviewed
row falls in is left out of the estimate, whose ``coverage`` says the share of the job's rows the
reviewed languages hold.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

__all__ = [
    "DECISIVE",
    "AccuracyEstimate",
    "cohen_kappa",
    "estimate_accuracy",
    "review_pairs",
    "row_labels",
    "wilson_interval",
]


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of ``(first reviewer's label, second reviewer's label)`` pairs; None without
    pairs, 1.0 when both always gave the one same label (no chance agreement to correct)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    if expected >= 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def wilson_interval(p: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed on ``n`` (possibly effective) rows."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AccuracyEstimate:
    """The job's accuracy estimated from a stratified random sample's reviews."""

    # The stratified estimate: sum over reviewed strata of W_h * p_h (W renormalised over them).
    accuracy: float
    # Wilson interval with the effective sample size (see the module docstring).
    low: float
    high: float
    confidence: float
    # Rows reviewed (label or no speech), and the effective sample size of the interval.
    reviewed: int
    effective_n: float
    # Share of the job's answered rows in the strata with at least one review.
    coverage: float
    # Per stratum (the job's answer): (rows in the job, rows reviewed, rows confirmed).
    strata: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    method: str = "stratified by predicted language; Wilson interval, effective n"

    def __str__(self) -> str:
        return (
            f"{self.accuracy:.1%} ({self.confidence:.0%} CI {self.low:.1%}-{self.high:.1%}; "
            f"{self.reviewed} rows reviewed, effective n {self.effective_n:.0f}, covering "
            f"{self.coverage:.1%} of the job's rows; {self.method})"
        )


def estimate_accuracy(
    strata: Mapping[str, int],
    reviewed: Iterable[tuple[str, bool]],
    confidence: float = 0.95,
) -> AccuracyEstimate | None:
    """The stratified accuracy estimate from ``strata`` (``{stratum: rows in the job}``) and
    ``reviewed`` (``(stratum, answer confirmed)`` per reviewed row); None when nothing was
    reviewed."""
    seen: dict[str, list[int]] = {}
    for stratum, confirmed in reviewed:
        counts = seen.setdefault(stratum, [0, 0])
        counts[0] += 1
        counts[1] += int(confirmed)
    seen = {s: c for s, c in seen.items() if strata.get(s, 0) > 0}
    if not seen:
        return None
    total = sum(strata.values())
    covered = sum(strata[s] for s in seen)
    estimate = variance = 0.0
    for s, (n, right) in seen.items():
        weight = strata[s] / covered
        p = right / n
        estimate += weight * p
        fpc = max(0.0, 1.0 - n / strata[s])
        variance += weight * weight * p * (1 - p) / n * fpc
    n_reviewed = sum(n for n, _ in seen.values())
    effective = estimate * (1 - estimate) / variance if variance > 0 else float(n_reviewed)
    low, high = wilson_interval(estimate, effective, confidence)
    return AccuracyEstimate(
        accuracy=estimate,
        low=low,
        high=high,
        confidence=confidence,
        reviewed=n_reviewed,
        effective_n=effective,
        coverage=covered / total if total else 0.0,
        strata={s: (strata[s], n, right) for s, (n, right) in sorted(seen.items())},
    )


# -- from answers to labels -------------------------------------------------------------------------

# Verdicts that give the row a label (``no_speech`` is the label ``und``).
DECISIVE = ("label", "no_speech")


def row_labels(answers: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """The answer that is each row's reviewed label: of the answers not withdrawn with a label
    (``label`` or ``no_speech``), a first review's before a second's, then the earliest. A second
    reviewer's different label does not overrule the first: it counts against agreement."""
    chosen: dict[int, Mapping[str, Any]] = {}
    for a in answers:
        if a["verdict"] not in DECISIVE or a.get("withdrawn_at") is not None:
            continue
        row = int(a["row"])
        held = chosen.get(row)
        if held is None or (bool(held["second"]), held["answer_id"]) > (
            bool(a["second"]),
            a["answer_id"],
        ):
            chosen[row] = a
    return chosen


def review_pairs(answers: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(first label, second label)`` of each row labelled by a first and a second reviewer
    (their earliest answers not withdrawn), whichever queues the two answers came through: a row
    answered in one queue is settled in the others (:mod:`lidframe.store.reviews`)."""
    first: dict[int, str] = {}
    second: dict[int, str] = {}
    for a in sorted(answers, key=lambda a: a["answer_id"]):
        if a["verdict"] not in DECISIVE or a.get("withdrawn_at") is not None:
            continue
        side = second if a["second"] else first
        side.setdefault(int(a["row"]), str(a["label"]))
    return [(first[k], second[k]) for k in sorted(first.keys() & second.keys())]
