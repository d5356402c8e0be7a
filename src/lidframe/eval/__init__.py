"""Evaluation against ground truth (grows with the evaluation framework)."""

from lidframe.eval.metrics import expected_calibration_error

__all__ = ["expected_calibration_error"]
