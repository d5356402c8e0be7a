"""What ``identify``'s partitions say while a process loads a model: the first call's long wait.

``lidframe.identify(ddf).head()`` in a notebook first loads every model in the process that computes
the partition (whisper-base: about 6 s on a CPU; a large model much longer), then decodes and runs
the partition's clips. Without a word the user cannot tell a load from a hang. So the first time a
process loads a model for ``identify``, one line goes to that process's stderr before and one after
(``lidframe: loading whisper-base (cpu, float32) ...``, ``lidframe: whisper-base loaded in 6.0 s``);
a model already loaded there says nothing, so a warm worker stays quiet. In a Jupyter kernel the
lines show under the cell, from the kernel's threads and from worker processes alike (ipykernel
forwards the output of its child processes).

``lidframe.run`` does not use this: its preflight loads the models before any partition is
scheduled, and its progress bar reports the job.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pandas as pd

from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import load_model
from lidframe.models.registry import adopt_factories, cached_labels, resolved_spec

__all__ = ["announce_loads", "identify_partition_saying_loads"]

# One announcement per model per process, even when several partitions start at once.
_lock = threading.Lock()


def announce_loads(config: KernelConfig, *, stream: Any = None) -> None:
    """Load the models of ``config`` that this process has not loaded, with a line on ``stream``
    (default: ``sys.stderr`` at the time) before and after each load."""
    adopt_factories(config.families)
    with _lock:
        for asked in config.models:
            if cached_labels(asked) is not None:
                continue
            out = sys.stderr if stream is None else stream
            spec = resolved_spec(asked)  # the device and dtype it will load on
            print(
                f"lidframe: loading {spec.name} ({spec.device}, {spec.dtype}) in process "
                f"{os.getpid()} ...",
                file=out,
                flush=True,
            )
            started = time.perf_counter()
            load_model(spec)
            print(
                f"lidframe: {spec.name} loaded in {time.perf_counter() - started:.1f} s",
                file=out,
                flush=True,
            )


def identify_partition_saying_loads(df: pd.DataFrame, config: KernelConfig) -> pd.DataFrame:
    """:func:`~lidframe.kernel.identify_partition`, saying so when it loads a model first."""
    if len(df):
        announce_loads(config)
    return identify_partition(df, config)
