"""The review loop on real databases: concurrent reviewers never share a row, answers survive a
restart, undo, lease expiry, skips, second reviews with Cohen's kappa and the stratified accuracy
estimate, each against an independent computation."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from pathlib import Path
from statistics import NormalDist

import pytest
import sqlalchemy as sa

from lidframe.errors import ConfigError
from lidframe.review import ItemLost, Reviews
from lidframe.store.schema import review_answers
from tests.review.jobs import make_job

pytestmark = pytest.mark.postgres

JOB = "job-review"


def test_concurrent_reviewers_never_get_the_same_row(db_url):
    make_job(db_url, n=300, models=2)
    with Reviews(db_url, JOB) as setup:
        queued = setup.build("random", limit=60, second_share=0)
    seen: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start, holding = threading.Barrier(4), threading.Barrier(4)

    def reviewer(name: str) -> None:
        rows = seen.setdefault(name, [])
        try:
            with Reviews(db_url, JOB) as reviews:  # one connection pool per reviewer
                start.wait()
                first = reviews.next(name, "random")
                assert first is not None
                rows.append(first.row)
                # all four hold a leased row at once (on a loaded machine one thread could
                # otherwise take the whole queue before the others start), then go on
                holding.wait(timeout=60)
                reviews.answer(name, first.row, "label", "en")
                while (item := reviews.next(name, "random")) is not None:
                    rows.append(item.row)
                    reviews.answer(name, item.row, "label", "en")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    every = [row for rows in seen.values() for row in rows]
    assert len(every) == len(set(every)) == queued
    assert all(seen.values())  # they really worked side by side


def test_concurrent_reviewers_of_overlapping_queues_never_share_a_row(db_url):
    """Rows that sit in two or three queues at once go to one reviewer at a time and are answered
    once: reviewers of different queues claim side by side, none ever loses a row it holds."""
    make_job(db_url, n=300, models=2)
    with Reviews(db_url, JOB) as setup:
        setup.build("disagreement", second_share=0)
        setup.build("low_margin", max_margin=0.6, second_share=0)
        setup.build("random", limit=80, second_share=0, seed=3)
        queued = {q: {i["row"] for i in setup.store.items(JOB) if i["queue"] == q}
                  for q in setup.queues()}  # fmt: skip
    overlap = queued["disagreement"] & queued["low_margin"]
    assert len(overlap) >= 20 and queued["random"] & overlap  # the case at hand
    served = {f"r{i}": q for i, q in enumerate(["disagreement", "low_margin", "random", None] * 2)}
    seen: dict[str, list[int]] = {name: [] for name in served}
    errors: list[BaseException] = []
    start = threading.Barrier(len(served))

    def reviewer(name: str) -> None:
        try:
            with Reviews(db_url, JOB) as reviews:  # one connection pool per reviewer
                start.wait()
                while (item := reviews.next(name, served[name])) is not None:
                    seen[name].append(item.row)
                    reviews.answer(name, item.row, "label", "en")  # ItemLost: a shared row
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reviewer, args=(name,)) for name in served]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    every = [row for rows in seen.values() for row in rows]
    assert len(every) == len(set(every)) == len(set().union(*queued.values()))
    assert sum(1 for rows in seen.values() if rows) >= 4
    with Reviews(db_url, JOB) as reviews:
        answered = reviews.store.answers(JOB)
        assert sorted(a["row"] for a in answered) == sorted(every)  # each row answered once
        assert all(q.done == q.rows and q.leased == 0 for q in reviews.status().queues)


def test_a_row_answered_in_one_queue_is_settled_in_the_others(db_url):
    make_job(db_url, n=300, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("disagreement", second_share=0)
        reviews.build("low_margin", max_margin=0.6, second_share=0)
        low = {i["row"] for i in reviews.store.items(JOB) if i["queue"] == "low_margin"}
        while (held := reviews.next("alice", "disagreement")).row not in low:
            reviews.answer("alice", held.row, "skip")
        row = held.row
        left = reviews.progress("bob", "low_margin").left
        # While alice holds the row, bob (serving the other queue) never gets it.
        taken = _drain(reviews, "bob", "low_margin", len(low))
        assert row not in taken and len(taken) == len(low) - 1
        # Serving both queues, a row waiting in both is one row left.
        both = {i["row"] for i in reviews.store.items(JOB) if i["state"] != "done"}
        assert reviews.progress("bob").left == len(both)
        # Answered in disagreement, it is done in low_margin too: never a first review again.
        reviews.answer("alice", row, "label", "fr")
        assert reviews.progress("bob", "low_margin").left == left - 1
        assert reviews.progress("bob").left == len(both) - 1
        assert row not in _drain(reviews, "carol", "low_margin", len(low))
        # Undone, it is alice's again (and so still not bob's); handed back, bob can take it.
        assert reviews.undo("alice").row == row
        assert reviews.progress("bob", "low_margin").left == left
        assert reviews.next("bob", "low_margin").row != row
        reviews.release("bob")
        reviews.release("alice")
        assert row in _drain(reviews, "bob", "low_margin", len(low))


def test_a_row_being_claimed_through_another_queue_is_passed_over(pg_url):
    """PostgreSQL: the row lock a claim takes (and holds until it commits) makes a claimer of
    another queue pass the row over instead of leasing it from a snapshot that predates the
    first claimer's lease."""
    make_job(pg_url, n=300, models=2)
    with Reviews(pg_url, JOB) as reviews:
        reviews.build("disagreement", second_share=0)
        reviews.build("low_margin", max_margin=0.6, second_share=0)
        row = reviews.store.upcoming(JOB, ["low_margin"], None)
        # Another transaction in the middle of a claim of `row` (through disagreement, say).
        with reviews.store.engine.connect() as other, other.begin():
            other.execute(
                sa.text(
                    "SELECT row FROM lidframe_results WHERE job_id = :j AND row = :r "
                    "FOR NO KEY UPDATE"
                ),
                {"j": JOB, "r": row},
            )
            assert reviews.next("bob", "low_margin").row != row
            reviews.release("bob")
        assert reviews.next("bob", "low_margin").row == row


