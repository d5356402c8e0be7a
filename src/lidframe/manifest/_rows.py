"""Manifest rows as written -> normalised rows, each bad row with its own error.

A row that cannot be used (an empty ``audio``, an offset that is not a number, an unknown label, a
CSV line with too many fields, a JSON line that is not an object) keeps its place: it becomes a row
whose ``error`` says what is wrong (category ``bad_row``), and every other row of its partition is
identified as usual. Nothing here raises for a row.

Values are kept exactly as written (ids are never stripped or altered: they key the results), except
that text PostgreSQL and Parquet cannot store (a NUL byte, an unpaired surrogate) is escaped and its
row gets an error instead of silently changing meaning.

Why the derived id looks the way it does: it hashes the audio reference *as written in the manifest*,
the offset and the duration, so it stays the same when a dataset moves with its manifest and when a run
is repeated or resumed. Ids are not checked for uniqueness here: a job's database does that as rows are
committed (see :mod:`lidframe.store.leases`), :func:`~lidframe.manifest.read_manifest` (small
manifests) before it returns.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import posixpath
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lidframe.columns import MANIFEST
from lidframe.errors import ConfigError
from lidframe.languages import label_code

__all__ = [
    "BAD_ROW",
    "MANIFEST_COLUMNS",
    "derive_id",
    "manifest_meta",
    "normalise_rows",
    "parse_csv_lines",
    "parse_json_lines",
    "split_lines",
]

MANIFEST_COLUMNS = tuple(c.name for c in MANIFEST)
BAD_ROW = "bad_row"
_Raw = dict[str, Any]


def derive_id(audio: str, offset: float | None, duration: float | None) -> str:
    """Stable row id from the audio reference as written, the offset and the duration."""

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))

    key = f"{audio}\x1f{num(offset)}\x1f{num(duration)}".encode("utf-8", "backslashreplace")
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def manifest_meta(with_label: bool) -> pd.DataFrame:
    """Empty frame with the dtypes of normalised manifest rows (without ``error``)."""
    return pd.DataFrame({c.name: c.empty() for c in MANIFEST if with_label or c.name != "label"})


def split_lines(data: bytes) -> list[bytes]:
    """The records of a text manifest's bytes: every line that is not blank, without its ending.

    One rule for the planner (which counts records) and the reader (which parses them), so both
    always agree on how many rows a byte range holds.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            out.append(line)
    return out


def parse_csv_lines(lines: Sequence[bytes], header: Sequence[str], sep: str) -> list[_Raw | str]:
    """Each line as ``{column: value}`` (empty fields None), or the reason it cannot be read."""
    out: list[_Raw | str] = []
    width = len(header)
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append(f"the line is not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        try:
            fields = next(csv.reader([text], delimiter=sep, strict=True))
        except (csv.Error, StopIteration) as exc:
            out.append(f"the line is not valid CSV ({exc})")
            continue
        if len(fields) > width:
            out.append(f"the line has {len(fields)} fields, the header has {width}")
            continue
        fields += [""] * (width - len(fields))
        out.append({k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)})
    return out


