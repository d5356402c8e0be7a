"""Consensus settings fitted on labelled results: :class:`Calibration`, and reading its JSON file.

A calibration is fitted by :func:`lidframe.fit_calibration` (``lidframe calibrate``), which lives with
the evaluation because it needs labels and calibration metrics; the consensus only reads one.

The file (JSON, :data:`CALIBRATION_FORMAT`): ``policy``, ``temperatures`` and ``weights`` (per
model alias), ``rows`` (labelled rows fitted), ``report`` (figures for the record) and, from
format 2 on, ``format`` and ``final`` (the map of the final consensus probability,
:class:`~lidframe.consensus.FinalMap`'s :meth:`~lidframe.consensus.FinalMap.to_dict`, or null). A
file without ``format`` is format 1 (before issue 24): it loads with no final map and gives the
same consensus as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec

from lidframe.consensus._final import FinalMap
from lidframe.consensus._settings import ConsensusConfig
from lidframe.errors import ConfigError
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence

__all__ = ["CALIBRATION_FORMAT", "Calibration", "load_calibration"]

# The calibration file's format: 1 had no ``format`` key and no final map; 2 added both.
CALIBRATION_FORMAT = 2


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
    # Figures for the record: accuracy / ECE / NLL on the fitted rows before and after the
    # per-model settings, and (format 2) the k-fold held-out figures of every stage and why the
    # final map was chosen (lidframe.eval.fit_calibration says which keys).
    report: dict[str, Any] = field(default_factory=dict)
    # The map of the consensus's top probability, applied last (None: format 1, or not fitted).
    final: FinalMap | None = None

    def consensus_config(
        self,
        min_prob: float = 0.0,
        equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
        label_counts: Mapping[str, int] | None = None,
    ) -> ConsensusConfig:
        return ConsensusConfig(
            policy=self.policy,
            min_prob=min_prob,
            weights=self.weights,
            temperatures=self.temperatures,
            label_counts=dict(label_counts or {}),
            equivalence=equivalence,
            final=self.final,
        )

    def to_dict(self) -> dict[str, Any]:
        """The file's content (:data:`CALIBRATION_FORMAT`)."""
        data = asdict(self)
        data["final"] = None if self.final is None else self.final.to_dict()
        data["format"] = CALIBRATION_FORMAT
        return data

    def identity(self) -> dict[str, Any]:
        """What a job records of it (its id is derived from it): the fitted values. A calibration
        without a final map records exactly what format 1 recorded, so a job run with an old file
        keeps its id."""
        data = asdict(self)
        if self.final is None:
            del data["final"]
        else:
            data["final"] = self.final.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """From a file's content or :meth:`identity` (a format 1 one has no final map); raises
        :class:`KeyError`, :class:`TypeError` or :class:`ValueError` when it is not one, and
        :class:`ConfigError` when its format is newer than this lidframe reads."""
        version = int(data.get("format", 1))
        if version > CALIBRATION_FORMAT:
            raise ConfigError(
                f"calibration format {version} is newer than this lidframe reads "
                f"({CALIBRATION_FORMAT}): upgrade lidframe"
            )
        final = data.get("final")
        return cls(
            policy=str(data["policy"]),
            temperatures={str(k): float(v) for k, v in data["temperatures"].items()},
            weights={str(k): float(v) for k, v in data["weights"].items()},
            rows=int(data.get("rows", 0)),
            report=dict(data.get("report", {})),
            final=None if final is None else FinalMap.from_dict(final),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        with fsspec.open(os.fspath(path), "w") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)

    def describe(self, saved_to: str | os.PathLike[str]) -> str:
        """What was fitted, as ``lidframe calibrate`` prints it: per model its temperature and
        weight, accuracy, ECE and NLL before and after on the fitted rows, then (format 2) the
        final map, why it was chosen, and the k-fold held-out figures of each stage
        (``saved_to``: where it was saved)."""
        aliases = list(self.temperatures)
        lines = [
            f"calibrated {', '.join(aliases)} on {self.rows} labelled rows -> {os.fspath(saved_to)}"
        ]
        lines += [
            f"  {a}: temperature {self.temperatures[a]:.3f}, weight {self.weights[a]:g}"
            for a in aliases
        ]
        lines.append(
            f"  the {self.policy} consensus of each row's top-k answers, on the fitted rows "
            "(ECE of its probability; `lidframe eval` gives each model's own):"
        )
        for name in ("before", "after"):
            m = self.report[name]
            lines.append(
                f"  {name}: accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f}, NLL {m['nll']:.3f}"
            )
        if self.final is not None:
            lines.append(f"  final map: {self.final.describe()}")
        if self.report.get("chosen"):
            lines.append(f"  chosen: {self.report['chosen']}")
        heldout = self.report.get("heldout")
        if heldout:
            lines.append(
                f"  held out ({heldout['folds']}-fold, {heldout['rows']} rows; NLL and Brier of "
                "the answer being right):"
            )
            for stage, m in heldout["stages"].items():
                lines.append(
                    f"    {stage:<13} accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f}, "
                    f"NLL {m['nll']:.3f}, Brier {m['brier']:.3f}"
                )
        return "\n".join(lines)


def load_calibration(path: str | os.PathLike[str] | Calibration) -> Calibration:
    """Read a calibration JSON file (a :class:`Calibration` passes through)."""
    if isinstance(path, Calibration):
        return path
    return _read_calibration_file(path)


def _read_calibration_file(path: str | os.PathLike[str]) -> Calibration:
    """A calibration JSON file written by ``lidframe calibrate``, checked and typed (format 1 or
    2, see the module).

    Raises :class:`~lidframe.errors.ConfigError` when the file is missing or not a calibration.
    """
    try:
        with fsspec.open(os.fspath(path), "r") as fh:
            data = json.load(fh)
        return Calibration.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"calibration file {path}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"calibration file {path} not found") from exc
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calibration file {path} is not a lidframe calibration: {exc}") from exc
