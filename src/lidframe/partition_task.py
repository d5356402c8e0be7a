"""What a worker does for one partition of a job: assemble its manifest rows, identify, add consensus,
write its Parquet part, and hand the rows back. Workers never touch the job database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lidframe.consensus import ConsensusConfig, consensus_frame
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import assemble_partition
from lidframe.sinks.parquet import write_part
from lidframe.store.results import PartitionRows, frame_rows

__all__ = ["PartitionTask", "dead_partition", "process_partition"]


@dataclass(frozen=True)
class PartitionTask:
    """Everything a partition task needs besides its manifest rows (pickled once per task)."""

    job_id: str
    kernel: KernelConfig
    # Consensus over these aliases (empty: a single model, no consensus columns).
    aliases: tuple[str, ...]
    consensus: ConsensusConfig | None
    out: str
    schema: pa.Schema
    out_options: Mapping[str, Any] = field(default_factory=dict)


def process_partition(
    blocks: Sequence[pd.DataFrame],
    bounds: Sequence[tuple[int, int]],
    first: int,
    partition: int,
    task: PartitionTask,
) -> tuple[PartitionRows, float]:
    """Identify one partition, write ``part-{partition}.parquet``; return its rows and seconds."""
    started = time.perf_counter()
    frame = identify_partition(assemble_partition(blocks, bounds, first), task.kernel)
    if task.consensus is not None:
        frame = consensus_frame(frame, task.aliases, task.consensus)
    write_part(frame, task.out, partition, task.schema, task.out_options)
    rows = frame_rows(frame, task.job_id, partition, [m.alias for m in task.kernel.models])
    return rows, time.perf_counter() - started


def dead_partition(
    blocks: Sequence[pd.DataFrame],
    bounds: Sequence[tuple[int, int]],
    first: int,
    partition: int,
    task: PartitionTask,
    message: str,
) -> PartitionRows:
    """The rows of a partition given up on: manifest columns, ``error``, null model columns."""
    frame = assemble_partition(blocks, bounds, first).copy()
    n = len(frame)
    frame["error"] = pd.array([f"dead_partition: {message}"] * n, dtype="string")
    for spec in task.kernel.models:
        frame[f"{spec.alias}_lang"] = pd.array([None] * n, dtype="string")
        frame[f"{spec.alias}_prob"] = np.full(n, np.nan, dtype=np.float32)
        frame[f"{spec.alias}_topk"] = pd.Series([None] * n, index=frame.index, dtype="object")
    if task.consensus is not None:
        frame = consensus_frame(frame, task.aliases, task.consensus)
    write_part(frame, task.out, partition, task.schema, task.out_options)
    return frame_rows(frame, task.job_id, partition, [m.alias for m in task.kernel.models])
