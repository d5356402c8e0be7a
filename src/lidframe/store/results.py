"""Result frames to database rows, and bulk writes that replace a partition's rows.

A result frame (one partition: manifest columns, ``error``, ``{alias}_lang/_prob/_topk`` per model,
consensus columns when there are several models) becomes one ``lidframe_results`` row per manifest row
and one ``lidframe_predictions`` row per (row, model), on the worker (:func:`frame_rows`). The process
that holds the partition's lease writes them (:func:`replace_rows`): rows of an earlier attempt are
deleted, the new ones inserted, keyed by (job, row id), so a redo replaces instead of adding copies.

PostgreSQL takes the rows through binary ``COPY`` (measured: 35k result rows/s with two models, about
1.7x a staged ``INSERT ... ON CONFLICT DO UPDATE``; see benchmarks/job_overhead.py); SQLite through
``executemany``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.columns import CASCADE, CONSENSUS, MANIFEST, MODEL, ROW, SPEECH
from lidframe.store.behaviour import Behaviour, summarise
from lidframe.store.behaviour_rows import replace_behaviour
from lidframe.store.schema import predictions, results

__all__ = ["DUPLICATE_ID", "PartitionRows", "frame_rows", "replace_rows"]

DUPLICATE_ID = "duplicate_id"

RESULT_COLUMNS = [c.name for c in results.columns]
PREDICTION_COLUMNS = [c.name for c in predictions.columns]
# Positions in a result row tuple, found by name (the tables derive from lidframe.columns).
_ROW_ID, _ROW = RESULT_COLUMNS.index("row_id"), RESULT_COLUMNS.index("row")
_ERROR, _CATEGORY = RESULT_COLUMNS.index("error"), RESULT_COLUMNS.index("error_category")
_ANSWERS = [RESULT_COLUMNS.index(c.sql_name) for c in CONSENSUS]
# Frame column of each stored result column (by database name).
_FROM_FRAME = {
    c.sql_name: c for c in (*MANIFEST, *ROW, *SPEECH, *CASCADE, *CONSENSUS) if c.in_frame
}


def _pg_type(column: sa.Column[Any]) -> str:
    """The PostgreSQL type name binary ``COPY`` needs for a column."""
    kind = column.type
    for cls, name in (
        (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.Boolean, "bool"),
        (sa.Float, "float8"), (sa.Text, "text"), (sa.String, "varchar"), (sa.JSON, "jsonb"),
    ):  # fmt: skip
        if isinstance(kind, cls):
            return name
    raise TypeError(f"no COPY type for {column.name} ({kind})")


_RESULT_PG_TYPES = [_pg_type(c) for c in results.columns]
# Positions of the JSON columns of a prediction row (SQLite stores them as JSON text).
_JSON_PREDICTIONS = frozenset(
    i for i, c in enumerate(predictions.columns) if isinstance(c.type, sa.JSON)
)
_PREDICTION_PG_TYPES = [_pg_type(c) for c in predictions.columns]


@dataclass(frozen=True)
class PartitionRows:
    """One partition's rows for the two tables, as tuples in their tables' column order.

    Made where the partition ran (on the worker), so the process that writes to the database only
    streams them; ``topk`` values are lists of ``{"lang", "prob"}`` dicts. ``behaviour``: what
    they say, summarised (:meth:`summarised`, on the worker too), stored with them.
    """

    results: list[tuple[Any, ...]]
    predictions: list[tuple[Any, ...]]
    behaviour: Behaviour | None = None
    # The models' aliases in the job's order (what ``behaviour`` was summarised over).
    aliases: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r[_ERROR] is not None)

    def marked(self, errors: dict[int, str]) -> PartitionRows:
        """These rows with ``errors`` (``{position: error}``) set: no answers, no predictions."""
        results_ = list(self.results)
        for position, error in errors.items():
            r = list(results_[position])
            r[_ERROR], r[_CATEGORY] = error, _category(error)
            for i in _ANSWERS:
                r[i] = None
            results_[position] = tuple(r)
        n = len(results_)
        predictions_ = [p for i, p in enumerate(self.predictions) if i % n not in errors]
        marked = PartitionRows(results_, predictions_, aliases=self.aliases)
        if self.behaviour is None:
            return marked
        return marked.summarised(self.behaviour.worker, self.behaviour.host)

    def summarised(self, worker: str | None, host: str | None) -> PartitionRows:
        """These rows with their :class:`~lidframe.store.behaviour.Behaviour`, made by ``worker``
        on ``host``."""
        summary = summarise(self, self.aliases, worker=worker, host=host)
        return dataclasses.replace(self, behaviour=summary)


def _category(error: str | None) -> str | None:
    return None if error is None else str(error).split(":", 1)[0][:32]


def _column(frame: pd.DataFrame, name: str, dtype: str) -> list[Any]:
    """A frame column as plain Python values of its declared type, nulls (NA, NaN) as None."""
    if name not in frame.columns:
        return [None] * len(frame)
    values = frame[name]
    if dtype == "object":
        return [_records(v) for v in values.tolist()]
    if values.dtype.kind == "f":
        array = values.to_numpy(dtype="float64")
        return [None if math.isnan(x) else x for x in array.tolist()]
    if values.dtype.kind in "iub" and not values.isna().any():
        return values.tolist()
    out = [None if (v is None or v is pd.NA or v != v) else v for v in values.tolist()]
    if dtype in ("bool", "boolean"):
        return [None if v is None else bool(v) for v in out]
    if dtype.startswith("int"):
        return [None if v is None else int(v) for v in out]
    return out


def _records(items: Any) -> list[dict[str, Any]] | None:
    """A list-of-structs cell (``topk``, ``windows``) as plain JSON values."""
    if not isinstance(items, (list, tuple, np.ndarray)):
        return None  # None, NaN or pd.NA: no answer
    return [{key: _plain(value) for key, value in item.items()} for item in items]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return str(value)


def frame_rows(
    frame: pd.DataFrame, job_id: str, partition: int, aliases: Sequence[str]
) -> PartitionRows:
    """The rows of a result frame (index = manifest row numbers) for both tables."""
    n = len(frame)
    values: dict[str, list[Any]] = {
        "job_id": [job_id] * n,
        "row": [int(i) for i in frame.index],
        "partition": [partition] * n,
    }
    for name, c in _FROM_FRAME.items():
        values[name] = _column(frame, c.name, c.dtype)
    values["error_category"] = [_category(e) for e in values["error"]]
    result_rows = list(zip(*(values[name] for name in RESULT_COLUMNS), strict=True))
    prediction_rows: list[tuple[Any, ...]] = []
    for alias in aliases:
        per_model: dict[str, list[Any]] = {
            "job_id": values["job_id"],
            "row_id": values["row_id"],
            "model": [alias] * n,
        }
        for c in MODEL:
            per_model[c.sql_name] = _column(frame, f"{alias}_{c.name}", c.dtype)
        prediction_rows.extend(zip(*(per_model[name] for name in PREDICTION_COLUMNS), strict=True))
    return PartitionRows(result_rows, prediction_rows, aliases=tuple(aliases))


def replace_rows(
    conn: Connection, job_id: str, partition: int, rows: PartitionRows
) -> dict[int, str]:
    """Make ``rows`` the partition's rows, inside the caller's (lease-checked) transaction.

    Rows an earlier attempt stored are deleted first, then the new ones inserted in bulk. A row whose
    id another row of the job already has (in a partition committed earlier, or earlier in this one)
    is stored as a ``duplicate_id`` error naming that row, without answers; returns those rows as
    ``{position in the partition: error}`` so the partition's Parquet part can say the same.
    The rows' behaviour (made again from the marked rows) replaces the partition's stored one.
    """
    existing = conn.execute(
        sa.select(results.c.row_id)
        .where(results.c.job_id == job_id, results.c.partition == partition)
        .limit(1)
    ).first()
    if existing is not None:
        ids = sa.select(results.c.row_id).where(
            results.c.job_id == job_id, results.c.partition == partition
        )
        conn.execute(
            predictions.delete().where(
                predictions.c.job_id == job_id,
                predictions.c.row_id.in_(ids.where(_unique_id())),
            )
        )
        conn.execute(
            results.delete().where(results.c.job_id == job_id, results.c.partition == partition)
        )
    duplicates = _duplicates(conn, job_id, rows)
    if duplicates:
        rows = rows.marked(duplicates)
    replace_behaviour(conn, job_id, partition, rows.behaviour)
    if conn.dialect.name == "postgresql":
        _copy(conn, results, _RESULT_PG_TYPES, rows.results)
        _copy(conn, predictions, _PREDICTION_PG_TYPES, rows.predictions)
    else:
        _insert(conn, results, rows.results)
        as_text = [
            tuple(
                v
                if v is None or i not in _JSON_PREDICTIONS
                else json.dumps(v, separators=(",", ":"))
                for i, v in enumerate(r)
            )
            for r in rows.predictions
        ]
        _insert(conn, predictions, as_text)
    return duplicates


def _unique_id() -> sa.ColumnElement[bool]:
    """The rows whose id is unique per job (all but the duplicate_id errors)."""
    category = results.c.error_category
    return sa.or_(category.is_(None), category != DUPLICATE_ID)


def _duplicates(conn: Connection, job_id: str, rows: PartitionRows) -> dict[int, str]:
    """``{position: error}`` of the rows whose id an earlier row holds."""
    ids = [r[_ROW_ID] for r in rows.results]
    holders: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        for row_id, row in conn.execute(
            sa.select(results.c.row_id, results.c.row).where(
                results.c.job_id == job_id,
                results.c.row_id.in_(ids[i : i + 1000]),
                _unique_id(),
            )
        ).all():
            holders[str(row_id)] = int(row)
    out: dict[int, str] = {}
    for position, r in enumerate(rows.results):
        row_id, row = r[_ROW_ID], r[_ROW]
        if row_id in holders:
            out[position] = (
                f"{DUPLICATE_ID}: id {row_id!r} of row {row} is also the id of row {holders[row_id]}"
            )
        else:
            holders[row_id] = row
    return out


def _insert(conn: Connection, table: sa.Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """SQLite: one executemany of a prepared INSERT."""
    if not rows:
        return
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    marks = ", ".join("?" for _ in table.columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)


def _copy(
    conn: Connection, table: sa.Table, types: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """PostgreSQL: binary ``COPY ... FROM STDIN``, the fastest way rows go in."""
    if not rows:
        return
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
