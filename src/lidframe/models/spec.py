"""What identifies one model: a frozen, hashable :class:`ModelSpec`.

Kept apart from the registry and the base class so that code which only needs to *name* models (the
job record, consensus, evaluation) never imports a model family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lidframe.columns import column_alias
from lidframe.errors import ConfigError

__all__ = ["DEVICES", "DTYPES", "HALF_DTYPES", "REDUCED_DTYPES", "ModelSpec", "dtype_name"]

DEVICES = ("auto", "cpu", "cuda")
# ``auto``: bfloat16 on a CUDA device that supports it, float16 on an older one; float32 on the CPU,
# or bfloat16 for a large job where the CPU computes it natively (resolved where the model loads:
# :func:`lidframe.models.base.resolve_dtype`). ``int8``: the CPU only, linear layers' weights in
# int8 per row and their inputs quantized per token as they run (what CTranslate2's int8,
# faster-whisper's CPU setting, does), the rest in float32.
DTYPES = ("auto", "float32", "float16", "bfloat16", "int8")
HALF_DTYPES = ("float16", "bfloat16")
# Every dtype that is checked against float32 before a job runs in it (lidframe.kernel.check_fidelity).
REDUCED_DTYPES = (*HALF_DTYPES, "int8")
_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def dtype_name(value: str) -> str:
    """A dtype as :data:`DTYPES` spells it (``bf16``, ``fp16`` and ``fp32`` are accepted too)."""
    name = _DTYPE_ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
    if name not in DTYPES:
        aliases = ", ".join(_DTYPE_ALIASES)
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)} ({aliases}), got {value!r}")
    return name


@dataclass(frozen=True)
class ModelSpec:
    """Everything that identifies one loaded model; hashable, so it keys the per-process cache."""

    # The name the user asked for; column names derive from it (see :func:`column_alias`).
    name: str
    # Model family (``whisper``, ``speechbrain``, ``hf-audio`` or one registered from outside).
    family: str
    # Where the weights come from: a hub id, a local directory, or a packaged-weights name.
    source: str
    # ``auto`` picks CUDA when torch sees a GPU (on a dask-cuda worker: that worker's GPU), else CPU.
    device: str = "auto"
    # Weights and activations dtype (``auto``: see :data:`DTYPES`).
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(
                f"model device must be one of {DEVICES} or cuda:N, got {self.device!r}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"model dtype must be one of {DTYPES}, got {self.dtype!r}")

    @property
    def alias(self) -> str:
        """The prefix of this model's result columns."""
        return column_alias(self.name)
