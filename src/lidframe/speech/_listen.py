"""What the models hear of one decoded clip: its speech only, or nothing (``und``).

* a clip with less than ``min_speech`` seconds of speech is *no speech*: every model's language is
  ``und`` and no model runs (an answer, not an error);
* otherwise the models hear only the speech: leading and trailing silence and pauses longer than
  ``keep_gap`` are cut, the rest joined (:func:`~lidframe.speech.speech_only`);
* ``context`` says how much encoder context a model whose input has a fixed length (Whisper's
  30 s) is given: the frames the speech needs, rounded up to a few lengths, but at least
  :data:`SPEECH_CONTEXT` seconds, and for speech shorter than :data:`SHORT_SPEECH` the whole clip
  as decoded at the full 30 s, as ``full`` (``speech``); at least the seconds given (a number); or
  ``full`` (the whole clip as decoded, padded to 30 s: the numbers of faster-whisper's
  ``detect_language``).

:func:`listen` is called once per clip, in a decode thread; :class:`SpeechConfig` (``_config``) is
the part of a run's settings it reads (every field changes results, so every field is part of the
job's identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lidframe.speech._config import SpeechConfig
from lidframe.speech._vad import VadConfig, speech_only, speech_regions, speech_seconds

__all__ = ["Heard", "listen"]


@dataclass(frozen=True)
class Heard:
    """One clip as the models will hear it."""

    # The waveform the models get (the speech only, or the clip whole).
    wave: np.ndarray
    # Seconds of audio decoded for the row.
    audio_seconds: float
    # Seconds of speech found in them (None without voice activity detection).
    speech_seconds: float | None
    # Less speech than ``min_speech``: every model's answer is ``und`` and no model runs.
    no_speech: bool


def listen(wave: np.ndarray, config: SpeechConfig, sample_rate: int = 16_000) -> Heard:
    """Find the speech of one decoded clip and cut what the models should hear (thread-safe)."""
    seconds = len(wave) / sample_rate
    if not config.vad:
        return Heard(wave, seconds, None, False)
    vad = VadConfig(threshold=config.threshold)
    regions = speech_regions(wave, vad, sample_rate)
    found = speech_seconds(regions, sample_rate)
    if config.min_speech > 0 and found < config.min_speech:
        return Heard(wave[:0], seconds, found, True)
    if not regions or config.context_for(found) is None:
        # Full context hears the clip as decoded; so does speech too short for a least context:
        # Whisper answers under 1 s of speech better with the clip's own silence around it (real
        # prompts: 53.2% against 50.7% cut to the speech, benchmarks/RESULTS.md).
        return Heard(wave, seconds, found, False)
    heard = speech_only(wave, regions, keep_gap_s=config.keep_gap, sample_rate=sample_rate)
    return Heard(heard, seconds, found, False)
