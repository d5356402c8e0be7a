"""Labelled speech for tests, users' tests and ours: synthetic, and real recordings from Debian.

Everything is importable from here (``from lidframe.testing import make_corpus``); the submodules
split it by what it is:

* :mod:`lidframe.testing.texts`: :data:`TEXTS`, natural sentences per language in the proper
  script, and the espeak-ng :data:`VOICES` that speak them (why real text: see there);
* :mod:`lidframe.testing.speech`: :func:`synthesize` and :func:`make_corpus`, speech from
  espeak-ng that is varied yet deterministic;
* :mod:`lidframe.testing.noise`: :func:`non_speech`, audio of the kinds that are not speech
  (silence, hiss, noise, hum, music, a burst), varied by a seed;
* :mod:`lidframe.testing.files`: :func:`sine`, :func:`write_wav` and the writers of every
  container the decoder must handle (:data:`FORMATS`), so both decoding paths of
  :mod:`lidframe.audio` get exercised;
* :mod:`lidframe.testing.real`: :func:`real_speech_corpus`, a manifest of real people speaking
  (telephone prompts in three languages at 8 and 16 kHz, single words in about 20), built from
  installed Debian packages, with a seeded development/test split and each source's licence.

Nothing here runs at import time; espeak-ng is looked up when a clip is first synthesized.
"""

from __future__ import annotations

from lidframe.testing.files import FORMATS, sine, write_wav
from lidframe.testing.noise import NON_SPEECH_KINDS, non_speech
from lidframe.testing.real import corpus_sources, real_speech_corpus
from lidframe.testing.speech import make_corpus, synthesize
from lidframe.testing.texts import TEXTS, VOICES

__all__ = [
    "FORMATS",
    "NON_SPEECH_KINDS",
    "TEXTS",
    "VOICES",
    "corpus_sources",
    "make_corpus",
    "non_speech",
    "real_speech_corpus",
    "sine",
    "synthesize",
    "write_wav",
]
