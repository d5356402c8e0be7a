"""Every setting of :func:`lidframe.run`, declared once, each saying whether it changes results.

The job id is derived from the identifying settings (:func:`lidframe.settings.identity`), so a
setting added here must declare ``identity=``; the audio limits are declared the same way on
:class:`~lidframe.audio.AudioConfig`. Speed settings (workers, batch size, device), limits on waiting,
credentials and retry policy are not identifying: a job resumes with other values of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lidframe.audio import AudioConfig
from lidframe.errors import ConfigError
from lidframe.settings import identity, setting
from lidframe.speech import SpeechConfig

__all__ = ["RunConfig"]


def _calibration_identity(value: Any) -> Any:
    return None if value is None else dataclasses.asdict(value)


def _dtype_identity(value: Any) -> str:
    # Every dtype stands for float32: half precision runs only after a fidelity check against
    # float32 passed (else the job falls back to it), so a job keeps its id on any hardware.
    return "float32"


@dataclass(frozen=True)
class RunConfig:
    """The settings of one run (see :func:`lidframe.run` for what each does)."""

    models: tuple[str, ...] = setting(("whisper-base",), identity=True)
    partition_rows: int = setting(128, identity=True)
    top_k: int = setting(5, identity=True)
    dtype: str = setting("auto", identity=_dtype_identity)
    audio: AudioConfig = setting(identity=True, factory=AudioConfig)
    speech: SpeechConfig = setting(identity=True, factory=SpeechConfig)
    consensus_policy: str = setting("majority", identity=True)
    # Escalate-below threshold of a cascade (lidframe.consensus._cascade); None: every model on every row.
    cascade: float | None = setting(None, identity=True)
    min_prob: float = setting(0.0, identity=True)
    # A Calibration or the path of its JSON file; recorded by its fitted values.
    calibration: Any = setting(None, identity=_calibration_identity)
    # Clips per forward pass and seconds of padded input per pass; None: 8 clips on the CPU, and on a
    # GPU worker lidframe.kernel.GPU_BATCH_SIZE clips within GPU_BATCH_SECONDS.
    batch_size: int | None = setting(None, identity=False)
    batch_seconds: float | None = setting(None, identity=False)
    device: str = setting("auto", identity=False)
    # Dataframe library of the frames on the workers: pandas, cudf or auto (lidframe.dataframes).
    backend: str = setting("auto", identity=False)
    workers: int | None = setting(None, identity=False)
    # Decoder processes per worker; None: 4 on CPU workers, the cores per GPU on GPU workers.
    decode_threads: int | None = setting(None, identity=False)
    # Partitions in flight per GPU worker (lidframe.cluster.GPU_THREADS).
    gpu_threads: int = setting(2, identity=False)
    scheduler: str | None = setting(None, identity=False)
    storage_options: Mapping[str, Any] | None = setting(None, identity=False)
    out_storage_options: Mapping[str, Any] | None = setting(None, identity=False)
    progress: bool = setting(True, identity=False)
    db: str | bool | None = setting(None, identity=False)
    job: str | None = setting(None, identity=False)
    max_attempts: int = setting(3, identity=False)
    lease_seconds: float = setting(60.0, identity=False)
    stall_seconds: float = setting(600.0, identity=False)
    retry_dead: bool = setting(False, identity=False)
    overwrite: bool = setting(False, identity=False)
    # The half-precision check against float32 (lidframe.kernel._fidelity): clips compared, least top-1
    # agreement (below it the job runs in float32).
    fidelity_clips: int = setting(32, identity=False)
    fidelity_threshold: float = setting(0.995, identity=False)

    def __post_init__(self) -> None:
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        object.__setattr__(self, "models", models)
        if not models:
            raise ConfigError("at least one model is required")
        if not isinstance(self.partition_rows, int) or self.partition_rows <= 0:
            raise ConfigError(
                f"partition_rows must be a positive integer, got {self.partition_rows!r}"
            )
        if self.cascade is not None:
            from lidframe.consensus import check_threshold

            object.__setattr__(self, "cascade", check_threshold(self.cascade))
            if len(models) < 2:
                raise ConfigError("cascade needs at least two models (--models cheap,expensive)")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size <= 0
        ):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.batch_seconds is not None and not (
            isinstance(self.batch_seconds, (int, float)) and self.batch_seconds > 0
        ):
            raise ConfigError(f"batch_seconds must be positive, got {self.batch_seconds!r}")
        from lidframe.dataframes import check_backend

        check_backend(self.backend)
        if self.audio is None:
            object.__setattr__(self, "audio", AudioConfig())
        if self.speech is None:
            object.__setattr__(self, "speech", SpeechConfig())
        if self.calibration is not None:
            from lidframe.consensus import load_calibration

            object.__setattr__(self, "calibration", load_calibration(self.calibration))
        identity(self)  # every field declares whether it is identifying

    @classmethod
    def of(cls, **settings: Any) -> RunConfig:
        """From keyword settings; an unknown name is a :class:`ConfigError` naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**settings)

    def identity(self) -> dict[str, Any]:
        """The settings that change results (what the job id is derived from)."""
        return identity(self)
