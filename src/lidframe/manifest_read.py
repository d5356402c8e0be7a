"""One planned partition's rows read alone: a byte range of a text file, or the Parquet row groups
it spans (only the manifest's columns), with the digest the planner gave it.

Partitions of one Parquet row group are often read by the same worker, so each process keeps the
last few footers and row groups it read (a small LRU cache, shared by its threads).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.manifest_plan import _footer_digest, _parquet_digest
from lidframe.manifest_rows import MANIFEST_COLUMNS
from lidframe.manifest_storage import ManifestFile, _compression


def _read_range(fs: Any, f: ManifestFile, start: int, stop: int) -> bytes:
    compression = _compression(f.path)
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
