"""What one partition task needs (:class:`KernelConfig`), built in one place for ``identify`` and jobs.

Pass sizes and decoder processes may be left to the workers (``None``): each worker settles them for
its own device when the kernel starts (:meth:`KernelConfig.sizes`), so one job runs CPU and GPU
workers side by side with the sizes each does well with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lidframe.audio import AudioConfig
from lidframe.consensus import Cascade, ConsensusConfig
from lidframe.errors import ConfigError
from lidframe.languages import candidate_labels, candidate_languages
from lidframe.models import ModelSpec, parse_model, resolve_device
from lidframe.models.registry import Factory, runtime_factories
from lidframe.speech import SpeechConfig

__all__ = [
    "BUCKETS",
    "CPU_BATCH_SIZE",
    "CPU_DECODE_THREADS",
    "GPU_BATCH_SECONDS",
    "GPU_BATCH_SIZE",
    "NO_SPEECH",
    "KernelConfig",
    "Sizes",
    "check_batches",
    "check_models",
]

# Batches decoded and prepared per group of rows: a model sorts a group's clips by length and cuts it
# into forward passes of ``batch_size``, so clips of similar length share a pass (less padding).
BUCKETS = 4
# Forward passes left to the workers: clips per pass on the CPU; on a GPU worker, up to
# GPU_BATCH_SIZE clips within GPU_BATCH_SECONDS of padded input (32 Whisper passes of 30 s, 48 of
# 20 s). Not yet measured on a GPU: benchmarks/gpu.py will say (see benchmarks/gpu.md).
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 64
GPU_BATCH_SECONDS = 960.0
# Decoder processes left to a CPU worker (a GPU worker takes its host's cores per GPU:
# lidframe.cluster.gpu_decode_threads).
CPU_DECODE_THREADS = 4
# Every model's language for a clip with less speech than ``SpeechConfig.min_speech``.
NO_SPEECH = "und"


def check_models(aliases: Sequence[str], *, cascade: bool = False) -> None:
    """Raise :class:`ConfigError` unless there is a model, no two share a column alias, and a
    cascade has two models or more."""
    if not aliases:
        raise ConfigError("at least one model is required")
    if len(set(aliases)) != len(aliases):
        raise ConfigError(f"two models share a column alias: {list(aliases)}")
    if cascade and len(aliases) < 2:
        raise ConfigError("cascade needs at least two models (--models cheap,expensive)")


def check_batches(batch_size: Any, batch_seconds: Any) -> None:
    """Raise :class:`ConfigError` unless ``batch_size`` is None or a positive integer and
    ``batch_seconds`` None or a positive number."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
    ):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_seconds is not None and not (
        isinstance(batch_seconds, (int, float))
        and not isinstance(batch_seconds, bool)
        and batch_seconds > 0
    ):
        raise ConfigError(f"batch_seconds must be positive, got {batch_seconds!r}")


@dataclass(frozen=True)
class Sizes:
    """Pass sizes and decoder processes as this process runs the kernel."""

    batch_size: int
    batch_seconds: float | None
    decode_threads: int


