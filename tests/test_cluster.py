"""The local cluster lidframe starts: loopback only, no database credentials in its workers.

Real worker processes; their environment is read from ``/proc/PID/environ`` (what the process was
started with, which is what another user of the machine, or a dump, would see).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from lidframe.cluster import DATABASE_CREDENTIAL_VARIABLES, connect, dashboard_link

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


def test_a_started_cluster_serves_no_dashboard_unless_asked(capfd):
    """Dask's dashboard cannot ask for a token: unless asked, the scheduler's HTTP port (Dask
    always opens one) answers its health check only, on loopback, and no link is printed."""
    with connect(workers=1, announce=True) as client:
        port = client.scheduler_info()["services"]["dashboard"]
        base = f"http://127.0.0.1:{port}"
        assert urlopen(f"{base}/health", timeout=10).read() == b"ok"
        for path in ("/status", "/info/main/workers.html", "/metrics", "/json/counts.json"):
            with pytest.raises(HTTPError) as refused:
                urlopen(base + path, timeout=10)
            assert refused.value.code == 404, path
    assert "dashboard" not in capfd.readouterr().err
    with connect(workers=1, announce=True, dashboard=True) as client:
        link = dashboard_link(client)
        assert link is not None and urlopen(link, timeout=30).status == 200
    assert capfd.readouterr().err.count(f"lidframe: dashboard: {link}") == 1


def test_scheduler_workers_and_dashboard_listen_on_loopback_only():
    with connect(workers=1, dashboard=True) as client:
        assert urlsplit(client.scheduler.address).hostname == "127.0.0.1"
        assert all(urlsplit(w).hostname == "127.0.0.1" for w in client.scheduler_info()["workers"])
        assert urlsplit(client.dashboard_link).hostname == "127.0.0.1"
