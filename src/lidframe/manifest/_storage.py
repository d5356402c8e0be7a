"""A manifest on storage: its files, their format and columns, found without reading any row.

A manifest is CSV, TSV, Parquet or JSON Lines (one file, a folder of files, or a glob), local or on
any fsspec store (``s3://`` through s3fs). Describing it lists the files and reads one header (CSV),
one footer (Parquet) or the first megabyte (JSON Lines). :attr:`Manifest.identity` hashes what
storage says of each file (size and ETag or modification time), so a job's identity is known at once
and an edited manifest is another manifest.
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.errors import ConfigError, ManifestError
from lidframe.manifest._rows import manifest_meta, parse_json_lines, split_lines

__all__ = ["Manifest", "ManifestFile", "compression_of", "open_manifest"]

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
_SAMPLE = 2**20


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
        """Empty frame shaped like :func:`lidframe.manifest.read_partition`'s result without ``error``."""
        return manifest_meta(self.with_label)

    def fs(self) -> Any:
        return fsspec.core.url_to_fs(self.url, **dict(self.storage_options))[0]


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


def compression_of(path: str) -> str | None:
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
    with fs.open(f.path, "rb", compression=compression_of(f.path)) as fh:
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
