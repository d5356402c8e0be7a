"""``identify``: the kernel over a lazy manifest frame, saying when a process loads a model first.

``lidframe.identify(ddf).head()`` in a notebook first loads every model in the process that computes
the partition (whisper-base: about 6 s on a CPU; a large model much longer), then decodes and runs
the partition's clips. Without a word the user cannot tell a load from a hang. So the first time a
process loads a model for ``identify``, one line goes to that process's stderr before and one after
(``lidframe: loading whisper-base (cpu, float32) ...``, ``lidframe: whisper-base loaded in 6.0 s``);
a model already loaded there says nothing, so a warm worker stays quiet. In a Jupyter kernel the
lines show under the cell, from the kernel's threads and from worker processes alike (ipykernel
forwards the output of its child processes). A job does not need this: it loads the models before any
partition is scheduled, and its progress bar reports the job.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd

from lidframe.audio import AudioConfig
from lidframe.columns import result_meta
from lidframe.consensus import Cascade
from lidframe.dataframes import on_backend, resolve_backend
from lidframe.kernel._config import CPU_BATCH_SIZE, CPU_DECODE_THREADS, KernelConfig
from lidframe.kernel._partition import identify_partition
from lidframe.languages import candidate_languages
from lidframe.models import load_model
from lidframe.models.registry import adopt_factories, cached_labels, resolved_spec
from lidframe.speech import SpeechConfig

__all__ = ["announce_loads", "identify", "identify_partition_saying_loads"]

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


def identify(
    ddf: dd.DataFrame,
    models: Sequence[str] = ("whisper-base",),
    *,
    batch_size: int = CPU_BATCH_SIZE,
    batch_seconds: float | None = None,
    top_k: int = 5,
    device: str = "auto",
    dtype: str = "float32",
    audio: AudioConfig | None = None,
    speech: SpeechConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    decode_threads: int = CPU_DECODE_THREADS,
    cascade: Cascade | float | None = None,
    backend: str = "auto",
    verbose: bool = True,
    languages: str | Sequence[str] | None = None,
) -> dd.DataFrame:
    """Add ``error``, speech and per-model language columns to a manifest dataframe (lazy).

    ``speech`` sets voice activity, ``und`` for no speech and encoder context
    (:class:`~lidframe.speech.SpeechConfig`; default: its defaults). ``cascade`` runs the models in
    order, each on the rows the ones before left below that support (a number, with the default
    consensus, or a :class:`~lidframe.consensus.Cascade`; see :mod:`lidframe.consensus`).
    ``languages`` (``"en,es,fr"`` or a list) restricts every model's answer to those candidate
    languages, its probabilities renormalised over them (``no`` keeps ``nb`` and ``nn``: the
    default language equivalence); a clip without speech is still ``und``.

    ``backend`` (:mod:`lidframe.dataframes`): ``cudf`` gives a dask-cuDF frame, ``pandas`` a pandas
    one, ``auto`` a cuDF one when the models run on a GPU and cuDF imports. ``ddf`` may be either:
    the kernel takes pandas partitions, so a cuDF manifest crosses to pandas before it
    (``to_backend``) and the results cross back after it.

    Nothing runs until the result is computed. Then each process loads the models once, saying so
    on its stderr unless ``verbose`` is False. ``head()`` computes
    the whole first partition: :func:`~lidframe.manifest.read_manifest` keeps it small; for a frame
    of your own, ``lidframe.identify(ddf.head(8, compute=False))`` looks at a few rows only.
    """
    config = KernelConfig.for_models(
        [models] if isinstance(models, str) else models,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        top_k=top_k,
        audio=audio,
        speech=speech,
        storage_options=storage_options,
        decode_threads=decode_threads,
        cascade=cascade,
        languages=candidate_languages(languages),
    )
    resolved = resolve_backend(backend, gpus=config.on_gpu)
    host = on_backend(ddf, "pandas")
    meta = result_meta(host._meta, [m.alias for m in config.models])
    kernel = identify_partition_saying_loads if verbose else identify_partition
    out = host.map_partitions(kernel, config, meta=meta, enforce_metadata=False)
    return on_backend(out, resolved)
