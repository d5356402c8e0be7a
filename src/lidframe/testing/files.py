"""Audio files for tests: tones, WAV files, and every container the decoder must handle.

Why this shape:

* **Every container the decoder must handle.** :func:`write_audio` writes WAV, FLAC and Ogg/Vorbis
  with libsndfile and Ogg/Opus and M4A/AAC with the encoders bundled in PyAV, so both decoding paths
  of :mod:`lidframe.audio` get exercised (:func:`lidframe.testing.synthesize` writes speech with
  it).
* **Reproducible bytes.** PyAV's encoders run ``bitexact``: no random Ogg serial number nor encoder
  version tag, so the same samples give the same file.
* :func:`sine` (certainly not speech) and :func:`write_wav` (16-bit WAV, any channel count) make
  the small files most tests need without espeak-ng.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["FORMATS", "normalise_format", "sine", "write_audio", "write_wav"]

# File extensions synthesize() can write, and what writes them.
FORMATS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".opus", ".m4a")

_SOUNDFILE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
# (PyAV container format, encoder, bit rate): small files that still sound like speech.
_PYAV_FORMATS = {
    ".opus": ("ogg", "libopus", 24_000),
    ".m4a": ("ipod", "aac", 32_000),
}


def sine(seconds: float, sample_rate: int = 16_000, freq: float = 440.0) -> np.ndarray:
    """A float32 sine tone at half full scale: audio that is certainly not speech."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float64) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(
    path: str | Path, samples: np.ndarray, sample_rate: int = 16_000, channels: int = 1
) -> None:
    """Write mono ``samples`` as 16-bit WAV, the same signal on each of ``channels`` channels."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim != 1:
        raise ValueError(f"samples must be one-dimensional, got shape {data.shape}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if channels > 1:
        data = np.repeat(data[:, None], channels, axis=1)
    sf.write(str(path), data, sample_rate, format="WAV", subtype="PCM_16")


def normalise_format(fmt: str) -> str:
    """``fmt`` (``flac``, ``.FLAC``) as a lower-case suffix of :data:`FORMATS`; else ValueError."""
    suffix = fmt.lower() if fmt.startswith(".") else f".{fmt.lower()}"
    if suffix not in FORMATS:
        raise ValueError(f"cannot write audio format {fmt!r}; supported: {', '.join(FORMATS)}")
    return suffix


def write_audio(path: Path, suffix: str, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono float32 ``samples`` in [-1, 1] to ``path`` (its folder made) as ``suffix``, one of
    :data:`FORMATS` as :func:`normalise_format` returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _SOUNDFILE_FORMATS:
        container, subtype = _SOUNDFILE_FORMATS[suffix]
        sf.write(str(path), samples, sample_rate, format=container, subtype=subtype)
        return
    _write_pyav(path, suffix, samples, sample_rate)


def _write_pyav(path: Path, suffix: str, samples: np.ndarray, sample_rate: int) -> None:
    """Encode mono float32 ``samples`` with an encoder bundled in PyAV (Opus, AAC)."""
    import av  # imported lazily, like lidframe.audio does

    container_format, codec, bit_rate = _PYAV_FORMATS[suffix]
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    frame.pts = 0
    # bitexact: no random Ogg serial number nor encoder version tag: same input, same bytes.
    with av.open(
        str(path), mode="w", format=container_format, options={"fflags": "+bitexact"}
    ) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.bit_rate = bit_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
