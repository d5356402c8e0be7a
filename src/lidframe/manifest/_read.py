"""One planned partition's rows read alone: a byte range of a text file, or the Parquet row groups
it spans (only the manifest's columns), with the digest the planner gave it.

Partitions of one Parquet row group are often read by the same worker, so each process keeps the
last few footers and row groups it read (a small LRU cache, shared by its threads).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.errors import ManifestError
from lidframe.manifest._plan import (
    PlannedPartition,
    content_digest,
    footer_digest,
    locate_source,
    parquet_digest,
)
from lidframe.manifest._rows import (
    MANIFEST_COLUMNS,
    normalise_rows,
    parse_csv_lines,
    parse_json_lines,
    split_lines,
)
from lidframe.manifest._storage import Manifest, ManifestFile, compression_of

__all__ = ["ManifestChanged", "read_parquet", "read_partition", "read_range"]


def read_range(fs: Any, f: ManifestFile, start: int, stop: int) -> bytes:
    compression = compression_of(f.path)
    if compression is None:
        return bytes(fs.cat_file(f.path, start=start, end=stop))
    # A compressed file cannot be entered in the middle: decompress up to the range (plain text or
    # Parquet manifests avoid this cost; see the README on large jobs).
    with fs.open(f.path, "rb", compression=compression) as fh:
        fh.seek(start)
        return bytes(fh.read(stop - start))


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


def read_parquet(fs: Any, f: ManifestFile, start: int, stop: int) -> tuple[list[Any], str]:
    """Rows ``[start, stop)`` of one Parquet file as records, and their digest.

    Reads only the row groups the range touches, only the manifest's columns; the last few row
    groups read are kept (a row group holds many partitions, often read by the same worker).
    """

    def read_footer() -> tuple[pq.FileMetaData, bytes]:
        with fs.open(f.path, "rb") as fh:
            metadata = pq.ParquetFile(fh).metadata
        return metadata, footer_digest(metadata)

    metadata, footer = _cached(_FOOTERS, (f.path, f.version), read_footer, 64)
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
        return [], parquet_digest(footer, start, stop)
    table = pa.concat_tables(pieces)
    columns = {name: table.column(name).to_pylist() for name in names}
    records = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return records, parquet_digest(footer, start, stop)


class ManifestChanged(ManifestError):
    """A partition's content is not what was planned: the manifest changed while its job ran."""


def read_partition(manifest: Manifest, planned: PlannedPartition) -> pd.DataFrame:
    """The normalised rows of one planned partition, with an ``error`` column for bad rows.

    Raises :class:`ManifestChanged` when the content is not what was planned.
    """
    index, start, stop = locate_source(planned.source)
    f = manifest.files[index]
    fs = manifest.fs()
    if manifest.format == "parquet":
        records, digest = read_parquet(fs, f, start, stop)
    else:
        data = read_range(fs, f, start, stop)
        digest = content_digest(data)
        lines = split_lines(data)
        if manifest.format == "jsonl":
            records = parse_json_lines(lines)
        else:
            sep = "\t" if manifest.format == "tsv" else ","
            records = parse_csv_lines(lines, manifest.columns, sep)
    if digest != planned.digest or len(records) != planned.rows:
        raise ManifestChanged(
            f"{f.path}: manifest rows {planned.row_start}-{planned.row_stop - 1} are not what was "
            f"planned ({len(records)} rows, digest {digest} vs {planned.digest}): the manifest "
            "changed while its job ran; restore it, or run it as a new job (--overwrite)"
        )
    return normalise_rows(records, planned.row_start, manifest.base, manifest.with_label)
