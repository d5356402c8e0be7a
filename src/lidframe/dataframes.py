"""Which dataframe library holds manifests and result frames: pandas, or cuDF on GPU workers.

``backend`` (a :class:`~lidframe.RunConfig` setting, ``--backend``, and a keyword of
:func:`lidframe.identify`, :func:`lidframe.read_manifest` and :func:`lidframe.read_results`):

``pandas``  every frame is pandas (the default on machines without a GPU)
``cudf``    manifest and result frames are cuDF / dask-cuDF, and the consensus runs as frame
            operations on the GPU; needs ``pip install 'lidframe[gpu]'`` (a one-line
            :class:`~lidframe.errors.ConfigError` says so when cuDF does not import)
``auto``    ``cudf`` where the workers have CUDA GPUs and ``cudf`` and ``dask_cudf`` import, else
            ``pandas`` (the default)

The backend changes where frames live, never the results: it is not part of a job's identity. The
kernel (decoding, voice activity, the models) is host code and keeps taking pandas partitions;
frames cross to and from cuDF at its boundary (dask's documented ``to_backend`` dispatch for lazy
frames, ``to_pandas`` / ``cudf.from_pandas`` for one partition). Nothing here imports cuDF unless a
cuDF backend is asked for.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from lidframe.errors import ConfigError

__all__ = [
    "BACKENDS",
    "GPU_EXTRA",
    "check_backend",
    "cudf_imports",
    "frame_library",
    "is_cudf",
    "local_backend",
    "on_backend",
    "resolve_backend",
    "to_cudf",
    "to_pandas",
]

BACKENDS = ("pandas", "cudf", "auto")
GPU_EXTRA = "pip install 'lidframe[gpu]'"


def check_backend(backend: Any) -> str:
    """``backend`` when it is one of :data:`BACKENDS`; else a :class:`ConfigError` naming it."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return str(backend)


@functools.cache
def cudf_imports() -> bool:
    """Whether ``cudf`` and ``dask_cudf`` import in this process (once per process)."""
    try:
        import cudf  # noqa: F401
        import dask_cudf  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # not installed, or no usable CUDA runtime
        return False
    return True


def resolve_backend(backend: str, *, gpus: bool) -> str:
    """``pandas`` or ``cudf`` for the setting ``backend``, where ``gpus`` says whether the workers
    have CUDA GPUs. ``cudf`` where cuDF does not import is a :class:`ConfigError`."""
    backend = check_backend(backend)
    if backend == "pandas":
        return "pandas"
    if backend == "cudf":
        if not cudf_imports():
            raise ConfigError(
                f"backend 'cudf' needs cudf and dask_cudf, which do not import here: {GPU_EXTRA}"
            )
        return "cudf"
    return "cudf" if gpus and cudf_imports() else "pandas"


def local_backend(backend: str) -> str:
    """:func:`resolve_backend` for this process (a worker, or where a frame is read): ``auto`` is
    ``cudf`` when cuDF imports and a GPU is visible (torch is asked only once cuDF imports)."""
    if check_backend(backend) != "auto" or not cudf_imports():
        return resolve_backend(backend, gpus=False)
    from lidframe.cluster import cuda_device_count

    return resolve_backend(backend, gpus=cuda_device_count() > 0)


def is_cudf(frame: Any) -> bool:
    """Whether ``frame`` (a frame, series or index, or a Dask collection's ``_meta``) is cuDF's."""
    return type(frame).__module__.partition(".")[0] == "cudf"


def frame_library(frame: Any) -> ModuleType:
    """The ``cudf`` module for a cuDF frame, else ``pandas``: their shared API builds new frames."""
    if is_cudf(frame):
        import cudf

        return cudf
    import pandas

    return pandas


def to_pandas(frame: Any) -> Any:
    """``frame`` on the host: cuDF frames are copied with ``to_pandas()``, pandas ones returned."""
    return frame.to_pandas() if is_cudf(frame) else frame


def to_cudf(frame: Any) -> Any:
    """``frame`` on the GPU (``cudf.from_pandas``); cuDF frames are returned as they are."""
    if is_cudf(frame):
        return frame
    import cudf

    return cudf.from_pandas(frame)


def on_backend(ddf: Any, backend: str) -> Any:
    """A Dask dataframe on ``backend`` (``pandas`` or ``cudf``), by ``ddf.to_backend``."""
    wanted_cudf = backend == "cudf"
    if wanted_cudf == is_cudf(ddf._meta):
        return ddf
    return ddf.to_backend(backend)
