"""Start or attach a Dask cluster. Knows nothing about models or audio.

* ``scheduler=ADDRESS`` attaches to a running cluster (the workers' environment is theirs).
* Otherwise, with CUDA GPUs visible, dask-cuda's ``LocalCUDACluster`` starts one worker per GPU
  (``pip install 'lidframe[gpu]'``); without GPUs, a ``LocalCluster`` of worker *processes* bound to
  127.0.0.1. Dask's nanny pins ``OMP_NUM_THREADS=1`` in workers by default, which would leave PyTorch
  one core per worker; the cores are shared out between workers instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from lidframe.errors import ConfigError

__all__ = ["connect", "cuda_device_count"]


def cuda_device_count() -> int:
    """Number of CUDA devices visible to this process (0 without torch CUDA support)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


@contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    gpu: bool | None = None,
    dashboard: bool = False,
) -> Iterator[Client]:
    """Yield a ``distributed.Client``: attached to ``scheduler`` or to a new local cluster."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if workers is not None and workers <= 0:
        raise ConfigError(f"workers must be a positive integer, got {workers}")
    gpus = cuda_device_count() if gpu is None else (cuda_device_count() if gpu else 0)
    if gpu and not gpus:
        raise ConfigError("gpu=True but no CUDA device is visible")
    address = ":8787" if dashboard else None
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigError(
                "GPUs are present but dask-cuda is not installed: pip install 'lidframe[gpu]'"
            ) from exc
        cluster = LocalCUDACluster(
            n_workers=workers or gpus,
            threads_per_worker=1,
            ip="127.0.0.1",
            dashboard_address=address,
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
            env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
        )
    with cluster, Client(cluster) as client:
        yield client
