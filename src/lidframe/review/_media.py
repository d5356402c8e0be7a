"""A row's audio file for the browser's player: its bytes as they are, in the ranges asked for.

Why this shape:

* **Bytes as stored, no transcoding.** Chromium plays WAV (PCM, float, A-law, mu-law), FLAC, MP3,
  Ogg (Vorbis, Opus), WebM and AAC/MP4 itself; a file is sent as it is, with a content type from
  its name. Formats it cannot play (raw G.722, AMR, ...) are sent too and the page says the
  player could not decode the file (transcoding them is left for later).
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

__all__ = ["CHUNK", "AudioFile", "ByteRange", "open_audio", "parse_range"]

# Bytes per read (and per ranged GET on object stores).
CHUNK = 256 * 1024

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