def _drain(reviews: Reviews, reviewer: str, queue: str, most: int) -> list[int]:
    """The rows ``reviewer`` is handed from ``queue``, each skipped (to the back) and handed back;
    stops when a row comes round again."""
    rows: list[int] = []
    while (item := reviews.next(reviewer, queue)) is not None and item.row not in rows:
        rows.append(item.row)
        reviews.answer(reviewer, item.row, "skip")
        assert len(rows) <= most
    reviews.release(reviewer)
    return rows


def test_the_random_sample_counts_its_rows_answered_in_another_queue(db_url):
    """Sample rows answered through the disagreement queue are done in the random queue and
    count in its estimate, but only once the queue's own (random) order reaches them: counted
    earlier they would tilt the estimate towards the disagreements."""
    frame = make_job(db_url, n=300, models=2, seed=5)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", second_share=0)  # every answered row
        reviews.build("disagreement", second_share=0)
        labels = {}
        while (item := reviews.next("alice", "disagreement")) is not None:
            labels[item.row] = "en" if item.row % 2 else "de"
            reviews.answer("alice", item.row, "label", labels[item.row])
        disagreements = len(labels)
        order = [i["row"] for i in reviews.store.items(JOB) if i["queue"] == "random"]
        prefix = next(k for k, row in enumerate(order) if row not in labels)
        early = reviews.status()
        while (item := reviews.next("bob", "random")) is not None:
            assert item.row not in labels  # settled rows are not served again
            labels[item.row] = "en"
            reviews.answer("bob", item.row, "label", "en")
        status = reviews.status()
        answered = sorted(a["row"] for a in reviews.store.answers(JOB))
    random = next(q for q in early.queues if q.queue == "random")
    assert random.done == disagreements  # done in the random queue too
    before = early.accuracy["random"]
    assert (before.reviewed if before else 0) == prefix < disagreements
    estimate = status.accuracy["random"]
    assert estimate.reviewed == len(labels) == len(order)
    right = sum(frame.loc[row, "lang"] == label for row, label in labels.items())
    assert sum(r for _, _, r in estimate.strata.values()) == right
    assert answered == sorted(order)  # each row answered once


