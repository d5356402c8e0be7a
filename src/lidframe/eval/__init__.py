"""Evaluation against ground truth: scores, calibration, comparison of runs, and the report.

Results are a results folder or a frame with the same columns; ground truth is their own ``label``
column or a labelled manifest joined by ``id``, and the job's reviewed labels where neither has one.
Scores are per source (each model and the consensus), per language and overall, with calibration
(ECE, Brier, reliability) and the confidence that reaches a target accuracy. Unlabelled results
still get the predicted-language distribution. Modules, each importing only those above it:

* ``_metrics``: the scores as frame operations (pandas or cuDF): accuracy, per-language table,
  confusions, calibration, coverage.
* ``_inputs``: what an evaluation reads (results, labels) and codes as comparable keys.
* ``_answers``, ``_speech_stats``, ``_display``, ``_run_info``: the answers per source, the speech
  columns, display helpers and what the run says of itself.
* ``_detection``: rows labelled ``und`` (no speech) scored as a detection task, apart from the
  languages; ``_by_columns``, ``_groups``: the columns to score by (the results' own or the
  manifest's, joined by ``id``) and the per-group tables.
* ``_reviewed``: the job's reviewed labels (:mod:`lidframe.review`) for rows without a label.
* ``_calibration_check``: the consensus before and after a calibration (given, or applied by the
  run), for the evaluation and its report.
* ``_evaluate``: :func:`evaluate` -> :class:`Evaluation`.
* ``_text``, ``_records``: the evaluation as text, and saved as JSON and a database row.
* ``_regressions``: :func:`compare`, two runs on the same rows (McNemar's test).
* ``_calibrate``: :func:`fit_calibration`, temperatures and weights of the consensus and the map of
  its final probability fitted on labelled results, with k-fold held-out figures (it needs labels
  and ECE, so it lives here; the consensus reads the result).
* ``report/``: the HTML report.

Names are imported on first use: ``import lidframe.eval`` does not load matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.eval._calibrate import calibrate_results, evaluate_consensus, fit_calibration
    from lidframe.eval._detection import NoSpeechDetection
    from lidframe.eval._evaluate import (
        Evaluation,
        SourceEvaluation,
        evaluate,
        recorded_label_sets,
    )
    from lidframe.eval._metrics import expected_calibration_error
    from lidframe.eval._records import save_evaluation
    from lidframe.eval._regressions import Comparison, compare, compare_results
    from lidframe.eval._text import evaluation_text, stored_text
    from lidframe.eval.report import render_report, write_report

_EXPORTS = {
    "Comparison": "lidframe.eval._regressions",
    "Evaluation": "lidframe.eval._evaluate",
    "NoSpeechDetection": "lidframe.eval._detection",
    "SourceEvaluation": "lidframe.eval._evaluate",
    "calibrate_results": "lidframe.eval._calibrate",
    "compare": "lidframe.eval._regressions",
    "compare_results": "lidframe.eval._regressions",
    "evaluate": "lidframe.eval._evaluate",
    "evaluate_consensus": "lidframe.eval._calibrate",
    "evaluation_text": "lidframe.eval._text",
    "expected_calibration_error": "lidframe.eval._metrics",
    "fit_calibration": "lidframe.eval._calibrate",
    "recorded_label_sets": "lidframe.eval._evaluate",
    "render_report": "lidframe.eval.report",
    "save_evaluation": "lidframe.eval._records",
    "stored_text": "lidframe.eval._text",
    "write_report": "lidframe.eval.report",
}
__all__ = [
    "Comparison",
    "Evaluation",
    "NoSpeechDetection",
    "SourceEvaluation",
    "calibrate_results",
    "compare",
    "compare_results",
    "evaluate",
    "evaluate_consensus",
    "evaluation_text",
    "expected_calibration_error",
    "fit_calibration",
    "recorded_label_sets",
    "render_report",
    "save_evaluation",
    "stored_text",
    "write_report",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
