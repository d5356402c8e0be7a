"""Human review in the job database: queues of rows, rows handed out under a lease, answers.

The review loop's state changes live here, as every other change of job state does; which rows a
queue holds, what a verdict means and how answers become estimates is :mod:`lidframe.review`'s
policy. A queue's rows are chosen in SQL (``INSERT ... SELECT`` from the results with the queue's
criteria as a ``WHERE`` clause), never by reading the results into Python, so a queue over a
million-row job is one statement.

An item's life mirrors a partition's (:mod:`~lidframe.store.leases`): ``pending`` -> (claim)
``leased`` to one reviewer until ``leased_until`` -> ``done`` (an answer, in the same transaction)
or back to ``pending`` (a skip moves it to the back; an expired lease lets anyone claim it). A
reviewer holds at most one item: claiming again returns the item already held (a reloaded page
shows the same row). An undo marks the reviewer's last answer withdrawn (kept, never deleted) and
leases its row to that reviewer again, first.

**One row, one reviewer, whatever the queue.** A row can sit in several queues (a disagreement
is often a low margin too), one item each, but the unit of review is the job's row:

* while any item of a row is under a live lease, no item of that row is handed to anyone else.
  On PostgreSQL the next item is picked with ``FOR UPDATE SKIP LOCKED`` (two claimers of one
  queue never wait on, or take, the same item), then the row itself is locked (its
  ``lidframe_results`` row, ``FOR NO KEY UPDATE SKIP LOCKED``) and checked again for a lease
  committed meanwhile from another queue (:func:`_take_row`); SQLite serialises writers with
  ``BEGIN IMMEDIATE`` (:mod:`~lidframe.store.engine`), so its pick already sees every lease.
* an answer settles the row everywhere: its items of the same kind (first or second review) in
  the other queues are marked done with the same reviewer, so the row is not served again as a
  first review from another queue, and its second review (if any queue drew it for one) goes to
  someone else, once; an undo that withdraws the row's last answer makes them pending again.
  Labels, agreement pairs and the random sample's estimate are read by row, not by the queue the
  answer came through (:mod:`lidframe.review`).

A ``second`` item (a copy of a row for a second reviewer, for agreement) can be claimed only once
the row's first item is done, and only by someone other than its first reviewer.

The listening page's two reads live here too (:meth:`ReviewStore.row_audio`,
:meth:`ReviewStore.upcoming`): every query of the review tables is in this module.

Times are epoch seconds on the database's clock (:func:`~lidframe.store.engine.db_epoch`), so
reviewers' machines with skewed clocks agree on leases and pace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from lidframe.columns import column_alias
from lidframe.errors import ConfigError, LidframeError, StoreError
from lidframe.store.base import StoreBase
from lidframe.store.engine import db_epoch
from lidframe.store.schema import (
    jobs,
    predictions,
    results,
    review_answers,
    review_items,
    review_queues,
)

__all__ = [
    "ANSWER_COLUMNS",
    "Claimed",
    "HASH_MODULUS",
    "ItemLost",
    "QueueCriteria",
    "ReviewStore",
    "RowAudio",
    "answer_view",
    "mix",
]

IT = review_items.c
A = review_answers.c
R = results.c
# Positions (and the second-review draw) come from a seeded hash of the row modulo this prime.
HASH_MODULUS = 2_147_483_647
# A queue build adding this many items or more refreshes the items' statistics (PostgreSQL).
_ANALYZE_AFTER = 1000
# The columns of :func:`answer_view`, which a queue's criteria may use.
ANSWER_COLUMNS = (
    "row",
    "row_id",
    "lang",
    "prob",
    "margin",
    "agree",
    "code_switch",
    "speech_seconds",
    "error",
)


class ItemLost(LidframeError):
    """The row a reviewer answered is no longer theirs (its lease expired and another took it, or
    it was answered already): the answer was not stored."""

    exit_status = 1


class QueueCriteria(Protocol):
    """What the store needs of a queue kind (see :mod:`lidframe.review`)."""

    @property
    def kind(self) -> str: ...

    # True: with a limit, rows are taken from each predicted language in proportion to its rows.
    @property
    def stratified(self) -> bool: ...

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]: ...

    def rank(self, view: Any) -> sa.ColumnElement[Any] | None: ...

    def params(self) -> dict[str, Any]: ...


def mix(row: Any, seed: int) -> sa.ColumnElement[int]:
    """A seeded pseudo-random number in ``[0, HASH_MODULUS)`` per row, in portable SQL.

    Neither SQLite's ``random()`` nor a seeded PostgreSQL ``random()`` gives the same order on both
    databases and on every rebuild; this does: an affine step, then two squarings modulo the
    Mersenne prime 2**31 - 1 (every product fits in 64 bits). :func:`lidframe.review.position`
    computes the same in Python.
    """
    p = sa.literal(HASH_MODULUS, sa.BigInteger)
    h1 = (row * sa.literal(48271, sa.BigInteger) + sa.literal(seed * 16807 + 1, sa.BigInteger)) % p
    h2 = (h1 * h1 + sa.literal(seed, sa.BigInteger)) % p
    return (h2 * h2 + h1) % p


def answer_view(job_id: str, models: Sequence[str]) -> sa.Subquery:
    """The job's rows with the job's answer: ``lang``/``prob`` (the consensus with several models,
    the model's own with one), ``margin`` (one model: top-1 minus top-2 probability; several: the
    consensus support minus the rest, ``2 * prob - 1``, the consensus storing its support only),
    ``agree``, ``code_switch``, ``speech_seconds``, ``error``."""
    aliases = [column_alias(str(m)) for m in models]
    if len(aliases) == 1:
        p = predictions.alias("p")
        source: Any = results.outerjoin(
            p,
            sa.and_(p.c.job_id == R.job_id, p.c.row_id == R.row_id, p.c.model == aliases[0]),
        )
        lang: Any = p.c.lang
        prob: Any = p.c.prob
        margin: Any = prob - sa.func.coalesce(p.c.topk[(1, "prob")].as_float(), 0.0)
    else:
        source, lang, prob = results, R.lang, R.consensus_prob
        margin = 2 * prob - 1
    return (
        sa.select(
            R.row,
            R.row_id,
            lang.label("lang"),
            prob.label("prob"),
            margin.label("margin"),
            R.agree,
            R.code_switch,
            R.speech_seconds,
            R.error,
        )
        .select_from(source)
        .where(R.job_id == job_id)
        .subquery("answers")
    )


@dataclass(frozen=True)
class RowAudio:
    """The file a queued row names, as the job read it (:meth:`ReviewStore.row_audio`)."""

    row: int
    audio: str  # the manifest's URI
    offset: float | None
    duration: float | None


@dataclass(frozen=True)
class Claimed:
    """An item leased to a reviewer, with what its page shows (see :meth:`ReviewStore.claim`)."""

    queue: str
    row: int
    second: bool
    token: str
    leased_until: float
    result: dict[str, Any]
    predictions: list[dict[str, Any]]


class ReviewStore(StoreBase):
    """The review tables of one job database (see the module docstring)."""

    # -- queues -----------------------------------------------------------------------------------

    def build_queue(
        self,
        job_id: str,
        queue: str,
        criteria: QueueCriteria,
        *,
        limit: int | None,
        second_share: float,
        seed: int,
    ) -> int:
        """Add the rows ``criteria`` selects to ``queue`` (created on first use); returns how many
        rows were new. Building again with the same settings adds nothing."""

        def tx(conn: Connection) -> int:
            job = _job(conn, job_id)
            view = answer_view(job_id, job["models"])
            where = sa.and_(view.c.error.is_(None), criteria.where(view.c, job))
            params = {**criteria.params(), "limit": limit, "second_share": second_share}
            params["seed"] = seed
            _ensure_queue(conn, job_id, queue, criteria.kind, params)
            h = mix(view.c.row, seed)
            strata = None
            if criteria.stratified:
                strata = {
                    str(lang): int(n)
                    for lang, n in conn.execute(
                        sa.select(view.c.lang, sa.func.count()).where(where).group_by(view.c.lang)
                    ).all()
                }
                chosen = _stratified(view, where, h, limit)
            else:
                chosen = sa.select(
                    view.c.row, view.c.row_id, view.c.lang, h.label("position")
                ).where(where)
                rank = criteria.rank(view.c)
                if limit is not None:
                    order = [rank, h, view.c.row] if rank is not None else [h, view.c.row]
                    chosen = chosen.order_by(*order).limit(limit)
            chosen_q = chosen.subquery("chosen")
            before = _count(conn, job_id, queue)
            _insert_ignoring(
                conn,
                sa.select(
                    sa.literal(job_id, sa.String),
                    sa.literal(queue, sa.String),
                    chosen_q.c.row,
                    sa.literal(False, sa.Boolean),
                    chosen_q.c.row_id,
                    chosen_q.c.position,
                    chosen_q.c.lang,
                    sa.literal("pending", sa.String),
                ),
            )
            if second_share > 0:
                first = review_items.alias("first")
                threshold = int(second_share * HASH_MODULUS)
                _insert_ignoring(
                    conn,
                    sa.select(
                        first.c.job_id,
                        first.c.queue,
                        first.c.row,
                        sa.literal(True, sa.Boolean),
                        first.c.row_id,
                        first.c.position,
                        first.c.stratum,
                        sa.literal("pending", sa.String),
                    ).where(
                        first.c.job_id == job_id,
                        first.c.queue == queue,
                        first.c.second == sa.false(),
                        mix(first.c.row, seed + 1_000_003) < threshold,
                    ),
                )
            if strata is not None:
                conn.execute(
                    review_queues.update()
                    .where(review_queues.c.job_id == job_id, review_queues.c.queue == queue)
                    .values(strata=strata)
                )
            added = _count(conn, job_id, queue) - before
            if added >= _ANALYZE_AFTER and conn.dialect.name == "postgresql":
                # The claim's plans are chosen from the table's statistics; right after a large
                # INSERT they still describe the table before it (an empty one, for the first
                # queue), until autovacuum gets round to it, and the row check of a claim was
                # planned over every leased item of the job instead of the row's own items.
                conn.execute(sa.text(f"ANALYZE {review_items.name}"))
            return added

        return self._tx(f"building review queue {queue} of {job_id}", tx)

    def queues(self, job_id: str) -> list[dict[str, Any]]:
        """The job's queues (name, kind, params, strata), by name."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(review_queues)
                    .where(review_queues.c.job_id == job_id)
                    .order_by(review_queues.c.queue)
                ).mappings()
            ]

        return self._tx(f"reading review queues of {job_id}", tx)

    # -- claiming and answering -------------------------------------------------------------------

    def claim(
        self, job_id: str, reviewer: str, queues: Sequence[str], lease_s: float
    ) -> Claimed | None:
        """The item ``reviewer`` holds (its lease renewed), else the first claimable item of
        ``queues`` in order (an expired lease first, then pending by position), leased for
        ``lease_s`` seconds; None when nothing is left for this reviewer. An item whose row is
        under someone else's live lease in any queue is not claimable (see :func:`_take_row`)."""
        token = uuid.uuid4().hex

        def tx(conn: Connection) -> Claimed | None:
            if conn.dialect.name == "postgresql":
                # A lease is not worth a wait for the disk: a claim lost to a server crash only
                # leaves the row free again (its reviewer's answer then says so: ItemLost), so it
                # commits without waiting for its WAL flush; answers and undos still wait.
                conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            held: Any = conn.execute(
                sa.select(IT.queue, IT.row, IT.second, _live(review_items).label("live"))
                .where(
                    IT.job_id == job_id,
                    IT.reviewer == reviewer,
                    IT.state == "leased",
                    IT.queue.in_(queues),
                )
                .order_by(IT.leased_until.desc())
                .limit(1)
                .with_for_update()
            ).first()
            passed: list[int] = []
            while True:
                mine = held is not None
                if held is None:
                    held = _pick(conn, job_id, reviewer, queues, passed)
                    if held is None:
                        return None
                queue, row, second = str(held[0]), int(held[1]), bool(held[2])
                if mine and held[3]:
                    break  # a live lease of ours: nobody else can have the row; renew it
                if _take_row(conn, job_id, reviewer, queue, row, second):
                    break
                # Someone else holds (or is claiming) the row in another queue: the next one.
                if mine:  # our lease on it expired and another reviewer took the row meanwhile
                    _release_held(conn, job_id, reviewer)
                passed.append(row)
                held = None
            until = _lease(conn, _key(job_id, queue, row, second), reviewer, token, lease_s)
            if until is None:  # the item was just taken; unreachable under the locks above
                raise StoreError(f"row {row} of job {job_id} changed while it was claimed")
            return _claimed(conn, job_id, queue, row, second, token, until)

        return self._tx(f"claiming a review row of {job_id} for {reviewer}", tx)

    def answer(
        self,
        job_id: str,
        reviewer: str,
        row: int,
        *,
        verdict: str,
        label: str | None,
        version: str,
        shown: Callable[[Mapping[str, Any], list[dict[str, Any]]], Any],
    ) -> int | None:
        """Store ``reviewer``'s answer to the row they hold and mark its item done (one
        transaction); returns the answer's id. ``verdict`` ``skip`` stores nothing and moves the
        row to the back of its queue, free for anyone. ``shown(result, predictions)`` makes the
        snapshot of what the models said. Raises :class:`ItemLost` when the reviewer does not hold
        the row."""

        def tx(conn: Connection) -> int | None:
            # The row first (as undo does): its lock orders this against a claim of it elsewhere.
            _lock_row(conn, job_id, row, wait=True)
            item = conn.execute(
                sa.select(IT.queue, IT.second, IT.row_id)
                .where(
                    IT.job_id == job_id,
                    IT.reviewer == reviewer,
                    IT.state == "leased",
                    IT.row == row,
                )
                .with_for_update()
            ).first()
            if item is None:
                raise ItemLost(_lost(conn, job_id, reviewer, row))
            queue, second, row_id = item
            key = _key(job_id, queue, row, second)
            # The lease may have expired and the row been taken from another queue meanwhile.
            if _held_elsewhere(conn, job_id, reviewer, queue, row, second):
                raise ItemLost(_lost(conn, job_id, reviewer, row))
            if verdict == "skip":
                conn.execute(
                    review_items.update()
                    .where(key)
                    .values(
                        state="pending",
                        reviewer=None,
                        lease_token=None,
                        leased_until=None,
                        position=IT.position + HASH_MODULUS,
                    )
                )
                return None
            result, found = _row_answers(conn, job_id, row)
            answer_id = conn.execute(
                review_answers.insert()
                .values(
                    job_id=job_id,
                    queue=queue,
                    row=row,
                    row_id=row_id,
                    second=second,
                    reviewer=reviewer,
                    answered_at=db_epoch(),
                    verdict=verdict,
                    label=label,
                    shown=shown(result, found),
                    lidframe_version=version,
                )
                .returning(A.answer_id)
            ).scalar_one()
            conn.execute(
                review_items.update()
                .where(key)
                .values(state="done", lease_token=None, leased_until=None)
            )
            _settle_elsewhere(conn, job_id, queue, row, bool(second), reviewer)
            return int(answer_id)

        return self._tx(f"storing {reviewer}'s answer to row {row} of {job_id}", tx)

    def undo(self, job_id: str, reviewer: str, lease_s: float) -> tuple[int, Claimed | None] | None:
        """Withdraw ``reviewer``'s last answer (kept, marked withdrawn) and lease its row to them
        again, handing back the row they held meanwhile. Returns the withdrawn answer's id and the
        row leased (None for an answer without a queue item: an imported one); None when there is
        nothing to undo."""
        token = uuid.uuid4().hex

        def tx(conn: Connection) -> tuple[int, Claimed | None] | None:
            last = conn.execute(
                sa.select(A.answer_id, A.queue, A.row, A.second)
                .where(A.job_id == job_id, A.reviewer == reviewer, A.withdrawn_at.is_(None))
                .order_by(A.answer_id.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if last is None:
                return None
            answer_id, queue, row, second = last
            conn.execute(
                review_answers.update()
                .where(A.answer_id == answer_id)
                .values(withdrawn_at=db_epoch())
            )
            _release_held(conn, job_id, reviewer)
            _lock_row(conn, job_id, int(row), wait=True)
            _unsettle_elsewhere(conn, job_id, queue, int(row), bool(second))
            until = _lease(
                conn,
                sa.and_(_key(job_id, queue, row, second), IT.state == "done"),
                reviewer,
                token,
                lease_s,
            )
            if until is None:
                return int(answer_id), None
            claimed = _claimed(conn, job_id, queue, int(row), bool(second), token, until)
            return int(answer_id), claimed

        return self._tx(f"undoing {reviewer}'s last answer in {job_id}", tx)

    def has_answers(self, job_id: str, reviewer: str) -> bool:
        def tx(conn: Connection) -> bool:
            return (
                conn.execute(
                    sa.select(A.answer_id)
                    .where(A.job_id == job_id, A.reviewer == reviewer, A.withdrawn_at.is_(None))
                    .limit(1)
                ).first()
                is not None
            )

        return self._tx(f"reading {reviewer}'s answers in {job_id}", tx)

    def release(self, job_id: str, reviewer: str) -> int:
        """Hand back the row ``reviewer`` holds (a reviewer who stops); returns how many."""
        return self._tx(
            f"releasing {reviewer}'s review rows of {job_id}",
            lambda conn: _release_held(conn, job_id, reviewer),
        )

    def import_answers(self, job_id: str, answers: Sequence[Mapping[str, Any]]) -> int:
        """Store answers made elsewhere (Label Studio): each names ``row_id``, ``queue``,
        ``reviewer``, ``answered_at`` (None: now), ``verdict``, ``label``, ``shown``,
        ``lidframe_version``. The row is found by its manifest id; a pending first item of the
        same queue and row is marked done. Returns how many were stored."""

        def tx(conn: Connection) -> int:
            ids = sorted({str(a["row_id"]) for a in answers})
            rows: dict[str, int] = {}
            for i in range(0, len(ids), 5000):
                rows.update(
                    (str(rid), int(r))
                    for rid, r in conn.execute(
                        sa.select(R.row_id, R.row).where(
                            R.job_id == job_id,
                            R.row_id.in_(ids[i : i + 5000]),
                            R.error_category.is_distinct_from("duplicate_id"),
                        )
                    ).all()
                )
            missing = [rid for rid in ids if rid not in rows]
            if missing:
                raise ConfigError(
                    f"row id {missing[0]!r} is not a row of job {job_id}"
                    + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
                )
            for a in answers:
                row = rows[str(a["row_id"])]
                when = a.get("answered_at")
                conn.execute(
                    review_answers.insert().values(
                        job_id=job_id,
                        queue=a["queue"],
                        row=row,
                        row_id=str(a["row_id"]),
                        second=False,
                        reviewer=a["reviewer"],
                        answered_at=db_epoch() if when is None else float(when),
                        verdict=a["verdict"],
                        label=a.get("label"),
                        shown=a.get("shown"),
                        lidframe_version=a["lidframe_version"],
                    )
                )
                conn.execute(
                    review_items.update()
                    .where(_key(job_id, a["queue"], row, False), IT.state == "pending")
                    .values(state="done", reviewer=a["reviewer"])
                )
                _settle_elsewhere(conn, job_id, str(a["queue"]), row, False, str(a["reviewer"]))
            return len(answers)

        return self._tx(f"importing review answers into {job_id}", tx)

    # -- reading ----------------------------------------------------------------------------------

    def item_counts(self, job_id: str) -> list[tuple[str, bool, str, int]]:
        """``(queue, second, state, items)`` of the job's queues; an expired lease counts as
        pending."""

        def tx(conn: Connection) -> list[tuple[str, bool, str, int]]:
            state = sa.case(
                (sa.and_(IT.state == "leased", IT.leased_until < db_epoch()), "pending"),
                else_=IT.state,
            )
            return [
                (str(q), bool(s), str(st), int(n))
                for q, s, st, n in conn.execute(
                    sa.select(IT.queue, IT.second, state, sa.func.count())
                    .where(IT.job_id == job_id)
                    .group_by(IT.queue, IT.second, state)
                ).all()
            ]

        return self._tx(f"counting review rows of {job_id}", tx)

    def answers(self, job_id: str, *, withdrawn: bool = False) -> list[dict[str, Any]]:
        """The job's answers (oldest first) with their item's ``stratum`` (null for imported
        answers) and the row's ``audio``, ``offset`` and ``duration``; withdrawn ones only when
        asked. Answers are human-made, so there are few enough to read whole."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            query = (
                sa.select(review_answers, IT.stratum, R.audio, R.offset, R.duration)
                .select_from(
                    review_answers.outerjoin(
                        review_items,
                        sa.and_(
                            IT.job_id == A.job_id,
                            IT.queue == A.queue,
                            IT.row == A.row,
                            IT.second == A.second,
                        ),
                    ).outerjoin(results, sa.and_(R.job_id == A.job_id, R.row == A.row))
                )
                .where(A.job_id == job_id)
                .order_by(A.answer_id)
            )
            if not withdrawn:
                query = query.where(A.withdrawn_at.is_(None))
            return [dict(r) for r in conn.execute(query).mappings()]

        return self._tx(f"reading review answers of {job_id}", tx)

    def answered_strata(self, job_id: str, queue: str) -> dict[int, str]:
        """``{row: stratum}`` of the reviewed rows of a random sample ``queue``: its first-review
        items whose row has a first answer (not withdrawn), given in any queue, that lie before
        the queue's first item not done (in its order).

        Why the prefix: the queue hands rows out in a seeded random order, so its done prefix is
        a random subsample of the sample whichever queue each answer came through; the rows
        answered ahead of it through a targeted queue (disagreements, say) are not random, and
        counting them before the prefix reaches them would tilt the estimate towards them."""

        def tx(conn: Connection) -> dict[int, str]:
            answered = sa.exists().where(
                A.job_id == job_id,
                A.row == IT.row,
                A.second == sa.false(),
                A.withdrawn_at.is_(None),
            )
            ahead = review_items.alias("ahead")
            frontier = (
                sa.select(sa.func.min(ahead.c.position))
                .where(
                    ahead.c.job_id == job_id,
                    ahead.c.queue == queue,
                    ahead.c.second == sa.false(),
                    ahead.c.state != "done",
                )
                .scalar_subquery()
            )
            return {
                int(row): str(stratum)
                for row, stratum in conn.execute(
                    sa.select(IT.row, IT.stratum).where(
                        IT.job_id == job_id,
                        IT.queue == queue,
                        IT.second == sa.false(),
                        IT.stratum.is_not(None),
                        sa.or_(frontier.is_(None), IT.position < frontier),
                        answered,
                    )
                ).all()
            }

        return self._tx(f"reading the reviewed rows of queue {queue} of {job_id}", tx)

    def items(self, job_id: str) -> list[dict[str, Any]]:
        """The first-review items of every queue (``queue``, ``row``, ``row_id``, ``state``,
        ``stratum``) with their row's ``audio``, ``offset`` and ``duration``, by queue and
        position (for an export to another tool)."""

        def tx(conn: Connection) -> list[dict[str, Any]]:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(IT.queue, IT.row, IT.row_id, IT.state, IT.stratum, R.audio, R.offset,
                              R.duration)
                    .select_from(
                        review_items.join(results, sa.and_(R.job_id == IT.job_id, R.row == IT.row))
                    )
                    .where(IT.job_id == job_id, IT.second == sa.false())
                    .order_by(IT.queue, IT.position)
                ).mappings()
            ]  # fmt: skip

        return self._tx(f"reading review rows of {job_id}", tx)

    def progress(
        self, job_id: str, reviewer: str, queues: Sequence[str], recent: int
    ) -> tuple[int, int, list[float]]:
        """``(answers of reviewer, rows of queues not done, the times of their last ``recent``
        answers)``. A row waiting in several of ``queues`` counts once (an answer settles it in
        all of them); its second review, if one is drawn, once more."""

        def tx(conn: Connection) -> tuple[int, int, list[float]]:
            mine = sa.and_(
                A.job_id == job_id,
                A.reviewer == reviewer,
                A.withdrawn_at.is_(None),
                A.queue.in_(queues),
            )
            done = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
            waiting = [IT.job_id == job_id, IT.queue.in_(queues), IT.state != "done"]
            if len(queues) == 1:  # (row, second) is unique within a queue
                left = conn.execute(sa.select(sa.func.count()).where(*waiting)).scalar_one()
            else:
                left = sum(
                    conn.execute(
                        sa.select(sa.func.count(sa.distinct(IT.row))).where(
                            *waiting, IT.second == second
                        )
                    ).scalar_one()
                    for second in (sa.false(), sa.true())
                )
            times = conn.execute(
                sa.select(A.answered_at).where(mine).order_by(A.answer_id.desc()).limit(recent)
            ).scalars()
            return int(done), int(left), [float(t) for t in times]

        return self._tx(f"reading {reviewer}'s progress in {job_id}", tx)

    # -- the listening page's reads ---------------------------------------------------------------

    def row_audio(self, job_id: str, row: int) -> RowAudio | None:
        """The file of ``row`` of ``job_id`` when the row is in one of its review queues (the page
        plays nothing else: a row of another job, or outside the queues, is unknown)."""

        def tx(conn: Connection) -> RowAudio | None:
            found = conn.execute(
                sa.select(R.audio, R.offset, R.duration)
                .where(
                    R.job_id == job_id,
                    R.row == row,
                    sa.exists().where(IT.job_id == job_id, IT.row == row),
                )
                .limit(1)
            ).first()
            if found is None or found[0] is None:
                return None
            return RowAudio(int(row), str(found[0]), _seconds(found[1]), _seconds(found[2]))

        return self._tx(f"reading the audio of row {row} of {job_id}", tx)

    def upcoming(self, job_id: str, queues: Sequence[str], besides: int | None) -> int | None:
        """The row the next claim of ``queues`` most likely hands out, ``besides`` the one held: the
        first pending first-review row nobody holds, in the order :meth:`claim` takes them. A hint
        (the page loads its audio early): nothing is leased by asking, and another reviewer may
        take it first."""

        def tx(conn: Connection) -> int | None:
            for queue in queues:
                where = [
                    IT.job_id == job_id,
                    IT.queue == queue,
                    IT.state == "pending",
                    IT.second == sa.false(),
                    _row_free(None),
                ]
                if besides is not None:
                    where.append(IT.row != besides)
                row = conn.execute(
                    sa.select(IT.row).where(*where).order_by(IT.position).limit(1)
                ).scalar()
                if row is not None:
                    return int(row)
            return None

        return self._tx(f"reading the next review row of {job_id}", tx)


# -- helpers ---------------------------------------------------------------------------------------


def _job(conn: Connection, job_id: str) -> dict[str, Any]:
    job = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
    if job is None:
        raise StoreError(f"no job {job_id!r} in the job database")
    return dict(job)


def _ensure_queue(
    conn: Connection, job_id: str, queue: str, kind: str, params: dict[str, Any]
) -> None:
    Q = review_queues.c
    found = conn.execute(
        sa.select(Q.kind).where(Q.job_id == job_id, Q.queue == queue).with_for_update()
    ).first()
    if found is None:
        conn.execute(
            review_queues.insert().values(
                job_id=job_id, queue=queue, kind=kind, params=params, created_at=db_epoch()
            )
        )
    elif found[0] != kind:
        raise ConfigError(
            f"review queue {queue!r} of job {job_id} holds {found[0]} rows, not {kind}: "
            "give the queue another name"
        )
    else:
        conn.execute(
            review_queues.update().where(Q.job_id == job_id, Q.queue == queue).values(params=params)
        )


def _stratified(
    view: sa.Subquery, where: sa.ColumnElement[bool], h: sa.ColumnElement[int], limit: int | None
) -> sa.Select[Any]:
    """The rows of ``where``, or ``limit`` of them spread over the predicted languages in
    proportion to their rows (at least one of each; the ceiling of the share), each language's
    taken in ``h`` order."""
    ranked = (
        sa.select(
            view.c.row,
            view.c.row_id,
            view.c.lang,
            h.label("position"),
            sa.func.row_number()
            .over(partition_by=view.c.lang, order_by=(h, view.c.row))
            .label("rank"),
            sa.func.count().over(partition_by=view.c.lang).label("in_stratum"),
            sa.func.count().over().label("total"),
        )
        .where(where)
        .subquery("ranked")
    )
    chosen = sa.select(ranked.c.row, ranked.c.row_id, ranked.c.lang, ranked.c.position)
    if limit is None:
        return chosen
    share = (sa.literal(limit, sa.BigInteger) * ranked.c.in_stratum + ranked.c.total - 1) / (
        ranked.c.total
    )
    return chosen.where(ranked.c.rank <= share)


def _insert_ignoring(conn: Connection, select: sa.Select[Any]) -> None:
    """``INSERT INTO review_items ... SELECT`` skipping rows already there."""
    names = ["job_id", "queue", "row", "second", "row_id", "position", "stratum", "state"]
    if conn.dialect.name == "postgresql":
        statement: Any = (
            postgresql.insert(review_items).from_select(names, select).on_conflict_do_nothing()
        )
    else:
        # SQLite reads ``INSERT ... SELECT ... ON CONFLICT`` as a join's ON; OR IGNORE is the same.
        statement = review_items.insert().prefix_with("OR IGNORE").from_select(names, select)
    conn.execute(statement)


def _count(conn: Connection, job_id: str, queue: str) -> int:
    """First-review items of a queue (rowcount of an INSERT ... SELECT is -1 through psycopg)."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                IT.job_id == job_id, IT.queue == queue, IT.second == sa.false()
            )
        ).scalar_one()
    )


