"""Synthetic labelled speech: espeak-ng speaks :data:`~lidframe.testing.texts.TEXTS`.

Why this shape:

* **espeak-ng, not recordings.** A test suite cannot ship or download a speech corpus, but the
  ``espeak-ng`` command (one ``apt-get install``) speaks over a hundred languages offline. Its
  formant voice is robotic, yet Whisper recognises the language of most of it, which is all a
  language-identification test needs: audio whose true label is known.
* **Variety that is deterministic.** :func:`make_corpus` varies sentence, voice variant, speed and
  pitch per clip from a seeded :class:`random.Random`, so a corpus is different enough to be a test
  and identical on every machine with the same espeak-ng.

espeak-ng is looked up when a clip is first synthesized, not at import.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from lidframe.testing.files import normalise_format, write_audio
from lidframe.testing.texts import TEXTS, VOICES

__all__ = ["make_corpus", "synthesize"]

_DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
_ESPEAK_TIMEOUT = 60.0


def synthesize(
    text: str,
    voice: str,
    path: str | Path,
    *,
    speed: int = 160,
    pitch: int = 50,
    variant: str | None = None,
    sample_rate: int = 16_000,
    fmt: str | None = None,
    noise_db: float | None = None,
    noise_seed: int = 0,
) -> float:
    """Speak ``text`` with espeak-ng and write it to ``path``; return its duration in seconds.

    ``voice`` is an espeak-ng voice (``nb``, ``en-us``) or a key of :data:`TEXTS` (``no``, ``en``),
    which is mapped through :data:`VOICES`. ``variant`` is an espeak-ng voice variant such as ``f3``
    or ``m2``; ``speed`` is in words per minute and ``pitch`` is 0-99. The audio is mono, resampled
    to ``sample_rate``, and written in the format of ``fmt`` or else of the extension of ``path``:
    one of :data:`FORMATS`.

    ``noise_db`` adds white noise that many decibels below full scale (``-40`` is a quiet room),
    drawn from a generator seeded with ``noise_seed`` so the file is still reproducible. espeak-ng
    leaves exact digital silence between words, which real recordings never have; a little noise
    makes Whisper misjudge the language of synthetic speech less often.
    """
    path = Path(path)
    suffix = normalise_format(fmt if fmt is not None else path.suffix)
    samples, rate = _espeak(text, VOICES.get(voice, voice), speed, pitch, variant)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32)
    if noise_db is not None:
        noise = np.random.default_rng(noise_seed).standard_normal(samples.shape[0])
        samples = samples + (noise * 10.0 ** (noise_db / 20.0)).astype(np.float32)
    # Resampling (and noise) can overshoot full scale a little; the encoders want [-1, 1].
    samples = np.clip(samples, -1.0, 1.0)
    write_audio(path, suffix, samples, sample_rate)
    return samples.shape[0] / sample_rate


def make_corpus(
    out_dir: str | Path,
    languages: Iterable[str] | None = None,
    per_language: int = 4,
    *,
    seed: int = 0,
    formats: Sequence[str] = (".wav",),
    voices_variants: Sequence[str | None] = _DEFAULT_VARIANTS,
    start_index: int = 0,
    speed_range: tuple[int, int] = (130, 190),
    pitch_range: tuple[int, int] = (30, 70),
    sample_rate: int = 16_000,
    noise_db: float | None = None,
) -> pd.DataFrame:
    """Write ``per_language`` spoken clips for each language into ``out_dir``; return their table.

    ``languages`` are keys of :data:`TEXTS` (all of them by default). Clip ``i`` of language
    ``xx`` is ``xx-{i:03d}`` for ``i`` from ``start_index``; its voice variant, speed (words per
    minute, within ``speed_range``) and pitch (within ``pitch_range``) come from a
    :class:`random.Random` seeded with ``seed``, the language and ``i``, so a clip is the same
    whichever other languages or indices are asked for. Sentences rotate through the language's
    texts from a seeded starting point. File formats cycle through ``formats`` in the order clips
    are written. ``noise_db`` is passed to :func:`synthesize`, with a noise seed drawn per clip.

    Returns a DataFrame with columns ``id``, ``audio`` (file name relative to ``out_dir``) and
    ``label`` (the language key), one row per clip in the order written.
    """
    out = Path(out_dir)
    langs = list(TEXTS) if languages is None else list(languages)
    unknown = [lang for lang in langs if lang not in TEXTS]
    if unknown:
        raise ValueError(f"no texts for languages {unknown}; known: {sorted(TEXTS)}")
    if per_language < 0:
        raise ValueError(f"per_language must be >= 0, got {per_language}")
    suffixes = [normalise_format(f) for f in formats]
    if not suffixes:
        raise ValueError("formats must name at least one format")
    if not voices_variants:
        raise ValueError("voices_variants must name at least one variant (None: the plain voice)")
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, str]] = []
    for lang in langs:
        texts = TEXTS[lang]
        # Which sentence comes first differs per language; then sentences rotate so that a few
        # clips of one language cover different sentences.
        first = random.Random(f"{seed}:{lang}").randrange(len(texts))
        for index in range(start_index, start_index + per_language):
            rng = random.Random(f"{seed}:{lang}:{index}")
            variant = rng.choice(list(voices_variants))
            speed = rng.randint(*speed_range)
            pitch = rng.randint(*pitch_range)
            noise_seed = rng.randrange(2**32)
            suffix = suffixes[len(rows) % len(suffixes)]
            clip_id = f"{lang}-{index:03d}"
            name = f"{clip_id}{suffix}"
            synthesize(
                texts[(first + index) % len(texts)],
                VOICES[lang],
                out / name,
                speed=speed,
                pitch=pitch,
                variant=variant,
                sample_rate=sample_rate,
                noise_db=noise_db,
                noise_seed=noise_seed,
            )
            rows.append({"id": clip_id, "audio": name, "label": lang})
    return pd.DataFrame(rows, columns=["id", "audio", "label"])


def _espeak(
    text: str, voice: str, speed: int, pitch: int, variant: str | None
) -> tuple[np.ndarray, int]:
    """Run espeak-ng on ``text``; return mono float32 samples and their sample rate."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(
            "espeak-ng is not installed or not on PATH; lidframe.testing needs it to synthesize "
            "speech: install it with `apt-get install espeak-ng` (Debian/Ubuntu), "
            "`brew install espeak-ng` (macOS) or `conda install -c conda-forge espeak-ng`"
        )
    spoken = f"{voice}+{variant}" if variant else voice
    with tempfile.TemporaryDirectory(prefix="lidframe-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        # -b 1: the text is UTF-8. "--" ends the options, so text starting with "-" is still text.
        cmd = [
            exe,
            "-b",
            "1",
            "-v",
            spoken,
            "-s",
            str(int(speed)),
            "-p",
            str(int(pitch)),
            "-w",
            str(wav),
            "--",
            text,
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=_ESPEAK_TIMEOUT)
        except subprocess.CalledProcessError as exc:
            message = (exc.stderr or b"").decode("utf-8", "replace").strip()
            raise RuntimeError(f"espeak-ng failed for voice {spoken!r}: {message}") from exc
        data, rate = sf.read(io.BytesIO(wav.read_bytes()), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise RuntimeError(f"espeak-ng produced no audio for voice {spoken!r} and text {text!r}")
    return data.mean(axis=1), int(rate)
