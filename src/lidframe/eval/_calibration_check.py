"""The consensus before and after a calibration, on the evaluated rows: what the report's
calibration section draws (issue 24).

A calibration is *given* (``evaluate(calibration=FILE)``) or was *applied* by the run (its
fitted values are in the results' provenance, as the job recorded them in its settings). Either
way the consensus is recomputed from the models' ``{alias}_topk`` columns twice, by the same code
a run uses (:func:`~lidframe.consensus.consensus_frame`): *before*, the calibration's policy alone
(no temperatures, weights or final map); *after*, the calibration. Scored on the rows labelled with
a language and without an error, as the consensus source is: accuracy, ECE, Brier, the
reliability table, and the threshold curve of the calibrated probability (per threshold, the
share of rows kept and their accuracy), from which a user picks the threshold that gives the
precision they need. Without a calibration, or without the ``{alias}_topk`` columns it needs,
there is no check (and a note says why when one was given).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lidframe.consensus import Calibration, ConsensusConfig, consensus_frame, load_calibration
from lidframe.eval import _metrics as metrics
from lidframe.eval._inputs import keys
from lidframe.languages import LanguageEquivalence

__all__ = ["THRESHOLDS", "CalibrationCheck", "applied_calibration", "calibration_check"]

# Thresholds of the calibrated probability the threshold curve is drawn at.
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 201), 3)


@dataclass
class CalibrationCheck:
    """The consensus before and after a calibration on the scored rows (see the module)."""

    # Where the calibration came from: "given: FILE" or "applied by the run".
    origin: str
    calibration: Calibration
    # Rows scored (labelled with a language, no error).
    rows: int
    # accuracy, ece, brier of each.
    before: dict[str, float]
    after: dict[str, float]
    before_reliability: pd.DataFrame
    after_reliability: pd.DataFrame
    # Per threshold of the calibrated probability: rows kept, coverage (their share), accuracy.
    thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)

    def threshold_for(self, precision: float) -> dict[str, float] | None:
        """The lowest calibrated-probability threshold whose kept rows are right at least
        ``precision`` of the time (the most rows kept); None when none is."""
        return metrics.threshold_for_accuracy(self.thresholds, precision)

    def summary(self) -> dict[str, Any]:
        final = self.calibration.final
        return {
            "origin": self.origin,
            "rows": self.rows,
            "final": None if final is None else final.describe(),
            "before": self.before,
            "after": self.after,
        }


def applied_calibration(results: Any, options: Mapping[str, Any], attrs: Mapping[str, Any]) -> Any:
    """The calibration a run applied, from its results' provenance (the job's recorded settings);
    None when the run had none or the provenance does not say."""
    from lidframe.errors import LidframeError
    from lidframe.eval._run_info import PROVENANCE_ATTR
    from lidframe.results import read_provenance

    record: Mapping[str, Any] = attrs.get(PROVENANCE_ATTR) or {}
    if not hasattr(results, "columns"):
        try:
            record = read_provenance(os.fspath(results), options)
        except LidframeError:
            return None
    recorded = (record.get("settings") or {}).get("calibration")
    if not isinstance(recorded, Mapping):
        return None
    try:
        return Calibration.from_dict(recorded)
    except (LidframeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def calibration_check(
    df: pd.DataFrame,
    truth: np.ndarray,
    scored: np.ndarray,
    calibration: Any,
    origin: str,
    equivalence: LanguageEquivalence,
    label_sets: Mapping[str, Any],
    bins: int,
    names: Mapping[str, str] | None = None,
) -> tuple[CalibrationCheck | None, str | None]:
    """The check of ``calibration`` (a :class:`Calibration` or its file) on the ``scored`` rows of
    ``df`` (``truth``: their equivalence keys, shown by ``names`` as
    :func:`~lidframe.eval._inputs.keys` gives them); or None and a note saying why there is
    none."""
    from lidframe.columns import model_columns

    cal = load_calibration(calibration)
    aliases = list(cal.temperatures)
    missing = [model_columns(a)[2] for a in aliases if model_columns(a)[2] not in df.columns]
    if not aliases or missing:
        return None, (
            f"The calibration ({origin}) is not checked: the results have no "
            f"{', '.join(missing) or 'model'} column to recompute the consensus from."
        )
    counts = {a: len(codes) for a, codes in label_sets.items() if a in aliases}
    rows = df.loc[scored]
    plain = ConsensusConfig(cal.policy, label_counts=counts, equivalence=equivalence)
    calibrated = cal.consensus_config(equivalence=equivalence, label_counts=counts)
    t = truth[scored]
    figures, tables, confidence, right = {}, {}, {}, {}
    for name, config in (("before", plain), ("after", calibrated)):
        out = consensus_frame(rows, aliases, config)
        conf = out["consensus_prob"].to_numpy(dtype=float)
        hit = keys(out["lang"], equivalence, names) == t
        confidence[name], right[name] = conf, hit
        figures[name] = {
            "accuracy": float(hit.mean()) if hit.size else float("nan"),
            "ece": metrics.expected_calibration_error(conf, hit, bins),
            "brier": metrics.brier_score(conf, hit),
        }
        tables[name] = metrics.reliability(conf, hit, bins)
    check = CalibrationCheck(
        origin=origin,
        calibration=cal,
        rows=int(scored.sum()),
        before=figures["before"],
        after=figures["after"],
        before_reliability=tables["before"],
        after_reliability=tables["after"],
        thresholds=metrics.coverage_curve(confidence["after"], right["after"], THRESHOLDS),
    )
    return check, None
