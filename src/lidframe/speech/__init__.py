"""Speech: what the models hear of a clip, found by voice activity; ``und`` when there is none.

A clip's language is carried by its speech. Silence, hiss, hum or music given to a language model
still gets a confident language (Whisper answers digital silence ``en``), and a padded 30-second
encoder pass costs the same for one second of speech as for thirty. So the decode threads run voice
activity on every decoded clip, before any model's ``prepare``. Nothing here knows about languages or
models, and nothing imports torch. Modules, in dependency order:

* ``_vad``: speech regions of a waveform (silero-vad's batched ONNX model, chosen by measurement)
  and the speech joined (:func:`speech_only`).
* ``_listen``: :class:`SpeechConfig` (the run's voice activity and encoder context settings) and
  :func:`listen`, one clip -> :class:`Heard` (what the models hear, or no speech).
"""

from lidframe.speech._listen import SHORT_SPEECH, SPEECH_CONTEXT, Heard, SpeechConfig, listen
from lidframe.speech._vad import VadConfig, speech_only, speech_regions, speech_seconds

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
