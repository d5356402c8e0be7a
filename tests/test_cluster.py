"""The local cluster lidframe starts: loopback only, no database credentials in its workers.

Real worker processes; their environment is read from ``/proc/PID/environ`` (what the process was
started with, which is what another user of the machine, or a dump, would see).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lidframe.cluster import DATABASE_CREDENTIAL_VARIABLES, connect

pytestmark = pytest.mark.timeout(120)


def test_workers_start_without_database_credentials_and_the_parent_keeps_them(monkeypatch):
    monkeypatch.setenv("LIDFRAME_DB", "postgresql://lid:hunter2-marker@db/lid")
    monkeypatch.setenv("PGPASSWORD", "hunter2-marker")
    with connect(workers=1) as client:
        (pid,) = client.run(os.getpid).values()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"hunter2-marker" not in environ
        assert not any(f"{name}=".encode() in environ for name in DATABASE_CREDENTIAL_VARIABLES)
        # a worker restarted by its nanny is spawned from the same scrubbed environment
        client.restart_workers(list(client.scheduler_info()["workers"]))
        (again,) = client.run(os.getpid).values()
        assert again != pid
        assert b"hunter2-marker" not in Path(f"/proc/{again}/environ").read_bytes()
        # local workers ignore SIGINT (the job's process decides what a Ctrl-C stops)
        handlers = client.run(lambda: int(signal.getsignal(signal.SIGINT)))
        assert list(handlers.values()) == [int(signal.SIG_IGN)]
    assert os.environ["LIDFRAME_DB"].endswith("hunter2-marker@db/lid")  # put back afterwards
    assert os.environ["PGPASSWORD"] == "hunter2-marker"


def test_scheduler_workers_and_dashboard_listen_on_loopback_only():
    with connect(workers=1, dashboard=True) as client:
        assert urlsplit(client.scheduler.address).hostname == "127.0.0.1"
        assert all(urlsplit(w).hostname == "127.0.0.1" for w in client.scheduler_info()["workers"])
        assert urlsplit(client.dashboard_link).hostname == "127.0.0.1"
