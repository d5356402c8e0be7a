"""A Prometheus endpoint for a running job: progress and what its models say, for operators' tools.

Served with ``prometheus_client`` (the Prometheus project's own Python client, maintained with the
exposition format): its HTTP server in a daemon thread, on a registry of the job's own (nothing of
the process-wide default registry), bound to 127.0.0.1 unless told otherwise. Every figure is read
when scraped, from the driver's running totals (the behaviour) and the job database (partition
states), so serving costs nothing between scrapes. Metric names follow Prometheus' conventions
(``lidframe_`` prefix, ``_total`` for counters, base units, ratios in [0, 1]); each has a ``job``
label (the lidframe job id).

**A token on every request.** Anything a browser can reach needs one: the endpoint answers only a
request that carries the job's token, as ``Authorization: Bearer TOKEN`` (what a Prometheus scrape
config sends with ``authorization: credentials_file: PATH``) or as ``?token=`` (a browser); without
one it answers 401, with a wrong one 403, compared in constant time (``hmac.compare_digest``, as
the review page's token gate). The token is random
(``secrets.token_urlsafe``) unless ``metrics_token_file`` names a file: an existing file's content
is the token (shared with Prometheus' ``credentials_file``); a missing one is created, readable by
its owner only, with a random token, so the scrape config can point at it. The token is never a
command-line value (``ps`` shows those to every user of the machine). The one line announcing the
endpoint carries the token only when it is random (there is no other way to learn it); with a
file it names the file, so a job's log does not hold the token. The server is the standard
library's WSGI server that ``prometheus_client.start_http_server`` uses, serving
``make_wsgi_app`` behind the check, with request logging off (a browser's URL carries the token).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler

from lidframe.errors import ConfigError
from lidframe.store.behaviour import Behaviour

__all__ = ["JobMetrics", "MetricsServer", "MetricsToken", "metrics_token", "serve_metrics"]

log = logging.getLogger(__name__)

# Languages reported by share (the most answered); a label per language beyond is noise to a
# dashboard.
TOP_LANGUAGES = 10
# A token given in a file shorter than this is refused (a random one has 43 characters).
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class MetricsToken:
    """The token the endpoint asks for, and the file it came from (None: random, this run's)."""

    value: str = field(repr=False)
    file: str | None = None


def metrics_token(file: str | os.PathLike[str] | None = None) -> MetricsToken:
    """The endpoint's token: random without ``file``; else ``file``'s content (spaces and line
    ends stripped), or, when ``file`` does not exist, a random one written there (mode 0600).

    Raises :class:`ConfigError` naming ``metrics_token_file`` when the file cannot be read or
    written, or holds fewer than :data:`MIN_TOKEN_CHARS` characters.
    """
    if file is None:
        return MetricsToken(secrets.token_urlsafe(32))
    path = os.fspath(file)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = None
    except OSError as exc:
        raise ConfigError(f"metrics_token_file {path}: cannot create it: {exc}") from exc
    if fd is not None:
        value = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
        return MetricsToken(value, path)
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"metrics_token_file {path}: cannot read it: {exc}") from exc
    if len(value) < MIN_TOKEN_CHARS or any(c.isspace() for c in value):
        raise ConfigError(
            f"metrics_token_file {path}: a token is one word of at least {MIN_TOKEN_CHARS} "
            f"characters (this file holds {len(value)}); delete the file and lidframe writes a "
            "random one there"
        )
    return MetricsToken(value, path)


