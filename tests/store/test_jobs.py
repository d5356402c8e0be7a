"""The job database on real servers: schema and migrations, leases, token-checked commits, attempts,
concurrent claimers, lost connections, and strings that look like SQL.

Every test that takes ``db_url`` runs twice: on a SQLite file and on a real PostgreSQL server.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from lidframe.errors import StoreError
from lidframe.store import Lease, open_store
from lidframe.store.results import frame_rows
from lidframe.store.schema import metadata

pytestmark = pytest.mark.postgres

JOB = "job-test"


def _job(store, partitions: int, rows_per_partition: int = 3, job_id: str = JOB) -> None:
    store.ensure_job(
        job_id,
        fingerprint="fp",
        manifest="/data/manifest.csv",
        manifest_digest="digest",
        out="/data/out",
        models=["m"],
        config={"partition_rows": rows_per_partition},
        environment={"python": "3"},
        bounds=[(k * rows_per_partition, (k + 1) * rows_per_partition) for k in range(partitions)],
    )


def _rows(lease, marker: str):
    """The rows a worker would hand back for ``lease``'s partition, answering ``marker``."""
    rows = range(lease.row_start, lease.row_stop)
    frame = pd.DataFrame(
        {
            "id": [f"r{r}" for r in rows],
            "audio": [f"/audio/{r}.wav" for r in rows],
            "offset": [float("nan")] * len(rows),
            "duration": [1.5] * len(rows),
            "error": [None] * len(rows),
            "m_lang": [marker] * len(rows),
            "m_prob": [0.5] * len(rows),
            "m_topk": [[{"lang": marker, "prob": 0.5}] for _ in rows],
        },
        index=list(rows),
    )
    return frame_rows(frame, JOB, lease.partition, ["m"])


def test_migrations_create_exactly_the_declared_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(db_url)
    store.close()
    store = open_store(db_url)  # a second open is a no-op migration
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        tables = set(sa.inspect(conn).get_table_names())
    store.close()
    assert diffs == []
    assert version == "0013"
    assert tables >= {
        "lidframe_jobs",
        "lidframe_partitions",
        "lidframe_results",
        "lidframe_predictions",
        "lidframe_evaluations",
        "lidframe_review_queues",
        "lidframe_review_items",
        "lidframe_review_answers",
        "lidframe_behaviour",
        "lidframe_behaviour_counts",
        "lidframe_behaviour_totals",
        "lidframe_workers",
    }


def test_commit_needs_the_current_lease_and_is_idempotent(db_url):
    with open_store(db_url) as a, open_store(db_url) as b:
        _job(a, partitions=3)
        first = a.claim(JOB, "a", 2, lease_s=1, max_attempts=3)
        assert [lease.partition for lease in first] == [0, 1]
        # b only gets what a does not hold
        assert [lease.partition for lease in b.claim(JOB, "b", 5, lease_s=60, max_attempts=3)] == [
            2
        ]
        assert a.commit(JOB, first[0], _rows(first[0], "a"))
        # the same commit again (a retry whose first try landed) is recognised, writes nothing new
        assert a.commit(JOB, first[0], _rows(first[0], "a"))

        time.sleep(1.3)  # a's lease on partition 1 expires; b takes it over
        taken = b.claim(JOB, "b", 5, lease_s=60, max_attempts=3)
        assert [(lease.partition, lease.attempt) for lease in taken] == [(1, 2)]
        assert not a.commit(JOB, first[1], _rows(first[1], "late"))  # rejected
        assert b.commit(JOB, taken[0], _rows(taken[0], "b"))

        results = a.results(JOB)
        predictions = a.predictions(JOB)
        parts = a.partitions(JOB).set_index("partition")
    assert results["row_id"].tolist() == [f"r{r}" for r in range(6)]
    assert results["partition"].tolist() == [0, 0, 0, 1, 1, 1]
    assert Counter(predictions["lang"]) == Counter({"a": 3, "b": 3})  # nothing from the late commit
    assert parts.loc[0, "state"] == "done" and parts.loc[1, "state"] == "done"
    assert parts.loc[2, "state"] == "running"
    assert parts.loc[1, "rows"] == 3 and parts.loc[1, "attempts"] == 2


def test_a_failed_partition_is_retried_after_the_first_pass(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=3)
        (first,) = store.claim(JOB, "a", 1, lease_s=60, max_attempts=3)
        assert store.fail(JOB, first, "boom", max_attempts=3) == "pending"
        claimed = [store.claim(JOB, "a", 1, lease_s=60, max_attempts=3)[0] for _ in range(3)]
        assert [(c.partition, c.attempt) for c in claimed] == [(1, 1), (2, 1), (0, 2)]


