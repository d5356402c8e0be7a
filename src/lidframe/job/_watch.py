"""What the driver watches while a job works: what its models said so far, and per worker.

The driver adds each committed partition's behaviour (:class:`lidframe.store.Behaviour`, made on
the worker and stored with the rows) to a running total, shown on the progress bar, and to its
worker's. Every ``every`` partitions it checks (:mod:`lidframe.observe`):

* against a **reference** (``run(reference=...)``): the first time a statistic moved, one warning
  line and a Dask event on :data:`DRIFT_TOPIC`;
* the **fleet**: a worker whose answers depart from the other workers' is named once (a warning
  and an event on :data:`FLEET_TOPIC`); with ``quarantine`` it is also returned to the driver,
  which gives it no more partitions and takes back every attempt it made (what it computed, and
  what died of its failures, is redone elsewhere).

The totals start from what the job database holds (a resumed job's earlier partitions count).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lidframe.observe import FleetThresholds, MetricsToken, compare, outliers
from lidframe.store import Behaviour, JobStore

__all__ = ["DRIFT_TOPIC", "FLEET_TOPIC", "Watch", "WatchSettings"]

log = logging.getLogger("lidframe")

DRIFT_TOPIC = "lidframe-drift"
FLEET_TOPIC = "lidframe-fleet"


@dataclass(frozen=True)
class WatchSettings:
    """What a run watches (see :class:`lidframe.RunConfig`: ``reference``, ``check_every``,
    ``quarantine``, ``fleet_min_rows``)."""

    # (name, summed behaviour) of the reference; None: no drift check.
    reference: tuple[str, Behaviour] | None = None
    # Committed partitions between two checks.
    every: int = 10
    fleet: FleetThresholds = field(default_factory=FleetThresholds)
    # Give a worker that answers differently no more partitions, and redo its partitions.
    quarantine: bool = False
    # Serve Prometheus metrics on this port (0: a free one) of ``metrics_host``; None: none.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The token every scrape must carry (None: a random one).
    metrics_token: MetricsToken | None = None


class Watch:
    """A job's behaviour so far, in total and per worker, and the checks on it."""

    def __init__(self, store: JobStore, job_id: str, settings: WatchSettings | None = None) -> None:
        self.job_id = job_id
        self.settings = settings or WatchSettings()
        self.total = Behaviour()
        self.by_worker: dict[str, Behaviour] = {}
        self.reload(store)
        self.drift_warned = False
        # The last drift check's figures, {(statistic, of): value} (for the metrics).
        self.drift_values: dict[tuple[str, str], float] = {}
        self.named: set[str] = set()  # workers warned about
        self.quarantined: set[str] = set()
        # A worker's environment in a phrase (the driver's Environments.describe_worker), named in
        # the warning about a worker that answers differently; None: not known.
        self.environment_of: Callable[[str | None], str | None] | None = None
        self._since = 0

    def reload(self, store: JobStore) -> None:
        """The totals as the job database has them (after partitions were redone)."""
        self.total = store.behaviour(self.job_id).get(None) or Behaviour()
        by_worker = store.behaviour(self.job_id, by_worker=True)
        self.by_worker = {w: b for w, b in by_worker.items() if w is not None}

    def add(self, behaviour: Behaviour) -> None:
        """A committed partition's behaviour."""
        self.total += behaviour
        if behaviour.worker is not None:
            worker = self.by_worker.setdefault(
                behaviour.worker, Behaviour(worker=behaviour.worker, host=behaviour.host)
            )
            worker += behaviour

    def check(self, client: Any) -> list[str]:
        """Every ``every`` calls: the drift and fleet checks, with their warnings; returns the
        workers to quarantine now (with ``quarantine``: the newly named ones)."""
        self._since += 1
        if self._since < self.settings.every:
            return []
        self._since = 0
        self._check_drift(client)
        return self._check_fleet(client)

    def _check_drift(self, client: Any) -> None:
        if self.settings.reference is None:
            return
        name, reference = self.settings.reference
        drift = compare(self.total, reference, names=(self.job_id, name))
        self.drift_values = {(c.statistic, c.of): c.value for c in drift.checks}
        if not drift or self.drift_warned:
            return
        self.drift_warned = True
        rows = self.total.answer.rows
        log.warning("drift against %s after %d rows: %s", name, rows, drift.line())
        _event(client, DRIFT_TOPIC, {"job": self.job_id, "reference": name, "rows": rows,
                                     "moved": [str(c) for c in drift.moved]})  # fmt: skip

    def _check_fleet(self, client: Any) -> list[str]:
        healthy: dict[str | None, Behaviour] = {
            w: b for w, b in self.by_worker.items() if w not in self.quarantined
        }
        quarantine = []
        for outlier in outliers(healthy, self.settings.fleet):
            if outlier.worker in self.named:
                continue
            self.named.add(outlier.worker)
            if self.environment_of is not None:
                outlier = replace(outlier, environment=self.environment_of(outlier.worker))
            log.warning("%s", outlier)
            _event(client, FLEET_TOPIC, {"job": self.job_id, "worker": outlier.worker,
                                         "host": outlier.host, "environment": outlier.environment,
                                         "moved": [str(c) for c in outlier.drift.moved]})  # fmt: skip
            if self.settings.quarantine:
                self.quarantined.add(outlier.worker)
                quarantine.append(outlier.worker)
        return quarantine


def _event(client: Any, topic: str, message: dict[str, Any]) -> None:
    """A Dask event (in the scheduler's event log, seen by ``client.get_events(topic)``); never
    fails the job."""
    with contextlib.suppress(Exception):
        client.log_event(topic, message)
