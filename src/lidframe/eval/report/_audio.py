"""Audio players for the report's wrong rows: a link to each row's file, or its clip embedded.

* **Linked** (the default): ``<audio controls preload="metadata">`` whose ``src`` is the file, with
  a media fragment ``#t=START,END`` for the row's clip window (the browser seeks to START and
  stops at END). A local file is linked by its path relative to the report's folder, so the folder
  can move together with its audio; by an absolute ``file://`` URI only when no relative path
  exists (the report has no local folder, or the file is on another drive). ``http(s)://`` audio
  is linked as it is. Audio in a store a browser cannot read (``s3://``, ``gs://``...) is shown as
  text, with no player.
* **Embedded** (``embed``): the clip window is decoded (:func:`lidframe.audio.decode_window`, at
  16 kHz mono, as the models heard it), at most ``max_seconds`` of it, and written into the page as
  a 16-bit WAV ``data:`` URI, so the HTML plays alone, wherever it is sent. Embedding stops at
  :data:`EMBED_TOTAL_BYTES` for the whole report (later rows are linked), so a report stays a
  page. A clip that cannot be decoded is linked instead, with its one-line reason.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["EMBED_TOTAL_BYTES", "Players", "fragment", "local_path"]

# Most bytes of embedded audio (base64) in one report; later clips are linked instead.
EMBED_TOTAL_BYTES = 64 * 1024 * 1024
_BROWSER_SCHEMES = ("http://", "https://")


def local_path(uri: str) -> str | None:
    """The local file of ``uri`` (a path, or a ``file://`` URI), None for any other store."""
    if uri.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    if "://" in uri:
        return None
    return os.path.expanduser(uri)


def _seconds(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def fragment(start: float, end: float) -> str:
    """The media fragment of a clip window: ``#t=START,END``, ``#t=START`` when the end is
    unknown, nothing for a whole file."""
    if math.isfinite(end) and end > start:
        return f"#t={_seconds(start)},{_seconds(end)}"
    return f"#t={_seconds(start)}" if start > 0 else ""


def _player(src: str) -> str:
    return f'<audio controls preload="metadata" src="{html.escape(src, quote=True)}"></audio>'


class Players:
    """Makes each wrong row's player; keeps the embedded bytes within :data:`EMBED_TOTAL_BYTES`.

    ``report_dir``: the local folder the report is written to (None: not local, or not written).
    ``storage_options``: for decoding remote audio when embedding.
    """

    def __init__(
        self,
        report_dir: str | None,
        *,
        embed: bool = False,
        max_seconds: float = 10.0,
        storage_options: Mapping[str, Any] | None = None,
        total_bytes: int = EMBED_TOTAL_BYTES,
    ) -> None:
        if embed and not (max_seconds > 0 and math.isfinite(max_seconds)):
            raise ValueError(f"embed max_seconds must be a positive number, got {max_seconds!r}")
        self.report_dir = report_dir
        self.embed = embed
        self.max_seconds = max_seconds
        self.storage_options = dict(storage_options or {})
        self.budget = total_bytes
        self.embedded = 0
        self.linked = 0

    def cell(self, uri: str, start: float, end: float) -> str:
        """The audio cell of one row: its URI as text, and a player (or why there is none)."""
        if not uri:
            return '<span class="note">no audio URI</span>'
        text = f'<span class="uri">{html.escape(uri)}</span>'
        note = ""
        if self.embed:
            embedded, note = self._embedded(uri, start, end)
            if embedded is not None:
                self.embedded += 1
                return f"{text}<br>{_player(embedded)}{note}"
        src = self._link(uri)
        if src is None:
            scheme = uri.split("://", 1)[0]
            why = f"no player: a browser cannot read {scheme}:// audio"
            hint = "" if self.embed else " (embed_audio=True / --embed-audio embeds the clip)"
            return f'{text}<br><span class="note">{html.escape(why + hint)}</span>{note}'
        self.linked += 1
        return f"{text}<br>{_player(src + fragment(start, end))}{note}"

    def _link(self, uri: str) -> str | None:
        if uri.startswith(_BROWSER_SCHEMES):
            return uri
        path = local_path(uri)
        if path is None:
            return None
        path = os.path.abspath(path)
        if self.report_dir is not None:
            try:
                relative = os.path.relpath(path, self.report_dir)
            except ValueError:  # another drive: no relative path
                pass
            else:
                return urllib.parse.quote(relative.replace(os.sep, "/"))
        return Path(path).as_uri()

    def _embedded(self, uri: str, start: float, end: float) -> tuple[str | None, str]:
        """The clip as a ``data:audio/wav`` URI (None when not embedded) and a note for the cell."""
        import soundfile as sf

        from lidframe.audio import decode_window

        if self.budget <= 0:
            return (
                None,
                '<br><span class="note">linked: the report\'s embedded audio is full</span>',
            )
        window = end - start if math.isfinite(end) and end > start else math.inf
        seconds = min(window, self.max_seconds)
        try:
            samples = decode_window(uri, start, seconds, storage_options=self.storage_options)
        except Exception as exc:  # noqa: BLE001 - one clip that cannot be read is linked instead
            reason = html.escape(" ".join(str(exc).split()))
            return None, f'<br><span class="note">not embedded: {reason}</span>'
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        if len(data) > self.budget:
            self.budget = 0
            return (
                None,
                '<br><span class="note">linked: the report\'s embedded audio is full</span>',
            )
        self.budget -= len(data)
        cut = window > seconds
        note = (
            f'<br><span class="note">first {_seconds(seconds)} s of the clip</span>' if cut else ""
        )
        return f"data:audio/wav;base64,{data}", note
