"""Drift: what a job's models say, against what a reference job's said.

Every statistic is computed from the two jobs' summed behaviour (:class:`lidframe.store.Behaviour`,
read by SQL from ``lidframe_behaviour``), never from their result rows, so a check costs the same at
any job size and can run while a job works. The statistics, and their default thresholds, follow
the practice of drift tools (Evidently's defaults for categorical and binned data):

* **language shares** of the job's answer and of each model (rows answered with a language):
  Jensen-Shannon *distance* (base 2, in [0, 1]; ``scipy.spatial.distance.jensenshannon``), moved
  above 0.1, Evidently's default for categorical columns;
* **confidence** of the answer and of each model: population stability index over the fixed
  ten-bin histogram of top-1 probabilities (each bin's share floored at 1e-4, as Evidently does),
  moved above 0.1, Evidently's default for PSI (the credit-scoring rule of thumb reads 0.1-0.2 as
  moderate, above 0.2 as a large shift);
* **rates**: agreement between the models (rows with an answer on which they agree),
  ``und`` and row errors (over all rows): the absolute difference, moved above 0.05 (five points).

A statistic with no rows on either side (no language answered yet) is not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lidframe.errors import ConfigError
from lidframe.store.behaviour import ANSWER, Behaviour, Stats

__all__ = ["Check", "Drift", "DriftThresholds", "compare"]

# Floor of a bin's share in the PSI (an empty bin on one side only would be infinite).
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """When a statistic has moved (defaults documented in :mod:`lidframe.observe._drift`)."""

    # Jensen-Shannon distance (base 2) of language shares.
    languages: float = 0.1
    # Population stability index of a top-1 probability histogram.
    confidence: float = 0.1
    # Absolute difference of agreement, und and row-error rates.
    rates: float = 0.05

    def __post_init__(self) -> None:
        for name in ("languages", "confidence", "rates"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"drift threshold {name} must be a number above 0, got {value}")


@dataclass(frozen=True)
class Check:
    """One statistic of the job against the reference."""

    # What is compared: ``languages``, ``confidence``, ``agreement``, ``und rate``, ``error rate``.
    statistic: str
    # Whose: the job's answer (``answer``) or a model's alias.
    of: str
    # How it is measured: ``Jensen-Shannon``, ``PSI`` or ``difference``.
    measure: str
    value: float
    threshold: float
    # The reference's figure and the job's, in words (``en 50% de 50%`` -> ``en 90% de 10%``).
    before: str
    after: str

    @property
    def moved(self) -> bool:
        return self.value > self.threshold

    def __str__(self) -> str:
        sign = ">" if self.moved else "<="
        return (
            f"{self.statistic} of {self.of}: {self.measure} {self.value:.3f} {sign} "
            f"{self.threshold:g} ({self.before} -> {self.after})"
        )


@dataclass(frozen=True)
class Drift:
    """Every check of a job against a reference; ``moved``: those above their threshold."""

    job: str
    reference: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def moved(self) -> list[Check]:
        return [c for c in self.checks if c.moved]

    def __bool__(self) -> bool:
        """True when a statistic moved."""
        return bool(self.moved)

    def line(self) -> str:
        """One line naming what moved and by how much (empty when nothing did)."""
        return "; ".join(
            f"{c.statistic} of {c.of} {c.measure} {c.value:.3f} > {c.threshold:g}"
            for c in self.moved
        )

    def __str__(self) -> str:
        moved = self.moved
        head = (
            f"drift of job {self.job} against {self.reference}: "
            f"{len(moved)} of {len(self.checks)} statistics moved"
        )
        width = max((len(f"{c.statistic} of {c.of}") for c in self.checks), default=10)
        lines = [head]
        for c in self.checks:
            name = f"{c.statistic} of {c.of}"
            mark = "MOVED" if c.moved else "ok"
            lines.append(
                f"  {name:<{width}}  {c.measure:<14} {c.value:6.3f}  (threshold {c.threshold:g})"
                f"  {mark:<5}  {c.before} -> {c.after}"
            )
        return "\n".join(lines)


def compare(
    job: Behaviour,
    reference: Behaviour,
    *,
    thresholds: DriftThresholds | None = None,
    names: tuple[str, str] = ("job", "reference"),
) -> Drift:
    """The :class:`Drift` of ``job``'s behaviour against ``reference``'s: language shares and
    confidence of the answer and of every model both have, agreement, ``und`` and error rates."""
    t = thresholds or DriftThresholds()
    checks: list[Check] = []
    several = len(job.models) > 1 and len(reference.models) > 1
    whose = [(ANSWER, "answer")] + [(m, m) for m in job.models if m in reference.stats]
    for key, label in whose:
        now, then = job.stats.get(key, Stats()), reference.stats.get(key, Stats())
        if key != ANSWER and not several:
            continue  # one model: its stats are the answer's
        if now.answered and then.answered:
            js = js_distance(then.langs, now.langs)
            checks.append(Check("languages", label, "Jensen-Shannon", js, t.languages,
                                then.mix(), now.mix()))  # fmt: skip
            shift = psi(then.prob, now.prob)
            checks.append(Check("confidence", label, "PSI", shift, t.confidence,
                                _mean(then), _mean(now)))  # fmt: skip
    a, r = job.answer, reference.answer
    rates: list[tuple[str, float | None, float | None]] = [
        ("und rate", _share(a.und, a.rows), _share(r.und, r.rows)),
        ("error rate", _share(a.errors, a.rows), _share(r.errors, r.rows)),
    ]
    if several:
        rates.insert(0, ("agreement", a.agreement, r.agreement))
    for name, now_rate, then_rate in rates:
        if now_rate is None or then_rate is None:
            continue
        moved = abs(now_rate - then_rate)
        checks.append(Check(name, "answer", "difference", moved, t.rates,
                            f"{then_rate:.1%}", f"{now_rate:.1%}"))  # fmt: skip
    return Drift(names[0], names[1], tuple(checks))


def js_distance(p: dict[str, int], q: dict[str, int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count tables over their union."""
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(p) | set(q))
    u = np.array([p.get(k, 0) for k in keys], dtype=float)
    v = np.array([q.get(k, 0) for k in keys], dtype=float)
    return float(max(0.0, jensenshannon(u / u.sum(), v / v.sum(), base=2)))


def psi(reference: Sequence[int], current: Sequence[int]) -> float:
    """Population stability index of two histograms on the same bins (shares floored at 1e-4)."""
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    r = np.clip(r / r.sum(), _PSI_FLOOR, None)
    c = np.clip(c / c.sum(), _PSI_FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _share(count: int, rows: int) -> float | None:
    return count / rows if rows else None


def _mean(stats: Stats) -> str:
    mean = stats.expected_accuracy
    return "no answer" if mean is None else f"mean {mean:.2f}"
