"""Result Parquet parts: one file per partition, fenced by the partition's lease, in a folder one job owns.

``part-00007.parquet`` always holds partition 7 of the manifest, so a redo replaces the file instead of
adding a second copy. Parts are fenced by the lease: a worker writes its part under a name that carries
its lease token, in ``OUT/_staging/`` (which Parquet readers skip, like every ``_`` or ``.`` path);
only after the job database accepted the commit made with that token does the job's driver
move it into place (:func:`promote`). A writer whose lease was taken over never replaces the winner's
part, and a crash between the write and the commit leaves only a staged file, which the next run
promotes (the commit landed) or deletes (it did not). So Parquet and the database hold the same rows.

"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "STAGING",
    "discard",
    "folder_fs",
    "mark_staged",
    "part_files",
    "part_name",
    "promote",
    "remove_staging",
    "staged_parts",
    "write_staged",
]

STAGING = "_staging"
# Whole file names (matched in full): a "backup-part-00003.parquet" is not a part.
_PART = re.compile(r"part-(\d{5,})\.parquet")
_STAGED = re.compile(r"part-(\d{5,})\.([0-9A-Za-z-]{1,64})\.parquet")


def part_name(index: int) -> str:
    """File name of partition ``index``."""
    return f"part-{index:05d}.parquet"


def folder_fs(out: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The file system of the folder ``out`` and its root path (no trailing slash)."""
    fs, root = fsspec.core.url_to_fs(out, **dict(storage_options or {}))
    return fs, root.rstrip("/")


def write_staged(
    df: pd.DataFrame,
    out: str,
    index: int,
    token: str,
    schema: pa.Schema,
    storage_options: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """Write ``df`` as partition ``index`` under lease ``token`` into ``OUT/_staging/``.

    ``provenance`` is stored as JSON in the file's key-value metadata (key ``lidframe``). The file is
    written under a temporary name and renamed, so a staged name only ever holds a whole file.
    """
    fs, root = folder_fs(out, storage_options)
    folder = f"{root}/{STAGING}"
    final = f"{folder}/part-{index:05d}.{token}.parquet"
    if _token_of(fs, f"{root}/{part_name(index)}") == token:
        # Dask ran this task twice (a worker retired or lost mid-task) and the other run's part is
        # already committed and in place: nothing to stage, and nothing left behind.
        return f"{root}/{part_name(index)}"
    fs.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.part-{index:05d}.{uuid.uuid4().hex}.tmp"
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    if provenance:
        metadata = dict(table.schema.metadata or {})
        metadata[b"lidframe"] = json.dumps(dict(provenance), default=str).encode()
        table = table.replace_schema_metadata(metadata)
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        fs.mv(tmp, final)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return final


def _token_of(fs: Any, path: str) -> str | None:
    """The lease token recorded in a part file's metadata (None: no such file, or no token)."""
    try:
        with fs.open(path, "rb") as fh:
            metadata = pq.ParquetFile(fh).schema_arrow.metadata or {}
    except (FileNotFoundError, OSError, pa.ArrowInvalid):
        return None
    try:
        return str(json.loads(metadata[b"lidframe"])["lease_token"])
    except (KeyError, ValueError, TypeError):
        return None


def mark_staged(
    out: str,
    index: int,
    token: str,
    errors: Mapping[int, str],
    keep: tuple[str, ...],
    storage_options: Mapping[str, Any] | None = None,
) -> bool:
    """Give rows of the staged part of ``(index, token)`` an error, as the job database did.

    ``errors`` maps positions in the part to their error; those rows keep only the columns in
    ``keep`` (the manifest's) and their ``error``, every other column becomes null. The file is
    rewritten under a temporary name and renamed. False when there is no such staged part.
    """
    fs, root = folder_fs(out, storage_options)
    staged = f"{root}/{STAGING}/part-{index:05d}.{token}.parquet"
    try:
        with fs.open(staged, "rb") as fh:
            table = pq.read_table(fh)
    except FileNotFoundError:
        return False
    mask = pa.array([i in errors for i in range(table.num_rows)])
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name == "error":
            values = [errors.get(i, v) for i, v in enumerate(column.to_pylist())]
            column = pa.chunked_array([pa.array(values, type=column.type)])
        elif name not in keep:
            column = pc.if_else(mask, pa.nulls(table.num_rows, column.type), column)
        columns.append(column)
    table = pa.Table.from_arrays(columns, schema=table.schema)
    tmp = f"{root}/{STAGING}/.part-{index:05d}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        fs.mv(tmp, staged)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return True


def promote(
    out: str, index: int, token: str, storage_options: Mapping[str, Any] | None = None
) -> bool:
    """Move the staged part of ``(index, token)`` into place; False when there is none."""
    fs, root = folder_fs(out, storage_options)
    staged = f"{root}/{STAGING}/part-{index:05d}.{token}.parquet"
    try:
        fs.mv(staged, f"{root}/{part_name(index)}")
    except FileNotFoundError:
        return False
    return True


def discard(
    out: str, index: int, token: str, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Delete the staged part of ``(index, token)`` if it is there."""
    fs, root = folder_fs(out, storage_options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(f"{root}/{STAGING}/part-{index:05d}.{token}.parquet")


def staged_parts(
    out: str, storage_options: Mapping[str, Any] | None = None
) -> list[tuple[int, str]]:
    """``(partition, token)`` of every staged part in ``OUT/_staging/``."""
    fs, root = folder_fs(out, storage_options)
    try:
        names = fs.ls(f"{root}/{STAGING}", detail=False, refresh=True)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _STAGED.fullmatch(name.rsplit("/", 1)[-1])
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return sorted(found)


def remove_staging(out: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove ``OUT/_staging`` when it is empty (a finished job leaves only its parts)."""
    fs, root = folder_fs(out, storage_options)
    folder = f"{root}/{STAGING}"
    with contextlib.suppress(FileNotFoundError, OSError):
        if not fs.ls(folder, detail=False):
            fs.rmdir(folder)


def part_files(out: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Paths of the ``part-N.parquet`` files in ``out`` (what lidframe's own readers read)."""
    fs, root = folder_fs(out, storage_options)
    try:
        names = fs.ls(root, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    protocol = out.split("://", 1)[0] + "://" if "://" in out else ""
    found = []
    for name in names:
        match = _PART.fullmatch(name.rsplit("/", 1)[-1])
        if match:
            path = protocol + name if protocol and not name.startswith(protocol) else name
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]  # partition order, past 99,999 too
