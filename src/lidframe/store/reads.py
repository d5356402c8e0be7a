"""Reading a job back: its progress (:class:`JobStatus`, for ``lidframe status``) and its results.

Nothing here writes: each read is one transaction, so counts and rows come from one consistent
snapshot even while drivers commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.columns import CONSENSUS, MODEL, column_alias
from lidframe.errors import StoreError
from lidframe.results import as_declared, declared_columns
from lidframe.store.base import StoreBase
from lidframe.store.behaviour import Behaviour
from lidframe.store.behaviour_rows import read_behaviour, read_partitions
from lidframe.store.results import DUPLICATE_ID
from lidframe.store.schema import jobs, partitions, predictions, results

__all__ = ["PARTITION_SPAN", "JobStatus", "Reads"]

# What a job's seconds and rows/s measure (``lidframe status``, the run summary, the report); a
# run's own wall clock (cluster start and model loading too) is longer.
PARTITION_SPAN = "from the first partition's start to the last one's finish"

P = partitions.c


@dataclass
class JobStatus:
    """A job's progress, for ``lidframe status`` and notebooks."""

    job: dict[str, Any]
    states: Counter[str]
    attempts: int
    retried: int
    rows_done: int
    error_rows: int
    seconds: float
    dead: list[tuple[int, str]] = field(default_factory=list)
    failing: list[tuple[int, int, str]] = field(default_factory=list)
    # What the models said over the stored partitions (lidframe.store.behaviour), summed by SQL.
    behaviour: Behaviour = field(default_factory=Behaviour)

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    def timing(self) -> str:
        """The job's rows/s and seconds, saying what they measure (:data:`PARTITION_SPAN`)."""
        return f"{self.rows_per_second:.2f} rows/s over {self.seconds:.1f} s {PARTITION_SPAN}"

    def __str__(self) -> str:
        j = self.job
        total = j["n_partitions"]
        order = ("done", "running", "pending", "dead")
        parts = ", ".join(f"{s} {self.states.get(s, 0)}" for s in order)
        state = j["status"]
        if state == "stopped":
            state += (
                f" at {str(j['updated_at'])[:19]} (its last run was interrupted or failed before "
                "the job finished; no process works on it): run the same command to resume it"
            )
        lines = [
            f"job {j['job_id']}: {state}",
            f"  manifest {j['manifest']} ({j['n_rows']} rows) -> {j['out']}",
            f"  models {', '.join(j['models'])}",
            f"  partitions {total}{'' if j.get('planned', True) else ' so far (planning)'}: {parts}",
            f"  rows done {self.rows_done}/{j['n_rows']}, row errors {self.error_rows}, "
            f"attempts {self.attempts} ({self.retried} partitions retried)",
            f"  {self.timing()}",
        ]
        lines += self.behaviour.lines()
        for partition, error in self.dead:
            lines.append(f"  dead partition {partition}: {error}")
        for partition, attempts, error in self.failing:
            lines.append(f"  partition {partition} failed {attempts} time(s), last: {error}")
        return "\n".join(lines)


