"""Start or attach a Dask cluster. Knows nothing about models or audio.

* ``scheduler=ADDRESS`` attaches to a running cluster (the workers' environment is theirs).
* Otherwise, with CUDA GPUs visible, dask-cuda's ``LocalCUDACluster`` starts one worker process per
  GPU (``pip install 'lidframe[gpu]'``), each seeing its own GPU as ``cuda`` (a rotated
  ``CUDA_VISIBLE_DEVICES``), with :data:`GPU_THREADS` threads. Each thread runs one partition; the
  worker's models are loaded once per process (:func:`lidframe.models.load_model`) and shared, and a
  model's lock serialises its forward passes, so while one partition is in the model the other
  decodes: the next partition's decoding starts before the current one's inference ends. Each
  worker's decoder processes are sized to the cores per GPU (:func:`gpu_decode_threads`, on the
  worker, unless ``decode_threads`` is given).
* Without GPUs, a ``LocalCluster`` of single-threaded worker *processes* bound to 127.0.0.1. Dask's
  nanny pins ``OMP_NUM_THREADS=1`` in workers by default, which would leave PyTorch one core per
  worker; the cores are shared out between workers instead. (GPU workers keep the pin: their CPU
  work is decoding and feature extraction, spread over decode threads and processes already.)
* **GPU memory: PyTorch's caching allocator alone, no RMM.** lidframe's only device memory is
  PyTorch's (weights, padded batches, activations); nothing it keeps in Dask lives on the device
  (partitions are pandas frames), and it uses no cuDF. An RMM pool (``rmm_pool_size``) would reserve
  memory PyTorch cannot use, and routing PyTorch through RMM (``rmm_allocator_external_lib_list``)
  would trade its caching allocator (size-class reuse across the few padded shapes of
  :data:`lidframe.models.whisper.CONTEXT_FRAMES`, ``torch.cuda.memory_stats``,
  ``PYTORCH_CUDA_ALLOC_CONF``) for a pool shared with a library that is not there. So no RMM
  option is set, and dask-cuda's device-to-host spilling is off (``device_memory_limit=0``): it
  would only watch device objects in the worker's store, of which there are none. A deployment
  that adds cuDF to the workers should route both through one RMM pool instead.
* **Credentials stay home.** Local worker processes are spawned (and re-spawned by their nannies)
  from this process's environment, so while the cluster runs the variables that carry database
  credentials (:data:`DATABASE_CREDENTIAL_VARIABLES`) are taken out of it and put back afterwards:
  workers read audio and write Parquet, and never need them. The job database connection reads them
  when it is created, before.
* The dashboard, when asked for, listens on 127.0.0.1 unless another address is given.
* Local workers ignore SIGINT (:func:`dask_setup`, run by Dask as a worker preload): a terminal's
  Ctrl-C reaches every process of its group, and the process running the job decides what stops;
  it then closes the cluster, so nothing is left running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster

from lidframe.errors import ConfigError

__all__ = [
    "DATABASE_CREDENTIAL_VARIABLES",
    "GPU_THREADS",
    "connect",
    "cuda_cluster_options",
    "cuda_device_count",
    "dask_setup",
    "gpu_decode_threads",
    "without_variables",
]

# Environment variables that may hold a database URL or password.
DATABASE_CREDENTIAL_VARIABLES = ("LIDFRAME_DB", "PGPASSWORD", "PGPASSFILE", "DATABASE_URL")
# Threads (partitions in flight) of a GPU worker: one in the model while the other decodes.
GPU_THREADS = 2


def cuda_device_count() -> int:
    """Number of CUDA devices visible to this process (0 without torch CUDA support)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def gpu_decode_threads(gpus: int | None = None, cores: int | None = None) -> int:
    """Decoder processes for one GPU worker: the cores per GPU of this host, less the one that
    drives the GPU (at least 1).

    Run on the worker: a dask-cuda worker sees every GPU of its host (rotated), so
    ``torch.cuda.device_count()`` is the number of GPU workers sharing the host's cores.
    """
    gpus = cuda_device_count() if gpus is None else gpus
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, cores // max(1, gpus) - 1)


def cuda_cluster_options(
    gpus: int, workers: int | None, threads: int, env: Mapping[str, str], dashboard: str
) -> dict[str, Any]:
    """Keyword arguments of ``LocalCUDACluster`` (see the module docstring for each choice)."""
    return {
        "n_workers": workers or gpus,
        "threads_per_worker": threads,
        "host": "127.0.0.1",
        "dashboard_address": dashboard,
        "env": dict(env),
        # No RMM pool and no RMM allocator for PyTorch: its caching allocator owns the device.
        "device_memory_limit": 0,
    }


def dask_setup(worker: object) -> None:
    """Worker preload (``preload=["lidframe.cluster"]``) of local workers: ignore SIGINT, and keep
    model libraries' chatter (below ``$LIDFRAME_WORKER_LOG_LEVEL``, default ERROR) off the terminal
    that the job's one-line errors go to."""
    import logging
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = os.environ.get("LIDFRAME_WORKER_LOG_LEVEL", "ERROR")
    for name in ("speechbrain", "transformers", "torch", "huggingface_hub"):
        logging.getLogger(name).setLevel(level)


@contextmanager
def without_variables(names: tuple[str, ...]) -> Iterator[None]:
    """Remove ``names`` from ``os.environ`` for the duration of the block, then put them back."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.setdefault(name, value)


@contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    gpu: bool | None = None,
    gpu_threads: int = GPU_THREADS,
    dashboard: bool | str = False,
    verbose: bool = False,
) -> Iterator[Client]:
    """Yield a ``distributed.Client``: attached to ``scheduler`` or to a new local cluster.

    ``dashboard``: an address such as ``"0.0.0.0:8787"`` to expose the dashboard on purpose;
    otherwise it (and the scheduler's HTTP endpoints) listen on 127.0.0.1 on a free port, so a taken
    port 8787 is no warning. ``gpu_threads``: threads (partitions in flight) per GPU worker.
    ``verbose``: let local workers log at WARNING (and Dask's own
    messages through); otherwise only critical messages reach the terminal, where the job reports
    failures itself, in one line each.
    """
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if workers is not None and workers <= 0:
        raise ConfigError(f"workers must be a positive integer, got {workers}")
    if not isinstance(gpu_threads, int) or gpu_threads <= 0:
        raise ConfigError(f"gpu_threads must be a positive integer, got {gpu_threads!r}")
    gpus = cuda_device_count() if gpu is None else (cuda_device_count() if gpu else 0)
    if gpu and not gpus:
        raise ConfigError("gpu=True but no CUDA device is visible")
    address = dashboard if isinstance(dashboard, str) else "127.0.0.1:0"
    quiet = {
        "silence_logs": logging.WARNING if verbose else logging.CRITICAL,
        "preload": ["lidframe.cluster"],
    }
    log_level = {"LIDFRAME_WORKER_LOG_LEVEL": "WARNING" if verbose else "ERROR"}
    with without_variables(DATABASE_CREDENTIAL_VARIABLES):
        if gpus:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as exc:
                raise ConfigError(
                    "GPUs are present but dask-cuda is not installed: pip install 'lidframe[gpu]'"
                ) from exc
            cluster = LocalCUDACluster(
                **cuda_cluster_options(gpus, workers, gpu_threads, log_level, address), **quiet
            )
        else:
            n = workers or 1
            threads = str(max(1, (os.cpu_count() or 1) // n))
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=address,
                env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **log_level},
                **quiet,
            )
        with cluster, Client(cluster) as client:
            yield client
