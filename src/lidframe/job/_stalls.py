"""Stalled partition tasks: found by their silence, and their workers restarted.

A model stuck in native code, or a device that hangs, never raises: Dask would wait for the task
forever while the driver's heartbeat kept its lease alive. So partition tasks report progress
(a row decoded, a batch answered) as Dask events on :data:`~lidframe.job._worker.PROGRESS_TOPIC`,
and a task that reports nothing for ``stall_seconds`` is a failed attempt: the driver
(:mod:`lidframe.job._driver`) gives up its lease, and the worker running it is restarted through
its nanny so that its thread is free again. The restart runs in a background thread: a nanny that
does not bring its worker back would otherwise hold the driver's loop for the timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from lidframe.store.jobs import Lease

__all__ = ["StallWatch", "restart_in_background"]

log = logging.getLogger("lidframe")


class StallWatch:
    """When each partition task in flight last reported progress, and which ones went quiet."""

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        # (partition, lease token) -> when its task last reported progress (one claim gives several
        # partitions the same token)
        self._last_seen: dict[tuple[int, str], float] = {}

    @property
    def error(self) -> str:
        """The error a stalled attempt is failed with."""
        return (
            f"stalled: no progress for {self.stall_seconds:g} s (--stall-seconds); "
            "the task was stopped and its worker restarted"
        )

    def on_progress(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """A progress event of the topic (only tasks being watched count)."""
        key = (event[1].get("partition"), event[1].get("token"))
        if key in self._last_seen:
            self._last_seen[key] = time.monotonic()

    def watch(self, lease: Lease) -> None:
        """The task of ``lease`` was just submitted."""
        self._last_seen[(lease.partition, lease.token)] = time.monotonic()

    def forget(self, lease: Lease) -> None:
        """The task of ``lease`` is over (finished, failed or given up)."""
        self._last_seen.pop((lease.partition, lease.token), None)

    def stalled(self, inflight: Mapping[Any, Lease]) -> list[Any]:
        """The futures of ``inflight`` whose task reported nothing for ``stall_seconds``."""
        now = time.monotonic()
        return [
            f
            for f, lease in inflight.items()
            if now - self._last_seen[(lease.partition, lease.token)] > self.stall_seconds
        ]


def restart_in_background(client: Any, workers: list[str]) -> None:
    """Restart ``workers`` in a daemon thread; the caller goes on claiming and committing."""
    threading.Thread(
        target=_restart, args=(client, workers), name="lidframe-restart", daemon=True
    ).start()


def _restart(client: Any, workers: list[str]) -> None:
    """Restart ``workers`` through their nannies, so a thread stuck in native code is freed."""
    try:
        client.restart_workers(workers, timeout=120, raise_for_error=False)
    except Exception as exc:  # noqa: BLE001 - without a nanny there is nothing more to do
        log.warning("could not restart stalled worker(s) %s: %s", workers, exc)
