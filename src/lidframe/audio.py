"""Turn one audio URI into a mono float32 waveform at the models' sample rate.

Why this shape:

* **libsndfile first, FFmpeg second.** ``soundfile`` (libsndfile) decodes WAV, FLAC, Ogg/Vorbis,
  Ogg/Opus and MP3 quickly and can seek by frame, so only the requested window is read. What it
  cannot open (m4a/AAC, webm, ...) goes to PyAV, which bundles FFmpeg and seeks by timestamp. When
  both fail, the error names the file and both reasons.
* **Only the window.** A clip is ``[offset, offset + duration)`` of its file, and never more than
  :attr:`AudioConfig.max_window` seconds of it (what the models look at). Files are opened through
  fsspec as seekable file objects, so a 2-hour file on S3 costs a few range requests, not a
  download.
* **Limits before decoding.** Size, sample rate, channel count and duration come from the store
  and the header and are checked before any sample is decoded; a header with an absurd rate or no
  channels is ``bad_header``, and the decoding work of one row (rate x channels x window) is capped.
* **Bounded memory.** Samples are decoded, mixed to mono and resampled in chunks of
  :data:`CHUNK_FRAMES` frames, so a 32-channel 192 kHz file costs a few MB of memory, not the
  700 MB its whole window would take as float32.
* **Bounded time.** Remote stores get connect and read timeouts (:attr:`AudioConfig.io_timeout`);
  the hard limit on a whole row (:attr:`AudioConfig.timeout`) is enforced by
  :mod:`lidframe.audio_pool`, which runs this function in a child process it can kill.
* **Resampling with soxr**, the resampler that sox and many speech toolkits use: high quality and
  fast, and streaming, so chunks resample exactly as a whole signal would.

Every failure is an :class:`~lidframe.errors.AudioError` with a short category; the kernel turns it
into the row's ``error`` value. Nothing here knows about dataframes or models.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec
import numpy as np
import soundfile as sf
import soxr

from lidframe.errors import AudioError, ConfigError
from lidframe.settings import setting

__all__ = ["CHUNK_FRAMES", "AudioConfig", "decode_window", "with_io_timeouts"]

# Frames decoded (and mixed down, and resampled) at a time: memory is this many frames x channels.
CHUNK_FRAMES = 64 * 1024


@dataclass(frozen=True)
class AudioConfig:
    """Limits and output format of decoding; the defaults suit speech LID at scale."""

    # Sample rate of the returned waveform (every supported model wants 16 kHz).
    sample_rate: int = setting(16_000, identity=True)
    # Longest stretch of a file decoded for one row, in seconds (Whisper's context is 30 s).
    max_window: float = setting(30.0, identity=True)
    # Files larger than this many bytes are refused before reading (category ``too_large``).
    max_bytes: int = setting(4 * 1024**3, identity=True)
    # Files with more channels than this are refused (category ``too_many_channels``).
    max_channels: int = setting(32, identity=True)
    # Files whose header says they are longer than this many seconds are refused (``too_long``).
    max_duration: float = setting(12 * 3600.0, identity=True)
    # Block size for remote reads: small, because only a window of each file is read.
    block_size: int = setting(1024 * 1024, identity=False)
    # Sample rates a header may state; outside this range the header is ``bad_header``.
    min_sample_rate: int = setting(1_000, identity=True)
    max_sample_rate: int = setting(768_000, identity=True)
    # Most samples (frames x channels) one row may decode; more is ``too_large``. The default lets
    # 30 s of 32 channels at 192 kHz through; memory stays small whatever this is (chunked).
    max_decode_samples: int = setting(200_000_000, identity=True)
    # Seconds to connect to remote storage and for each read from it (S3, HTTP); then the read
    # fails (``timeout``) instead of waiting on a store that accepts connections and never answers.
    io_timeout: float = setting(30.0, identity=False)
    # Seconds one row may take to open, read and decode, whatever happens inside (a store that
    # trickles bytes, a decoder stuck in native code); then its decoder process is killed and the
    # row is ``timeout``. See lidframe.audio_pool.
    timeout: float = setting(120.0, identity=False)

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

    try:
        fs, path = fsspec.core.url_to_fs(
            uri, **with_io_timeouts(uri, storage_options, config.io_timeout)
        )
    except (ValueError, ImportError) as exc:
        raise AudioError("read_failed", f"{uri}: cannot open this URI: {exc}") from exc
    try:
        size = fs.size(path)
    except Exception as exc:
        raise _storage_error(uri, "cannot stat", exc) from exc
    if size is None:
        size = -1
    if size == 0:
        raise AudioError("empty", f"{uri}: the file is empty (0 bytes)")
    if size > config.max_bytes:
        raise AudioError(
            "too_large", f"{uri}: {size} bytes exceeds AudioConfig.max_bytes={config.max_bytes}"
        )

    reasons: list[str] = []
    try:
        with fs.open(path, "rb", block_size=config.block_size) as fobj:
            samples, _ = _read_soundfile(uri, fobj, start, want, config, reasons)
            if samples is None:
                fobj.seek(0)
                samples, _ = _read_pyav(uri, fobj, start, want, config, reasons)
    except AudioError:
        raise
    except Exception as exc:
        raise _storage_error(uri, "cannot read", exc) from exc
    if samples is None:
        raise AudioError("decode_failed", f"{uri}: not decodable audio ({'; '.join(reasons)})")
    if samples.size == 0:
        raise AudioError("bad_window", f"{uri}: no samples in window offset={start} s")
    return np.ascontiguousarray(samples, dtype=np.float32)


def with_io_timeouts(
    uri: str, storage_options: Mapping[str, Any] | None, io_timeout: float
) -> dict[str, Any]:
    """``storage_options`` plus connect/read timeouts for the store of ``uri`` (S3, HTTP).

    Options the user set win. S3 (botocore): ``connect_timeout``, ``read_timeout`` and two attempts in
    ``config_kwargs`` (s3fs retries timeouts a few more times; the hard per-row limit caps all of
    it). HTTP (aiohttp): ``sock_connect`` and
    ``sock_read``. Other stores keep their own defaults; the hard per-row limit still bounds them.
    """
    options = dict(storage_options or {})
    protocol = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("connect_timeout", io_timeout)
        config.setdefault("read_timeout", io_timeout)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        options["config_kwargs"] = config
    elif protocol in ("http", "https"):
        import aiohttp

        client = dict(options.get("client_kwargs") or {})
        client.setdefault(
            "timeout", aiohttp.ClientTimeout(sock_connect=io_timeout, sock_read=io_timeout)
        )
        options["client_kwargs"] = client
    return options


# Error codes of object stores that mean "these credentials may not read this".
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "403",
        "401",
    }
)
_DENIED_TYPES = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
)
_TIMEOUT_TYPES = frozenset(
    {"FSTimeoutError", "ReadTimeoutError", "ConnectTimeoutError", "ServerTimeoutError"}
)


def _storage_error(uri: str, what: str, exc: BaseException) -> AudioError:
    """The row error for an exception from a store or decoder, its category found along the chain.

    ``access_denied`` (refused or missing credentials) and ``timeout`` are told apart from other
    read failures because they say something about the whole job, not this file.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and all(cause is not seen for seen in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join((str(exc) or type(exc).__name__).split())
    # The most telling cause wins, wherever it is in the chain: fsspec's HTTP store, for one,
    # raises FileNotFoundError *from* a timeout or a refused connection.
    for category, matches in (
        ("timeout", _is_timeout),
        ("access_denied", _is_denied),
        ("read_failed", _is_connection_error),
    ):
        if any(matches(c) for c in chain):
            return AudioError(category, f"{uri}: {what}: {type(exc).__name__}: {text}")
    if any(isinstance(c, FileNotFoundError) for c in chain):
        return AudioError("not_found", f"{uri}: no such file")
    storage = any(
        isinstance(c, OSError) or type(c).__module__.split(".")[0] in _STORE_MODULES for c in chain
    )
    category = "read_failed" if storage else "decode_failed"
    return AudioError(category, f"{uri}: {what}: {type(exc).__name__}: {text}")


_STORE_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "gcsfs", "adlfs")


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or type(exc).__name__ in _TIMEOUT_TYPES