class Reads(StoreBase):
    """A job's partition states, status, summary and result frames (mixed into
    :class:`~lidframe.store.jobs.JobStore`)."""

    def _states(self, conn: Connection, job_id: str) -> Counter[str]:
        rows = conn.execute(
            sa.select(P.state, sa.func.count()).where(P.job_id == job_id).group_by(P.state)
        ).all()
        return Counter({s: int(n) for s, n in rows})

    def states(self, job_id: str) -> Counter[str]:
        return self._tx(f"reading job {job_id}", lambda conn: self._states(conn, job_id))

    def partitions(self, job_id: str) -> pd.DataFrame:
        """The partition table of a job as a frame (one row per partition)."""
        return self._tx(
            f"reading partitions of {job_id}",
            lambda conn: pd.DataFrame(
                conn.execute(sa.select(partitions).where(P.job_id == job_id).order_by(P.partition))
                .mappings()
                .all(),
                columns=[c.name for c in partitions.columns],
            ),
        )

    def behaviour(self, job_id: str, *, by_worker: bool = False) -> dict[str | None, Behaviour]:
        """What the job's models said over its stored partitions, from its totals (kept summed as
        partitions commit): ``{None: total}`` (empty before any partition), or ``{worker:
        total}`` with ``by_worker``."""
        return self._tx(
            f"reading the behaviour of {job_id}",
            lambda conn: read_behaviour(conn, job_id, by_worker=by_worker),
        )

    def partition_behaviour(self, job_id: str) -> list[dict[str, Any]]:
        """What the job's answer was partition by partition, in partition order (see
        :func:`~lidframe.store.behaviour_rows.read_partitions`)."""
        return self._tx(
            f"reading the behaviour of {job_id} by partition",
            lambda conn: read_partitions(conn, job_id),
        )

    def status(self, job_id: str) -> JobStatus:
        """The job's progress and behaviour. One pass over its partitions gives every count, by
        state (at a million partitions each pass is a few hundred milliseconds); the dead and
        failing ones are listed (an index and a second pass) only when there are any."""

        def tx(conn: Connection) -> JobStatus:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            if job is None:
                raise StoreError(f"no job {job_id!r} in {self.url}")
            by_state = conn.execute(
                sa.select(
                    P.state,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(P.attempts), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((P.attempts > 1, 1), else_=0)), 0),
                    sa.func.coalesce(sa.func.sum(P.rows), 0),
                    sa.func.coalesce(sa.func.sum(P.errors), 0),
                    sa.func.min(P.started_at),
                    sa.func.max(P.finished_at),
                    sa.func.coalesce(
                        sa.func.sum(sa.case((P.last_error.is_not(None), 1), else_=0)), 0
                    ),
                )
                .where(P.job_id == job_id)
                .group_by(P.state)
            ).all()
            states = Counter({str(s[0]): int(s[1]) for s in by_state})
            firsts = [s[6] for s in by_state if s[6] is not None]
            lasts = [s[7] for s in by_state if s[7] is not None]
            first = min(firsts) if firsts else None
            last = max(lasts) if lasts else None
            dead: Sequence[Any] = ()
            if states.get("dead"):
                dead = conn.execute(
                    sa.select(P.partition, P.last_error)
                    .where(P.job_id == job_id, P.state == "dead")
                    .order_by(P.partition)
                    .limit(20)
                ).all()
            failing: Sequence[Any] = ()
            if any(int(s[8]) for s in by_state if s[0] != "dead"):
                failing = conn.execute(
                    sa.select(P.partition, P.attempts, P.last_error)
                    .where(P.job_id == job_id, P.state != "dead", P.last_error.is_not(None))
                    .order_by(P.partition)
                    .limit(20)
                ).all()
            return JobStatus(
                job=dict(job),
                states=states,
                attempts=sum(int(s[2]) for s in by_state),
                retried=sum(int(s[3]) for s in by_state),
                rows_done=sum(int(s[4]) for s in by_state if s[0] == "done"),
                error_rows=sum(int(s[5]) for s in by_state),
                seconds=float(last - first) if first is not None and last is not None else 0.0,
                dead=[(int(p), str(e)) for p, e in dead],
                failing=[(int(p), int(a), str(e)) for p, a, e in failing],
                behaviour=read_behaviour(conn, job_id).get(None) or Behaviour(),
            )

        return self._tx(f"reading job {job_id}", tx)

    def failed_rows(self, job_id: str, limit: int = 5) -> list[tuple[str, str, str]]:
        """The first ``limit`` rows of a job with an error, in manifest order: ``(id, audio,
        error)`` each (the counts by category are in :meth:`summary`)."""
        r = results.c

        def tx(conn: Connection) -> list[tuple[str, str, str]]:
            rows = conn.execute(
                sa.select(r.row_id, r.audio, r.error)
                .where(r.job_id == job_id, r.error.is_not(None))
                .order_by(r.row)
                .limit(limit)
            ).all()
            return [(str(i), str(a), str(e)) for i, a, e in rows]

        return self._tx(f"reading the failed rows of {job_id}", tx)

    def summary(self, job_id: str, multi_model: bool) -> dict[str, Any]:
        """Rows, errors by category and languages per model (and consensus) of a job's results."""
        r, p = results.c, predictions.c

        def tx(conn: Connection) -> dict[str, Any]:
            rows = conn.execute(
                sa.select(sa.func.count()).select_from(results).where(r.job_id == job_id)
            ).scalar()
            categories = conn.execute(
                sa.select(r.error_category, sa.func.count())
                .where(r.job_id == job_id, r.error_category.is_not(None))
                .group_by(r.error_category)
            ).all()
            langs = conn.execute(
                sa.select(p.model, p.lang, sa.func.count())
                .where(p.job_id == job_id, p.lang.is_not(None))
                .group_by(p.model, p.lang)
            ).all()
            languages: dict[str, Counter[str]] = {}
            for model, lang, n in langs:
                languages.setdefault(model, Counter())[lang] = int(n)
            if multi_model:
                languages["lang"] = Counter(
                    {
                        lang: int(n)
                        for lang, n in conn.execute(
                            sa.select(r.lang, sa.func.count())
                            .where(r.job_id == job_id, r.lang.is_not(None))
                            .group_by(r.lang)
                        ).all()
                    }
                )
            return {
                "rows": int(rows or 0),
                "error_categories": Counter({c: int(n) for c, n in categories}),
                "languages": languages,
            }

        return self._tx(f"summarising job {job_id}", tx)

    def results(self, job_id: str) -> pd.DataFrame:
        """The job's result rows, ordered by manifest row, with each model's predictions joined.

        The columns of ``lidframe_results`` (``job_id``, ``row_id``, ``row``, ``partition``, the
        manifest, row, speech and cascade columns), then per model of the job, in its order,
        ``{alias}_lang``, ``{alias}_prob``, ``{alias}_topk`` and ``{alias}_windows`` as in the
        Parquet parts, then the consensus columns, each column in its declared dtype
        (:mod:`lidframe.columns`; see :func:`lidframe.results.as_declared`). A job of one
        model has no consensus: its consensus columns, null on every row, are left out, as its
        Parquet parts leave them out (the model's own answer is ``{alias}_lang``). A
        ``duplicate_id`` row has no predictions (its id is the other row's): its model columns are
        null.
        """

        def tx(conn: Connection) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
            models = conn.execute(sa.select(jobs.c.models).where(jobs.c.job_id == job_id)).scalar()
            rows = conn.execute(
                sa.select(results).where(results.c.job_id == job_id).order_by(results.c.row)
            )
            frame = pd.DataFrame(rows.mappings().all(), columns=[c.name for c in results.columns])
            return list(models or []), frame, self._predictions(conn, job_id)

        models, frame, found = self._tx(f"reading results of {job_id}", tx)
        aliases = [column_alias(str(m)) for m in models]
        consensus = [c.sql_name for c in CONSENSUS]
        out = frame.drop(columns=consensus)
        key = frame["row_id"].where(frame["error_category"] != DUPLICATE_ID)
        for alias in aliases:
            answers = found[found["model"] == alias].set_index("row_id")
            for c in MODEL:
                out[f"{alias}_{c.name}"] = key.map(answers[c.sql_name]).astype("object")
        if len(aliases) > 1:
            out = pd.concat([out, frame[consensus]], axis=1)
        return as_declared(out, declared_columns(out.columns, aliases))

    def predictions(self, job_id: str) -> pd.DataFrame:
        """The job's ``lidframe_predictions`` rows (one per row and model), columns typed as
        declared."""
        return self._tx(
            f"reading predictions of {job_id}", lambda conn: self._predictions(conn, job_id)
        )

    def _predictions(self, conn: Connection, job_id: str) -> pd.DataFrame:
        frame = pd.DataFrame(
            conn.execute(sa.select(predictions).where(predictions.c.job_id == job_id))
            .mappings()
            .all(),
            columns=[c.name for c in predictions.columns],
        )
        return as_declared(frame, {c.sql_name: c for c in MODEL})
