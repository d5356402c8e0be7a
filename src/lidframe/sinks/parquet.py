"""Write one result partition as one Parquet file, atomically, under a deterministic name.

``part-00007.parquet`` always holds partition 7 of the manifest, so a re-run or a retried task
replaces the file instead of adding a second copy. The file is written under a temporary name in
the same folder and renamed into place, so readers never see a half-written part (on object stores
the rename is a copy then a delete: the final key still appears whole).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["part_name", "remove_stale_parts", "write_part"]

_PART = re.compile(r"part-(\d{5,})\.parquet$")


def part_name(index: int) -> str:
    """File name of partition ``index``."""
    return f"part-{index:05d}.parquet"


def write_part(
    df: pd.DataFrame,
    out: str,
    index: int,
    schema: pa.Schema,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write ``df`` to ``out/part-{index}.parquet`` atomically; returns the final path."""
    fs, root = fsspec.core.url_to_fs(out, **dict(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    final = f"{root.rstrip('/')}/{part_name(index)}"
    tmp = f"{root.rstrip('/')}/.{part_name(index)}.{uuid.uuid4().hex}.tmp"
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        fs.mv(tmp, final)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return final


def remove_stale_parts(
    out: str, count: int, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Delete ``part-N.parquet`` files with ``N >= count`` (left by an earlier, larger partitioning)."""
    fs, root = fsspec.core.url_to_fs(out, **dict(storage_options or {}))
    if not fs.exists(root):
        return []
    stale = []
    for path in fs.ls(root, detail=False):
        match = _PART.search(path)
        if match and int(match.group(1)) >= count:
            fs.rm(path)
            stale.append(path)
    return stale