@dataclass(frozen=True)
class KernelConfig:
    """What one partition task needs; pickled once per graph, small."""

    # The models to run, in column order.
    models: tuple[ModelSpec, ...]
    # Clips per forward pass; None: left to each worker (CPU_BATCH_SIZE on the CPU, GPU_BATCH_SIZE
    # within GPU_BATCH_SECONDS on a GPU, unless batch_seconds is given).
    batch_size: int | None = None
    # Seconds of padded input per forward pass (clips times their padded length), or no limit:
    # short clips then share a pass in greater numbers than long ones (see LidModel.passes).
    batch_seconds: float | None = None
    # Length of each ``{alias}_topk`` list.
    top_k: int = 5
    # Decoding limits and output rate.
    audio: AudioConfig = field(default_factory=AudioConfig)
    # fsspec options for remote audio (credentials, endpoint), passed to every open.
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    # Decoder processes per worker process (each decodes one clip at a time, ahead of inference);
    # None: left to each worker (CPU_DECODE_THREADS, or the cores per GPU on a GPU worker).
    decode_threads: int | None = None
    # Families registered with register_family() where the job started, carried to the workers
    # (see lidframe.models.registry.runtime_factories); built-in and entry-point ones are not.
    families: Mapping[str, Factory] = field(default_factory=dict)
    # Voice activity, ``und`` for no speech, and the encoder context models get.
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    # Run the models in order, each on the rows the ones before did not settle (None: all on all).
    cascade: Cascade | None = None
    # How the models' answers combine: the cascade settles rows by it, and a job's workers add
    # consensus columns with it. None: no consensus (a cascade then uses the default one).
    consensus: ConsensusConfig | None = None
    # Candidate languages (sorted canonical codes): every model's answer is restricted to them,
    # its probabilities renormalised over the labels that are one of them (lidframe.languages.
    # candidate_labels); None: every label a model has.
    languages: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_models([m.alias for m in self.models], cascade=self.cascade is not None)
        check_batches(self.batch_size, self.batch_seconds)
        if self.top_k <= 0:
            raise ConfigError(f"top_k must be positive, got {self.top_k}")
        if self.decode_threads is not None and self.decode_threads <= 0:
            raise ConfigError(f"decode_threads must be positive, got {self.decode_threads}")
        if self.cascade is not None and self.consensus is None:
            object.__setattr__(self, "consensus", ConsensusConfig())
        object.__setattr__(self, "languages", candidate_languages(self.languages))

    def candidates(self, alias: str, labels: Sequence[str]) -> tuple[int, ...] | None:
        """The positions of ``labels`` (model ``alias``'s) that a row may be answered with; None:
        all. Raises :class:`ConfigError` when the model knows none of the candidate languages."""
        if self.languages is None:
            return None
        equivalence = (self.consensus or ConsensusConfig()).equivalence
        kept = candidate_labels(labels, self.languages, equivalence)
        if not kept:
            raise ConfigError(
                f"model {alias} knows none of the candidate languages "
                f"{','.join(self.languages)} (--languages)"
            )
        return kept

    @classmethod
    def for_models(
        cls,
        models: Sequence[str],
        *,
        device: str = "auto",
        dtype: str = "float32",
        cascade: Cascade | float | None = None,
        storage_options: Mapping[str, Any] | None = None,
        audio: AudioConfig | None = None,
        speech: SpeechConfig | None = None,
        **settings: Any,
    ) -> KernelConfig:
        """The kernel settings for model names (``parse_model`` with ``device`` and ``dtype``),
        carrying the families registered in this process to the workers."""
        specs = tuple(parse_model(m, device=device, dtype=dtype) for m in models)
        return cls(
            models=specs,
            families=runtime_factories(specs),
            cascade=cascade
            if cascade is None or isinstance(cascade, Cascade)
            else Cascade(cascade),
            storage_options=dict(storage_options or {}),
            audio=audio or AudioConfig(),
            speech=speech or SpeechConfig(),
            **settings,
        )

    @property
    def on_gpu(self) -> bool:
        """Whether a model runs on a CUDA device in this process (``auto`` asks torch)."""
        return any(resolve_device(m.device).startswith("cuda") for m in self.models)

    def sizes(self) -> Sizes:
        """Pass sizes and decoder processes for this process: what was left to the worker is
        settled for its device (the device is asked only then)."""
        if self.batch_size is not None and self.decode_threads is not None:
            return Sizes(self.batch_size, self.batch_seconds, self.decode_threads)
        gpu = self.on_gpu
        batch_size, batch_seconds = self.batch_size, self.batch_seconds
        if batch_size is None:
            if gpu and batch_seconds is None:
                batch_size, batch_seconds = GPU_BATCH_SIZE, GPU_BATCH_SECONDS
            else:
                batch_size = CPU_BATCH_SIZE
        threads = self.decode_threads
        if threads is None:
            if gpu:
                from lidframe.cluster import gpu_decode_threads

                threads = gpu_decode_threads()
            else:
                threads = CPU_DECODE_THREADS
        return Sizes(batch_size, batch_seconds, threads)
