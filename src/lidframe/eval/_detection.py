"""No speech as a detection task: rows whose ground truth is ``und`` (no language: silence, tones,
music) against the sources' ``und`` answers.

Rows labelled ``und`` (``zxx`` reads as ``und``: :func:`lidframe.languages.label_code`) are no
language, so they are left out of every language figure (accuracy, macro-F1, per-language table,
calibration); they are scored here instead, per source, over the labelled rows without an
``error``:

* a positive answer is the source's answer ``und`` (for the consensus too, whatever made it
  ``und``: what a reader of the results sees is no language); a model a cascade did not ask (no
  answer) is no positive answer;
* ``tp``: labelled ``und``, answered ``und``; ``fp``: labelled with a language, answered ``und``
  (also a miss in accuracy); ``fn``: labelled ``und``, answered a language;
* precision ``tp / (tp + fp)`` and recall ``tp / (tp + fn)``, NaN where undefined. Without a scored
  row labelled ``und`` both are NaN: a precision of 0 would only restate that the ``und`` answers
  on speech are misses, which accuracy and the no-speech rate already say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lidframe.languages import NO_LANGUAGE

__all__ = ["NoSpeechDetection", "detect_no_speech", "detection_table", "detection_text"]


@dataclass(frozen=True)
class NoSpeechDetection:
    """One source's no-speech detection: counts over the labelled rows without an error."""

    labelled: int  # rows labelled und, errors included
    errors: int  # rows labelled und with an error (no answer: not scored)
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        answered = self.tp + self.fp
        return self.tp / answered if answered and self.tp + self.fn else math.nan

    @property
    def recall(self) -> float:
        scored = self.tp + self.fn
        return self.tp / scored if scored else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "errors": self.errors,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
        }


def detect_no_speech(
    truth: np.ndarray, predicted: np.ndarray, labelled: np.ndarray, errors: np.ndarray
) -> NoSpeechDetection:
    """The counts of one source: ``truth`` and ``predicted`` are equivalence keys (None: no label,
    no answer) over every row; ``labelled``: rows with any label, ``und`` included."""
    silent = labelled & (truth == NO_LANGUAGE)
    said = np.array([x == NO_LANGUAGE for x in predicted], dtype=bool)
    scored = labelled & ~errors
    return NoSpeechDetection(
        labelled=int(silent.sum()),
        errors=int((silent & errors).sum()),
        tp=int((scored & silent & said).sum()),
        fp=int((scored & ~silent & said).sum()),
        fn=int((scored & silent & ~said).sum()),
    )


def detection_table(found: Mapping[str, NoSpeechDetection]) -> pd.DataFrame:
    """One row per source: labelled, errors, tp, fp, fn, precision, recall."""
    table = pd.DataFrame([d.summary() for d in found.values()])
    table.index = pd.Index(list(found), name="source")
    return table


def detection_text(found: Mapping[str, NoSpeechDetection]) -> str:
    """The detection table as text, with its heading; empty when no row is labelled ``und``."""
    if not found or not any(d.labelled for d in found.values()):
        return ""
    table = detection_table(found).drop(columns="errors")
    first = next(iter(found.values()))
    errors = f", {first.errors} with an error (no answer)" if first.errors else ""
    text = table.to_string(float_format=lambda x: f"{x:.3f}", na_rep="n/a")
    return (
        f"no speech (label und) as a detection task, positive = und: {first.labelled} rows "
        f"labelled und{errors}\n{text}"
    )
