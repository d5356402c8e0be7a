"""Audio manifests: what they are on storage, their partitions planned as a stream, and reading one.

A manifest is CSV, TSV, Parquet or JSON Lines (one file, a folder of files, or a glob), local or on
any fsspec store (``s3://`` through s3fs), with one row per clip:

============  =========================================================================
``audio``     required: a path or URI; relative paths resolve against the manifest's folder
``id``        optional: a unique row id; when absent a stable one is derived (see below)
``label``     optional: ground-truth language, normalised to a canonical code
``offset``    optional: start of the clip inside the file, in seconds
``duration``  optional: length of the clip, in seconds
============  =========================================================================

Work starts in seconds whatever the size, because nothing reads the whole manifest first:

* :func:`open_manifest` lists the files and reads one header (CSV), one footer (Parquet) or the first
  megabyte (JSON Lines). Its :attr:`Manifest.identity` hashes what storage says of each file (size
  and ETag or modification time), so a job's identity is known at once and an edited manifest is
  another manifest.
* :func:`plan_partitions` streams :class:`PlannedPartition` s: text is read once, in 16 MiB blocks,
  and cut after every ``partition_rows`` non-blank lines (one rule, :func:`split_lines`, for planner
  and reader); Parquet is cut from its footers' row counts without reading any data. A partition
  never spans two files. Each carries a digest of its content (the bytes of its lines; for Parquet
  its file's footer and its row range), checked again when it is read: a manifest changed after it
  was planned fails loudly instead of mixing two versions.
* :func:`read_partition` reads one partition alone (a byte range, or the row groups it spans) and
  normalises its rows; a bad row gets its own ``bad_row`` error (:mod:`lidframe.manifest_rows`).

Why the derived id looks the way it does: it hashes the audio reference *as written in the manifest*,
the offset and the duration, so it stays the same when a dataset moves with its manifest and when a run
is repeated or resumed. Ids are not checked for uniqueness here: a job's database does that as rows are
committed (see :mod:`lidframe.store.leases`), :func:`read_manifest` (small manifests) before it returns.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import os
import posixpath
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dask.delayed import delayed

from lidframe.errors import ConfigError, ManifestError
from lidframe.manifest_rows import (
    BAD_ROW,
    MANIFEST_COLUMNS,
    derive_id,
    manifest_meta,
    normalise_rows,
    parse_csv_lines,
    parse_json_lines,
    split_lines,
)

__all__ = [
    "BAD_ROW",
    "MANIFEST_COLUMNS",
    "Manifest",
    "ManifestChanged",
    "ManifestFile",
    "PlannedPartition",
    "derive_id",
    "manifest_meta",
    "open_manifest",
    "plan_partitions",
    "read_manifest",
    "read_partition",
]

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_SCAN_BLOCK = 16 * 2**20
_SAMPLE = 2**20


class ManifestChanged(ManifestError):
    """A partition's content is not what was planned: the manifest changed while its job ran."""


@dataclass(frozen=True)
class ManifestFile:
    """One file of a manifest, as storage describes it."""

    path: str  # as its filesystem names it (no protocol)
    size: int
    version: str  # ETag, or modification time: what changes when the file is rewritten


@dataclass(frozen=True)
class Manifest:
    """A manifest on storage: its files, format and columns. Cheap to make and to pickle."""

    url: str
    format: str
    files: tuple[ManifestFile, ...]
    columns: tuple[str, ...]
    base: str  # the folder relative audio paths resolve against, with its protocol
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def with_label(self) -> bool:
        return "label" in self.columns

    @property
    def identity(self) -> str:
        """Hash of the format and of every file's name, size and version (no data is read)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.format.encode())
        for f in self.files:
            h.update(f"\x1f{posixpath.basename(f.path)}\x1f{f.size}\x1f{f.version}".encode())
        return h.hexdigest()

    def meta(self) -> pd.DataFrame:
        """Empty frame shaped like :func:`read_partition`'s result without ``error``."""
        return manifest_meta(self.with_label)

    def fs(self) -> Any:
        return fsspec.core.url_to_fs(self.url, **dict(self.storage_options))[0]


