"""Partition behaviour in the job database: stored with the rows, kept summed, read back by SQL.

Three tables (:mod:`lidframe.store.schema`):

* ``lidframe_behaviour`` and ``lidframe_behaviour_counts``: each partition's
  :class:`~lidframe.store.behaviour.Behaviour`, a fixed number of rows, written by
  :func:`replace_behaviour` in the transaction that writes the partition's result rows;
* ``lidframe_behaviour_totals``: the same summed per (job, worker), every statistic a
  ``(model, kind, key, value)`` row, kept up to date in those same transactions (a partition's
  old behaviour subtracted, its new one added, by upserts in key order). ``lidframe status`` sums
  these few rows (models x languages x workers) with :func:`read_behaviour` instead of a million
  partitions' (measured: benchmarks/behaviour.py, RESULTS.md). Keyed by worker, two processes
  committing partitions from different workers never wait on each other's rows.

Imports no engine: the worker takes this module with :mod:`lidframe.store.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lidframe.store.behaviour import (
    COUNTERS,
    MARGIN,
    MARGIN_COLUMNS,
    PROB,
    PROB_COLUMNS,
    SCALARS,
    STAT,
    Behaviour,
    Stats,
)
from lidframe.store.schema import behaviour, behaviour_counts, behaviour_totals

__all__ = ["forget_behaviour", "read_behaviour", "read_partitions", "replace_behaviour"]

B, C, T = behaviour.c, behaviour_counts.c, behaviour_totals.c
_FLOATS = ("speech_seconds", "prob_sum")


def replace_behaviour(
    conn: Connection, job_id: str, partition: int, summary: Behaviour | None
) -> None:
    """Make ``summary`` the partition's stored behaviour, in the caller's transaction (the one that
    writes its rows), and keep the job's totals; ``None`` only forgets what was stored."""
    forget_behaviour(conn, job_id, [partition])
    if summary is None:
        return
    rows, counts = [], []
    for model, s in summary.stats.items():
        rows.append(
            {
                "job_id": job_id,
                "partition": partition,
                "model": model,
                "worker": summary.worker,
                "host": summary.host,
                **{name: getattr(s, name) for name in SCALARS},
                **dict(zip(PROB_COLUMNS, s.prob, strict=True)),
                **dict(zip(MARGIN_COLUMNS, s.margin, strict=True)),
            }
        )
        for kind in COUNTERS:
            counter = s.counter(kind)
            counts += [
                {"job_id": job_id, "partition": partition, "model": model, "kind": kind,
                 "key": key, "n": n}
                for key, n in counter.items()
            ]  # fmt: skip
    conn.execute(behaviour.insert(), rows)
    if counts:
        conn.execute(behaviour_counts.insert(), counts)
    _add_totals(conn, job_id, [summary], 1)


def forget_behaviour(conn: Connection, job_id: str, partitions: Sequence[int]) -> None:
    """Delete the stored behaviour of ``partitions`` and take it out of the job's totals."""
    stored = _partition_behaviours(conn, job_id, partitions)
    if not stored:
        return
    _add_totals(conn, job_id, stored, -1)
    for table in (behaviour_counts, behaviour):
        conn.execute(
            table.delete().where(table.c.job_id == job_id, table.c.partition.in_(partitions))
        )


def read_behaviour(
    conn: Connection, job_id: str, *, by_worker: bool = False
) -> dict[str | None, Behaviour]:
    """The job's behaviour from its totals: ``{None: total}`` (empty before any partition), or
    with ``by_worker`` ``{worker: its partitions' total}`` (``Behaviour.host`` set)."""
    keys = [T.worker, T.host] if by_worker else []
    query = (
        sa.select(*keys, T.model, T.kind, T.key, sa.func.sum(T.value))
        .where(T.job_id == job_id)
        .group_by(*keys, T.model, T.kind, T.key)
    )
    out: dict[str | None, Behaviour] = {}
    for row in conn.execute(query).all():
        worker, host = (row[0] or None, row[1]) if by_worker else (None, None)
        model, kind, key, value = row[-4:]
        if not value:
            continue  # every partition that added to it was taken out again
        b = out.setdefault(worker, Behaviour(worker=worker, host=host))
        _set(b.stats.setdefault(str(model), Stats()), str(kind), str(key), float(value))
    return out