def _key(job_id: str, queue: str, row: int, second: bool) -> sa.ColumnElement[bool]:
    return sa.and_(IT.job_id == job_id, IT.queue == queue, IT.row == row, IT.second == second)


def _live(items: Any) -> sa.ColumnElement[bool]:
    """``items`` (review_items or an alias) under a lease that has not expired."""
    return sa.and_(items.c.state == "leased", items.c.leased_until >= db_epoch())


def _row_free(reviewer: str | None) -> sa.ColumnElement[bool]:
    """No item of the candidate's row (any queue, first or second) is under someone else's live
    lease (anyone's, for ``reviewer`` None): a row is in one reviewer's hands at a time,
    whichever queue it came from."""
    other = review_items.alias("other")
    held = [other.c.reviewer != reviewer] if reviewer is not None else []
    return ~sa.exists().where(
        other.c.job_id == IT.job_id, other.c.row == IT.row, _live(other), *held
    )


def _pick(
    conn: Connection, job_id: str, reviewer: str, queues: Sequence[str], passed: Sequence[int]
) -> tuple[str, int, bool] | None:
    first = review_items.alias("first")
    # A second item only once its row's first answer is in, and not for the one who gave it.
    eligible = sa.or_(
        IT.second == sa.false(),
        sa.exists().where(
            first.c.job_id == IT.job_id,
            first.c.queue == IT.queue,
            first.c.row == IT.row,
            first.c.second == sa.false(),
            first.c.state == "done",
            first.c.reviewer != reviewer,
        ),
    )
    others = [IT.row.not_in(passed)] if passed else []
    for queue in queues:
        # Two scans of the (job, queue, state, position) index rather than one OR: expired leases
        # (few: one per reviewer at most) first, then pending rows in queue order.
        for state in (
            sa.and_(IT.state == "leased", IT.leased_until < db_epoch()),
            IT.state == "pending",
        ):
            found = conn.execute(
                sa.select(IT.queue, IT.row, IT.second)
                .where(
                    IT.job_id == job_id,
                    IT.queue == queue,
                    state,
                    eligible,
                    _row_free(reviewer),
                    *others,
                )
                .order_by(IT.state, IT.position)
                .limit(1)
                .with_for_update(skip_locked=True, of=review_items)
            ).first()
            if found is not None:
                return str(found[0]), int(found[1]), bool(found[2])
    return None


