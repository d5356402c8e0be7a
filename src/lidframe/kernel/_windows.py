"""A long file's windows: from each window's answer to the row's answer, its windows and code switches.

A row without ``duration`` whose file is longer than one window is heard in up to ``max_windows``
windows spread over the file (:func:`lidframe.audio.decode_windows`); each window goes through
voice activity and the models like a clip of its own. Here their answers become the row's:

* the row's probabilities are the windows' probabilities weighted by each window's seconds of
  speech (:func:`combine`), so a window of music or silence weighs nothing and a leading intro never
  decides a file's language; windows without speech are ``und`` and take no part;
* ``{alias}_windows`` lists every window as ``{start, end, lang, prob}`` (:func:`window_list`);
* ``code_switch`` is true when a model's *confident* windows disagree: windows with at least
  :data:`SWITCH_MIN_SPEECH` seconds of speech and a top-1 probability of at least
  :data:`SWITCH_MIN_PROB` (:func:`switches`); with several models, when most models that judged two
  or more confident windows see a switch. Null when fewer than two windows had speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lidframe.speech import Heard

__all__ = [
    "SWITCH_MIN_PROB",
    "SWITCH_MIN_SPEECH",
    "HeardWindow",
    "code_switch",
    "combine",
    "switches",
    "window_list",
]

# A window takes part in code-switch detection with at least this top-1 probability...
SWITCH_MIN_PROB = 0.5
# ...and at least this many seconds of speech.
SWITCH_MIN_SPEECH = 2.0


@dataclass(frozen=True)
class HeardWindow:
    """One window of a row as the models hear it."""

    # Start and end of the window in the file, seconds.
    start: float
    end: float
    heard: Heard
    # Features per model (or that model's prepare error); None: no speech in the window.
    prepared: list[Any] | None

    @property
    def weight(self) -> float:
        """How much the window counts in the row's answer: its seconds of speech."""
        if self.heard.speech_seconds is not None:
            return self.heard.speech_seconds
        return self.heard.audio_seconds


def combine(answers: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The speech-weighted mean of the windows' probabilities (the row's probabilities)."""
    if len(answers) == 1:
        return answers[0]
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    return (np.stack(answers).astype(np.float64) * w[:, None]).sum(axis=0).astype(np.float32)


def window_list(
    windows: Sequence[HeardWindow],
    answers: Sequence[np.ndarray | None],
    labels: Sequence[str],
    und: str,
) -> list[dict[str, Any]]:
    """``{start, end, lang, prob}`` per window (``und`` and a null prob where there was no speech)."""
    out = []
    for window, answer in zip(windows, answers, strict=True):
        if answer is None:
            lang, prob = und, None
        else:
            top = int(np.argmax(answer))
            lang, prob = labels[top], float(answer[top])
        out.append(
            {
                "start": round(window.start, 3),
                "end": round(window.end, 3),
                "lang": lang,
                "prob": prob,
            }
        )
    return out


def switches(windows: Sequence[HeardWindow], listed: Sequence[dict[str, Any]]) -> bool | None:
    """Whether one model's confident windows disagree (``listed``: its :func:`window_list`); None
    when it judged fewer than two."""
    spoken = [w for w in listed if w["prob"] is not None]
    if len(spoken) < 2:
        return None
    confident = {
        w["lang"]
        for window, w in zip(windows, listed, strict=True)
        if w["prob"] is not None
        and w["prob"] >= SWITCH_MIN_PROB
        and window.weight >= SWITCH_MIN_SPEECH
    }
    return len(confident) > 1


def code_switch(per_model: Sequence[bool | None]) -> bool | None:
    """The row's ``code_switch`` from each model's :func:`switches` (None where it could not say)."""
    said = [s for s in per_model if s is not None]
    if not said:
        return None
    return sum(said) * 2 > len(said)
