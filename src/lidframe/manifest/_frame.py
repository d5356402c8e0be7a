"""The notebook frame: a manifest that fits a notebook read whole into a Dask dataframe.

Unlike a job, which starts at once and gives each bad row its own error, :func:`read_manifest`
validates every row before it returns and raises for the first bad row or duplicate id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dask.dataframe as dd
from dask.delayed import delayed

from lidframe.errors import ConfigError, ManifestError
from lidframe.manifest._plan import plan_partitions
from lidframe.manifest._read import read_partition
from lidframe.manifest._rows import BAD_ROW
from lidframe.manifest._storage import open_manifest

__all__ = ["FIRST_PARTITION_ROWS", "read_manifest"]


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
