"""Result frames to database rows, and batched upserts keyed by (job, row id).

A result frame (one partition: manifest columns, ``error``, ``{alias}_lang/_prob/_topk`` per model,
consensus columns when there are several models) becomes one ``lidframe_results`` row per manifest row
and one ``lidframe_predictions`` row per (row, model). Writes are upserts, so writing a partition again
(a redo after a lost worker) replaces its rows instead of adding copies.

PostgreSQL takes the rows through ``COPY`` into a temporary table and one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per table (far faster than row-by-row inserts); SQLite
through executemany upserts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.store.schema import predictions, results

__all__ = ["frame_rows", "upsert_rows"]

RESULT_COLUMNS = [c.name for c in results.columns]
PREDICTION_COLUMNS = [c.name for c in predictions.columns]
_CONSENSUS = ("lang", "agree", "n_agree", "consensus_prob", "consensus_method")


def _value(x: Any) -> Any:
    """Plain Python value with nulls as None (pandas NA, NaN)."""
    if x is None or x is pd.NA:
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "item"):  # numpy scalars
        x = x.item()
        if isinstance(x, float) and math.isnan(x):
            return None
    return x


def _topk_json(topk: Any) -> str | None:
    if topk is None or (isinstance(topk, float) and math.isnan(topk)) or topk is pd.NA:
        return None
    return json.dumps(
        [{"lang": str(item["lang"]), "prob": float(item["prob"])} for item in topk],
        separators=(",", ":"),
    )


def frame_rows(
    frame: pd.DataFrame, job_id: str, partition: int, aliases: Sequence[str]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``(results rows, predictions rows)`` as tuples in :data:`RESULT_COLUMNS` /
    :data:`PREDICTION_COLUMNS` order; ``topk`` as JSON text."""
    n = len(frame)

    def column(name: str) -> list[Any]:
        if name not in frame.columns:
            return [None] * n
        return [_value(v) for v in frame[name].tolist()]

    ids = column("id")
    positions = [int(i) for i in frame.index]
    errors = column("error")
    categories = [None if e is None else str(e).split(":", 1)[0][:32] for e in errors]
    consensus = {c: column(c) for c in _CONSENSUS}
    consensus["agree"] = [None if a is None else bool(a) for a in consensus["agree"]]
    audio, label, offset, duration = (column(c) for c in ("audio", "label", "offset", "duration"))
    result_rows = [
        (
            job_id,
            ids[i],
            positions[i],
            partition,
            audio[i],
            offset[i],
            duration[i],
            label[i],
            errors[i],
            categories[i],
            consensus["lang"][i],
            consensus["agree"][i],
            consensus["n_agree"][i],
            consensus["consensus_prob"][i],
            consensus["consensus_method"][i],
        )
        for i in range(n)
    ]
    prediction_rows: list[tuple[Any, ...]] = []
    for alias in aliases:
        langs, probs = column(f"{alias}_lang"), column(f"{alias}_prob")
        topks = (
            [_topk_json(t) for t in frame[f"{alias}_topk"].tolist()]
            if f"{alias}_topk" in frame.columns
            else [None] * n
        )
        prediction_rows.extend(
            (job_id, ids[i], alias, langs[i], probs[i], topks[i]) for i in range(n)
        )
    return result_rows, prediction_rows


def upsert_rows(
    conn: Connection,
    result_rows: Sequence[tuple[Any, ...]],
    prediction_rows: Sequence[tuple[Any, ...]],
) -> None:
    """Upsert both tables inside the caller's transaction (results first: predictions refer to them)."""
    if conn.dialect.name == "postgresql":
        _copy_upsert(conn, results, RESULT_COLUMNS, ("job_id", "row_id"), result_rows)
        _copy_upsert(
            conn, predictions, PREDICTION_COLUMNS, ("job_id", "row_id", "model"), prediction_rows
        )
    else:
        _executemany_upsert(conn, results, RESULT_COLUMNS, ("job_id", "row_id"), result_rows)
        _executemany_upsert(
            conn, predictions, PREDICTION_COLUMNS, ("job_id", "row_id", "model"), prediction_rows
        )


def _executemany_upsert(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    key: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    if not rows:
        return
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c: stmt.excluded[c] for c in columns if c not in key},
    )
    params = [dict(zip(columns, row, strict=True)) for row in rows]
    if table is predictions:
        for p in params:
            if p["topk"] is not None:
                p["topk"] = json.loads(p["topk"])
    conn.execute(stmt, params)


def _copy_upsert(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    key: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    if not rows:
        return
    temp = f"_lidframe_stage_{table.name}"
    quoted = ", ".join(f'"{c}"' for c in columns)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {temp} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {temp} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in key)
    conflict = ", ".join(f'"{c}"' for c in key)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({quoted}) SELECT {quoted} FROM {temp} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    conn.exec_driver_sql(f"TRUNCATE {temp}")
