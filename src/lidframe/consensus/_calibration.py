"""Consensus settings fitted on labelled results: :class:`Calibration`, and reading its JSON file.

A calibration is fitted by :func:`lidframe.fit_calibration` (``lidframe calibrate``), which lives with
the evaluation because it needs labels and calibration metrics; the consensus only reads one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec

from lidframe.consensus._settings import ConsensusConfig
from lidframe.errors import ConfigError
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence

__all__ = ["Calibration", "load_calibration"]


@dataclass(frozen=True)
class Calibration:
    """Fitted consensus settings; saved as JSON."""

    # The consensus policy the weights were fitted for.
    policy: str
    # Per-model temperature and weight, by column alias.
    temperatures: dict[str, float]
    weights: dict[str, float]
    # Labelled rows used for the fit.
    rows: int
    # Accuracy / ECE / NLL on the fitted rows, before and after (for the record).
    report: dict[str, Any] = field(default_factory=dict)

    def consensus_config(
        self, min_prob: float = 0.0, equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE
    ) -> ConsensusConfig:
        return ConsensusConfig(
            policy=self.policy,
            min_prob=min_prob,
            weights=self.weights,
            temperatures=self.temperatures,
            equivalence=equivalence,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        with fsspec.open(os.fspath(path), "w") as fh:
            json.dump(asdict(self), fh, indent=2, sort_keys=True)

    def describe(self, saved_to: str | os.PathLike[str]) -> str:
        """What was fitted, as ``lidframe calibrate`` prints it: per model its temperature and
        weight, then accuracy, ECE and NLL before and after (``saved_to``: where it was saved)."""
        aliases = list(self.temperatures)
        lines = [
            f"calibrated {', '.join(aliases)} on {self.rows} labelled rows -> {os.fspath(saved_to)}"
        ]
        lines += [
            f"  {a}: temperature {self.temperatures[a]:.3f}, weight {self.weights[a]:g}"
            for a in aliases
        ]
        for name in ("before", "after"):
            m = self.report[name]
            lines.append(
                f"  {name}: accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f}, NLL {m['nll']:.3f}"
            )
        return "\n".join(lines)


def load_calibration(path: str | os.PathLike[str] | Calibration) -> Calibration:
    """Read a calibration JSON file (a :class:`Calibration` passes through)."""
    if isinstance(path, Calibration):
        return path
    return Calibration(**_read_calibration_file(path))


def _read_calibration_file(path: str | os.PathLike[str]) -> dict[str, Any]:
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
