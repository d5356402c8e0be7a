"""One URI -> its window(s) of mono float32 at the models' sample rate: the decoders in order.

:func:`decode_clip` also says the file's own sample rate (:class:`Decoded`), which the kernel
reports per row; :func:`decode_windows` and :func:`decode_window` give the samples only.

A clip is ``[offset, offset + duration)`` of its file, and never more than
:attr:`AudioConfig.max_window` seconds of it (what the models look at). libsndfile is tried first,
then FFmpeg; a failure names the file and both decoders' reasons. Every failure is an
:class:`~lidframe.errors.AudioError` with a short category (``not_found``, ``timeout``,
``decode_failed``, ...); the kernel turns it into the row's ``error`` value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lidframe.audio._decoders import Window, read_pyav, read_soundfile
from lidframe.audio._limits import AudioConfig
from lidframe.audio._storage import locate, storage_error
from lidframe.errors import AudioError

__all__ = ["Decoded", "decode_clip", "decode_window", "decode_windows"]


@dataclass(frozen=True)
class Decoded:
    """One clip as decoded: its window(s) at the output rate, and the rate of the file's audio."""

    # ``(start in seconds, samples)``: mono float32 at ``AudioConfig.sample_rate``.
    windows: list[Window]
    # Samples per second of the file's audio stream as stored, before resampling (one per file,
    # whatever the number of windows).
    native_rate: int


def decode_window(
    uri: str,
    offset: float | None = None,
    duration: float | None = None,
    config: AudioConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Decode ``[offset, offset + duration)`` s of ``uri``: mono float32 at ``config.sample_rate``.

    ``offset`` defaults to 0 and ``duration`` to the rest of the file; at most ``config.max_window``
    seconds are returned. Raises :class:`AudioError` whose category says what went wrong.
    """
    return decode_windows(uri, offset, duration, config, storage_options)[0][1]


def decode_windows(
    uri: str,
    offset: float | None = None,
    duration: float | None = None,
    config: AudioConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    windows: int = 1,
) -> list[Window]:
    """Like :func:`decode_window`, but a file longer than one window without a ``duration`` gives
    up to ``windows`` windows of ``config.max_window`` s spread evenly over it, as
    ``(start in seconds, samples)``; only their byte ranges are read.
    """
    return decode_clip(uri, offset, duration, config, storage_options, windows).windows


def decode_clip(
    uri: str,
    offset: float | None = None,
    duration: float | None = None,
    config: AudioConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    windows: int = 1,
) -> Decoded:
    """:func:`decode_windows`, with the file's own sample rate: a :class:`Decoded`."""
    config = config or AudioConfig()
    start = 0.0 if offset is None or _isnan(offset) else float(offset)
    if start < 0:
        raise AudioError("bad_window", f"{uri}: offset {start} s is negative")
    want = config.max_window
    if duration is not None and not _isnan(duration):
        if duration <= 0:
            raise AudioError("bad_window", f"{uri}: duration {duration} s is not positive")
        want = min(float(duration), want)
        windows = 1  # the row chose its stretch of the file

    fs, path = locate(uri, storage_options, config)

    reasons: list[str] = []
    try:
        with fs.open(path, "rb", block_size=config.block_size) as fobj:
            found, rate = read_soundfile(uri, fobj, start, want, config, reasons, windows)
            if found is None:
                fobj.seek(0)
                found, rate = read_pyav(uri, fobj, start, want, config, reasons, windows)
    except AudioError:
        raise
    except Exception as exc:
        raise storage_error(uri, "cannot read", exc) from exc
    if found is None:
        raise AudioError("decode_failed", f"{uri}: not decodable audio ({'; '.join(reasons)})")
    if found[0][1].size == 0:
        raise AudioError("bad_window", f"{uri}: no samples in window offset={start} s")
    return Decoded(
        [(at, np.ascontiguousarray(samples, dtype=np.float32)) for at, samples in found], rate
    )


def _isnan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
