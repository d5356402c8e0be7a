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

* :func:`open_manifest` lists the files and reads one header, footer or first megabyte; its
  :attr:`Manifest.identity` changes when a file is rewritten (:mod:`lidframe.manifest_storage`).
* :func:`plan_partitions` streams :class:`PlannedPartition` s cut from text lines or Parquet footers,
  each with a digest of its content (:mod:`lidframe.manifest_plan`).
* :func:`read_partition` reads one partition alone (a byte range, or the row groups it spans:
  :mod:`lidframe.manifest_read`), checks its digest (a manifest changed after it was planned fails
  loudly instead of mixing two versions) and normalises its rows; a bad row gets its own ``bad_row``
  error (:mod:`lidframe.manifest_rows`).

Why the derived id looks the way it does: it hashes the audio reference *as written in the manifest*,
the offset and the duration, so it stays the same when a dataset moves with its manifest and when a run
is repeated or resumed. Ids are not checked for uniqueness here: a job's database does that as rows are
committed (see :mod:`lidframe.store.leases`), :func:`read_manifest` (small manifests) before it returns.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import fsspec
import pandas as pd
import pyarrow as pa
from dask.delayed import delayed

from lidframe.errors import ConfigError, ManifestError
from lidframe.manifest_plan import _digest, _scan_parquet, _scan_text
from lidframe.manifest_read import _read_parquet, _read_range
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
from lidframe.manifest_storage import (
    Manifest,
    ManifestFile,
    _base_of,
    _columns,
    _detect_format,
    _format_of,
    _list_files,
)

__all__ = [
    "BAD_ROW",
    "FIRST_PARTITION_ROWS",
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


class ManifestChanged(ManifestError):
    """A partition's content is not what was planned: the manifest changed while its job ran."""


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


# Rows of the first partition read_manifest plans: one CPU forward pass of clips, more than the
# five rows ``head()`` shows.
FIRST_PARTITION_ROWS = 8


def read_manifest(
    path: str | os.PathLike[str],
    *,
    partition_rows: int = 128,
    storage_options: Mapping[str, Any] | None = None,
    format: str | None = None,
    backend: str = "auto",
    first_partition_rows: int | None = FIRST_PARTITION_ROWS,
) -> dd.DataFrame:
    """Read ``path`` into a Dask dataframe of normalised manifest rows, ``partition_rows`` each.

    For manifests that fit a notebook: every row is validated before this returns, and the first
    bad row or duplicate id raises :class:`ManifestError` naming it. (``lidframe.run`` instead starts
    at once and gives each bad row its own error.) ``backend`` (:mod:`lidframe.dataframes`): ``cudf``
    gives a dask-cuDF frame (``to_backend``), ``auto`` does where a GPU is visible and cuDF imports.

    The first partition holds at most ``first_partition_rows`` rows (``None``: ``partition_rows``
    like the others): ``identify(ddf).head()`` computes the whole first partition, so a first look
    costs the model's load and a few clips, not ``partition_rows`` of them.
    """
    if first_partition_rows is not None and first_partition_rows <= 0:
        raise ConfigError(f"first_partition_rows must be positive, got {first_partition_rows!r}")
    from lidframe.dataframes import local_backend, on_backend

    resolved = local_backend(backend)
    manifest = open_manifest(path, storage_options=storage_options, format=format)
    parts = list(plan_partitions(manifest, partition_rows))
    if not parts:
        raise ManifestError(f"{manifest.url}: the manifest has no rows")
    frames = [read_partition(manifest, p) for p in parts]
    if first_partition_rows is not None and len(frames[0]) > first_partition_rows:
        first = frames.pop(0)
        frames[:0] = [first.iloc[:first_partition_rows], first.iloc[first_partition_rows:]]
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
    ddf = dd.from_delayed(
        [delayed(f.drop(columns="error")) for f in frames],
        meta=manifest.meta(),
        verify_meta=False,
    )
    return on_backend(ddf, resolved)


def _locate(source: str) -> tuple[int, int, int]:
    index, start, stop = source.split(":")
    return int(index), int(start), int(stop)
