"""The workers a job's driver checked (``lidframe.store.workers``), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from lidframe.store import open_store

pytestmark = pytest.mark.postgres

JOB = "workers-test"


def _job(store) -> None:
    store.ensure_job(
        JOB, fingerprint="fp", manifest="/m.csv", manifest_digest="d", out="/out", models=["m"],
        config={}, environment={"python": "3"}, bounds=[(0, 2)],
    )  # fmt: skip


def test_a_worker_is_recorded_once_and_updated_when_found_to_differ(db_url):
    with open_store(db_url) as store:
        _job(store)
        store.record_worker(JOB, "tcp://127.0.0.1:1", host="a", environment="e1", verdict="same")
        store.record_worker(JOB, "tcp://127.0.0.1:2", host="b", environment="e1", verdict="same")
        # its first partition found other weights: refused now
        store.record_worker(
            JOB, "tcp://127.0.0.1:2", host="b", environment="e1", verdict="refused",
            difference="weights of m sha256:1 != sha256:2 of the job", line="worker ... one line",
            fingerprint={"digest": "e1", "models": {"m": "sha256:1"}},
        )  # fmt: skip
        rows = {r["worker"]: r for r in store.workers(JOB)}
        assert set(rows) == {"tcp://127.0.0.1:1", "tcp://127.0.0.1:2"}
        assert rows["tcp://127.0.0.1:1"]["verdict"] == "same"
        assert rows["tcp://127.0.0.1:1"]["fingerprint"] is None
        changed = rows["tcp://127.0.0.1:2"]
        assert changed["verdict"] == "refused" and changed["line"] == "worker ... one line"
        assert changed["fingerprint"]["models"] == {"m": "sha256:1"}
        assert store.workers("another job") == []
        with pytest.raises(ValueError, match="verdict must be one of"):
            store.record_worker(JOB, "w", host=None, environment="e", verdict="maybe")


def test_an_older_jobs_environment_is_replaced_by_its_fingerprint(db_url):
    with open_store(db_url) as store:
        _job(store)
        store.record_environment(JOB, {"digest": "abc", "machine": "x86_64", "python": "3"})
        assert store.job(JOB)["environment"]["digest"] == "abc"
