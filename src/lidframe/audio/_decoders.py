"""The decoders: one window of an open audio file -> mono float32 at the output rate.

Why this shape:

* **libsndfile first, FFmpeg second.** ``soundfile`` (libsndfile) decodes WAV, FLAC, Ogg/Vorbis,
  Ogg/Opus and MP3 quickly and can seek by frame, so only the requested window is read
  (:func:`read_soundfile`). What it cannot open (m4a/AAC, webm, ...) goes to PyAV, which bundles
  FFmpeg and seeks by timestamp (:func:`read_pyav`). Each returns ``(None, 0)`` and appends its
  reason when it cannot open the file, so that when both fail the error names the file and both
  reasons (:func:`~lidframe.audio.decode_window` tries them in this order).
* **Limits before decoding.** Each decoder reads the header (rate, channels, duration) and calls
  :func:`~lidframe.audio._limits.check_header` before decoding any sample.
* **Bounded memory.** Samples are decoded, mixed to mono and resampled in chunks of
  :data:`CHUNK_FRAMES` frames, so a 32-channel 192 kHz file costs a few MB of memory, not the
  700 MB its whole window would take as float32.
* **Resampling with soxr**, the resampler that sox and many speech toolkits use: high quality and
  fast, and streaming, so chunks resample exactly as a whole signal would.
* **Several windows of a long file** (``windows`` > 1): once the header gives the file's length,
  :func:`spread_windows` places up to that many windows evenly from the first to the end, and only
  those stretches are read (a seek, then the window's bytes), from the same open file.
"""

from __future__ import annotations

import math
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from lidframe.audio._limits import AudioConfig, check_header, wav_promised_frames
from lidframe.errors import AudioError

__all__ = [
    "CHUNK_FRAMES",
    "Window",
    "read_pyav",
    "read_soundfile",
    "resample",
    "spread_windows",
]

# A window of a file: its start in seconds and its samples (mono, output rate).
Window = tuple[float, np.ndarray]

# Frames decoded (and mixed down, and resampled) at a time: memory is this many frames x channels.
CHUNK_FRAMES = 64 * 1024


class _MonoStream:
    """Collects chunks of (frames x channels) audio as mono float32 at the output rate.

    Each chunk is checked for NaN/inf (one such clip would poison a whole batch's features), mixed
    down and fed to soxr's streaming resampler, so no more than one chunk of multichannel audio is
    held at a time.
    """

    def __init__(self, uri: str, rate: int, out_rate: int) -> None:
        self.uri = uri
        self.frames = 0
        self._parts: list[np.ndarray] = []
        self._stream = (
            None
            if rate == out_rate
            else soxr.ResampleStream(rate, out_rate, 1, dtype="float32", quality="HQ")
        )

    def add(self, mono: np.ndarray) -> None:
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if not np.isfinite(mono).all():
            raise AudioError(
                "decode_failed", f"{self.uri}: the audio holds NaN or infinite samples"
            )
        self.frames += mono.shape[0]
        if self._stream is not None:
            mono = self._stream.resample_chunk(mono, last=False)
        if mono.size:
            self._parts.append(mono)

    def finish(self) -> np.ndarray:
        if self._stream is not None and self.frames:
            tail = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                self._parts.append(tail)
        if not self._parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._parts)


