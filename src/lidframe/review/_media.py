"""A row's audio file for the browser's player: its bytes as they are, in the ranges asked for.

Why this shape:

* **Bytes as stored where the browser plays them.** Chromium plays WAV (PCM, float, A-law,
  mu-law), FLAC, MP3, Ogg (Vorbis, Opus), WebM and AAC/MP4 itself; such a file is sent as it is,
  with a content type from its name.
* **Anything else decoded to WAV** (:func:`transcoded`): a file whose name says no format a
  browser plays (raw G.722, AMR, ...) is decoded by the decoders the job used
  (:func:`lidframe.audio.decode_clip`: libsndfile, then FFmpeg) from its start to the row's window
  end, at most :data:`TRANSCODE_SECONDS` seconds, mono 16-bit PCM at 16 kHz, and those bytes are
  served with the same range requests (the player still seeks to the window; times in the WAV are
  the file's). A row's decoded bytes are kept for the next requests of the same row.
* **HTTP range requests** (RFC 9110, one range per request, as media elements ask), so the player
  seeks to the row's window without downloading what comes before it: on S3 each chunk the
  browser asks for becomes one ranged GET of the object (read-ahead caching off), on a local disk
  a seek.
* **Through fsspec with the job's storage options and lidframe's timeouts**
  (:func:`lidframe.audio.with_io_timeouts`), as the decoders open files; the URI is the one the
  job database names for the row, never anything from the request.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from lidframe.audio import with_io_timeouts

__all__ = [
    "CHUNK",
    "TRANSCODE_SECONDS",
    "AudioFile",
    "ByteRange",
    "DecodedAudio",
    "open_audio",
    "parse_range",
    "playable",
    "transcoded",
]

# Bytes per read (and per ranged GET on object stores).
CHUNK = 256 * 1024
# The most of a file decoded for the player when the browser cannot play it as stored (16 kHz
# mono PCM: 32 kB a second, 19 MB at the most).
TRANSCODE_SECONDS = 600.0

# Content types of the audio formats browsers play, by the file name's extension.
_TYPES = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
}

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class ByteRange:
    """``[start, stop)`` of a file, and whether it answers a range request (206)."""

    start: int
    stop: int
    partial: bool

    @property
    def length(self) -> int:
        return self.stop - self.start


class RangeNotSatisfiable(ValueError):
    """A range outside the file (416)."""


def parse_range(header: str | None, size: int) -> ByteRange:
    """The bytes a ``Range`` header asks of a ``size``-byte file: the whole file without one (or
    with one this server does not take: several ranges, other units), else the first range,
    clipped to the file. Raises :class:`RangeNotSatisfiable` for a range past its end."""
    whole = ByteRange(0, size, partial=False)
    if not header:
        return whole
    match = _RANGE.match(header)
    if match is None:
        return whole  # RFC 9110: a server may ignore a Range it does not support
    first, last = match.groups()
    if first == "" and last == "":
        return whole
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(size - n, 0), size, partial=True)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable(header)
    stop = size if last == "" else min(int(last) + 1, size)
    if stop <= start:
        raise RangeNotSatisfiable(header)
    return ByteRange(start, stop, partial=True)


@dataclass
class AudioFile:
    """An opened row file: its store, path, size and content type."""

    fs: fsspec.AbstractFileSystem
    path: str
    size: int
    content_type: str

    def chunks(self, span: ByteRange) -> Iterator[bytes]:
        """The bytes of ``span``, :data:`CHUNK` at a time (blocking: run in a thread)."""
        with self.fs.open(self.path, "rb", block_size=CHUNK, cache_type="none") as f:
            f.seek(span.start)
            left = span.length
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    return
                left -= len(data)
                yield data


def open_audio(
    uri: str, storage_options: Mapping[str, Any] | None, io_timeout: float = 30.0
) -> AudioFile:
    """Find ``uri`` on its store and its size (blocking). Raises ``FileNotFoundError`` when it is
    not there, and whatever the store raises otherwise."""
    fs, path = fsspec.core.url_to_fs(uri, **with_io_timeouts(uri, storage_options, io_timeout))
    size = fs.size(path)
    if size is None:
        raise OSError(f"{uri}: the store does not say the file's size")
    return AudioFile(fs, path, int(size), content_type(uri))


def content_type(uri: str) -> str:
    name = uri.split("?", 1)[0].rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    ext = name[dot:] if dot >= 0 else ""
    return _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def playable(uri: str) -> bool:
    """Whether a browser plays ``uri`` as stored (its name says a format of :data:`_TYPES`)."""
    return content_type(uri) in _PLAYABLE


_PLAYABLE = frozenset(_TYPES.values())


@dataclass(frozen=True)
class DecodedAudio:
    """A row's file decoded to WAV bytes in memory (what :func:`transcoded` gives)."""

    data: bytes
    content_type: str = "audio/wav"

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, span: ByteRange) -> Iterator[bytes]:
        for start in range(span.start, span.stop, CHUNK):
            yield self.data[start : min(start + CHUNK, span.stop)]


def transcoded(
    uri: str,
    end: float | None,
    storage_options: Mapping[str, Any] | None,
    io_timeout: float = 30.0,
) -> DecodedAudio:
    """``uri`` from its start to ``end`` seconds (None: the file's end), at most
    :data:`TRANSCODE_SECONDS`, as a mono 16-bit WAV at 16 kHz (blocking). Raises
    :class:`~lidframe.errors.AudioError` (naming the file and each decoder's reason) when it
    cannot be decoded."""
    import io

    import soundfile as sf

    from lidframe.audio import AudioConfig, decode_clip

    config = AudioConfig(max_window=TRANSCODE_SECONDS, io_timeout=io_timeout)
    decoded = decode_clip(uri, 0.0, end, config, storage_options)
    out = io.BytesIO()
    sf.write(out, decoded.windows[0][1], config.sample_rate, format="WAV", subtype="PCM_16")
    return DecodedAudio(out.getvalue())