def _lock_row(conn: Connection, job_id: str, row: int, *, wait: bool) -> bool:
    """Lock the job's row (its ``lidframe_results`` row, ``FOR NO KEY UPDATE``) until the
    transaction ends, so that two transactions never hand out or settle one row at once, whatever
    queue each came through (an item's own lock guards only that queue's copy). Without ``wait``,
    a row another transaction holds is passed over (``SKIP LOCKED``): False. SQLite needs no row
    lock: ``BEGIN IMMEDIATE`` already lets one writer in at a time."""
    if conn.dialect.name != "postgresql":
        return True
    query = sa.select(R.row).where(R.job_id == job_id, R.row == row)
    query = query.with_for_update(key_share=True, skip_locked=not wait)
    return conn.execute(query).first() is not None


def _held_elsewhere(
    conn: Connection, job_id: str, reviewer: str, queue: str, row: int, second: bool
) -> bool:
    """Whether another item of ``row`` is under another reviewer's live lease."""
    return (
        conn.execute(
            sa.select(IT.queue)
            .where(
                IT.job_id == job_id,
                IT.row == row,
                sa.not_(sa.and_(IT.queue == queue, IT.second == second)),
                _live(review_items),
                IT.reviewer != reviewer,
            )
            .limit(1)
        ).first()
        is not None
    )