def _set(stats: Stats, kind: str, key: str, value: float) -> None:
    if kind == STAT:
        setattr(stats, key, value if key in _FLOATS else round(value))
    elif kind == PROB:
        stats.prob[int(key)] = round(value)
    elif kind == MARGIN:
        stats.margin[int(key)] = round(value)
    else:
        stats.counter(kind)[key] = round(value)


def _entries(stats: Stats) -> list[tuple[str, str, float]]:
    """``(kind, key, value)`` of every non-zero statistic."""
    out = [(STAT, name, float(getattr(stats, name))) for name in SCALARS]
    out += [(PROB, str(i), float(n)) for i, n in enumerate(stats.prob)]
    out += [(MARGIN, str(i), float(n)) for i, n in enumerate(stats.margin)]
    out += [(kind, k, float(n)) for kind in COUNTERS for k, n in stats.counter(kind).items()]
    return [e for e in out if e[2]]


def _add_totals(conn: Connection, job_id: str, summaries: Sequence[Behaviour], sign: int) -> None:
    """Add ``sign`` times each summary to the totals of its worker (upserts in key order, so two
    transactions touching the same rows take their locks in the same order)."""
    values: dict[tuple[str, str, str, str], float] = {}
    hosts: dict[str, str | None] = {}
    for summary in summaries:
        worker = summary.worker or ""
        hosts[worker] = summary.host
        for model, stats in summary.stats.items():
            for kind, key, value in _entries(stats):
                k = (worker, model, kind, key)
                values[k] = values.get(k, 0.0) + sign * value
    if not values:
        return
    rows = [
        {"job_id": job_id, "worker": w, "host": hosts[w], "model": m, "kind": k, "key": key,
         "value": v}
        for (w, m, k, key), v in sorted(values.items())
    ]  # fmt: skip
    insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
        behaviour_totals
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["job_id", "worker", "model", "kind", "key"],
            set_={"value": T.value + insert.excluded.value},
        ),
        rows,
    )


def _partition_behaviours(
    conn: Connection, job_id: str, partitions: Sequence[int]
) -> list[Behaviour]:
    """The stored behaviour of each of ``partitions`` that has one."""
    found: dict[int, Behaviour] = {}
    for row in conn.execute(
        sa.select(behaviour).where(B.job_id == job_id, B.partition.in_(partitions))
    ).mappings():
        b = found.setdefault(row["partition"], Behaviour(worker=row["worker"], host=row["host"]))
        s = Stats(**{name: row[name] for name in SCALARS})
        s.prob = [int(row[c]) for c in PROB_COLUMNS]
        s.margin = [int(row[c]) for c in MARGIN_COLUMNS]
        b.stats[str(row["model"])] = s
    if not found:
        return []
    for partition, model, kind, key, n in conn.execute(
        sa.select(C.partition, C.model, C.kind, C.key, C.n).where(
            C.job_id == job_id, C.partition.in_(partitions)
        )
    ).all():
        stats = found[partition].stats.setdefault(str(model), Stats())
        stats.counter(str(kind))[str(key)] += int(n)
    return list(found.values())


def read_partitions(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    """The job's answer partition by partition, in partition order (for the report): ``partition``,
    ``worker``, ``host``, ``rows``, ``answered``, ``und``, ``errors``, ``agree``, ``prob_sum``,
    ``langs`` (``{language: rows}``), and ``labelled`` and ``correct`` (0 without labels)."""
    from lidframe.store.behaviour import ANSWER, LABEL

    names = ("partition", "worker", "host", "rows", "answered", "und", "errors", "agree",
             "prob_sum")  # fmt: skip
    found = {
        int(row[0]): {
            **dict(zip(names, row, strict=True)),
            "langs": {},
            "labelled": 0,
            "correct": 0,
        }
        for row in conn.execute(
            sa.select(*(B[n] for n in names))
            .where(B.job_id == job_id, B.model == ANSWER)
            .order_by(B.partition)
        ).all()
    }
    for partition, kind, key, n in conn.execute(
        sa.select(C.partition, C.kind, C.key, C.n).where(
            C.job_id == job_id, C.model == ANSWER, C.kind.in_(("lang", LABEL))
        )
    ).all():
        if int(partition) not in found:
            continue
        if kind == LABEL:
            if key in ("labelled", "correct"):
                found[int(partition)][str(key)] = int(n)
        else:
            found[int(partition)]["langs"][str(key)] = int(n)
    return list(found.values())
