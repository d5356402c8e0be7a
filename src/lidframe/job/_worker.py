"""The one module of a job that runs on its workers: one partition's manifest rows -> identified,
with consensus, staged as a Parquet part under its lease token, and handed back as rows with their
behaviour (what the models said, summarised in a fixed size: :mod:`lidframe.store.behaviour`).

Before it computes, the task checks its worker's environment against the job's, and before it stages
a part, the weights of the models it loaded (:mod:`lidframe.job._environments`): a difference that
can change an answer raises :class:`~lidframe.errors.EnvironmentMismatch`, and nothing is kept.

Workers never touch the job database, and this module imports nothing of the driver, the planner,
the leases or the job store (a test holds it to that). While it works, the task reports progress
(rows decoded and answered) to the driver as Dask events on the topic :data:`PROGRESS_TOPIC`, at
most every few seconds; a task that stops reporting is stalled and loses its lease.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from lidframe.columns import cascade_values, null_model_values, speech_values
from lidframe.consensus import consensus_frame
from lidframe.dataframes import local_backend
from lidframe.environment import Fingerprint, describe, differences, fingerprint
from lidframe.errors import EnvironmentMismatch, StorageAccessDenied
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import Manifest, PlannedPartition, read_partition
from lidframe.models.registry import cached_weights
from lidframe.results import part_provenance, write_staged
from lidframe.store import PartitionRows, frame_rows

__all__ = ["PROGRESS_TOPIC", "PartitionTask", "dead_partition", "process_partition"]

PROGRESS_TOPIC = "lidframe-progress"


@dataclass(frozen=True)
class PartitionTask:
    """Everything a partition task needs besides its manifest rows (pickled once per task)."""

    job_id: str
    manifest: Manifest
    # The models and how they run; its consensus (None: one model) adds the consensus columns.
    kernel: KernelConfig
    out: str
    schema: pa.Schema
    out_options: Mapping[str, Any] = field(default_factory=dict)
    # Each model's label set by alias (from the models loaded before the job started); written
    # into every part's metadata, so whoever reads the results knows what each model can answer.
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The job's identifying settings (RunConfig.identity()), recorded in every part's provenance.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Seconds between two progress reports of one task.
    progress_every: float = 2.0
    # Dataframe library of the consensus on the worker: pandas, cudf or auto (lidframe.dataframes).
    backend: str = "pandas"
    # The job's environment (compact: without the list of every distribution), which the worker's
    # must match in what can change an answer; None: not checked (mixed environments allowed).
    environment: Fingerprint | None = None
    # Whether the GPU and CUDA libraries count (not when every model runs on the CPU).
    accelerator: bool = True


class _Progress:
    """Reports ``(partition, token)`` on :data:`PROGRESS_TOPIC` at most every ``every`` seconds."""

    def __init__(self, partition: int, token: str, every: float) -> None:
        self.message = {"partition": partition, "token": token}
        self.every = every
        self.last = 0.0
        try:
            from distributed import get_worker

            self.worker: Any = get_worker()
        except (ImportError, ValueError):  # not running on a Dask worker
            self.worker = None

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if self.worker is None or now - self.last < self.every:
            return
        self.last = now
        self.worker.log_event(PROGRESS_TOPIC, self.message)


def process_partition(
    planned: PlannedPartition, token: str, task: PartitionTask
) -> tuple[PartitionRows, float]:
    """Identify one partition and stage its part under ``token``; return its rows and seconds.

    Rows the manifest gives no usable value for keep their ``bad_row`` error and are not identified.
    Raises :class:`StorageAccessDenied` when storage refused every row (wrong or missing
    credentials): that is the job's problem, not these rows'; and
    :class:`~lidframe.manifest.ManifestChanged` when the manifest is not what was planned.
    """
    started = time.perf_counter()
    _check_environment(task)  # before any work
    progress = _Progress(planned.partition, token, task.progress_every)
    rows = read_partition(task.manifest, planned)
    usable = rows["error"].isna()
    frame = identify_partition(rows[usable].drop(columns="error"), task.kernel, progress)
    _check_environment(task, weights=True)  # the models loaded: before anything is staged
    errors = frame["error"].dropna()
    if len(frame) and len(errors) == len(frame) and errors.str.startswith("access_denied").all():
        raise StorageAccessDenied(
            f"storage refused every row of partition {planned.partition} (rows {planned.row_start}-"
            f"{planned.row_stop - 1}), e.g. {errors.iloc[0]}; check the storage credentials "
            "(--storage-option, or the AWS credential chain), then run the same command again "
            "to resume"
        )
    if not usable.all():
        frame = pd.concat([frame, _unanswered(rows[~usable], task)]).sort_index()
    return _finish(frame, planned.partition, token, task), time.perf_counter() - started


def dead_partition(
    planned: PlannedPartition, token: str, task: PartitionTask, message: str
) -> PartitionRows:
    """The rows of a partition given up on: manifest columns, ``error``, null model columns."""
    rows = read_partition(task.manifest, planned)
    rows["error"] = pd.array([f"dead_partition: {message}"] * len(rows), dtype="string")
    return _finish(_unanswered(rows, task), planned.partition, token, task)


def _unanswered(rows: pd.DataFrame, task: PartitionTask) -> pd.DataFrame:
    """Rows with their ``error``, null speech and null model columns."""
    frame = rows.copy()
    for name, column in (
        *speech_values({}, frame.index).items(),
        *cascade_values({}, frame.index).items(),
    ):
        frame[name] = column
    for spec in task.kernel.models:
        for name, column in null_model_values(spec.alias, frame.index).items():
            frame[name] = column
    return frame


def _check_environment(task: PartitionTask, weights: bool = False) -> None:
    """Raise :class:`EnvironmentMismatch` when this worker's environment (with ``weights``: and
    the weights of the models it loaded) differs from the job's in what can change an answer."""
    if task.environment is None:
        return
    own = fingerprint()
    if weights:
        own = own.with_models({spec.alias: cached_weights(spec) for spec in task.kernel.models})
    found = [
        d
        for d in differences(own, task.environment, accelerator=task.accelerator)
        if d.changes_answers
    ]
    if found:
        worker, host = _where()
        raise EnvironmentMismatch(describe(found), worker, host)


def _finish(frame: pd.DataFrame, partition: int, token: str, task: PartitionTask) -> PartitionRows:
    if task.kernel.consensus is not None:
        aliases = [m.alias for m in task.kernel.models]
        backend = local_backend(task.backend)
        frame = consensus_frame(frame, aliases, task.kernel.consensus, backend=backend)
    _stage(frame, partition, token, task)
    rows = frame_rows(frame, task.job_id, partition, [m.alias for m in task.kernel.models])
    return rows.summarised(*_where())


def _where() -> tuple[str | None, str]:
    """The Dask worker running this task (its address; None outside a worker) and its host."""
    try:
        from distributed import get_worker

        worker: str | None = str(get_worker().address)
    except (ImportError, ValueError):
        worker = None
    return worker, socket.gethostname()


def _stage(frame: pd.DataFrame, partition: int, token: str, task: PartitionTask) -> None:
    provenance = part_provenance(
        task.job_id,
        partition,
        token,
        task.kernel.models,
        task.labels,
        task.settings,
        environment=fingerprint().digest,
    )
    write_staged(frame, task.out, partition, token, task.schema, task.out_options, provenance)