def _is_denied(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return (
        isinstance(exc, PermissionError)
        or type(exc).__name__ in _DENIED_TYPES
        or code in _DENIED_CODES
    )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError) or type(exc).__name__ in (
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "EndpointConnectionError",
    )


def _isnan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _check_header(
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


def _read_soundfile(
    uri: str, fobj: BinaryIO, start: float, want: float, config: AudioConfig, reasons: list[str]
) -> tuple[np.ndarray | None, int]:
    """Read the window with libsndfile; ``(None, 0)`` when libsndfile cannot open the file."""
    # libsndfile clamps a WAV's frame count to what the file holds, so a file cut short would read
    # as a shorter, valid one: take the count the header promises from the header itself.
    head = fobj.read(_HEADER_PROBE)
    promised = _wav_promised_frames(head)
    if len(head) == _HEADER_PROBE and head[:4] in _WAV_MAGICS and b"data" not in head:
        promised = _wav_promised_frames(head + fobj.read(_HEADER_PROBE_MAX - _HEADER_PROBE))
    fobj.seek(0)
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
        _check_header(uri, rate, channels, seconds, want, config)
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
        expected = min(count, frames - first) if known else count
        mono = _MonoStream(uri, rate, config.sample_rate)
        try:
            if first:
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
            f"{uri}: header promises {frames} frames but only {first + mono.frames} could be read",
        )
    return mono.finish(), config.sample_rate


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


def _read_pyav(
    uri: str, fobj: BinaryIO, start: float, want: float, config: AudioConfig, reasons: list[str]
) -> tuple[np.ndarray | None, int]:
    """Read the window with FFmpeg through PyAV; ``(None, 0)`` when FFmpeg cannot open the file."""
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
        _check_header(uri, rate, channels, seconds, want, config)
        if seconds is not None and start >= seconds:
            raise AudioError(
                "bad_window", f"{uri}: offset {start} s is past the end ({seconds:.3f} s)"
            )
        first = round(start * rate)
        count = round(want * rate)
        if start > 0 and stream.time_base is not None:
            try:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError:
                container.seek(0)
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
    return mono.finish(), config.sample_rate


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