def test_failed_attempts_end_dead_and_can_be_retried(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=2)
        (lease,) = store.claim(JOB, "a", 1, lease_s=60, max_attempts=2)
        assert store.fail(JOB, lease, "KilledWorker: boom", max_attempts=2) == "pending"
        with open_store(db_url) as other:  # another process: its first claim starts at the start
            (lease,) = other.claim(JOB, "a", 1, lease_s=60, max_attempts=2)
        assert (lease.partition, lease.attempt) == (0, 2)
        assert store.fail(JOB, lease, "KilledWorker: boom again", max_attempts=2) == "dead"
        assert store.fail(JOB, lease, "twice", max_attempts=2) is None  # no longer this lease's

        # a holder that vanishes on its last attempt: the expired lease makes the partition dead
        (lease,) = store.claim(JOB, "gone", 1, lease_s=1, max_attempts=1)
        assert lease.partition == 1
        time.sleep(1.3)
        assert store.claim(JOB, "b", 5, lease_s=60, max_attempts=1) == []
        parts = store.partitions(JOB).set_index("partition")
        assert parts["state"].tolist() == ["dead", "dead"]
        assert parts.loc[0, "last_error"] == "KilledWorker: boom again"
        assert "lease expired" in parts.loc[1, "last_error"]
        assert store.finish_if_complete(JOB) == "finished_with_dead"
        status = store.status(JOB)
        assert status.states["dead"] == 2 and "dead partition 0: KilledWorker" in str(status)

        # dead partitions get a token no holder ever had; their rows are stored under it, once
        dead = store.dead_without_rows(JOB)
        assert [d.partition for d, _ in dead] == [0, 1]
        assert all(d.token.startswith("dead-") and d.token != lease.token for d, _ in dead)
        assert dead[0][1] == "KilledWorker: boom again"
        assert not store.store_dead_rows(JOB, 1, lease.token, _rows(lease, "late holder"))
        for (d, _), lease in zip(
            dead, (Lease(0, "-", 2, 0, 3), Lease(1, "-", 1, 3, 6)), strict=True
        ):
            assert store.store_dead_rows(JOB, d.partition, d.token, _rows(lease, "dead"))
            assert store.store_dead_rows(JOB, d.partition, d.token, _rows(lease, "dead"))
        assert store.dead_without_rows(JOB) == []
        assert store.summary(JOB, multi_model=False)["rows"] == 6

        assert store.retry_dead(JOB) == 2
        assert store.job(JOB)["status"] == "running"
        again = store.claim(JOB, "c", 5, lease_s=60, max_attempts=2)
        assert [(lease.partition, lease.attempt) for lease in again] == [(0, 1), (1, 1)]
        # a redo replaces the partition's rows: no duplicates, only the new answers
        assert all(store.commit(JOB, lease, _rows(lease, "redo")) for lease in again)
        results, predictions = store.results(JOB), store.predictions(JOB)
        assert results["row_id"].tolist() == [f"r{r}" for r in range(6)]
        assert predictions["lang"].tolist() == ["redo"] * 6


def test_renewed_leases_outlive_their_length(db_url):
    with open_store(db_url) as a, open_store(db_url) as b:
        _job(a, partitions=2)
        held = a.claim(JOB, "a", 2, lease_s=1, max_attempts=3)
        for _ in range(5):  # 2 s of work on 1 s leases, renewed every 0.4 s
            time.sleep(0.4)
            assert a.renew(JOB, "a", 1) == 2
            assert b.claim(JOB, "b", 2, lease_s=60, max_attempts=3) == []
        assert all(a.commit(JOB, lease, _rows(lease, "a")) for lease in held)
        assert a.renew(JOB, "a", 1) == 0  # nothing left to renew


def test_release_hands_leases_back_without_counting_an_attempt(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=2)
        store.claim(JOB, "a", 2, lease_s=60, max_attempts=3)
        assert store.release(JOB, "a") == 2
        again = store.claim(JOB, "b", 2, lease_s=60, max_attempts=3)
        assert [(lease.partition, lease.attempt) for lease in again] == [(0, 1), (1, 1)]


def test_a_job_nobody_works_on_is_stopped_until_a_run_takes_it_up(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=2)
        store.claim(JOB, "a", 1, lease_s=60, max_attempts=3)
        store.claim(JOB, "b", 1, lease_s=60, max_attempts=3)
        store.release(JOB, "a")  # b still works on the job
        assert store.job(JOB)["status"] == "running"
        store.release(JOB, "b")  # nobody does
        assert store.job(JOB)["status"] == "stopped"
        assert "stopped at " in str(store.status(JOB))
        assert "run the same command to resume it" in str(store.status(JOB))
        _job(store, partitions=2)  # the same job, run again
        assert store.job(JOB)["status"] == "running"


