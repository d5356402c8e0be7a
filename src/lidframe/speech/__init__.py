"""Speech: what the models hear of a clip, found by voice activity; ``und`` when there is none.

A clip's language is carried by its speech. Silence, hiss, hum or music given to a language model
still gets a confident language (Whisper answers digital silence ``en``), and a padded 30-second
encoder pass costs the same for one second of speech as for thirty. So the decode threads run voice
activity on every decoded clip, before any model's ``prepare``. Nothing here knows about languages or
models, and nothing imports torch. Modules, in dependency order:

* ``_vad``: speech regions of a waveform (silero-vad's batched ONNX model, chosen by measurement)
  and the speech joined (:func:`speech_only`).
* ``_config``: :class:`SpeechConfig` (the run's voice activity and encoder context settings),
  without numpy: ``lidframe``'s command line reads its declaration.
* ``_listen``: :func:`listen`, one clip -> :class:`Heard` (what the models hear, or no speech).

Names are imported on first use (PEP 562), so reading :class:`SpeechConfig` imports no numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.speech._config import SHORT_SPEECH, SPEECH_CONTEXT, SpeechConfig
    from lidframe.speech._listen import Heard, listen
    from lidframe.speech._vad import VadConfig, speech_only, speech_regions, speech_seconds

_EXPORTS = {
    "SHORT_SPEECH": "lidframe.speech._config",
    "SPEECH_CONTEXT": "lidframe.speech._config",
    "SpeechConfig": "lidframe.speech._config",
    "Heard": "lidframe.speech._listen",
    "listen": "lidframe.speech._listen",
    "VadConfig": "lidframe.speech._vad",
    "speech_only": "lidframe.speech._vad",
    "speech_regions": "lidframe.speech._vad",
    "speech_seconds": "lidframe.speech._vad",
}

__all__ = [
    "SHORT_SPEECH",
    "SPEECH_CONTEXT",
    "Heard",
    "SpeechConfig",
    "VadConfig",
    "listen",
    "speech_only",
    "speech_regions",
    "speech_seconds",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
