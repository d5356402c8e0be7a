"""Audio: one URI -> a mono float32 window at the models' sample rate, in a process that can be killed.

Nothing here knows about dataframes or models, and nothing imports Dask, torch or pandas: a decoder
child process imports this package and its libraries only (numpy, fsspec, soundfile, soxr; PyAV on
first use), so it starts in well under a second. Modules, each importing only those above it:

* ``_limits``: :class:`AudioConfig` (what decoding may cost) and the header checks, WAV's included.
* ``_storage``: files through fsspec as seekable objects (a 2-hour file on S3 costs a few range
  requests), connect/read timeouts on remote stores (:func:`with_io_timeouts`), and store failures
  as row errors (``timeout``, ``access_denied``, ``not_found``, ``read_failed``).
* ``_decoders``: libsndfile first, FFmpeg (PyAV) second; chunked decoding, mixing and resampling
  (soxr), so memory stays bounded; several windows spread over a long file; :func:`resample` for a
  model that takes another rate than the one decoded to.
* ``_decode``: :func:`decode_window` and :func:`decode_windows`, the decoders in order;
  :func:`decode_clip` gives the file's own sample rate too (:class:`Decoded`).
* ``_pool``: :func:`decoder_pool`, child processes that run ``_decode`` and are killed when a row
  passes :attr:`AudioConfig.timeout` (``timeout``) or crash (``decoder_crashed``): a hung or
  crashing decoder costs one row.

A *window* is always a span of a file's audio: ``[offset, offset + duration)``, or one of the
windows spread over a long file; :data:`Window` is one decoded (start seconds, waveform).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.audio._decode import Decoded, decode_clip, decode_window, decode_windows
    from lidframe.audio._decoders import CHUNK_FRAMES, Window, resample
    from lidframe.audio._limits import AudioConfig
    from lidframe.audio._pool import DecoderPool, DecoderUnavailable, decoder_pool
    from lidframe.audio._storage import with_io_timeouts

# Imported on first use (PEP 562): reading AudioConfig's declaration (lidframe's command line does)
# costs no numpy or fsspec.
_EXPORTS = {
    "Decoded": "lidframe.audio._decode",
    "decode_clip": "lidframe.audio._decode",
    "decode_window": "lidframe.audio._decode",
    "decode_windows": "lidframe.audio._decode",
    "CHUNK_FRAMES": "lidframe.audio._decoders",
    "Window": "lidframe.audio._decoders",
    "resample": "lidframe.audio._decoders",
    "AudioConfig": "lidframe.audio._limits",
    "DecoderPool": "lidframe.audio._pool",
    "DecoderUnavailable": "lidframe.audio._pool",
    "decoder_pool": "lidframe.audio._pool",
    "with_io_timeouts": "lidframe.audio._storage",
}

__all__ = [
    "CHUNK_FRAMES",
    "AudioConfig",
    "Decoded",
    "DecoderPool",
    "DecoderUnavailable",
    "Window",
    "decode_clip",
    "decode_window",
    "decode_windows",
    "decoder_pool",
    "resample",
    "with_io_timeouts",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
