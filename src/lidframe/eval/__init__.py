"""Evaluation against ground truth: metrics (:mod:`~lidframe.eval.metrics`) and
:func:`~lidframe.eval.evaluate.evaluate` over a run's results."""

from lidframe.eval.evaluate import Evaluation, SourceEvaluation, evaluate, recorded_label_sets
from lidframe.eval.metrics import expected_calibration_error
from lidframe.eval.regressions import Comparison, compare
from lidframe.eval.report import render_report

__all__ = [
    "Comparison",
    "Evaluation",
    "SourceEvaluation",
    "compare",
    "evaluate",
    "expected_calibration_error",
    "recorded_label_sets",
    "render_report",
]
