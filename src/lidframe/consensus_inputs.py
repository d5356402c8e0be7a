"""What the consensus takes in: a model's top-k answer, and settings fitted by a calibration.

Both :mod:`lidframe.consensus` (which combines answers) and :mod:`lidframe.calibration` (which fits
the settings, and so depends on the consensus) read these; keeping them here keeps that dependency
one-way: the consensus reads a calibration file without importing the module that fits it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, Protocol

import fsspec
import numpy as np

from lidframe.errors import ConfigError

__all__ = ["FittedConsensus", "fitted_settings", "read_calibration_file", "topk_pairs"]


def topk_pairs(topk: Any) -> list[tuple[str, float]] | None:
    """One ``{alias}_topk`` cell as ``(lang, prob)`` pairs; None when the model has no answer."""
    if not isinstance(topk, (list, tuple, np.ndarray)):
        return None  # None, NaN or pd.NA: the model has no answer for this row
    pairs = [
        (item["lang"], math.nan if item["prob"] is None else float(item["prob"])) for item in topk
    ]
    return pairs or None


class FittedConsensus(Protocol):
    """Consensus settings fitted on labelled rows (a :class:`~lidframe.calibration.Calibration`)."""

    @property
    def policy(self) -> str: ...

    @property
    def weights(self) -> Mapping[str, float]: ...

    @property
    def temperatures(self) -> Mapping[str, float]: ...


def read_calibration_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of a calibration JSON file written by ``lidframe calibrate``, checked and typed:
    ``policy``, ``temperatures``, ``weights``, ``rows`` and ``report``.

    Raises :class:`~lidframe.errors.ConfigError` when the file is missing or not a calibration.
    """
    try:
        with fsspec.open(os.fspath(path), "r") as fh:
            data = json.load(fh)
        return {
            "policy": str(data["policy"]),
            "temperatures": {str(k): float(v) for k, v in data["temperatures"].items()},
            "weights": {str(k): float(v) for k, v in data["weights"].items()},
            "rows": int(data.get("rows", 0)),
            "report": dict(data.get("report", {})),
        }
    except FileNotFoundError as exc:
        raise ConfigError(f"calibration file {path} not found") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calibration file {path} is not a lidframe calibration: {exc}") from exc


def fitted_settings(
    calibration: FittedConsensus | str | os.PathLike[str],
) -> tuple[str, Mapping[str, float], Mapping[str, float]]:
    """``(policy, weights, temperatures)`` of a fitted calibration, or of its JSON file's path."""
    if isinstance(calibration, (str, os.PathLike)):
        fields = read_calibration_file(calibration)
        return fields["policy"], fields["weights"], fields["temperatures"]
    return calibration.policy, calibration.weights, calibration.temperatures
