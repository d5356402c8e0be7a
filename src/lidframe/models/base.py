"""The language-identification model interface, the registry of model names, and the per-process cache.

A model family implements :class:`LidModel` (a ``labels`` tuple and ``predict_batch``); the registry
maps user-facing names (``whisper-base``) and ``family:source`` strings (``whisper:openai/whisper-small``,
``whisper:/models/whisper-large-v3``) to a frozen :class:`ModelSpec`. :func:`load_model` keeps one
instance per ``(spec, device, dtype)`` in each worker process, so a partition never reloads weights and
two different models on one worker never overwrite each other.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lidframe.errors import ConfigError, ModelError

__all__ = [
    "LidModel",
    "ModelSpec",
    "available_models",
    "column_alias",
    "load_count",
    "load_model",
    "parse_model",
    "register_family",
    "register_name",
]

_DEVICES = ("auto", "cpu", "cuda")
_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that identifies one loaded model; hashable, so it keys the per-process cache."""

    # The name the user asked for; column names derive from it (see :func:`column_alias`).
    name: str
    # Model family registered with :func:`register_family` (``whisper``, ...).
    family: str
    # Where the weights come from: a hub id, a local directory, or a packaged-weights name.
    source: str
    # ``auto`` picks CUDA when torch sees a GPU (on a dask-cuda worker: that worker's GPU), else CPU.
    device: str = "auto"
    # Weights and activations dtype.
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.device not in _DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(
                f"model device must be one of {_DEVICES} or cuda:N, got {self.device!r}"
            )
        if self.dtype not in _DTYPES:
            raise ConfigError(f"model dtype must be one of {_DTYPES}, got {self.dtype!r}")

    @property
    def alias(self) -> str:
        return column_alias(self.name)


class LidModel(ABC):
    """A spoken-language classifier over 16 kHz mono waveforms.

    Subclasses load their weights in ``__init__`` and implement :meth:`predict_batch` as one batched
    forward pass. ``labels`` are canonical language codes (see :mod:`lidframe.languages`), in the
    order of the columns of the returned probabilities.
    """

    sample_rate: int = 16_000
    # Fewest samples a clip may have: shorter clips are ``too_short`` row errors and never reach
    # the model (one 25 ms analysis window at 16 kHz; raise it where a model needs more).
    min_samples: int = 400

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Canonical language codes, one per column of :meth:`predict_batch`'s output."""

    @abstractmethod
    def predict_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Return a ``(len(waveforms), len(labels))`` float32 array of probabilities (rows sum to 1)."""


Factory = Callable[[ModelSpec], LidModel]
_FAMILIES: dict[str, Factory] = {}
_NAMES: dict[str, tuple[str, str]] = {}


def register_family(family: str, factory: Factory) -> None:
    """Register a model family: ``factory(spec)`` builds a loaded :class:`LidModel`."""
    _FAMILIES[family] = factory


def register_name(name: str, family: str, source: str) -> None:
    """Register a short name (``whisper-base``) for ``family:source``."""
    _NAMES[name] = (family, source)


def available_models() -> list[str]:
    """Registered short names, then the ``family:SOURCE`` forms."""
    _ensure_builtin()
    return sorted(_NAMES) + [f"{family}:SOURCE" for family in sorted(_FAMILIES)]


def column_alias(name: str) -> str:
    """Column prefix of a model: its name with every non-alphanumeric character replaced by ``_``."""
    return re.sub(r"[^0-9A-Za-z]", "_", name)


def parse_model(name: str, device: str = "auto", dtype: str = "float32") -> ModelSpec:
    """Turn a user's model string into a :class:`ModelSpec`; unknown names list the valid ones."""
    _ensure_builtin()
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a model name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in _NAMES:
        family, source = _NAMES[name]
        return ModelSpec(name=name, family=family, source=source, device=device, dtype=dtype)
    family, sep, source = name.partition(":")
    if sep and family in _FAMILIES and source:
        return ModelSpec(name=name, family=family, source=source, device=device, dtype=dtype)
    raise ConfigError(
        f"unknown model {name!r}; valid models: {', '.join(available_models())} "
        "(SOURCE is a hub id or a local directory)"
    )


_cache: dict[ModelSpec, LidModel] = {}
_loads: Counter[ModelSpec] = Counter()
_lock = threading.Lock()


def load_model(spec: ModelSpec) -> LidModel:
    """Return the process-wide instance for ``spec``, loading it on first use (thread-safe)."""
    _ensure_builtin()
    spec = replace(spec, device=resolve_device(spec.device))
    model = _cache.get(spec)
    if model is not None:
        return model
    with _lock:
        model = _cache.get(spec)
        if model is None:
            factory = _FAMILIES.get(spec.family)
            if factory is None:
                raise ModelError(f"no model family {spec.family!r}; known: {sorted(_FAMILIES)}")
            model = factory(spec)
            _cache[spec] = model
            _loads[spec] += 1
    return model


def load_count() -> dict[str, int]:
    """How many times this process loaded each model (``name@device/dtype``); for tests and metrics."""
    return {f"{s.name}@{s.device}/{s.dtype}": n for s, n in _loads.items()}


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _ensure_builtin() -> None:
    # Built-in families register on first use rather than at import time (no import side effects).
    if "whisper" not in _FAMILIES:
        from lidframe.models import speechbrain, whisper

        whisper.register()
        speechbrain.register()