def test_a_job_id_cannot_be_reused_with_other_settings(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=2)
        with pytest.raises(StoreError, match=r"differs in models \(m vs x\)"):
            store.ensure_job(
                JOB,
                fingerprint="other",
                manifest="/data/manifest.csv",
                manifest_digest="digest",
                out="/data/out",
                models=["x"],
                config={"partition_rows": 3},
                environment={},
                bounds=[(0, 3)],
            )


def test_concurrent_claimers_hold_each_partition_alone_and_finish_the_job(db_url):
    """Six claimers, each with its own connection pool, race over 90 partitions; a seventh claims
    a few partitions with a short lease and vanishes, then comes back too late to commit."""
    partitions = 90
    with open_store(db_url) as setup:
        _job(setup, partitions=partitions)
        ghost = setup.claim(JOB, "ghost", 4, lease_s=1, max_attempts=3)
    lock = threading.Lock()
    held: dict[int, str] = {}
    claims: Counter[int] = Counter()
    violations: list[str] = []
    rejected: list[int] = []
    failures: list[BaseException] = []

    def claimer(name: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            with open_store(db_url, migrate_schema=False) as store:
                while True:
                    leases = store.claim(JOB, name, rng.randint(1, 4), lease_s=60, max_attempts=3)
                    if not leases:
                        states = store.states(JOB)
                        if not states.get("pending") and not states.get("running"):
                            return
                        time.sleep(0.05)
                        continue
                    for lease in leases:
                        with lock:
                            if lease.partition in held:
                                violations.append(f"{name} got {lease.partition} from {held}")
                            held[lease.partition] = name
                            claims[lease.partition] += 1
                        time.sleep(rng.random() * 0.01)
                        ok = store.commit(JOB, lease, _rows(lease, name))
                        with lock:
                            held.pop(lease.partition, None)
                            if not ok:
                                rejected.append(lease.partition)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}", i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert violations == []
    assert rejected == []

    with open_store(db_url) as store:
        late = [store.commit(JOB, lease, _rows(lease, "ghost")) for lease in ghost]
        parts = store.partitions(JOB)
        results = store.results(JOB)
        predictions = store.predictions(JOB)
    assert [bool(c) for c in late] == [False] * len(ghost)
    assert (parts["state"] == "done").all()
    ghost_parts = {lease.partition for lease in ghost}
    # every partition claimed once by the six, and the ghost's again after its lease expired
    assert set(claims) == set(range(partitions))
    assert all(n == 1 for n in claims.values())
    assert set(parts.loc[parts["attempts"] == 2, "partition"]) == ghost_parts
    assert len(results) == partitions * 3 and results["row_id"].is_unique
    assert "ghost" not in set(predictions["lang"])


SQLISH = [
    "x'); DROP TABLE lidframe_results; --",
    "quote \" and ' and `tick`",
    "%(audio)s %s %% $1 ? :name @p0 {0}",
    "back\\slash \\x00 \\n not escapes",
    "tab\there, newline\nthere",
    "ünïcødé 音声 ✓ 🎧",
    "; SELECT pg_sleep(10); --",
]


def test_sql_looking_strings_round_trip_byte_exact(db_url):
    with open_store(db_url) as store:
        _job(store, partitions=1, rows_per_partition=len(SQLISH))
        (lease,) = store.claim(JOB, "a", 1, lease_s=60, max_attempts=3)
        frame = pd.DataFrame(
            {
                "id": SQLISH,
                "audio": [f"/data/{s}.wav" for s in SQLISH],
                "error": [f"decode_failed: /data/{s}.wav: bad" for s in SQLISH],
                "m_lang": [None] * len(SQLISH),
                "m_prob": [float("nan")] * len(SQLISH),
                "m_topk": [None] * len(SQLISH),
            },
            index=range(len(SQLISH)),
        )
        assert store.commit(JOB, lease, frame_rows(frame, JOB, 0, ["m"]))
        results = store.results(JOB).sort_values("row")
        assert store.job(JOB)["manifest"] == "/data/manifest.csv"  # the tables are all still there
    assert results["row_id"].tolist() == SQLISH
    assert results["audio"].tolist() == [f"/data/{s}.wav" for s in SQLISH]
    assert results["error"].tolist() == frame["error"].tolist()
    assert (results["error_category"] == "decode_failed").all()