def _take_row(
    conn: Connection, job_id: str, reviewer: str, queue: str, row: int, second: bool
) -> bool:
    """Whether ``reviewer`` may lease the item of ``row`` just picked: its row locked (skipped
    when another claim holds it) and, seen after the lock, under nobody else's live lease.

    The check after the lock is what makes the claim exclusive per row on PostgreSQL: the pick's
    own ``NOT EXISTS`` reads the snapshot its statement started with, which may predate a lease
    another queue's claimer has committed since; a claimer that gets the row lock reads after
    the last holder committed."""
    if not _lock_row(conn, job_id, row, wait=False):
        return False
    return not _held_elsewhere(conn, job_id, reviewer, queue, row, second)


def _lease(
    conn: Connection, where: sa.ColumnElement[bool], reviewer: str, token: str, lease_s: float
) -> float | None:
    """Lease the item ``where`` selects to ``reviewer`` for ``lease_s`` seconds (the database
    clock); returns when the lease ends, None when no item matched."""
    until = conn.execute(
        review_items.update()
        .where(where)
        .values(
            state="leased",
            reviewer=reviewer,
            lease_token=token,
            leased_until=db_epoch() + lease_s,
        )
        .returning(IT.leased_until)
    ).scalar()
    return None if until is None else float(until)


