"""A manifest's partitions planned as a stream, each with a digest of its content.

Text is read once, in 16 MiB blocks, and cut after every ``partition_rows`` non-blank lines (one
rule, ``split_lines``, for planner and reader); Parquet is cut from its
footers' row counts without reading any data. A partition never spans two files. Each carries a
digest of its content (the bytes of its lines; for Parquet its file's footer and its row range),
checked again when it is read (``_read``): a manifest changed after it was
planned fails loudly instead of mixing two versions.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.errors import ConfigError, ManifestError
from lidframe.manifest._storage import Manifest, ManifestFile, compression_of

__all__ = [
    "PlannedPartition",
    "check_partition_rows",
    "content_digest",
    "footer_digest",
    "locate_source",
    "parquet_digest",
    "plan_partitions",
]

_SCAN_BLOCK = 16 * 2**20


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def scan_text(
    fs: Any, f: ManifestFile, manifest: Manifest, partition_rows: int, offset: int | None
) -> Iterator[tuple[int, int, int, str]]:
    """``(start, stop, rows, digest)`` of each partition of one text file, reading it once.

    A partition is cut after every ``partition_rows``-th non-blank line; its byte range covers the
    blank lines before its last row, so consecutive partitions tile the file.
    """
    with fs.open(f.path, "rb", compression=compression_of(f.path), block_size=_SCAN_BLOCK) as fh:
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


def footer_digest(metadata: pq.FileMetaData) -> bytes:
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


def parquet_digest(footer: bytes, start: int, stop: int) -> str:
    return hashlib.blake2b(footer + f"{start}:{stop}".encode(), digest_size=8).hexdigest()


def scan_parquet(
    fs: Any, f: ManifestFile, manifest: Manifest, partition_rows: int, offset: int | None
) -> Iterator[tuple[int, int, int, str]]:
    """Partitions of one Parquet file from its footer alone."""
    with fs.open(f.path, "rb") as fh:
        metadata = pq.ParquetFile(fh).metadata
    footer = footer_digest(metadata)
    total = metadata.num_rows
    for start in range(offset or 0, total, partition_rows):
        stop = min(start + partition_rows, total)
        yield start, stop, stop - start, parquet_digest(footer, start, stop)


def check_partition_rows(partition_rows: Any) -> None:
    """Raise :class:`ConfigError` unless ``partition_rows`` is a positive integer."""
    if (
        isinstance(partition_rows, bool)
        or not isinstance(partition_rows, int)
        or partition_rows <= 0
    ):
        raise ConfigError(f"partition_rows must be a positive integer, got {partition_rows!r}")


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


def plan_partitions(
    manifest: Manifest, partition_rows: int, *, after: PlannedPartition | None = None
) -> Iterator[PlannedPartition]:
    """Stream the manifest's partitions in order (resuming ``after`` a partition already planned).

    Each has ``partition_rows`` rows, except the last of each file. Raises :class:`ManifestError`
    naming the file when one cannot be read.
    """
    check_partition_rows(partition_rows)
    fs = manifest.fs()
    k, row, first_file, offset = 0, 0, 0, None
    if after is not None:
        first_file, _, offset = locate_source(after.source)
        k, row = after.partition + 1, after.row_stop
    for index in range(first_file, len(manifest.files)):
        f = manifest.files[index]
        scan = scan_parquet if manifest.format == "parquet" else scan_text
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


def locate_source(source: str) -> tuple[int, int, int]:
    index, start, stop = source.split(":")
    return int(index), int(start), int(stop)