def test_a_reviewer_holds_one_row_and_answers_survive_a_restart(db_url):
    make_job(db_url, n=200, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("code_switch", second_share=0)
        item = reviews.next("alice")
        assert item is not None and item.queue == "code_switch"
        assert reviews.next("alice").row == item.row  # a reloaded page: the same row
        other = reviews.next("bob")
        assert other is not None and other.row != item.row
        answer_id = reviews.answer("alice", item.row, "label", "ES")
    with Reviews(db_url, JOB) as restarted:  # a new process, the same database
        (stored,) = restarted.store.answers(JOB)
        assert stored["answer_id"] == answer_id
        assert (stored["reviewer"], stored["verdict"], stored["label"]) == ("alice", "label", "es")
        assert set(stored["shown"]["models"]) == {"m1", "m2"}
        assert len(stored["shown"]["models"]["m1"]["top3"]) <= 3
        assert stored["shown"]["consensus"]["lang"] is not None
        assert stored["lidframe_version"]
        # bob still holds his row after the restart; alice gets a new one
        assert restarted.next("bob").row == other.row
        assert restarted.next("alice").row not in (item.row, other.row)
        assert restarted.progress("alice").done == 1


def test_undo_keeps_the_withdrawn_answer_and_gives_the_row_back_first(db_url):
    make_job(db_url, n=200, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("code_switch", second_share=0)
        first = reviews.next("alice")
        reviews.answer("alice", first.row, "unsure")
        held = reviews.next("alice")
        assert held.row != first.row
        back = reviews.undo("alice")
        assert back is not None and back.row == first.row
        assert reviews.next("alice").row == first.row  # it comes first
        assert reviews.next("bob").row == held.row  # the row alice held is free again
        reviews.answer("alice", first.row, "no_speech")
        everything = reviews.store.answers(JOB, withdrawn=True)
        assert [(a["verdict"], a["label"], a["withdrawn_at"] is not None) for a in everything] == [
            ("unsure", None, True),
            ("no_speech", "und", False),
        ]
        assert reviews.undo("nobody") is None
        assert reviews.status().withdrawn == 1


def test_an_expired_lease_lets_someone_else_take_the_row(db_url):
    make_job(db_url, n=200, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("code_switch", second_share=0)
        item = reviews.next("alice", lease_s=0.5)
        time.sleep(1.0)
        taken = reviews.next("bob")
        assert taken.row == item.row
        with pytest.raises(ItemLost, match=f"row {item.row} .*bob has it now"):
            reviews.answer("alice", item.row, "label", "en")
        reviews.answer("bob", item.row, "label", "en")
        assert [a["reviewer"] for a in reviews.store.answers(JOB)] == ["bob"]


def test_a_skip_stores_nothing_and_moves_the_row_to_the_back(db_url):
    make_job(db_url, n=200, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("code_switch", second_share=0)
        n = reviews.progress("alice").left
        item = reviews.next("alice")
        assert reviews.answer("alice", item.row, "skip") is None
        rows = []
        while (nxt := reviews.next("alice")) is not None:
            rows.append(nxt.row)
            reviews.answer("alice", nxt.row, "label", "fr")
        assert rows[-1] == item.row and len(rows) == n
        assert Counter(a["verdict"] for a in reviews.store.answers(JOB)) == {"label": n}


def test_verdicts_and_labels_are_checked_in_one_line(db_url):
    make_job(db_url, n=100, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", second_share=0)
        item = reviews.next("alice")
        for verdict, label, message in [
            ("maybe", None, "unknown verdict 'maybe'"),
            ("label", None, "needs a language code"),
            ("label", "klingon-x", "unknown language code"),
            ("unsure", "en", "takes no label"),
        ]:
            with pytest.raises(ConfigError, match=message) as caught:
                reviews.answer("alice", item.row, verdict, label)
            assert "\n" not in str(caught.value) and f"row {item.row}" in str(caught.value)
        with pytest.raises(ConfigError, match="no review queue 'nope'"):
            reviews.next("alice", "nope")


def _kappa(pairs):
    """Cohen's kappa by hand from the confusion counts."""
    labels = sorted({x for p in pairs for x in p})
    n = len(pairs)
    table = {(a, b): 0 for a in labels for b in labels}
    for p in pairs:
        table[p] += 1
    po = sum(table[(a, a)] for a in labels) / n
    rows = {a: sum(table[(a, b)] for b in labels) for a in labels}
    cols = {b: sum(table[(a, b)] for a in labels) for b in labels}
    pe = sum(rows[a] * cols[a] for a in labels) / n / n
    return (po - pe) / (1 - pe)


def test_second_reviews_go_to_someone_else_and_give_cohens_kappa(db_url):
    frame = make_job(db_url, n=400, models=2, seed=9)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", limit=80, second_share=0.3, seed=4)
        first_label = {}
        # alice does every first review; her own rows' second copies are never hers
        while (item := reviews.next("alice")) is not None:
            assert not item.second
            label = "en" if item.row % 3 else "fr"
            first_label[item.row] = label
            reviews.answer("alice", item.row, "label", label)
        pairs = []
        while (item := reviews.next("bob")) is not None:
            assert item.second and item.row in first_label
            label = "en" if item.row % 5 else "de"
            pairs.append((first_label[item.row], label))
            reviews.answer("bob", item.row, "label", label)
        status = reviews.status()
    assert len(pairs) >= 10
    assert status.pairs == len(pairs)
    assert status.kappa == pytest.approx(_kappa(pairs))
    (q,) = status.queues
    assert (q.done, q.second_done) == (q.rows, q.second_rows)
    assert frame is not None


def test_the_accuracy_estimate_is_stratified_with_a_wilson_interval(db_url):
    frame = make_job(db_url, n=500, models=2, seed=11)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", limit=50, second_share=0, seed=2)
        truth = {}
        while (item := reviews.next("alice")) is not None:
            # the "human" confirms the answer on rows divisible by 4 only when it is en
            right = frame.loc[item.row, "lang"]
            label = right if (item.row % 4 or right == "en") else ("de" if right != "de" else "fr")
            truth[item.row] = label
            reviews.answer("alice", item.row, "label", label)
        estimate = reviews.status().accuracy["random"]
    answered = frame[frame["error"].isna() & frame["lang"].notna()]
    sizes = answered["lang"].value_counts()
    n_h = Counter(frame.loc[r, "lang"] for r in truth)
    ok_h = Counter(
        frame.loc[r, "lang"] for r, label in truth.items() if label == frame.loc[r, "lang"]
    )
    total = sizes[list(n_h)].sum()
    p = sum(sizes[h] / total * ok_h[h] / n_h[h] for h in n_h)
    var = sum(
        (sizes[h] / total) ** 2 * (ok_h[h] / n_h[h]) * (1 - ok_h[h] / n_h[h]) / n_h[h]
        * (1 - n_h[h] / sizes[h])
        for h in n_h
    )  # fmt: skip
    n_eff = p * (1 - p) / var
    z = NormalDist().inv_cdf(0.975)
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff**2))
    assert estimate.accuracy == pytest.approx(p)
    assert estimate.low == pytest.approx(centre - half)
    assert estimate.high == pytest.approx(centre + half)
    assert estimate.reviewed == len(truth)
    assert estimate.coverage == pytest.approx(total / sizes.sum())
    assert 0 < estimate.low < p < estimate.high < 1


def test_answers_are_append_only_rows_with_the_database_clock(db_url):
    make_job(db_url, n=100, models=1)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", second_share=0)
        item = reviews.next("alice")
        assert item.consensus is None and [m.model for m in item.models] == ["m1"]
        reviews.answer("alice", item.row, "label", "en")
        with reviews.store.engine.connect() as conn:
            at = conn.execute(sa.select(review_answers.c.answered_at)).scalar_one()
        assert abs(at - time.time()) < 60
        progress = reviews.progress("alice", "random")
        assert progress.done == 1 and progress.pace is None


def test_the_0011_migration_settles_rows_answered_before_it(db_url):
    """A database reviewed before answers settled rows across queues (Alembic 0010) gets its rows
    answered in one queue marked done in the others on upgrade."""
    from alembic import command
    from alembic.config import Config

    from lidframe.store import engine as store_engine
    from lidframe.store.schema import review_items

    make_job(db_url, n=300, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("disagreement", second_share=0)
        reviews.build("low_margin", max_margin=0.6, second_share=0)
        low = {i["row"] for i in reviews.store.items(JOB) if i["queue"] == "low_margin"}
        while (held := reviews.next("alice", "disagreement")).row not in low:
            reviews.answer("alice", held.row, "skip")
        reviews.answer("alice", held.row, "label", "fr")
        engine = reviews.store.engine
        where = sa.and_(review_items.c.queue == "low_margin", review_items.c.row == held.row)
        state = sa.select(review_items.c.state, review_items.c.reviewer).where(where)
        with engine.begin() as conn:  # as 0009 left it: pending in the other queue
            conn.execute(
                sa.update(review_items).where(where).values(state="pending", reviewer=None)
            )
        config = Config()
        config.set_main_option(
            "script_location", str(Path(store_engine.__file__).parent / "migrations")
        )
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0010")
            assert conn.execute(state).one() == ("pending", None)
            command.upgrade(config, "head")
            assert conn.execute(state).one() == ("done", "alice")