def _settle_elsewhere(
    conn: Connection, job_id: str, queue: str, row: int, second: bool, reviewer: str
) -> None:
    """A row answered in ``queue`` is answered everywhere: its items of the same kind (first or
    second review) in the job's other queues are done too, with ``reviewer`` as who answered (so
    a second review of the row goes to someone else). No answer is copied: the row's answer is
    the one given, and :func:`lidframe.review.row_labels` reads labels by row, not by queue."""
    conn.execute(
        review_items.update()
        .where(
            IT.job_id == job_id,
            IT.row == row,
            IT.second == second,
            IT.queue != queue,
            IT.state != "done",
        )
        .values(state="done", reviewer=reviewer, lease_token=None, leased_until=None)
    )


def _unsettle_elsewhere(conn: Connection, job_id: str, queue: str, row: int, second: bool) -> None:
    """Undo :func:`_settle_elsewhere` once the row has no answer of that kind left (its last one
    was withdrawn): its items in the other queues are pending again."""
    left = conn.execute(
        sa.select(A.answer_id)
        .where(A.job_id == job_id, A.row == row, A.second == second, A.withdrawn_at.is_(None))
        .limit(1)
    ).first()
    if left is not None:
        return
    conn.execute(
        review_items.update()
        .where(
            IT.job_id == job_id,
            IT.row == row,
            IT.second == second,
            IT.queue != queue,
            IT.state == "done",
        )
        .values(state="pending", reviewer=None, lease_token=None, leased_until=None)
    )


