"""Watching what a job's models say: drift against a reference, and (to come) the worker that
answers differently and metrics for operators' tools.

It works on :class:`lidframe.store.Behaviour`, the summaries every partition's task stores with its
rows (:mod:`lidframe.store.behaviour`), summed by SQL: nothing here reads result rows, so each check
costs the same at any job size and can run while the job works. Modules:

* ``_drift``: :func:`compare` of two behaviours, :class:`Drift` (every :class:`Check`, which moved)
  and :class:`DriftThresholds` (defaults from drift tools' practice: Jensen-Shannon 0.1 on language
  shares, PSI 0.1 on confidence, five points on rates).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.observe._drift import Check, Drift, DriftThresholds, compare

_EXPORTS = {
    "Check": "lidframe.observe._drift",
    "Drift": "lidframe.observe._drift",
    "DriftThresholds": "lidframe.observe._drift",
    "compare": "lidframe.observe._drift",
}
__all__ = ["Check", "Drift", "DriftThresholds", "compare"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
