"""What decoding may cost and what a header may claim: :class:`AudioConfig` and the header checks.

Why this shape:

* **Limits before decoding.** Size, sample rate, channel count and duration come from the store
  and the header and are checked before any sample is decoded; a header with an absurd rate or no
  channels is ``bad_header``, and the decoding work of one row (rate x channels x window) is capped
  (:func:`check_header`, called by every decoder once it has read a header).
* **A WAV header is read by us too.** libsndfile clamps a WAV's frame count to what the file holds,
  so a file cut short would read as a shorter, valid one; :func:`wav_promised_frames` reads the
  count the header promises, so a short file is ``truncated``, not quietly shorter.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

from lidframe.errors import AudioError, ConfigError
from lidframe.settings import setting

__all__ = ["AudioConfig", "check_header", "wav_promised_frames"]


@dataclass(frozen=True)
class AudioConfig:
    """Limits and output format of decoding; the defaults suit speech LID at scale."""

    sample_rate: int = setting(
        16_000,
        identity=True,
        cli=False,
        help="sample rate of the returned waveform (every supported model wants 16 kHz)",
    )
    max_window: float = setting(
        30.0,
        identity=True,
        help="longest stretch of a file decoded per row, in seconds (Whisper's context is 30 s)",
    )
    max_bytes: int = setting(
        4 * 1024**3,
        identity=True,
        cli=False,
        help="files larger than this many bytes are refused before reading (too_large)",
    )
    max_channels: int = setting(
        32,
        identity=True,
        cli=False,
        help="files with more channels than this are refused (too_many_channels)",
    )
    max_duration: float = setting(
        12 * 3600.0,
        identity=True,
        cli=False,
        help="files whose header says they are longer than this many seconds are refused "
        "(too_long)",
    )
    # Small, because only a window of each file is read.
    block_size: int = setting(
        1024 * 1024, identity=False, cli=False, help="block size of remote reads, in bytes"
    )
    min_sample_rate: int = setting(
        1_000,
        identity=True,
        cli=False,
        help="least sample rate a header may state; below it the header is bad_header",
    )
    max_sample_rate: int = setting(
        768_000,
        identity=True,
        cli=False,
        help="greatest sample rate a header may state; above it the header is bad_header",
    )
    # The default lets 30 s of 32 channels at 192 kHz through; memory stays small whatever this
    # is (chunked).
    max_decode_samples: int = setting(
        200_000_000,
        identity=True,
        cli=False,
        help="most samples (frames x channels) one row may decode; more is too_large",
    )
    # Then the read fails (``timeout``) instead of waiting on a store that accepts connections and
    # never answers.
    io_timeout: float = setting(
        30.0,
        identity=False,
        help="seconds to connect to remote storage (S3, HTTP) and for each read from it",
    )
    # Whatever happens inside (a store that trickles bytes, a decoder stuck in native code): then
    # its decoder process is killed. See lidframe.audio._pool.
    timeout: float = setting(
        120.0,
        identity=False,
        flag="--decode-timeout",
        help="seconds one row may take to open, read and decode; then it is a 'timeout' row error",
    )

    def __post_init__(self) -> None:
        for name in (
            "sample_rate",
            "max_bytes",
            "max_channels",
            "block_size",
            "min_sample_rate",
            "max_sample_rate",
            "max_decode_samples",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"AudioConfig.{name} must be positive, got {getattr(self, name)!r}"
                )
        for name in ("max_window", "max_duration", "io_timeout", "timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"AudioConfig.{name} must be a positive number, got {value!r}")
        if self.min_sample_rate > self.max_sample_rate:
            raise ConfigError(
                f"AudioConfig.min_sample_rate {self.min_sample_rate} is above "
                f"max_sample_rate {self.max_sample_rate}"
            )


def check_header(
    uri: str,
    rate: int,
    channels: int,
    seconds: float | None,
    want: float,
    config: AudioConfig,
) -> None:
    """Refuse a header whose numbers make no sense, or whose window is over a limit."""
    if channels <= 0:
        raise AudioError("bad_header", f"{uri}: the header says {channels} channels")
    if not config.min_sample_rate <= rate <= config.max_sample_rate:
        raise AudioError(
            "bad_header",
            f"{uri}: the header says {rate} Hz, outside AudioConfig's "
            f"{config.min_sample_rate}-{config.max_sample_rate} Hz",
        )
    if channels > config.max_channels:
        raise AudioError(
            "too_many_channels",
            f"{uri}: {channels} channels exceeds AudioConfig.max_channels={config.max_channels}",
        )
    if seconds is not None and seconds > config.max_duration:
        raise AudioError(
            "too_long",
            f"{uri}: {seconds:.1f} s exceeds AudioConfig.max_duration={config.max_duration} s",
        )
    work = math.ceil(want * rate) * channels
    if work > config.max_decode_samples:
        raise AudioError(
            "too_large",
            f"{uri}: decoding {want:g} s of {channels} channels at {rate} Hz is {work} samples, "
            f"over AudioConfig.max_decode_samples={config.max_decode_samples}",
        )


# Bytes read from the start of a file to find a WAV's ``fmt `` and ``data`` chunks (what libsndfile
# reads anyway), and how far to look when ``bext``/``LIST``/``JUNK`` chunks push ``data`` further.
_HEADER_PROBE = 4 * 1024
_HEADER_PROBE_MAX = 256 * 1024
_WAV_MAGICS = (b"RIFF", b"RIFX", b"RF64")
# WAVE_FORMAT_PCM, _IEEE_FLOAT, _ALAW, _MULAW, _EXTENSIBLE: one frame is ``block_align`` bytes.
_FRAMED_WAV_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})
# Writers that stream to a pipe cannot go back to fill in the sizes: they leave 0, 0xFFFFFFFF or a
# large placeholder just under 2 GiB in *both* the RIFF size and the data size. Only then does a
# data size say nothing about truncation; a data size that the RIFF size does not echo as a
# placeholder is a promise, however large (a 1,000-byte file promising 4 GB is truncated).
_UNKNOWN_DATA_SIZE = 0x7FFF0000


def wav_promised_frames(fobj: BinaryIO) -> int | None:
    """Frames the WAV header at the start of ``fobj`` promises, or ``None`` if unknown or not a
    WAV; reads a few KB from where ``fobj`` is (its start) and leaves it at position 0."""
    head = fobj.read(_HEADER_PROBE)
    promised = _wav_promised_frames(head)
    if len(head) == _HEADER_PROBE and head[:4] in _WAV_MAGICS and b"data" not in head:
        promised = _wav_promised_frames(head + fobj.read(_HEADER_PROBE_MAX - _HEADER_PROBE))
    fobj.seek(0)
    return promised


def _wav_promised_frames(head: bytes) -> int | None:
    """Frames a RIFF/RIFX/RF64 WAV header promises, or ``None`` if unknown or not such a file."""
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in _WAV_MAGICS:
        return None
    end = ">" if head[:4] == b"RIFX" else "<"
    riff_size = struct.unpack(end + "I", head[4:8])[0]
    streamed = riff_size == 0 or riff_size >= _UNKNOWN_DATA_SIZE
    block_align = tag = data_size = None
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack(end + "I", head[pos + 4 : pos + 8])[0]
        body = head[pos + 8 : pos + 8 + size]
        if chunk == b"ds64" and len(body) >= 16:  # RF64: the real data size is 64-bit, here
            data_size = struct.unpack("<Q", body[8:16])[0]
        elif chunk == b"fmt " and len(body) >= 14:
            tag = struct.unpack(end + "H", body[0:2])[0]
            block_align = struct.unpack(end + "H", body[12:14])[0]
        elif chunk == b"data":
            if data_size is None:  # not already given by RF64's ds64
                unknown = size == 0 or size >= _UNKNOWN_DATA_SIZE
                data_size = None if unknown and streamed else size
            break
        pos += 8 + size + (size & 1)
    else:
        return None
    if not block_align or tag not in _FRAMED_WAV_TAGS or not data_size:
        return None
    return data_size // block_align
