"""Which dtype a job's models run in: half precision or int8 only after a check against float32.

Before a job's partitions are scheduled, a task on a worker (where the GPU is) resolves each model's
dtype as that worker would (``auto``: bfloat16 on a GPU with native bfloat16, float16 on an older
GPU, float32 for a float32-only family; on the CPU float32, or bfloat16 for a job of at least
:data:`CPU_HALF_ROWS` manifest rows on a CPU that computes it natively, for a family that measured
it: :func:`lidframe.models.base.resolve_dtype`). When one resolves to half precision or int8
(:data:`~lidframe.models.spec.REDUCED_DTYPES`, int8 only when asked: ``auto`` never gives it),
:func:`lidframe.kernel.check_fidelity` compares it with float32 on the first clips of the manifest;
the job then runs in the dtypes that worker resolved when every model passed, and in float32 when
one failed ("falls back"). Either way the kernel's model specs carry the settled dtype, so every
worker of the job runs what was checked, and the loaded model the job will not use is released on
the checking worker. With float32 nothing is checked.

Why a size: on the CPU the check is the job's largest fixed cost (its clips run in both dtypes:
about 50 clips' worth of float32 time for 32 clips), and bfloat16 saves almost half of each clip's
time in the model, so it pays from about 125 clips; below :data:`CPU_HALF_ROWS` a job runs in float32
unchecked. A GPU runs the check in seconds, so there the size does not matter.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from typing import Any

from lidframe.errors import LidframeError, ModelError
from lidframe.kernel import FidelityReport, KernelConfig, check_fidelity, fidelity_lines
from lidframe.manifest import Manifest, open_manifest, plan_partitions
from lidframe.models.registry import adopt_factories, release_model, resolved_spec
from lidframe.models.spec import REDUCED_DTYPES

__all__ = ["CPU_HALF_ROWS", "check_precision", "settle_precision"]

# Manifest rows from which ``auto`` may give a model bfloat16 on a CPU with native bfloat16: about
# twice where the check's cost is earned back (module docstring; benchmarks/RESULTS.md).
CPU_HALF_ROWS = 256


def settle_precision(
    client: Any,
    manifest: Manifest,
    kernel: KernelConfig,
    *,
    clips: int,
    threshold: float | None,
    worker: str | None = None,
) -> tuple[KernelConfig, dict[str, Any] | None]:
    """The kernel with every model's dtype settled, and the check's record (None: none ran), on
    ``worker`` (else any: the job's environment's, :mod:`lidframe.job._environments`).

    Prints one line per checked model, and one more when the job falls back to float32.
    """
    future = client.submit(
        check_precision,
        manifest,
        kernel,
        clips,
        threshold,
        key=f"lidframe-fidelity-{uuid.uuid4().hex[:8]}",
        pure=False,
        workers=None if worker is None else [worker],
    )
    try:
        dtypes, report = future.result()
    except LidframeError:
        raise
    except Exception as exc:
        raise ModelError(
            f"the half-precision check failed on a worker: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    finally:
        future.release()
    fallback = report is not None and not report.passed
    models = tuple(
        replace(spec, dtype="float32" if fallback else dtypes[spec.alias]) for spec in kernel.models
    )
    record = None
    if report is not None:
        record = report.record(fallback=fallback, job_dtypes={m.alias: m.dtype for m in models})
        for line in fidelity_lines(record):
            print(f"lidframe: {line}", file=sys.stderr, flush=True)
    return replace(kernel, models=models), record


def check_precision(
    manifest: Manifest | str, kernel: KernelConfig, clips: int, threshold: float | None
) -> tuple[dict[str, str], FidelityReport | None]:
    """Each model's dtype as this process resolves it (by alias), and the check of those in half
    precision against float32 (None: every model runs in float32). Of the two dtypes each checked
    model was loaded in, the one a job would not use is released."""
    adopt_factories(kernel.families)
    # The manifest is planned only when its size can change a dtype here (auto, on a CPU with
    # native bfloat16, for a family that measured it).
    size_matters = any(
        resolved_spec(spec, cpu_half=True).dtype != resolved_spec(spec).dtype
        for spec in kernel.models
    )
    large = size_matters and _has_rows(manifest, kernel, CPU_HALF_ROWS)
    dtypes = {spec.alias: resolved_spec(spec, cpu_half=large).dtype for spec in kernel.models}
    half = [spec for spec in kernel.models if dtypes[spec.alias] in REDUCED_DTYPES]  # or int8
    if not half:
        return dtypes, None
    reports = [
        check_fidelity(
            manifest,
            [spec for spec in half if dtypes[spec.alias] == dtype],
            dtype,
            clips=clips,
            threshold=threshold,
            settings=kernel,
        )
        for dtype in sorted({dtypes[spec.alias] for spec in half})
    ]
    report = replace(
        reports[0],
        models=tuple(m for r in reports for m in r.models),
        rows_read=max(r.rows_read for r in reports),
    )
    # The job keeps one of the two dtypes each model was loaded in: free the other's memory.
    for spec in half:
        unused = dtypes[spec.alias] if not report.passed else "float32"
        release_model(replace(spec, dtype=unused))
    _free_cuda_cache()
    return dtypes, report


def _has_rows(manifest: Manifest | str, kernel: KernelConfig, rows: int) -> bool:
    """Whether the manifest has at least ``rows`` rows (bad ones too), planning only those."""
    if not isinstance(manifest, Manifest):
        manifest = open_manifest(manifest, storage_options=kernel.storage_options)
    seen = 0
    for part in plan_partitions(manifest, rows):
        seen += part.rows
        if seen >= rows:
            return True
    return False


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
