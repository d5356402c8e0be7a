"""The kernel: one partition of manifest rows -> their languages, the only place audio meets models.

``map_partitions`` runs :func:`identify_partition` (``identify`` in a notebook, a job's workers in a
run): decode each clip once, find its speech, prepare it for every model in the decode threads, run
every model on the same clips in batched forward passes, and make each row's answer. One bad clip
costs one row. Modules, each importing only those above it:

* ``_config``: :class:`KernelConfig`, built in one place (:meth:`KernelConfig.for_models`); pass
  sizes and decoder processes left to the workers are settled there (:meth:`KernelConfig.sizes`).
* ``_windows``: a row's windows as the models hear them (:class:`HeardWindow`), and from each
  window's answer to the row's answer, its ``windows`` list and ``code_switch``.
* ``_faults``: one model over a group's clips, so that a failure costs only the clips it is about
  (bisection, a canary, smaller passes after CUDA out of memory).
* ``_prepare``: decode -> listen -> prepare in the decode threads, a group of rows ahead.
* ``_partition``: :func:`identify_partition`, the forward passes and the typed columns.
* ``_fidelity``: half precision checked against float32 on a manifest's first clips with speech.
* ``_identify``: :func:`identify`, the kernel over a lazy Dask frame, saying when a model loads.

A *group* is the rows decoded ahead of inference together; a *window* is a span of a file's audio.
"""

from lidframe.kernel._config import (
    BUCKETS,
    CPU_BATCH_SIZE,
    CPU_DECODE_THREADS,
    GPU_BATCH_SECONDS,
    GPU_BATCH_SIZE,
    NO_SPEECH,
    KernelConfig,
    Sizes,
    check_batches,
    check_models,
)
from lidframe.kernel._fidelity import (
    DEFAULT_CLIPS,
    DEFAULT_THRESHOLD,
    FidelityReport,
    ModelFidelity,
    check_fidelity,
    check_fidelity_settings,
    compare_prepared,
    fidelity_lines,
)
from lidframe.kernel._identify import announce_loads, identify, identify_partition_saying_loads
from lidframe.kernel._partition import identify_partition

__all__ = [
    "BUCKETS",
    "CPU_BATCH_SIZE",
    "CPU_DECODE_THREADS",
    "DEFAULT_CLIPS",
    "DEFAULT_THRESHOLD",
    "GPU_BATCH_SECONDS",
    "GPU_BATCH_SIZE",
    "NO_SPEECH",
    "FidelityReport",
    "KernelConfig",
    "ModelFidelity",
    "Sizes",
    "announce_loads",
    "check_batches",
    "check_fidelity",
    "check_fidelity_settings",
    "check_models",
    "compare_prepared",
    "fidelity_lines",
    "identify",
    "identify_partition",
    "identify_partition_saying_loads",
]