def resample(wave: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    """Mono float32 ``wave`` at ``rate`` Hz resampled to ``out_rate`` Hz, with the decoders'
    resampler (soxr, high quality); ``wave`` itself, not a copy, when the rates are the same."""
    if rate == out_rate:
        return wave
    return soxr.resample(wave, rate, out_rate, quality="HQ")


def spread_windows(
    start: float, want: float, seconds: float | None, windows: int, budget: int | None = None
) -> list[float]:
    """Starts of up to ``windows`` windows of ``want`` s spread evenly over ``[start, seconds)``.

    One window (at ``start``) when the rest of the file fits in one, when its length is unknown,
    or when ``windows`` is 1; never more than ``budget`` windows (the decoding work limit allows).
    """
    if windows <= 1 or seconds is None or seconds - start <= want:
        return [start]
    count = min(windows, math.ceil((seconds - start) / want), max(1, budget or windows))
    if count <= 1:
        return [start]
    last = seconds - want
    return [start + (last - start) * i / (count - 1) for i in range(count)]


def _budget(rate: int, channels: int, want: float, config: AudioConfig) -> int:
    """How many windows of ``want`` s the decoding work limit allows for one row."""
    per_window = max(1, round(rate * want) * max(1, channels))
    return max(1, config.max_decode_samples // per_window)


def read_soundfile(
    uri: str,
    fobj: BinaryIO,
    start: float,
    want: float,
    config: AudioConfig,
    reasons: list[str],
    windows: int = 1,
) -> tuple[list[Window] | None, int]:
    """Read the window(s) with libsndfile, and the file's own sample rate; ``(None, 0)`` when
    libsndfile cannot open the file."""
    # libsndfile clamps a WAV's frame count to what the file holds, so a file cut short would read
    # as a shorter, valid one: take the count the header promises from the header itself.
    promised = wav_promised_frames(fobj)
    try:
        snd = sf.SoundFile(fobj)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reasons.append(f"soundfile: {getattr(exc, 'error_string', None) or exc}")
        return None, 0
    with snd:
        rate, channels = snd.samplerate, snd.channels
        frames = available = snd.frames
        if promised is not None and promised > frames:
            frames = promised
        known = 0 < frames < 2**62
        # A header that promises more than the file holds is judged by what is there: 1,000 bytes
        # that promise 4 GB are a truncated file, not a file that is too long.
        seconds = min(frames, max(available, 1)) / rate if known and rate > 0 else None
        check_header(uri, rate, channels, seconds, want, config)
        first = round(start * rate)
        if known and first >= frames:
            raise AudioError(
                "bad_window", f"{uri}: offset {start} s is past the end ({frames / rate:.3f} s)"
            )
        if first >= available and frames > available:
            raise AudioError(
                "truncated",
                f"{uri}: header promises {frames} frames but only {available} are in the file",
            )
        count = round(want * rate)
        starts = spread_windows(
            start, want, seconds, windows, _budget(rate, channels, want, config)
        )
        out: list[Window] = []
        for at in starts:
            first = round(at * rate)
            expected = min(count, frames - first) if known else count
            mono = _MonoStream(uri, rate, config.sample_rate)
            try:
                snd.seek(first)
                left = count
                while left > 0:
                    block = snd.read(min(CHUNK_FRAMES, left), dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    left -= block.shape[0]
                    mono.add(_to_mono(block))
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError("decode_failed", f"{uri}: soundfile: {exc}") from exc
            if known and mono.frames < expected:
                raise AudioError(
                    "truncated",
                    f"{uri}: header promises {frames} frames but only {first + mono.frames} "
                    "could be read",
                )
            out.append((first / rate, mono.finish()))
    return out, rate


def read_pyav(
    uri: str,
    fobj: BinaryIO,
    start: float,
    want: float,
    config: AudioConfig,
    reasons: list[str],
    windows: int = 1,
) -> tuple[list[Window] | None, int]:
    """Read the window(s) with FFmpeg through PyAV, and the stream's own sample rate; ``(None, 0)``
    when FFmpeg cannot open it."""
    import av  # imported lazily: most corpora never need it

    try:
        container = av.open(fobj, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        reasons.append(f"pyav: {exc}")
        return None, 0
    with container:
        if not container.streams.audio:
            reasons.append("pyav: no audio stream")
            return None, 0
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or 0)
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        check_header(uri, rate, channels, seconds, want, config)
        if seconds is not None and start >= seconds:
            raise AudioError(
                "bad_window", f"{uri}: offset {start} s is past the end ({seconds:.3f} s)"
            )
        count = round(want * rate)
        starts = spread_windows(
            start, want, seconds, windows, _budget(rate, channels, want, config)
        )
        out: list[Window] = []
        for at in starts:
            first = round(at * rate)
            if (at > 0 or out) and stream.time_base is not None:
                try:
                    container.seek(int(at / stream.time_base), stream=stream, backward=True)
                except av.error.FFmpegError:
                    container.seek(0)
            mono = _pyav_window(av, container, stream, uri, rate, first, count, config)
            out.append((first / rate, mono))
    return out, rate


def _pyav_window(
    av: Any,
    container: Any,
    stream: Any,
    uri: str,
    rate: int,
    first: int,
    count: int,
    config: AudioConfig,
) -> np.ndarray:
    """Decode ``count`` frames from frame ``first`` (the container already seeked before it)."""
    mono = _MonoStream(uri, rate, config.sample_rate)
    try:
        for frame in container.decode(stream):
            if int(frame.sample_rate or rate) != rate:
                raise AudioError(
                    "decode_failed",
                    f"{uri}: the sample rate changes inside the stream "
                    f"({rate} -> {frame.sample_rate} Hz)",
                )
            block = frame.to_ndarray()
            if block.ndim == 1 or frame.format.is_packed:
                block = block.reshape(-1, len(frame.layout.channels)).T
            block = _as_float(block).mean(axis=0)
            pos = (
                round(float(frame.pts * frame.time_base) * rate)
                if frame.pts is not None and frame.time_base is not None
                else first + mono.frames
            )
            if pos < first:
                block = block[first - pos :]
            block = block[: count - mono.frames]
            if block.size == 0:
                if mono.frames >= count:
                    break
                continue
            mono.add(block)
            if mono.frames >= count:
                break
    except av.error.FFmpegError as exc:
        if not mono.frames:
            raise AudioError("decode_failed", f"{uri}: pyav: {exc}") from exc
        # Some containers end in a damaged packet: keep what decoded before it.
    return mono.finish()


def _as_float(block: np.ndarray) -> np.ndarray:
    if block.dtype.kind == "f":
        return block.astype(np.float32, copy=False)
    if block.dtype.kind in "iu":
        info = np.iinfo(block.dtype)
        scale = float(max(abs(info.min), info.max))
        if block.dtype.kind == "u":
            return (block.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        return block.astype(np.float32) / scale
    raise AudioError("decode_failed", f"unsupported sample type {block.dtype}")


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.shape[1] == 1:
        return data[:, 0]
    return data.mean(axis=1)
