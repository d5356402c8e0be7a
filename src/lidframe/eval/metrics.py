"""Metrics over labelled rows: plain NumPy, checked in tests against an independent computation."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["expected_calibration_error"]


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width confidence bins: sum over bins of |accuracy - confidence| x share.

    A confidence of exactly 0 falls in the first bin and 1 in the last. Rows with a NaN confidence
    are left out. Returns NaN when no row is left.
    """
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    keep = np.isfinite(conf)
    conf, hit = conf[keep], hit[keep]
    if conf.size == 0:
        return float("nan")
    index = np.clip((conf * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return float(total)
