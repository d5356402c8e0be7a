"""The worker that answers differently: each worker's behaviour against the rest of the fleet's.

A node with a broken GPU, another CUDA build, a truncated weights file or a new decoder shifts the
answers of every partition it takes. Each worker's summed behaviour (its partitions' stored
summaries, :meth:`lidframe.store.JobStore.behaviour` with ``by_worker``) is compared, with
:func:`~lidframe.observe.compare`, against the sum of every other worker's: a worker is an outlier
when a statistic moved beyond :class:`FleetThresholds`.

The thresholds are looser than drift's against a reference: a worker sees a sample of the job (the
partitions the scheduler gave it), so its language shares differ from the fleet's by chance, the
more so the fewer rows it answered; a worker is judged only once it and the rest each have
``min_rows`` rows. A manifest sorted by language (one folder per language) with few partitions per
worker can make an honest worker stand out: the check assumes partitions reach workers in no order
related to their content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lidframe.errors import ConfigError
from lidframe.observe._drift import Drift, DriftThresholds, compare
from lidframe.store.behaviour import Behaviour

__all__ = ["FleetThresholds", "Outlier", "outliers"]


@dataclass(frozen=True)
class FleetThresholds:
    """When a worker answers differently from the rest of the fleet."""

    # Jensen-Shannon distance (base 2) between its language shares and the rest's.
    languages: float = 0.2
    # PSI between its top-1 probability histograms and the rest's.
    confidence: float = 0.25
    # Absolute difference of agreement, und and row-error rates.
    rates: float = 0.1
    # Rows the worker, and the rest of the fleet, must have before it is judged.
    min_rows: int = 200

    def __post_init__(self) -> None:
        if not (isinstance(self.min_rows, int) and self.min_rows >= 1):
            raise ConfigError(f"fleet min_rows must be at least 1, got {self.min_rows}")
        self.drift()  # the three thresholds checked as drift's

    def drift(self) -> DriftThresholds:
        return DriftThresholds(self.languages, self.confidence, self.rates)


@dataclass(frozen=True)
class Outlier:
    """A worker whose answers departed from the rest of the fleet's."""

    worker: str
    host: str | None
    # The other workers judged against (their number).
    others: int
    drift: Drift
    # The worker's environment in a phrase: what differs from the job's environment
    # (``soxr 1.0.0 != 1.1.0 of the job``) or ``the job's (DIGEST)`` (lidframe.environment).
    # outliers() knows only the behaviour; the driver and ``lidframe status``, which know each
    # worker's fingerprint, set it with ``dataclasses.replace(outlier, environment=...)``.
    environment: str | None = None

    def __str__(self) -> str:
        where = f"host {self.host or '?'}"
        if self.environment:
            where += f", environment {self.environment}"
        return (
            f"worker {self.worker} ({where}) answers differently from the other "
            f"{self.others} worker(s): {self.drift.line()}"
        )


def outliers(
    by_worker: Mapping[str | None, Behaviour], thresholds: FleetThresholds | None = None
) -> list[Outlier]:
    """The workers of ``by_worker`` (``{worker: its partitions' behaviour}``) that answer
    differently from the sum of the others.

    One at a time, the furthest first (its largest statistic over its threshold), each judged
    against the workers not yet named: a damaged worker does not make the healthy ones look odd by
    being part of their "rest". Only workers with ``min_rows`` rows take part, and a worker is
    named only while three or more are left, so there is a majority to depart from (with two,
    either could be the odd one).
    """
    t = thresholds or FleetThresholds()
    # Workers with too few rows are left out of the rest too: one that is odd but young would
    # otherwise make an honest one look odd against a rest it spoils.
    left = {w: b for w, b in by_worker.items() if w is not None and b.answer.rows >= t.min_rows}
    found: list[Outlier] = []
    while len(left) >= 3:
        worst: tuple[float, str, Drift] | None = None
        fleet = Behaviour()
        for b in left.values():
            fleet += b
        for worker in sorted(left):
            own = left[worker]
            rest = fleet.minus(own)  # one pass over the workers, not one per worker
            drift = compare(own, rest, thresholds=t.drift(), names=(worker, "the other workers"))
            score = max((c.value / c.threshold for c in drift.checks), default=0.0)
            if drift and (worst is None or score > worst[0]):
                worst = (score, worker, drift)
        if worst is None:
            break
        _, worker, drift = worst
        found.append(Outlier(worker, left[worker].host, len(left) - 1, drift))
        del left[worker]
    return found
