"""Watching what a job's models say: drift against a reference, and the worker that answers
differently from the rest of the fleet.

It works on :class:`lidframe.store.Behaviour`, the summaries every partition's task stores with its
rows (:mod:`lidframe.store.behaviour`), summed by SQL: nothing here reads result rows, so each check
costs the same at any job size and can run while the job works. Modules:

* ``_drift``: :func:`compare` of two behaviours, :class:`Drift` (every :class:`Check`, which moved)
  and :class:`DriftThresholds` (defaults from drift tools' practice: Jensen-Shannon 0.1 on language
  shares, PSI 0.1 on confidence, five points on rates).
* ``_fleet``: :func:`outliers`, the workers whose answers depart from the others'
  (:class:`Outlier`), judged with :class:`FleetThresholds`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.observe._drift import Check, Drift, DriftThresholds, compare
    from lidframe.observe._fleet import FleetThresholds, Outlier, outliers

_EXPORTS = {
    "Check": "lidframe.observe._drift",
    "Drift": "lidframe.observe._drift",
    "DriftThresholds": "lidframe.observe._drift",
    "FleetThresholds": "lidframe.observe._fleet",
    "Outlier": "lidframe.observe._fleet",
    "compare": "lidframe.observe._drift",
    "outliers": "lidframe.observe._fleet",
}
__all__ = [
    "Check",
    "Drift",
    "DriftThresholds",
    "FleetThresholds",
    "Outlier",
    "compare",
    "outliers",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
