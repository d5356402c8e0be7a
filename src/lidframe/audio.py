"""Turn one audio URI into a mono float32 waveform at the models' sample rate.

This module is the public surface of decoding: :class:`AudioConfig`, :func:`decode_window` and
:func:`with_io_timeouts`. Why this shape:

* **Only the window.** A clip is ``[offset, offset + duration)`` of its file, and never more than
  :attr:`AudioConfig.max_window` seconds of it (what the models look at). Files are opened through
  fsspec as seekable file objects, so a 2-hour file on S3 costs a few range requests, not a
  download.
* **One module per concern**, each saying why it is built as it is: storage, its timeouts and its
  failures in :mod:`lidframe.audio_io`; the limits (:class:`AudioConfig`) and the header checks,
  WAV's included, in :mod:`lidframe.audio_limits`; the decoder backends (libsndfile first, FFmpeg
  second), chunked decoding and resampling in :mod:`lidframe.audio_decoders`.
* **Bounded time.** Remote stores get connect and read timeouts (:attr:`AudioConfig.io_timeout`);
  the hard limit on a whole row (:attr:`AudioConfig.timeout`) is enforced by
  :mod:`lidframe.audio_pool`, which runs this function in a child process it can kill.
* **Light to import.** A decoder child process imports only this module and what it imports
  (numpy, fsspec, soundfile, soxr; PyAV on first use): no Dask, torch or pandas.

Every failure is an :class:`~lidframe.errors.AudioError` with a short category; the kernel turns it
into the row's ``error`` value. Nothing here knows about dataframes or models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lidframe.audio_decoders import CHUNK_FRAMES, read_pyav, read_soundfile
from lidframe.audio_io import locate, storage_error, with_io_timeouts
from lidframe.audio_limits import AudioConfig
from lidframe.errors import AudioError

__all__ = ["CHUNK_FRAMES", "AudioConfig", "decode_window", "with_io_timeouts"]


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
    config = config or AudioConfig()
    start = 0.0 if offset is None or _isnan(offset) else float(offset)
    if start < 0:
        raise AudioError("bad_window", f"{uri}: offset {start} s is negative")
    want = config.max_window
    if duration is not None and not _isnan(duration):
        if duration <= 0:
            raise AudioError("bad_window", f"{uri}: duration {duration} s is not positive")
        want = min(float(duration), want)

    fs, path = locate(uri, storage_options, config)

    reasons: list[str] = []
    try:
        with fs.open(path, "rb", block_size=config.block_size) as fobj:
            samples, _ = read_soundfile(uri, fobj, start, want, config, reasons)
            if samples is None:
                fobj.seek(0)
                samples, _ = read_pyav(uri, fobj, start, want, config, reasons)
    except AudioError:
        raise
    except Exception as exc:
        raise storage_error(uri, "cannot read", exc) from exc
    if samples is None:
        raise AudioError("decode_failed", f"{uri}: not decodable audio ({'; '.join(reasons)})")
    if samples.size == 0:
        raise AudioError("bad_window", f"{uri}: no samples in window offset={start} s")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _isnan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
