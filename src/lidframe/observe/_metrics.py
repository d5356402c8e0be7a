"""A Prometheus endpoint for a running job: progress and what its models say, for operators' tools.

Served with ``prometheus_client`` (the Prometheus project's own Python client, maintained with the
exposition format): its HTTP server in a daemon thread, on a registry of the job's own (nothing of
the process-wide default registry), bound to 127.0.0.1 unless told otherwise. Every figure is read
when scraped, from the driver's running totals (the behaviour) and the job database (partition
states), so serving costs nothing between scrapes. Metric names follow Prometheus' conventions
(``lidframe_`` prefix, ``_total`` for counters, base units, ratios in [0, 1]); each has a ``job``
label (the lidframe job id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lidframe.errors import ConfigError
from lidframe.store.behaviour import Behaviour

__all__ = ["JobMetrics", "MetricsServer", "serve_metrics"]

# Languages reported by share (the most answered); a label per language beyond is noise to a
# dashboard.
TOP_LANGUAGES = 10


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


class MetricsServer:
    """A running endpoint; :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server, self._thread = server, thread

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(metrics: JobMetrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` (port 0: a free one) until closed.

    Raises :class:`ConfigError` naming ``--metrics-port`` when the port cannot be bound.
    """
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'lidframe[metrics]'"
        ) from exc
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {port}: cannot listen on {host}:{port}: {exc}") from exc
    return MetricsServer(server, thread)
