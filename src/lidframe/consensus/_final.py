"""The last step of a calibrated consensus: :class:`FinalMap`, from the consensus's top probability
to a probability that means what it says (an answer given at 0.8 is right 80% of the time).

Per-model temperatures and weights (:class:`~lidframe.Calibration`) make each model's
distribution honest, but the combination is not: two models that agree multiply their
confidence whether or not their errors are independent, so the consensus is over-confident
(issue 24: an ECE of about 0.13 on held-out labelled speech after per-model temperatures). A map
fitted on the *final* output fixes what is left. Two kinds, chosen by held-out ECE when the map is
fitted (:func:`lidframe.fit_calibration`):

``temperature``
    one temperature on the final distribution: each candidate's support ``s ** (1/T)``
    renormalised together with the mass the candidates leave out (``1 - sum(s)``, which is 0 for
    ``product``), as the per-model temperature treats a model's left-over mass. One parameter.
``isotonic``
    a non-decreasing map of the top probability alone, fitted by pool-adjacent-violators on
    ``(top probability, answer right)``; stored as knots and interpolated linearly between them
    (constant beyond the first and last). Needs more labelled rows than a temperature.

Both change only the reported probability, never the answer: the row's language is chosen
before the map (and a temperature keeps each row's order of candidates), so accuracy cannot fall.
The isotonic map also keeps the order of rows by probability (a threshold on the calibrated
probability is a threshold on the uncalibrated one); a temperature depends on each row's other
candidates as well. Only ``min_prob`` and a cascade's ``escalate_below`` compare the calibrated
value, which is what a user who says "0.9" means.

Plain Python and NumPy: the map is applied by :func:`~lidframe.consensus.decide` row by row, and
by the frame operations (``_frames``) on a whole pandas or cuDF partition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lidframe.errors import ConfigError

__all__ = ["FINAL_KINDS", "REST_TOLERANCE", "FinalMap", "isotonic_knots"]

FINAL_KINDS = ("temperature", "isotonic")
# Left-over mass below this is rounding (``product`` supports sum to 1 up to the last bits), not
# mass: raised to ``1/T`` for T > 1 it would grow to 1e-7 and differ between two summation orders.
REST_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FinalMap:
    """A fitted map from the consensus's top probability to a calibrated one (see the module)."""

    # One of FINAL_KINDS.
    kind: str
    # ``temperature``: the temperature on the final distribution (1: no change).
    temperature: float = 1.0
    # ``isotonic``: the knots, uncalibrated top probabilities (strictly increasing)...
    x: tuple[float, ...] = ()
    # ...and their calibrated values (non-decreasing, in [0, 1]).
    y: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))
        object.__setattr__(self, "y", tuple(float(v) for v in self.y))
        if self.kind not in FINAL_KINDS:
            raise ConfigError(
                f"final calibration kind must be one of {FINAL_KINDS}, got {self.kind!r}"
            )
        if self.kind == "temperature" and not (
            self.temperature > 0 and math.isfinite(self.temperature)
        ):
            raise ConfigError(f"final temperature must be positive, got {self.temperature!r}")
        if self.kind == "isotonic":
            x, y = np.asarray(self.x), np.asarray(self.y)
            if not (
                x.size >= 1
                and x.size == y.size
                and np.all(np.isfinite(x))
                and np.all(np.isfinite(y))
                and np.all(np.diff(x) > 0)
                and np.all(np.diff(y) >= 0)
                and y.min() >= 0.0
                and y.max() <= 1.0
            ):
                raise ConfigError(
                    "isotonic final calibration needs knots x (strictly increasing) and y "
                    "(non-decreasing, in [0, 1]) of the same length"
                )

    def prob(self, best: float, supports: Iterable[float]) -> float:
        """The calibrated probability of one row whose answer has support ``best`` among the
        candidates' ``supports`` (all of them, the answer's included). NaN stays NaN."""
        if math.isnan(best):
            return best
        if self.kind == "isotonic":
            return float(np.interp(best, self.x, self.y))
        if self.temperature == 1.0:
            return best
        values = [max(float(s), 0.0) for s in supports]
        rest = 1.0 - sum(values)
        rest = rest if rest > REST_TOLERANCE else 0.0
        power = 1.0 / self.temperature
        norm = sum(v**power for v in values) + rest**power
        return min(1.0, max(0.0, best**power / norm)) if norm > 0 else best

    def top(self, best: Any, scaled: Any = None) -> Any:
        """The calibrated probabilities of many rows (an array or a pandas/cuDF column).

        ``isotonic`` needs only ``best``; ``temperature`` also ``scaled``: per row the sum of
        every candidate's ``s ** (1/T)`` plus ``rest ** (1/T)`` (:meth:`power`)."""
        if self.kind == "isotonic":
            return _interp(best, self.x, self.y)
        if self.temperature == 1.0:
            return best
        return (best.clip(lower=0.0) ** self.power() / scaled).clip(lower=0.0, upper=1.0)

    def power(self) -> float:
        """``1 / T`` (``temperature`` maps)."""
        return 1.0 / self.temperature

    def to_dict(self) -> dict[str, Any]:
        """As saved in a calibration file."""
        if self.kind == "temperature":
            return {"kind": self.kind, "temperature": self.temperature}
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalMap:
        """From :meth:`to_dict`'s form (a :class:`ConfigError` when it is not one)."""
        try:
            return cls(
                kind=str(data["kind"]),
                temperature=float(data.get("temperature", 1.0)),
                x=tuple(float(v) for v in data.get("x", ())),
                y=tuple(float(v) for v in data.get("y", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a final calibration map: {exc}") from exc

    def describe(self) -> str:
        if self.kind == "temperature":
            return f"temperature {self.temperature:.3f} on the final distribution"
        return f"isotonic ({len(self.x)} knots)"


def isotonic_knots(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing fit of ``correct`` (0/1) on ``confidence``
    minimising the squared error, as knots ``(x, y)``: one per pooled block, at the mean
    confidence of its rows, with the block's accuracy. Rows with the same confidence are pooled
    first (a map is a function), and NaN confidences are left out.
    """
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    keep = np.isfinite(conf)
    conf, hit = conf[keep], hit[keep]
    if conf.size == 0:
        raise ConfigError("isotonic calibration needs rows with a probability")
    xs, inverse = np.unique(conf, return_inverse=True)
    weights = np.bincount(inverse).astype(float)
    sums = np.bincount(inverse, weights=hit)
    # Blocks as a stack: each (weight, sum of y, sum of weighted x); merge while the last two
    # blocks' means decrease.
    w: list[float] = []
    s: list[float] = []
    sx: list[float] = []
    for wi, si, xi in zip(weights, sums, xs * weights, strict=True):
        w.append(float(wi))
        s.append(float(si))
        sx.append(float(xi))
        while len(w) > 1 and s[-2] / w[-2] >= s[-1] / w[-1]:
            wl, sl, xl = w.pop(), s.pop(), sx.pop()
            w[-1] += wl
            s[-1] += sl
            sx[-1] += xl
    weight = np.asarray(w)
    return np.asarray(sx) / weight, np.clip(np.asarray(s) / weight, 0.0, 1.0)


def _interp(values: Any, x: Sequence[float], y: Sequence[float]) -> Any:
    """``np.interp`` of a NumPy array, or a pandas or cuDF column (NaN stays NaN)."""
    if isinstance(values, np.ndarray):
        return np.interp(values, x, y)
    from lidframe.dataframes import is_cudf

    if is_cudf(values):
        import cupy

        out = cupy.interp(values.values, cupy.asarray(x), cupy.asarray(y))
        return type(values)(out, index=values.index).where(values.notna())
    import pandas as pd

    array = values.to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(np.interp(array, x, y), index=values.index).where(values.notna())