@dataclass(eq=False)  # hashable: the registry keeps its collectors in a dict
class JobMetrics:
    """What the endpoint reads when scraped: callables into the running job."""

    job: str
    # The job's behaviour so far (the driver's running total).
    behaviour: Callable[[], Behaviour]
    # Partitions by state (the job database).
    states: Callable[[], Mapping[str, int]]
    # Drift statistics against a reference: ``{(statistic, of): value}`` (empty without one).
    drift: Callable[[], Mapping[tuple[str, str], float]] = dict
    started: float = field(default_factory=time.monotonic)

    def collect(self) -> Iterator[Any]:
        """The metric families (prometheus_client's custom collector protocol)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        job = [self.job]
        b = self.behaviour()
        a = b.answer
        rows = CounterMetricFamily("lidframe_rows", "Rows stored", labels=["job"])
        rows.add_metric(job, a.rows)
        yield rows
        errors = CounterMetricFamily(
            "lidframe_row_errors", "Rows without an answer, by error category",
            labels=["job", "category"],
        )  # fmt: skip
        for category, n in sorted(a.error_categories.items()):
            errors.add_metric([self.job, category], n)
        yield errors
        parts = GaugeMetricFamily(
            "lidframe_partitions", "Partitions by state", labels=["job", "state"]
        )
        states = self.states()
        for state in dict.fromkeys(("pending", "running", "done", "dead", *sorted(states))):
            parts.add_metric([self.job, state], states.get(state, 0))
        yield parts
        rate = GaugeMetricFamily(
            "lidframe_rows_per_second", "Rows stored per second since this run started",
            labels=["job"],
        )  # fmt: skip
        rate.add_metric(job, a.rows / max(1e-9, time.monotonic() - self.started))
        yield rate
        for name, doc, value in (
            ("lidframe_agreement_ratio", "Rows with an answer on which the models agreed",
             a.agreement if len(b.models) > 1 else None),
            ("lidframe_und_ratio", "Rows answered und (no speech)", a.rate(a.und)),
            ("lidframe_error_ratio", "Rows without an answer because of an error",
             a.rate(a.errors)),
            ("lidframe_expected_accuracy_ratio",
             "Mean probability of the answer: the accuracy to expect when it is calibrated",
             a.expected_accuracy),
            ("lidframe_accuracy_ratio", "Labelled rows with an answer answered their label",
             a.accuracy),
        ):  # fmt: skip
            gauge = GaugeMetricFamily(name, doc, labels=["job"])
            if value is not None:
                gauge.add_metric(job, value)
            yield gauge
        share = GaugeMetricFamily(
            "lidframe_language_share_ratio",
            f"Share of the rows answered with a language, {TOP_LANGUAGES} most answered",
            labels=["job", "lang"],
        )
        for lang, value in list(a.shares().items())[:TOP_LANGUAGES]:
            share.add_metric([self.job, lang], value)
        yield share
        drift = GaugeMetricFamily(
            "lidframe_drift", "Drift against the reference: Jensen-Shannon distance, PSI or rate "
            "difference", labels=["job", "statistic", "of"],
        )  # fmt: skip
        for (statistic, of), value in sorted(self.drift().items()):
            drift.add_metric([self.job, statistic, of], value)
        yield drift


class _Quiet(WSGIRequestHandler):
    """No request log: a browser's request line carries the token."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _gate(app: Callable[..., Iterable[bytes]], token: str) -> Callable[..., Iterable[bytes]]:
    """``app`` behind the token: ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``; 401 without
    one, 403 with a wrong one."""
    expected = token.encode()

    def gated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else ""
        if not given:
            given = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
        if not given:
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="lidframe"')],
            )
            return [b"401: the metrics need the job's token (Authorization: Bearer TOKEN)\n"]
        if not hmac.compare_digest(given.encode(), expected):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"403: not this job's metrics token\n"]
        return app(environ, start_response)

    return gated


class MetricsServer:
    """A running endpoint: :attr:`url` (without the token), :attr:`announcement`, :meth:`close`."""

    def __init__(self, server: Any, thread: threading.Thread, token: MetricsToken) -> None:
        self._server, self._thread, self._token = server, thread, token

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/metrics"

    @property
    def announcement(self) -> str:
        """How to reach it, once, for the person who started the job: the URL with its token
        when the token is random (no other way to learn it), else the URL and the token's file."""
        if self._token.file is None:
            return f"{self.url}?token={self._token.value}"
        return f"{self.url} (bearer token in {self._token.file})"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    metrics: JobMetrics,
    port: int,
    host: str = "127.0.0.1",
    token: MetricsToken | None = None,
) -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` (port 0: a free one) until closed, to
    requests carrying ``token`` (default: a random one, see :attr:`MetricsServer.announcement`).

    Raises :class:`ConfigError` naming ``--metrics-port`` when the port cannot be bound.
    """
    try:
        from prometheus_client import CollectorRegistry, make_wsgi_app
        from prometheus_client.exposition import ThreadingWSGIServer
    except ImportError as exc:
        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'lidframe[metrics]'"
        ) from exc
    from wsgiref.simple_server import make_server

    token = token or metrics_token()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    if not _loopback(host):
        log.warning(
            "the metrics endpoint listens on %s, not only on this machine: whoever can reach that "
            "address and has the token can read the job's metrics (plain HTTP: the token crosses "
            "the network unencrypted)",
            host,
        )
    app = _gate(make_wsgi_app(registry), token.value)
    try:
        server = make_server(host, port, app, Server, handler_class=_Quiet)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {port}: cannot listen on {host}:{port}: {exc}") from exc
    thread = threading.Thread(
        target=server.serve_forever, name=f"lidframe-metrics-{port}", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread, token)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
