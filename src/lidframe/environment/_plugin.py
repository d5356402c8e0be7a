"""Each worker's fingerprint, taken when it joins: a Dask worker plugin.

:class:`EnvironmentPlugin` is registered by the process that runs a job
(``client.register_plugin``, so every worker that joins the cluster later runs it too) and by the
worker preload ``lidframe.cluster`` (``dask worker --preload lidframe.cluster``), so a worker
started by hand has its fingerprint before any job. Its ``setup`` reads the worker's fingerprint
(:func:`~lidframe.environment.fingerprint`, in a thread: about a second of imports that would
otherwise hold the worker's event loop) and logs its digest as a Dask event on :data:`TOPIC`,
visible in the scheduler's event log. The job's driver asks each new worker for it with
:func:`worker_fingerprint` (``client.run``), which reads it from the plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from distributed import WorkerPlugin

from lidframe.environment._fingerprint import fingerprint

__all__ = ["NAME", "TOPIC", "EnvironmentPlugin", "worker_fingerprint"]

# The plugin's name on every worker (registering it again replaces it).
NAME = "lidframe-environment"
# The Dask event topic of environments: a worker's digest when it joins, a job's refusals.
TOPIC = "lidframe-environment"


class EnvironmentPlugin(WorkerPlugin):
    """Reads the worker's fingerprint when it joins (see the module docstring)."""

    name = NAME
    # Registered once per cluster: a second job's registration leaves the workers' alone.
    idempotent = True

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    async def setup(self, worker: Any) -> None:
        found = await asyncio.get_running_loop().run_in_executor(None, fingerprint)
        self.record = found.record()
        with contextlib.suppress(Exception):  # an event log is a courtesy, never a failure
            worker.log_event(
                TOPIC,
                {"worker": worker.address, "host": found.host, "environment": found.digest},
            )


def worker_fingerprint(dask_worker: Any = None) -> dict[str, Any]:
    """The fingerprint of the worker this runs on (``client.run(worker_fingerprint)``), as
    :meth:`~lidframe.environment.Fingerprint.record`: the plugin's, else read now."""
    plugin = getattr(dask_worker, "plugins", {}).get(NAME) if dask_worker is not None else None
    record = getattr(plugin, "record", None)
    return record if record is not None else fingerprint().record()