def _release_held(conn: Connection, job_id: str, reviewer: str) -> int:
    return int(
        conn.execute(
            review_items.update()
            .where(IT.job_id == job_id, IT.reviewer == reviewer, IT.state == "leased")
            .values(state="pending", reviewer=None, lease_token=None, leased_until=None)
        ).rowcount
    )


def _row_answers(
    conn: Connection, job_id: str, row: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The row's result (``lidframe_results``) and its predictions, in the job's model order."""
    result = dict(
        conn.execute(sa.select(results).where(R.job_id == job_id, R.row == row)).mappings().one()
    )
    # The job's models only: its config and environment JSON are not read on every claim.
    job_models = conn.execute(sa.select(jobs.c.models).where(jobs.c.job_id == job_id)).scalar_one()
    models = [column_alias(str(m)) for m in job_models]
    P = predictions.c
    found = {
        r["model"]: dict(r)
        for r in conn.execute(
            sa.select(predictions).where(P.job_id == job_id, P.row_id == result["row_id"])
        ).mappings()
    }
    if result.get("error_category") == "duplicate_id":
        found = {}
    return result, [found[m] for m in models if m in found]


def _claimed(
    conn: Connection, job_id: str, queue: str, row: int, second: bool, token: str, until: float
) -> Claimed:
    result, found = _row_answers(conn, job_id, row)
    return Claimed(queue, row, second, token, until, result, found)


def _lost(conn: Connection, job_id: str, reviewer: str, row: int) -> str:
    holders = conn.execute(
        sa.select(IT.queue, IT.state, IT.reviewer).where(IT.job_id == job_id, IT.row == row)
    ).all()
    if not holders:
        return f"row {row} of job {job_id} is in no review queue"
    for queue, state, who in holders:
        if state == "leased" and who != reviewer:
            return (
                f"row {row} of job {job_id} (queue {queue}) is no longer {reviewer}'s: its lease "
                f"expired and {who} has it now; the answer was not stored, take the next row"
            )
    return (
        f"row {row} of job {job_id} is not held by {reviewer} (it was answered or handed back); "
        "the answer was not stored, take the next row"
    )


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if number != number else number  # NaN: not given
