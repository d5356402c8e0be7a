"""Start or attach a Dask cluster. Knows nothing about models or audio.

* ``client=`` (a ``distributed.Client``) is used as it is, and left open: it is the caller's.
* ``scheduler=ADDRESS`` attaches to a running cluster (the workers' environment is theirs).
* Otherwise the client Dask itself would use, when there is one (:func:`active_client`: the one
  made current, else the latest ``Client(...)`` made in this process, which sets itself as the
  default): a notebook that made a client runs its jobs there, and never gets a second cluster
  behind its back. That client is left open too.
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
* **No dashboard unless asked.** Dask's dashboard cannot ask for a token, and anything a browser
  can reach must (the review page and the metrics endpoint do), while it shows task names (file
  paths), worker logs and call stacks to whoever reaches its port. So a started cluster serves none
  unless ``dashboard`` asks: ``True`` serves it on 127.0.0.1 on a free port (so another process
  holding 8787 costs no warning), an address serves it there. ``announce`` prints the link of any
  cluster used (the user's own client included) once, as ``lidframe: dashboard: URL`` on stderr,
  when there is one.
* Local workers ignore SIGINT (:func:`dask_setup`, run by Dask as a worker preload): a terminal's
  Ctrl-C reaches every process of its group, and the process running the job decides what stops;
  it then closes the cluster, so nothing is left running.
* The same preload (``dask worker --preload lidframe.cluster`` for a worker started by hand) adds
  :class:`lidframe.environment.EnvironmentPlugin`, so a worker reads its environment's
  fingerprint when it starts, before any job asks for it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dask
from distributed import Client, LocalCluster, Worker

from lidframe.errors import ConfigError

__all__ = [
    "DATABASE_CREDENTIAL_VARIABLES",
    "GPU_THREADS",
    "active_client",
    "connect",
    "cuda_cluster_options",
    "cuda_device_count",
    "dashboard_link",
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


def active_client() -> Client | None:
    """The client Dask would use now (``distributed.default_client()``), or None when there is none."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # Dask's way of saying that no client was made
        return None


def dashboard_link(client: Client) -> str | None:
    """The client's dashboard URL, or None when its scheduler serves none (Bokeh not installed)."""
    try:
        link = client.dashboard_link
    except KeyError:  # a scheduler without a dashboard has no "dashboard" service
        return None
    return link or None


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
    gpus: int, workers: int | None, threads: int, env: Mapping[str, str], dashboard: str | None
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


def dask_setup(worker: Any) -> Awaitable[Any] | None:
    """Worker preload (``preload=["lidframe.cluster"]``) of local workers: ignore SIGINT, keep
    model libraries' chatter (below ``$LIDFRAME_WORKER_LOG_LEVEL``, default ERROR) off the terminal
    that the job's one-line errors go to, and add the environment plugin (its setup, which Dask
    awaits, is returned)."""
    import logging
    import signal
    import threading

    from lidframe.environment import EnvironmentPlugin

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = os.environ.get("LIDFRAME_WORKER_LOG_LEVEL", "ERROR")
    for name in ("speechbrain", "transformers", "torch", "huggingface_hub"):
        logging.getLogger(name).setLevel(level)
    if not isinstance(worker, Worker):  # preloaded into a nanny or a scheduler
        return None
    return worker.plugin_add(EnvironmentPlugin(), name=EnvironmentPlugin.name)


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
    client: Client | None = None,
    gpu: bool | None = None,
    gpu_threads: int = GPU_THREADS,
    dashboard: bool | str = False,
    verbose: bool = False,
    announce: bool = False,
) -> Iterator[Client]:
    """Yield a ``distributed.Client``: ``client``, attached to ``scheduler``, the active client
    (:func:`active_client`), or one of a new local cluster, closed afterwards (in that order; the
    settings of a local cluster apply only to one started here).

    ``announce``: print the dashboard link of the cluster used, when it has one.
    ``dashboard`` (a started cluster's): False, none (it has no token); True, on 127.0.0.1 on a
    free port, so a taken port 8787 is no warning; an address such as ``"0.0.0.0:8787"`` to expose
    it on purpose. ``gpu_threads``: threads (partitions in flight) per GPU worker.
    ``verbose``: let local workers log at WARNING (and Dask's own
    messages through); otherwise only critical messages reach the terminal, where the job reports
    failures itself, in one line each.
    """
    if client is not None and scheduler:
        raise ConfigError("give a client or a scheduler address, not both")
    if client is not None and client.status == "closed":
        raise ConfigError("the client given is closed")
    borrowed = client if client is not None else None if scheduler else active_client()
    if borrowed is not None:
        _announce(borrowed, announce)
        yield borrowed  # the caller's client: left open
        return
    if scheduler:
        with Client(scheduler) as attached:
            _announce(attached, announce)
            yield attached
        return
    if workers is not None and workers <= 0:
        raise ConfigError(f"workers must be a positive integer, got {workers}")
    if not isinstance(gpu_threads, int) or gpu_threads <= 0:
        raise ConfigError(f"gpu_threads must be a positive integer, got {gpu_threads!r}")
    gpus = cuda_device_count() if gpu is None else (cuda_device_count() if gpu else 0)
    if gpu and not gpus:
        raise ConfigError("gpu=True but no CUDA device is visible")
    # Without a dashboard the scheduler still serves HTTP (Dask always does): on a free loopback
    # port, with its health check only (no info pages, which show worker logs and call stacks).
    address = dashboard if isinstance(dashboard, str) else "127.0.0.1:0"
    http = {} if dashboard else {"distributed.scheduler.http.routes": ["distributed.http.health"]}
    quiet = {
        "silence_logs": logging.WARNING if verbose else logging.CRITICAL,
        "preload": ["lidframe.cluster"],
    }
    log_level = {"LIDFRAME_WORKER_LOG_LEVEL": "WARNING" if verbose else "ERROR"}
    scheduler_kwargs = {} if dashboard else {"dashboard": False}
    with without_variables(DATABASE_CREDENTIAL_VARIABLES), dask.config.set(http):
        if gpus:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as exc:
                raise ConfigError(
                    "GPUs are present but dask-cuda is not installed: pip install 'lidframe[gpu]'"
                ) from exc
            cluster = LocalCUDACluster(
                **cuda_cluster_options(gpus, workers, gpu_threads, log_level, address),
                scheduler_kwargs=scheduler_kwargs,
                **quiet,
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
                scheduler_kwargs=scheduler_kwargs,
                env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **log_level},
                **quiet,
            )
        with cluster, Client(cluster) as started:
            _announce(started, announce and bool(dashboard))
            yield started


def _announce(client: Client, announce: bool) -> None:
    link = dashboard_link(client) if announce else None
    if link:
        print(f"lidframe: dashboard: {link}", file=sys.stderr, flush=True)
