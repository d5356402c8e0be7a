"""The speech settings of a run: :class:`SpeechConfig` (voice activity and encoder context).

Apart from :func:`~lidframe.speech.listen`, which needs numpy and the VAD, so that reading the
settings' declaration (``lidframe``'s command line does) costs no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from lidframe.errors import ConfigError
from lidframe.settings import setting

__all__ = ["SHORT_SPEECH", "SPEECH_CONTEXT", "SpeechConfig"]

# Least encoder context, seconds, of ``context="speech"``, and the speech too short for it: such
# clips get Whisper's full 30 s. Chosen on real voices (``benchmarks/real_speech.py``, the dev half
# of ``lidframe.testing.real_speech_corpus``; ``benchmarks/RESULTS.md``): less context costs accuracy
# on short speech only, so speech under 1 s gets full context and the rest at least 10 s, within a
# clip of full context on both halves (dev 70.8% against 71.0%, test 73.5% = 73.5%) for 61% of its
# encoder work. A least context of 20 s for all lost 1.3 points (test), 10 s for all 1.7-2.1. The
# synthetic corpus disagrees for 1-8 s of speech (at least 10 s lost 2-4 points there, 20 s less
# than one: ``benchmarks/context.py``); the default follows the real voices (a later dev run: 73.1%
# against 73.7% at full, 16 clips to 11, not significant). Full context under 5 s
# of speech recovers the synthetic voices' points but ran end to end at 1.48x (real) and 1.81x
# (synthetic) the faster-whisper int8 loop against 2.33x and 2.56x (RESULTS.md, 2026-12-08).
SPEECH_CONTEXT = 10.0
SHORT_SPEECH = 1.0


def _context_identity(value: str | float) -> str | float:
    """What ``context`` contributes to a job's identity: ``speech`` stands for the least context
    and short-speech rule of this version (written out unless they are those ``speech`` meant
    when job ids were first pinned: at least 20 s, no rule), so a job whose answers would differ
    is a new job."""
    if value != "speech" or (SPEECH_CONTEXT, SHORT_SPEECH) == (20.0, 0.0):
        return value
    return f"speech: at least {SPEECH_CONTEXT:g} s, the clip at full under {SHORT_SPEECH:g} s of speech"


@dataclass(frozen=True)
class SpeechConfig:
    """Voice activity and encoder context of a run."""

    vad: bool = setting(
        True,
        identity=True,
        help="voice activity detection: models hear only the speech, a clip without it is 'und'; "
        "without it models hear every clip whole and speech_seconds is null",
    )
    # 0.25 s is the shortest region silero-vad keeps (VadConfig.min_speech_s), so a clip is ``und``
    # when it finds no speech at all: on real voices 0.5 s answered ``und`` for 20% of the clips
    # under 1 s and 10% of single words, 0.25 s for 9% and 1% (``benchmarks/min_speech.py``), with
    # every real and generated non-speech clip still ``und``.
    min_speech: float = setting(
        0.25,
        identity=True,
        help="seconds of speech below which a row is answered 'und' (no speech); 0: never; 0.25: "
        "a clip in which no speech was found at all",
    )
    # SPEECH_CONTEXT and SHORT_SPEECH say how much ``speech`` gives (see above).
    context: str | float = setting(
        "speech",
        identity=_context_identity,
        metavar="speech|full|SECONDS",
        help="speech: models hear only the speech and Whisper's encoder runs on the frames it "
        "needs, at least 10 s (under 1 s of speech: the whole clip at 30 s); SECONDS: at least "
        "that many; full: the clip as decoded, Whisper padded to 30 s (faster-whisper's numbers)",
    )
    keep_gap: float = setting(
        0.3,
        identity=True,
        cli=False,
        help="pauses up to this many seconds are kept between joined speech regions (speech "
        "rhythm)",
    )
    threshold: float = setting(
        0.5,
        identity=True,
        cli=False,
        help="frame speech probability at or above which silero-vad calls a frame speech",
    )
    # See lidframe.kernel for the windows' placement.
    max_windows: int = setting(
        8,
        identity=True,
        help="a row without duration whose file is longer than {max_window} is heard in up to "
        "this many windows spread over the file (1: its start only)",
    )

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

    def context_for(self, speech_seconds: float) -> float | None:
        """Least encoder context in seconds for a clip with this much speech; None: full context
        (always with ``full``; with ``speech``, also for speech shorter than SHORT_SPEECH)."""
        if self.context == "speech" and speech_seconds < SHORT_SPEECH:
            return None
        return self.min_context
