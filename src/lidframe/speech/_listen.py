"""What the models hear of one decoded clip: its speech only, or nothing (``und``).

* a clip with less than ``min_speech`` seconds of speech is *no speech*: every model's language is
  ``und`` and no model runs (an answer, not an error);
* otherwise the models hear only the speech: leading and trailing silence and pauses longer than
  ``keep_gap`` are cut, the rest joined (:func:`~lidframe.speech.speech_only`);
* ``context`` says how much encoder context a model whose input has a fixed length (Whisper's
  30 s) is given: the frames the speech needs, rounded up to a few lengths, but at least
  :data:`SPEECH_CONTEXT` seconds (``speech``) or the seconds given; or ``full`` (the whole clip as
  decoded, padded to 30 s: the numbers of faster-whisper's ``detect_language``).

:func:`listen` is called once per clip, in a decode thread; :class:`SpeechConfig` is the part of a
run's settings it reads (every field changes results, so every field is part of the job's identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lidframe.errors import ConfigError
from lidframe.settings import setting
from lidframe.speech._vad import VadConfig, speech_only, speech_regions, speech_seconds

__all__ = ["SPEECH_CONTEXT", "Heard", "SpeechConfig", "listen"]

# Least encoder context, seconds, of ``context="speech"``. Measured (``benchmarks/context.py``,
# ``benchmarks/RESULTS.md``): with whisper-base on espeak-ng speech, a least context of 20 s kept
# accuracy within a point of full context (-0.7); 15 s and 10 s did not (-1.7, -2.4 points; 2.5x and
# 3.3x faster encoder passes than 30 s). ``--context 10`` trades those points for speed.
SPEECH_CONTEXT = 20.0


@dataclass(frozen=True)
class SpeechConfig:
    """Voice activity and encoder context of a run."""

    # Run voice activity detection (False: models hear every clip whole; no ``und`` answers and
    # ``speech_seconds`` is null).
    vad: bool = setting(True, identity=True)
    # Seconds of speech below which a clip is no speech (``und``); 0 never answers ``und``.
    min_speech: float = setting(0.5, identity=True)
    # ``speech``: models hear the speech only, and Whisper's encoder runs on the frames it needs
    # but at least SPEECH_CONTEXT seconds; a number: the same with at least that many seconds;
    # ``full``: models hear the clip as decoded, Whisper's encoder a padded 30 s.
    context: str | float = setting("speech", identity=True)
    # Pauses up to this many seconds are kept between joined speech regions (speech rhythm).
    keep_gap: float = setting(0.3, identity=True)
    # Frame speech probability at or above which silero-vad calls a frame speech.
    threshold: float = setting(0.5, identity=True)
    # A row without ``duration`` whose file is longer than one window (``AudioConfig.max_window``)
    # is heard in up to this many windows spread over the file (see lidframe.kernel).
    max_windows: int = setting(8, identity=True)

    def __post_init__(self) -> None:
        if self.context not in ("speech", "full"):
            try:
                seconds = float(self.context)
            except (TypeError, ValueError):
                seconds = float("nan")
            if not 1.0 <= seconds <= 30.0:
                raise ConfigError(
                    f"context must be speech, full or seconds from 1 to 30, got {self.context!r}"
                )
            object.__setattr__(self, "context", seconds)
        if not self.min_speech >= 0:
            raise ConfigError(f"min_speech must be >= 0 seconds, got {self.min_speech!r}")
        if not self.keep_gap >= 0:
            raise ConfigError(f"keep_gap must be >= 0 seconds, got {self.keep_gap!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"VAD threshold must be in (0, 1), got {self.threshold!r}")
        if not isinstance(self.max_windows, int) or self.max_windows < 1:
            raise ConfigError(f"max_windows must be a positive integer, got {self.max_windows!r}")

    @property
    def min_context(self) -> float | None:
        """Least encoder context in seconds; None: full context."""
        if self.context == "full":
            return None
        return SPEECH_CONTEXT if self.context == "speech" else float(self.context)


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
    if config.context == "full" or not regions:
        return Heard(wave, seconds, found, False)
    heard = speech_only(wave, regions, keep_gap_s=config.keep_gap, sample_rate=sample_rate)
    return Heard(heard, seconds, found, False)