def test_commits_survive_terminated_connections(pg_url, postgres):
    """``pg_terminate_backend`` on every lidframe connection, over and over, while partitions commit:
    every commit lands once, whole (the rows of a partition are all there or none are)."""
    with open_store(pg_url) as store:
        _job(store, partitions=100, rows_per_partition=50)
        committed = 0
        with postgres.terminating(interval=0.1, limit=30) as killed:
            while True:
                leases = store.claim(JOB, "a", 4, lease_s=60, max_attempts=3)
                if not leases:
                    break
                for lease in leases:
                    assert store.commit(JOB, lease, _rows(lease, "a"))
                    committed += 1
        parts = store.partitions(JOB)
        results = store.results(JOB)
    assert len(killed) >= 5, "the terminator never hit a lidframe connection"
    assert committed == 100 and (parts["state"] == "done").all()
    assert (parts["attempts"] == 1).all()
    assert results.groupby("partition").size().tolist() == [50] * 100
    assert results["row_id"].is_unique


def test_unreachable_database_fails_clearly_within_the_deadline(own_password_server, caplog):
    """The server goes away: the error names the database with ``***`` for its password, and
    neither it nor any log record shows the password."""
    server = own_password_server
    db = server.new_database()
    store = open_store(server.url(db), retry_deadline_s=5)
    _job(store, partitions=2)
    server.stop()  # the server goes away
    started = time.monotonic()
    with caplog.at_level("DEBUG"), pytest.raises(StoreError) as info:
        store.claim(JOB, "a", 1, lease_s=60, max_attempts=3)
    store.close()
    assert time.monotonic() - started < 30
    message = str(info.value)
    expected = f"claiming partitions of job-test ({server.shown(db)}): "
    assert message.startswith(expected + "the database stayed unreachable for 5 s: "), message
    assert server.password not in message and server.password not in repr(info.value)
    assert all(server.password not in record.getMessage() for record in caplog.records)


def test_redoing_a_workers_partitions_takes_back_every_attempt_it_made(db_url):
    """``redo_worker`` (a quarantined worker): what it computed is pending again, its failed
    attempts no longer count, a partition that died of them is pending again (its dead rows' and
    the worker's behaviour forgotten), and nothing another worker did changes."""
    with open_store(db_url) as store:
        _job(store, partitions=5)
        leases = store.claim(JOB, "driver", 5, lease_s=60, max_attempts=2)
        assert [lease.partition for lease in leases] == [0, 1, 2, 3, 4]
        p0, p1, p2, p3, p4 = leases
        assert store.commit(JOB, p0, _rows(p0, "en").summarised("W", "h1"))  # by the odd worker
        assert store.commit(JOB, p1, _rows(p1, "de").summarised("A", "h2"))
        for lease in (p2, p3, p4):  # p2 and p3 failed on W, p4 on A
            assert store.fail(JOB, lease, "ModelError: broken", max_attempts=2) == "pending"
        again = store.claim(JOB, "driver", 3, lease_s=60, max_attempts=2)
        assert [(lease.partition, lease.attempt) for lease in again] == [(2, 2), (3, 2), (4, 2)]
        for lease in again[1:]:  # p3 and p4 fail again, on A: dead
            assert store.fail(JOB, lease, "ModelError: again", max_attempts=2) == "dead"
        for dead, _ in store.dead_without_rows(JOB):
            rows = _rows(Lease(dead.partition, "-", 2, *(dead.row_start, dead.row_stop)), "und")
            assert store.store_dead_rows(
                JOB, dead.partition, dead.token, rows.summarised("B", "h3")
            )
        assert store.behaviour(JOB, by_worker=True)["B"].answer.rows == 6

        redone = store.redo_worker(JOB, "W", "redone: W quarantined", {2: 1, 3: 1})
        assert (redone.done, redone.dead) == ([0], [3])
        parts = store.partitions(JOB).set_index("partition")
        assert parts["state"].tolist() == ["pending", "done", "running", "pending", "dead"]
        assert parts["attempts"].tolist() == [0, 1, 1, 1, 2]
        assert parts.loc[3, "last_error"] == "redone: W quarantined"
        assert pd.isna(parts.loc[3, "rows"]) and parts.loc[4, "rows"] == 3
        workers = store.behaviour(JOB, by_worker=True)
        assert "W" not in workers and workers["A"].answer.rows == 3
        assert workers["B"].answer.rows == 3  # p4's dead rows only

        # the redo, elsewhere: p0 on its first attempt, p3 on its second (A's failure counts)
        redo = store.claim(JOB, "driver", 5, lease_s=60, max_attempts=2)
        assert [(lease.partition, lease.attempt) for lease in redo] == [(0, 1), (3, 2)]
        for lease in (*redo, again[0]):
            assert store.commit(JOB, lease, _rows(lease, "fr").summarised("A", "h2"))
        assert store.finish_if_complete(JOB) == "finished_with_dead"
        predictions = store.predictions(JOB).set_index("row_id")["lang"]
        assert [predictions[f"r{r}"] for r in (0, 3, 6, 9)] == ["fr", "de", "fr", "fr"]
        assert store.results(JOB)["row_id"].tolist() == [f"r{r}" for r in range(15)]
