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

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.store.schema import predictions, results

__all__ = ["DUPLICATE_ID", "PartitionRows", "frame_rows", "replace_rows"]

DUPLICATE_ID = "duplicate_id"

RESULT_COLUMNS = [c.name for c in results.columns]
PREDICTION_COLUMNS = [c.name for c in predictions.columns]
# PostgreSQL types of the columns, in order, for binary COPY.
_RESULT_PG_TYPES = [
    "varchar", "text", "int8", "int4", "text", "float8", "float8", "varchar", "text", "varchar",
    "varchar", "bool", "int4", "float8", "varchar",
]  # fmt: skip
_PREDICTION_PG_TYPES = ["varchar", "text", "varchar", "varchar", "float8", "jsonb"]
_CONSENSUS = ("lang", "agree", "n_agree", "consensus_prob", "consensus_method")


@dataclass(frozen=True)
class PartitionRows:
    """One partition's rows for the two tables, as tuples in column order.

    Made where the partition ran (on the worker), so the process that writes to the database only
    streams them; ``topk`` values are lists of ``{"lang", "prob"}`` dicts.
    """

    results: list[tuple[Any, ...]]
    predictions: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r[8] is not None)

    def marked(self, errors: dict[int, str]) -> PartitionRows:
        """These rows with ``errors`` (``{position: error}``) set: no answers, no predictions."""
        results_ = list(self.results)
        for position, error in errors.items():
            r = results_[position]
            category = error.split(":", 1)[0][:32]
            results_[position] = (*r[:8], error, category, None, None, None, None, None)
        n = len(results_)
        predictions_ = [p for i, p in enumerate(self.predictions) if i % n not in errors]
        return PartitionRows(results_, predictions_)


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """A column as plain Python values, nulls (NA, NaN) as None."""
    if name not in frame.columns:
        return [None] * len(frame)
    values = frame[name]
    if values.dtype.kind == "f":
        array = values.to_numpy(dtype="float64")
        return [None if math.isnan(x) else x for x in array.tolist()]
    if values.dtype.kind in "iub":
        return values.tolist()
    return [None if (v is None or v is pd.NA or v != v) else v for v in values.tolist()]


def _topk(topk: Any) -> list[dict[str, Any]] | None:
    if not isinstance(topk, (list, tuple, np.ndarray)):
        return None  # None, NaN or pd.NA: no answer
    return [{"lang": str(item["lang"]), "prob": float(item["prob"])} for item in topk]


def frame_rows(
    frame: pd.DataFrame, job_id: str, partition: int, aliases: Sequence[str]
) -> PartitionRows:
    """The rows of a result frame (index = manifest row numbers) for both tables."""
    n = len(frame)
    ids = _column(frame, "id")
    positions = [int(i) for i in frame.index]
    errors = _column(frame, "error")
    categories = [None if e is None else str(e).split(":", 1)[0][:32] for e in errors]
    consensus = {c: _column(frame, c) for c in _CONSENSUS}
    consensus["agree"] = [None if a is None else bool(a) for a in consensus["agree"]]
    audio, label, offset, duration = (
        _column(frame, c) for c in ("audio", "label", "offset", "duration")
    )
    result_rows = list(
        zip(
            [job_id] * n,
            ids,
            positions,
            [partition] * n,
            audio,
            offset,
            duration,
            label,
            errors,
            categories,
            consensus["lang"],
            consensus["agree"],
            consensus["n_agree"],
            consensus["consensus_prob"],
            consensus["consensus_method"],
            strict=True,
        )
    )
    prediction_rows: list[tuple[Any, ...]] = []
    for alias in aliases:
        topk_col = f"{alias}_topk"
        topks = (
            [_topk(t) for t in frame[topk_col].tolist()]
            if topk_col in frame.columns
            else [None] * n
        )
        prediction_rows.extend(
            zip(
                [job_id] * n,
                ids,
                [alias] * n,
                _column(frame, f"{alias}_lang"),
                _column(frame, f"{alias}_prob"),
                topks,
                strict=True,
            )
        )
    return PartitionRows(result_rows, prediction_rows)


def replace_rows(
    conn: Connection, job_id: str, partition: int, rows: PartitionRows
) -> dict[int, str]:
    """Make ``rows`` the partition's rows, inside the caller's (lease-checked) transaction.

    Rows an earlier attempt stored are deleted first, then the new ones inserted in bulk. A row whose
    id another row of the job already has (in a partition committed earlier, or earlier in this one)
    is stored as a ``duplicate_id`` error naming that row, without answers; returns those rows as
    ``{position in the partition: error}`` so the partition's Parquet part can say the same.
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
    if conn.dialect.name == "postgresql":
        _copy(conn, results, _RESULT_PG_TYPES, rows.results)
        _copy(conn, predictions, _PREDICTION_PG_TYPES, rows.predictions)
    else:
        _insert(conn, results, rows.results)
        topk = PREDICTION_COLUMNS.index("topk")
        as_text = [
            (*r[:topk], None if r[topk] is None else json.dumps(r[topk], separators=(",", ":")))
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
    ids = [r[1] for r in rows.results]
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
        row_id, row = r[1], r[2]
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