def parse_json_lines(lines: Sequence[bytes]) -> list[_Raw | str]:
    """Each line as the object it holds, or the reason it cannot be read.

    Python's json module, not ujson: ujson silently drops an unpaired surrogate escape
    (``"a\\ud800"`` reads as ``"a"``), which would alter an id; here it is kept and refused by row.
    """
    out: list[_Raw | str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError as exc:
            out.append(f"the line is not JSON ({exc})")
            continue
        if not isinstance(record, dict):
            out.append(f"the line is not a JSON object: {line[:80]!r}")
            continue
        out.append(record)
    return out


def normalise_rows(
    records: Sequence[_Raw | str], first_row: int, base: str, with_label: bool
) -> pd.DataFrame:
    """Normalised rows (``id``, ``audio``, [``label``], ``offset``, ``duration``, ``error``), indexed
    by manifest row number from ``first_row``. A record that is a string is that row's problem."""
    n = len(records)
    ids: list[str] = []
    audios: list[str] = []
    labels: list[str | None] = []
    offsets = np.full(n, np.nan)
    durations = np.full(n, np.nan)
    errors: list[str | None] = []
    for i, given_record in enumerate(records):
        row = first_row + i
        problem: str | None = None
        record: _Raw = {}
        if isinstance(given_record, str):
            problem = given_record
        else:
            record = given_record
        audio_raw = record.get("audio")
        audio = "" if _missing(audio_raw) else str(audio_raw).strip()
        offset, duration = math.nan, math.nan
        label = None
        for column in ("offset", "duration"):
            value, trouble = _seconds(record.get(column), column)
            problem = problem or trouble
            if column == "offset":
                offset = value
            else:
                duration = value
        if problem is None and audio == "":
            problem = "column 'audio' is empty"
        if problem is None:
            problem = _unstorable(audio, "audio")
        if with_label and not _missing(record.get("label")) and str(record["label"]).strip():
            try:
                label = label_code(str(record["label"]))
            except ConfigError:
                problem = problem or f"column 'label': {record['label']!r} is not a language code"
        row_id: str
        given = record.get("id")
        if "id" in record and not _missing(given) and str(given) != "":
            row_id = str(given)
            trouble = _unstorable(row_id, "id")
            if trouble is not None:
                problem = problem or trouble
                row_id = _escaped(row_id)
        else:
            if "id" in record:
                problem = problem or "column 'id' is empty"
            # A bad row's values may be shared by many bad rows: its id is its place instead.
            row_id = f"bad-row-{row}" if problem else derive_id(audio, offset, duration)
        ids.append(row_id)
        audios.append(_escaped(audio) if _unstorable(audio, "audio") else audio)
        labels.append(label)
        offsets[i], durations[i] = offset, duration
        errors.append(None if problem is None else f"{BAD_ROW}: row {row}: {problem}")
    out = pd.DataFrame(index=pd.RangeIndex(first_row, first_row + n))
    out["id"] = pd.array(ids, dtype="string")
    out["audio"] = pd.array([_resolve(a, base) if a else a for a in audios], dtype="string")
    if with_label:
        out["label"] = pd.array(labels, dtype="string")
    out["offset"] = offsets
    out["duration"] = durations
    out["error"] = pd.array(errors, dtype="string")
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _seconds(value: Any, column: str) -> tuple[float, str | None]:
    if _missing(value) or (isinstance(value, str) and value.strip() == ""):
        return math.nan, None
    if isinstance(value, bool):
        return math.nan, f"column {column!r}: {value!r} is not a number of seconds"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan, f"column {column!r}: {value!r} is not a number of seconds"
    if not math.isfinite(number):
        return math.nan, f"column {column!r}: {value!r} is not finite"
    if column == "offset" and number < 0:
        return math.nan, f"column 'offset': {number} is negative"
    if column == "duration" and number <= 0:
        return math.nan, f"column 'duration': {number} is not positive"
    return number, None


def _unstorable(value: str, column: str) -> str | None:
    """Why ``value`` cannot be stored as text (a NUL byte, an unpaired surrogate), or None."""
    if "\x00" in value:
        return f"column {column!r}: {value!r} contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"column {column!r}: {value!r} contains an unpaired surrogate (not UTF-8 text)"
    return None


def _escaped(value: str) -> str:
    """Storable text for a value that is not: NUL and lone surrogates as backslash escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _resolve(audio: str, base: str) -> str:
    """Absolute URI of ``audio``: URIs stay, relative paths join the manifest's folder."""
    if "://" in audio:
        return audio
    if "://" in base:
        protocol, folder = base.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(folder, audio))}"
    return os.path.normpath(os.path.join(base, os.path.expanduser(audio)))
