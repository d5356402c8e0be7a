"""Reading a results folder: typed and lazy (:func:`read_results`), or its parts as one pandas frame
(:func:`read_parts`); and the declared dtypes, which the job database's reads use too.

The dtypes are those of :mod:`lidframe.columns`; what a reader gives back differs from them where
the storage cannot say it: Arrow strings come back as ``str``/``string[pyarrow]``, a ``bool`` or
``int16`` column with nulls (rows the job database gave an error after the part was staged) as
``object`` or ``float``, list columns as numpy arrays of dicts, and the database's columns as
``object`` holding ``None``. :func:`as_declared` casts each column to its declaration: a null in a
``bool`` column (``agree``) becomes False and one in an ``int16`` column (``n_agree``) 0, what the
consensus answers for a row that no model answered; list cells become lists of dicts, nulls None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.columns import CASCADE, CONSENSUS, MANIFEST, MODEL, ROW, SPEECH, Column
from lidframe.errors import ConfigError
from lidframe.results._parts import folder_fs, part_files
from lidframe.results._provenance import read_provenance

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "LABELS_ATTR",
    "as_declared",
    "declared_columns",
    "read_parts",
    "read_results",
]

# The columns whose names do not depend on the models (by frame name, and by database name).
_FIXED = {c.name: c for c in (*MANIFEST, *ROW, *SPEECH, *CASCADE, *CONSENSUS)}
_FIXED.update({c.sql_name: c for c in (*MANIFEST, *ROW)})


def declared_columns(names: Iterable[str], aliases: Iterable[str] = ()) -> dict[str, Column]:
    """The declaration of each of ``names`` that has one: a fixed column (by frame or database
    name), or a model's ``{alias}_{name}``: of ``aliases``, or found by its suffix."""
    aliases = tuple(aliases)
    found: dict[str, Column] = {}
    for name in names:
        if name in _FIXED:
            found[name] = _FIXED[name]
            continue
        for c in MODEL:
            alias = name.removesuffix(f"_{c.name}")
            if alias != name and alias and (not aliases or alias in aliases):
                found[name] = c
                break
    return found


def as_declared(frame: pd.DataFrame, declared: Mapping[str, Column]) -> pd.DataFrame:
    """``frame`` with each column of ``declared`` in its declared dtype (see the module's doc)."""
    out = frame.copy()
    for name, column in declared.items():
        if name in out.columns:
            out[name] = _cast(out[name], column)
    return out


def _cast(series: pd.Series, column: Column) -> pd.Series:
    dtype = column.dtype
    if dtype == "object":
        return series.map(_records).astype("object")
    if dtype == "bool" or dtype.startswith("int"):
        filled = series.where(series.notna(), False if dtype == "bool" else 0)
        return filled.astype(dtype)
    return series.astype(column.empty().dtype)


def _records(cell: Any) -> list[dict[str, Any]] | None:
    """A list-of-structs cell as a list of dicts (None for null)."""
    if isinstance(cell, (list, tuple, np.ndarray)):
        return [dict(item) for item in cell]
    return None


def read_results(
    path: str, storage_options: Mapping[str, Any] | None = None, *, backend: str = "auto"
) -> dd.DataFrame:
    """A run's results folder (its ``part-N.parquet`` files; ``_``-prefixed state is skipped) as a
    lazy Dask dataframe whose columns have the dtypes declared in :mod:`lidframe.columns`.

    The models' columns are found by the aliases the parts' provenance records (by suffix for
    parts without it). Raises :class:`~lidframe.errors.ConfigError` naming ``path`` when it holds no
    part. :func:`lidframe.read_provenance` says what produced the results. ``backend``
    (:mod:`lidframe.dataframes`): ``cudf`` gives a dask-cuDF frame (``to_backend``), ``auto`` does
    where a GPU is visible and cuDF imports.
    """
    import dask
    import dask.dataframe as dd

    from lidframe.dataframes import local_backend, on_backend

    resolved = local_backend(backend)

    path = str(path)
    try:
        parts = part_files(path, storage_options)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read results {path}: {' '.join(str(exc).split())}") from exc
    if not parts:
        raise ConfigError(f"{path}: no part-*.parquet files (is it a lidframe results folder?)")
    try:
        record = read_provenance(parts[0], storage_options)
    except ConfigError:
        record = {}
    # ``models`` by alias; parts of earlier versions listed names there, and aliases in ``dtypes``.
    models = record.get("models")
    aliases = tuple(models if isinstance(models, dict) else record.get("dtypes") or ())
    options = dict(storage_options or {})
    # The columns of the first and the last part: a job resumed across a lidframe upgrade that
    # added a column holds parts with and without it; each part gets every column (null where it
    # has none), whichever of them comes first.
    schema = pa.unify_schemas(
        [_schema(path, options) for path in dict.fromkeys((parts[0], parts[-1]))]
    )
    declared = declared_columns(schema.names, aliases)
    meta = as_declared(schema.empty_table().to_pandas(), declared)
    # Dask would turn the list columns into strings (dataframe.convert-string): the declared
    # dtypes are the parts' own.
    with dask.config.set({"dataframe.convert-string": False}):
        frame = dd.from_map(
            _read_part, parts, columns=tuple(schema.names), declared=declared, options=options,
            meta=meta, label="read-results", enforce_metadata=False,
        )  # fmt: skip
    return on_backend(frame, resolved)


def _schema(path: str, options: Mapping[str, Any]) -> pa.Schema:
    fs, where = folder_fs(path, options)
    with fs.open(where, "rb") as fh:
        return pq.read_schema(fh)


def _read_part(
    path: str, columns: tuple[str, ...], declared: Mapping[str, Column], options: Mapping[str, Any]
) -> pd.DataFrame:
    """One part with ``columns`` (null where it has none of them), in their declared dtypes."""
    fs, where = folder_fs(path, options)
    with fs.open(where, "rb") as fh:
        have = set(pq.read_schema(fh).names)
        fh.seek(0)
        table = pq.read_table(fh, columns=[c for c in columns if c in have])
    return as_declared(table.to_pandas().reindex(columns=list(columns)), declared)


# Key of ``DataFrame.attrs`` where :func:`read_results` puts the models' label sets.
LABELS_ATTR = "lidframe_labels"


def read_parts(results: str, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A run's results as one pandas frame: the part files of a results folder (nothing else in it),
    or a single Parquet file. Raises :class:`ConfigError` naming the path when there are none."""
    try:
        fs, root = folder_fs(results, storage_options)
        paths = part_files(results, storage_options) if fs.isdir(root) else [results]
        if not paths:
            raise ConfigError(
                f"{results}: no part-*.parquet files (is it a lidframe results folder?)"
            )
        frame = pd.read_parquet(paths, storage_options=dict(storage_options or {}) or None)
        frame.attrs[LABELS_ATTR] = _labels_of(fs, [p.split("://", 1)[-1] for p in paths])
        return frame
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read results {results}: {' '.join(str(exc).split())}") from exc


def _labels_of(fs: Any, paths: list[str]) -> dict[str, tuple[str, ...]]:
    """The label sets in the first part whose metadata has them (every part has the same)."""
    for path in paths:
        try:
            with fs.open(path, "rb") as fh:
                metadata = pq.ParquetFile(fh).schema_arrow.metadata or {}
            labels = json.loads(metadata[b"lidframe"]).get("labels")
        except (KeyError, ValueError, TypeError, OSError, pa.ArrowInvalid):
            continue
        if isinstance(labels, dict) and labels:
            return {str(alias): tuple(map(str, codes)) for alias, codes in labels.items()}
    return {}
