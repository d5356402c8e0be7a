"""Where the columns an evaluation groups by (``by=``, ``--by``) come from.

A run's results keep the manifest's own columns (``id``, ``audio``, ``label``, ``offset``,
``duration``) and nothing else of it: a manifest's other columns (``speaker``, ``source``,
``sample_rate``...) stay in the manifest. So a ``by`` column the results lack is read from a
manifest and joined by ``id``: the labels manifest when one is given, else the manifest the job ran
on, as its job database records it (``db``, else the embedded database of a local results folder).

The manifest is read twice: as a job reads it (:func:`lidframe.manifest.read_partition`: the same
files, row order and ids, derived ids and ``bad-row-N`` ids of bad rows included), and by
pyarrow/pandas for the columns' values with their types (a number column stays numbers). Both must
count the same rows, or the values cannot be lined up with the ids and an error says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError, LidframeError

__all__ = ["by_columns"]

# Result columns that hold lists (no group value).
_LISTS = ("_topk", "_windows")


def by_columns(
    df: pd.DataFrame,
    by: str | Sequence[str] | None,
    *,
    results: Any,
    labels: Any,
    db: str | None,
    options: Mapping[str, Any],
) -> pd.DataFrame:
    """The ``by`` columns (names as a list, or separated by commas) for every row of ``df`` (same
    index): the results' own, else a manifest's joined by ``id`` (a row the manifest lacks has no
    value). Raises :class:`ConfigError` naming a column found nowhere and the columns there are."""
    names = [by] if isinstance(by, str) else list(by or ())
    wanted = list(dict.fromkeys(n.strip() for name in names for n in name.split(",") if n.strip()))
    out = pd.DataFrame(index=df.index)
    available = [c for c in df.columns if not c.endswith(_LISTS)]
    missing = []
    for column in wanted:
        if column in df.columns and not column.endswith(_LISTS):
            out[column] = df[column]
        else:
            missing.append(column)
    where = []
    for name, columns, read in _manifests(results, labels, db, options) if missing else ():
        where.append(name)
        available += [c for c in columns if c not in available]
        found = [c for c in missing if c in columns]
        if not found:
            continue
        if "id" not in df.columns:
            raise ConfigError(f"by {found}: the results have no 'id' column to join {name} by")
        values = read(found)
        ids = df["id"].astype(object)
        for column in found:
            out[column] = ids.map(values[column]).to_numpy()
        missing = [c for c in missing if c not in found]
        if not missing:
            break
    if missing:
        seen = (
            f"the results or the manifest {', '.join(where)}"
            if where
            else "the results (no manifest to read it from: pass labels=MANIFEST, --labels)"
        )
        raise ConfigError(
            f"by column {missing[0]!r}: no such column in {seen}; available: "
            + ", ".join(available)
        )
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
            raise ConfigError(f"by column {column!r}: its values are lists, not one value a row")
    return out[wanted]


def _manifests(
    results: Any, labels: Any, db: str | None, options: Mapping[str, Any]
) -> Iterator[tuple[str, Sequence[str], Any]]:
    """``(name, columns, read)`` of the labels manifest, then of the job's manifest, each opened
    only when the one before lacked a column; ``read(columns)`` gives their values by id."""
    if isinstance(labels, pd.DataFrame):
        frame = labels

        def from_frame(columns: Sequence[str]) -> pd.DataFrame:
            return _by_id(frame["id"], frame[list(columns)])

        if "id" in frame.columns:
            yield "of the labels", list(frame.columns), from_frame
    elif labels is not None:
        yield _described(os.fspath(labels), options)
    url = _job_manifest(results, db)
    if url is not None and (labels is None or url != _absolute(os.fspath(labels))):
        yield _described(url, options)


def _described(url: str, options: Mapping[str, Any]) -> tuple[str, Sequence[str], Any]:
    from lidframe.manifest import open_manifest

    manifest = open_manifest(url, storage_options=options)
    return url, manifest.columns, lambda columns: _manifest_values(manifest, columns)


def _absolute(path: str) -> str:
    return os.path.abspath(path) if "://" not in path else path


def _job_manifest(results: Any, db: str | None) -> str | None:
    """The manifest of the newest job that wrote the results folder (None: no job database)."""
    if hasattr(results, "columns"):
        return None
    where = _absolute(os.fspath(results))
    if db is None and "://" not in where:
        embedded = os.path.join(where, "_lidframe.sqlite")
        db = f"sqlite:///{embedded}" if os.path.exists(embedded) else None
    if db is None:
        return None
    from lidframe.store import open_store

    try:
        with open_store(db, migrate_schema=False, retry_deadline_s=5.0) as store:
            job = store.job_for_out(where)
    except LidframeError:
        return None
    return None if job is None else str(job["manifest"])


def _by_id(ids: pd.Series, values: pd.DataFrame) -> pd.DataFrame:
    """``values`` indexed by ``ids`` as text, the first of each id (a job keeps the first too)."""
    out = values.reset_index(drop=True)
    out.index = pd.Index(ids.astype(str).to_numpy(), dtype=object)
    return out[~out.index.duplicated()]


def _manifest_values(manifest: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The manifest's ``columns`` by row id (see the module docstring)."""
    from lidframe.manifest import plan_partitions, read_partition

    ids = [read_partition(manifest, p)["id"] for p in plan_partitions(manifest, 1 << 16)]
    id_column = pd.concat(ids, ignore_index=True)
    values = pd.concat([_file_values(manifest, f.path, columns) for f in manifest.files])
    if len(values) != len(id_column):
        raise ConfigError(
            f"{manifest.url}: read as a table it has {len(values)} rows, as a manifest "
            f"{len(id_column)}: its columns {list(columns)} cannot be lined up with the row ids"
        )
    return _by_id(id_column, values)


def _file_values(manifest: Any, path: str, columns: Sequence[str]) -> pd.DataFrame:
    fs = manifest.fs()
    if manifest.format == "parquet":
        import pyarrow.parquet as pq

        with fs.open(path, "rb") as fh:
            parquet = pq.ParquetFile(fh)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            frame = parquet.read(columns=present).to_pandas()
    else:
        with fs.open(path, "rb", compression="infer") as fh:
            if manifest.format == "jsonl":
                frame = pd.read_json(fh, lines=True, dtype=False)
            else:
                sep = "\t" if manifest.format == "tsv" else ","
                frame = pd.read_csv(
                    fh, sep=sep, encoding="utf-8-sig", usecols=lambda c: c in columns
                )
    return frame.reindex(columns=list(columns))