@dataclass(frozen=True)
class PlannedPartition:
    """Rows ``[row_start, row_stop)`` of the manifest, found in ``source``.

    ``source`` is ``"FILE:START:STOP"``: the file's index in :attr:`Manifest.files` and a byte range
    (text) or a file-local row range (Parquet).
    """

    partition: int
    row_start: int
    row_stop: int
    source: str
    digest: str

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start


def open_manifest(
    path: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> Manifest:
    """Describe the manifest at ``path`` (list its files, read its columns); reads no rows.

    Raises :class:`ManifestError` naming the file when it is missing, unreadable, empty, or has no
    ``audio`` column.
    """
    url = os.fspath(path)
    options = dict(storage_options or {})
    if format is None and not any(c in url for c in "*?[") and _format_of(url) is None:
        ext = posixpath.splitext(url.rstrip("/"))[1]
        if ext:
            _detect_format(url, None, False)  # an extension no reader knows: say so first
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
        files, is_dir = _list_files(fs, root, url, format)
    except ManifestError:
        raise
    except FileNotFoundError as exc:
        raise ManifestError(f"{url}: manifest not found") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(f"{url}: cannot list the manifest: {exc}") from exc
    fmt = _detect_format(url if not is_dir else files[0].path, format, is_dir)
    base = _base_of(url, is_dir)
    try:
        columns = _columns(fs, files[0], fmt)
    except ManifestError:
        raise
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise ManifestError(f"{files[0].path}: cannot read the manifest as {fmt}: {exc}") from exc
    if "audio" not in columns:
        raise ManifestError(
            f"{url}: the required column 'audio' is missing (columns: {list(columns)})"
        )
    return Manifest(url, fmt, tuple(files), tuple(columns), base, options)


def plan_partitions(
    manifest: Manifest, partition_rows: int, *, after: PlannedPartition | None = None
) -> Iterator[PlannedPartition]:
    """Stream the manifest's partitions in order (resuming ``after`` a partition already planned).

    Each has ``partition_rows`` rows, except the last of each file. Raises :class:`ManifestError`
    naming the file when one cannot be read.
    """
    if not isinstance(partition_rows, int) or partition_rows <= 0:
        raise ConfigError(f"partition_rows must be a positive integer, got {partition_rows!r}")
    fs = manifest.fs()
    k, row, first_file, offset = 0, 0, 0, None
    if after is not None:
        first_file, _, offset = _locate(after.source)
        k, row = after.partition + 1, after.row_stop
    for index in range(first_file, len(manifest.files)):
        f = manifest.files[index]
        scan = _scan_parquet if manifest.format == "parquet" else _scan_text
        try:
            for start, stop, rows, digest in scan(
                fs, f, manifest, partition_rows, offset if index == first_file else None
            ):
                yield PlannedPartition(k, row, row + rows, f"{index}:{start}:{stop}", digest)
                k += 1
                row += rows
        except ManifestError:
            raise
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            raise ManifestError(f"{f.path}: cannot read the manifest: {exc}") from exc


def read_partition(manifest: Manifest, part: PlannedPartition) -> pd.DataFrame:
    """The normalised rows of one planned partition, with an ``error`` column for bad rows.

    Raises :class:`ManifestChanged` when the content is not what was planned.
    """
    index, start, stop = _locate(part.source)
    f = manifest.files[index]
    fs = manifest.fs()
    if manifest.format == "parquet":
        records, digest = _read_parquet(fs, f, start, stop)
    else:
        data = _read_range(fs, f, start, stop)
        digest = _digest(data)
        lines = split_lines(data)
        if manifest.format == "jsonl":
            records = parse_json_lines(lines)
        else:
            sep = "\t" if manifest.format == "tsv" else ","
            records = parse_csv_lines(lines, manifest.columns, sep)
    if digest != part.digest or len(records) != part.rows:
        raise ManifestChanged(
            f"{f.path}: manifest rows {part.row_start}-{part.row_stop - 1} are not what was "
            f"planned ({len(records)} rows, digest {digest} vs {part.digest}): the manifest "
            "changed while its job ran; restore it, or run it as a new job (--overwrite)"
        )
    return normalise_rows(records, part.row_start, manifest.base, manifest.with_label)


def read_manifest(
    path: str | os.PathLike[str],
    *,
    partition_rows: int = 128,
    storage_options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> dd.DataFrame:
    """Read ``path`` into a Dask dataframe of normalised manifest rows, ``partition_rows`` each.

    For manifests that fit a notebook: every row is validated before this returns, and the first
    bad row or duplicate id raises :class:`ManifestError` naming it. (``lidframe.run`` instead starts
    at once and gives each bad row its own error.)
    """
    manifest = open_manifest(path, storage_options=storage_options, format=format)
    parts = list(plan_partitions(manifest, partition_rows))
    if not parts:
        raise ManifestError(f"{manifest.url}: the manifest has no rows")
    frames = [read_partition(manifest, p) for p in parts]
    seen: dict[str, int] = {}
    for frame in frames:
        bad = frame["error"].dropna()
        if len(bad):
            raise ManifestError(f"{manifest.url}: {bad.iloc[0].removeprefix(BAD_ROW + ': ')}")
        for row, row_id in zip(frame.index, frame["id"], strict=True):
            if row_id in seen:
                raise ManifestError(
                    f"{manifest.url}: duplicate ids: {row_id!r} (rows {seen[row_id]} and {row})"
                )
            seen[row_id] = row
    return dd.from_delayed(
        [delayed(f.drop(columns="error")) for f in frames],
        meta=manifest.meta(),
        verify_meta=False,
    )


# -- storage ------------------------------------------------------------------------------------


def _list_files(
    fs: Any, root: str, url: str, format: str | None
) -> tuple[list[ManifestFile], bool]:
    if any(c in root for c in "*?["):
        found = fs.glob(root, detail=True)
        is_dir = False
    elif fs.isdir(root):
        found = fs.find(root, detail=True)
        is_dir = True
    else:
        info = fs.info(root)
        found = {root: info}
        is_dir = False
    files = []
    for name, info in sorted(found.items()):
        leaf = posixpath.basename(name)
        if info.get("type") == "directory" or leaf.startswith(("_", ".")):
            continue  # _SUCCESS, _metadata, .crc files of Spark and Dask writers
        if is_dir and format is None and _format_of(leaf) != "parquet":
            continue
        version = next(
            (
                str(info[k])
                for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created")
                if info.get(k) is not None
            ),
            "",
        )
        files.append(ManifestFile(name, int(info.get("size") or 0), version))
    if not files:
        raise ManifestError(f"{url}: manifest not found (no manifest files there)")
    return files, is_dir


def _format_of(name: str) -> str | None:
    name = name.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    return _FORMATS.get(posixpath.splitext(name)[1])


def _detect_format(url: str, format: str | None, is_dir: bool) -> str:
    if format is not None:
        if format not in set(_FORMATS.values()):
            raise ConfigError(
                f"manifest format must be one of {sorted(set(_FORMATS.values()))}, got {format!r}"
            )
        return format
    found = _format_of(url.rstrip("/"))
    if found is not None:
        return found
    if is_dir:
        return "parquet"
    ext = posixpath.splitext(url.rstrip("/").lower())[1]
    raise ManifestError(
        f"{url}: cannot tell the manifest format from {ext!r}; use .csv, .tsv, .parquet, .jsonl "
        "or pass format="
    )


def _compression(path: str) -> str | None:
    return _COMPRESSIONS.get(posixpath.splitext(path.lower())[1])


def _base_of(url: str, is_dir: bool) -> str:
    """The folder that relative audio paths resolve against, with its protocol."""
    if any(c in url for c in "*?["):
        url = url[: min(url.find(c) for c in "*?[" if c in url)]
        return url.rstrip("/").rsplit("/", 1)[0] if "/" in url else os.getcwd()
    if "://" in url:
        return url.rstrip("/") if is_dir else url.rstrip("/").rsplit("/", 1)[0]
    path = os.path.abspath(url)
    return path if is_dir else os.path.dirname(path)


def _columns(fs: Any, f: ManifestFile, fmt: str) -> list[str]:
    if fmt == "parquet":
        with fs.open(f.path, "rb") as fh:
            return list(pq.ParquetFile(fh).schema_arrow.names)
    with fs.open(f.path, "rb", compression=_compression(f.path)) as fh:
        sample = fh.read(_SAMPLE)
    if fmt == "jsonl":
        keys: dict[str, None] = {}
        lines = split_lines(sample)
        if len(sample) == _SAMPLE and lines and not sample.endswith(b"\n"):
            lines.pop()  # cut mid-line
        for record in parse_json_lines(lines):
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
        if not lines:
            raise ManifestError(f"{f.path}: the manifest has no rows")
        return list(keys)
    header = _header_line(sample, f)
    text = header.decode("utf-8-sig")
    return next(csv.reader([text], delimiter="\t" if fmt == "tsv" else ","))


def _header_line(sample: bytes, f: ManifestFile) -> bytes:
    for line in sample.split(b"\n"):
        line = line.rstrip(b"\r")
        if line:
            return line
    raise ManifestError(f"{f.path}: the manifest is empty (no header line)")


def _locate(source: str) -> tuple[int, int, int]:
    index, start, stop = source.split(":")
    return int(index), int(start), int(stop)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _read_range(fs: Any, f: ManifestFile, start: int, stop: int) -> bytes:
    compression = _compression(f.path)
    if compression is None:
        return bytes(fs.cat_file(f.path, start=start, end=stop))
    # A compressed file cannot be entered in the middle: decompress up to the range (plain text or
    # Parquet manifests avoid this cost; see the README on large jobs).
    with fs.open(f.path, "rb", compression=compression) as fh:
        fh.seek(start)
        return bytes(fh.read(stop - start))


# -- planning -------------------------------------------------------------------------------------


def _scan_text(
    fs: Any, f: ManifestFile, manifest: Manifest, partition_rows: int, offset: int | None
) -> Iterator[tuple[int, int, int, str]]:
    """``(start, stop, rows, digest)`` of each partition of one text file, reading it once.

    A partition is cut after every ``partition_rows``-th non-blank line; its byte range covers the
    blank lines before its last row, so consecutive partitions tile the file.
    """
    with fs.open(f.path, "rb", compression=_compression(f.path), block_size=_SCAN_BLOCK) as fh:
        if offset:
            fh.seek(offset)
        elif manifest.format in ("csv", "tsv"):
            while True:  # the header is the first non-blank line
                line = fh.readline()
                if not line:
                    raise ManifestError(f"{f.path}: the manifest is empty (no header line)")
                if line.strip(b"\r\n"):
                    break
            sep = "\t" if manifest.format == "tsv" else ","
            columns = next(csv.reader([line.rstrip(b"\r\n").decode("utf-8-sig")], delimiter=sep))
            if tuple(columns) != manifest.columns:
                raise ManifestError(
                    f"{f.path}: its header {columns} differs from the first file's "
                    f"{list(manifest.columns)}"
                )
        position = fh.tell()  # file offset of data[0]
        start = position
        rows = 0
        hasher = hashlib.blake2b(digest_size=8)
        carry = b""
        while True:
            chunk = fh.read(_SCAN_BLOCK)
            eof = not chunk
            data = carry + chunk
            buf = np.frombuffer(data, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            if eof and data and (len(ends) == 0 or ends[-1] != len(data) - 1):
                ends = np.append(ends, len(data))  # the last line has no ending
            if len(ends) == 0:
                if eof:
                    if rows:
                        yield start, position, rows, hasher.hexdigest()
                    break
                carry = data
                continue
            stops = np.minimum(ends + 1, len(data))
            starts = np.concatenate([[0], stops[:-1]])
            length = ends - starts
            cr = np.zeros(len(ends), dtype=bool)
            has = length > 0
            cr[has] = buf[ends[has] - 1] == 13
            nonblank = (length - cr) > 0
            counts = np.cumsum(nonblank) + rows
            consumed = 0
            for i in np.flatnonzero(nonblank & (counts % partition_rows == 0)):
                stop_in = int(stops[i])
                hasher.update(data[consumed:stop_in])
                yield start, position + stop_in, partition_rows, hasher.hexdigest()
                hasher = hashlib.blake2b(digest_size=8)
                start, consumed = position + stop_in, stop_in
            tail = int(stops[-1])
            hasher.update(data[consumed:tail])
            rows = int(counts[-1]) % partition_rows
            if eof:
                if rows:
                    yield start, position + tail, rows, hasher.hexdigest()
                break
            carry = data[tail:]
            position += tail


def _footer_digest(metadata: pq.FileMetaData) -> bytes:
    """What a Parquet footer says of the data: row groups, their sizes, offsets and statistics."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{metadata.num_rows}:{metadata.num_row_groups}".encode())
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        h.update(f"|{group.num_rows}:{group.total_byte_size}".encode())
        for c in range(group.num_columns):
            column = group.column(c)
            stats = column.statistics
            h.update(
                f"/{column.file_offset}:{column.total_compressed_size}:"
                f"{stats.min if stats is not None and stats.has_min_max else ''}:"
                f"{stats.max if stats is not None and stats.has_min_max else ''}:"
                f"{stats.null_count if stats is not None else ''}".encode("utf-8", "replace")
            )
    return h.digest()


def _parquet_digest(footer: bytes, start: int, stop: int) -> str:
    return hashlib.blake2b(footer + f"{start}:{stop}".encode(), digest_size=8).hexdigest()


def _scan_parquet(
    fs: Any, f: ManifestFile, manifest: Manifest, partition_rows: int, offset: int | None
) -> Iterator[tuple[int, int, int, str]]:
    """Partitions of one Parquet file from its footer alone."""
    with fs.open(f.path, "rb") as fh:
        metadata = pq.ParquetFile(fh).metadata
    footer = _footer_digest(metadata)
    total = metadata.num_rows
    for start in range(offset or 0, total, partition_rows):
        stop = min(start + partition_rows, total)
        yield start, stop, stop - start, _parquet_digest(footer, start, stop)


# -- reading Parquet ------------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()
_GROUPS: collections.OrderedDict[tuple[str, str, int], pa.Table] = collections.OrderedDict()
_FOOTERS: collections.OrderedDict[tuple[str, str], tuple[pq.FileMetaData, bytes]] = (
    collections.OrderedDict()
)


def _cached(cache: collections.OrderedDict[Any, Any], key: Any, make: Any, keep: int) -> Any:
    with _CACHE_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > keep:
            cache.popitem(last=False)
    return value


def _read_parquet(fs: Any, f: ManifestFile, start: int, stop: int) -> tuple[list[Any], str]:
    """Rows ``[start, stop)`` of one Parquet file as records, and their digest.

    Reads only the row groups the range touches, only the manifest's columns; the last few row
    groups read are kept (a row group holds many partitions, often read by the same worker).
    """

    def footer() -> tuple[pq.FileMetaData, bytes]:
        with fs.open(f.path, "rb") as fh:
            metadata = pq.ParquetFile(fh).metadata
        return metadata, _footer_digest(metadata)

    metadata, footer_digest = _cached(_FOOTERS, (f.path, f.version), footer, 64)
    names = [c for c in MANIFEST_COLUMNS if c in metadata.schema.to_arrow_schema().names]
    pieces = []
    first = 0
    for g in range(metadata.num_row_groups):
        n = metadata.row_group(g).num_rows
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:

            def group(g: int = g) -> pa.Table:
                with fs.open(f.path, "rb") as fh:
                    return pq.ParquetFile(fh).read_row_group(g, columns=names)

            table = _cached(_GROUPS, (f.path, f.version, g), group, 4)
            pieces.append(table.slice(lo - first, hi - lo))
        first += n
    if not pieces:
        return [], _parquet_digest(footer_digest, start, stop)
    table = pa.concat_tables(pieces)
    columns = {name: table.column(name).to_pylist() for name in names}
    records = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return records, _parquet_digest(footer_digest, start, stop)
