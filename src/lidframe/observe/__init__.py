"""Watching what a job's models say: drift against a reference, the worker that answers
differently from the rest of the fleet, and metrics for operators' tools.

It works on :class:`lidframe.store.Behaviour`, the summaries every partition's task stores with its
rows (:mod:`lidframe.store.behaviour`), summed by SQL: nothing here reads result rows, so each check
costs the same at any job size and can run while the job works. Modules:

* ``_drift``: :func:`compare` of two behaviours, :class:`Drift` (every :class:`Check`, which moved)
  and :class:`DriftThresholds` (defaults from drift tools' practice: Jensen-Shannon 0.1 on language
  shares, PSI 0.1 on confidence, five points on rates).
* ``_fleet``: :func:`outliers`, the workers whose answers depart from the others'
  (:class:`Outlier`), judged with :class:`FleetThresholds`.
* ``_metrics``: :func:`serve_metrics`, a Prometheus endpoint (``prometheus_client``) reading a
  running job's :class:`JobMetrics` when scraped, to requests carrying its token (:func:`metrics_token`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.observe._drift import Check, Drift, DriftThresholds, compare
    from lidframe.observe._fleet import FleetThresholds, Outlier, outliers
    from lidframe.observe._metrics import (
        JobMetrics,
        MetricsServer,
        MetricsToken,
        metrics_token,
        serve_metrics,
    )

_EXPORTS = {
    "Check": "lidframe.observe._drift",
    "Drift": "lidframe.observe._drift",
    "DriftThresholds": "lidframe.observe._drift",
    "FleetThresholds": "lidframe.observe._fleet",
    "JobMetrics": "lidframe.observe._metrics",
    "MetricsServer": "lidframe.observe._metrics",
    "MetricsToken": "lidframe.observe._metrics",
    "Outlier": "lidframe.observe._fleet",
    "compare": "lidframe.observe._drift",
    "metrics_token": "lidframe.observe._metrics",
    "outliers": "lidframe.observe._fleet",
    "serve_metrics": "lidframe.observe._metrics",
}
__all__ = [
    "Check",
    "Drift",
    "DriftThresholds",
    "FleetThresholds",
    "JobMetrics",
    "MetricsServer",
    "MetricsToken",
    "Outlier",
    "compare",
    "metrics_token",
    "outliers",
    "serve_metrics",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
