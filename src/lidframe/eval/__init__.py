"""Evaluation against ground truth: metrics (:mod:`~lidframe.eval.metrics`) and
:func:`~lidframe.eval.evaluate.evaluate` over a run's results."""

from lidframe.eval.evaluate import Evaluation, SourceEvaluation, evaluate, known_label_set
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
    "known_label_set",
    "render_report",
]
