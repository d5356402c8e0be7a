"""Every setting of :func:`lidframe.run`, declared once, each saying whether it changes results,
and validated in one place (:class:`RunConfig`), which builds what the job's parts take from it.

The job id is derived from the identifying settings (:func:`lidframe.settings.identity`), so a
setting added here must declare ``identity=``; the audio limits are declared the same way on
:class:`~lidframe.audio.AudioConfig`. Speed settings (workers, batch size, device), limits on waiting,
credentials and retry policy are not identifying: a job resumes with other values of them. Each
rule is written once, where its concept lives (the models and pass sizes in the kernel, the
threshold in the cascade, partition rows in the manifest, the half-precision check in fidelity);
:class:`RunConfig` applies them all when it is made, so a bad setting fails before any work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lidframe.audio import AudioConfig
from lidframe.columns import column_alias
from lidframe.consensus import ConsensusConfig, check_threshold, consensus_config, load_calibration
from lidframe.dataframes import check_backend
from lidframe.errors import ConfigError
from lidframe.kernel import KernelConfig, check_batches, check_fidelity_settings, check_models
from lidframe.languages import candidate_languages
from lidframe.manifest import check_partition_rows
from lidframe.settings import identity, setting
from lidframe.speech import SpeechConfig

__all__ = ["JobSettings", "RunConfig"]


def _calibration_identity(value: Any) -> Any:
    # Its fitted values; one without a final map as before it had one (the same job id).
    return None if value is None else value.identity()


def _dtype_identity(value: Any) -> str:
    # Every dtype stands for float32: half precision runs only after a fidelity check against
    # float32 passed (else the job falls back to it), so a job keeps its id on any hardware.
    return "float32"


# Names a caller may reach for that are written otherwise in Python (mostly the command line's).
_SPELLED_OTHERWISE = {
    "consensus": "consensus_policy=...",
    "escalate_below": "cascade=P (the escalate-below threshold)",
    "model": "models=[...]",
    "no_db": "db=False",
    "no_progress": "progress=False",
    "no_vad": "speech=SpeechConfig(vad=False)",
    "decode_timeout": "audio=AudioConfig(timeout=...)",
    "storage_option": "storage_options={...}",
}


def setting_hint(name: str, names: list[str]) -> str | None:
    """The setting nearest to an unknown keyword ``name`` of :func:`lidframe.run`, as it is
    written there (``speech=SpeechConfig(min_speech=...)``, ``consensus_policy=...``); None when
    nothing is near."""
    nested = {
        f.name: f"speech=SpeechConfig({f.name}=...)" for f in dataclasses.fields(SpeechConfig)
    }
    nested |= {f.name: f"audio=AudioConfig({f.name}=...)" for f in dataclasses.fields(AudioConfig)}
    written = {**{n: f"{n}=..." for n in names}, **nested, **_SPELLED_OTHERWISE}
    key = name.lower().replace("-", "_").removeprefix("__")
    if key in written:
        return written[key]
    import difflib

    close = difflib.get_close_matches(key, list(written), n=1, cutoff=0.6)
    return written[close[0]] if close else None


@dataclass(frozen=True)
class JobSettings:
    """How hard a job tries."""

    # Claims of one partition before it is dead (each failed task or vanished holder is one).
    max_attempts: int = 3
    # Seconds a lease lasts without renewal; renewed every third of it while the task runs.
    lease_seconds: float = 60.0
    # Seconds a partition task may go without reporting progress (a row decoded, a batch answered)
    # before it counts as stalled: its attempt fails and its worker is restarted.
    stall_seconds: float = 600.0
    # Dask retries of a task that raised, within one attempt.
    task_retries: int = 1
    # Partitions in flight per worker thread. One: a worker that dies takes no bystander with it
    # (Dask counts every task on a lost worker towards KilledWorker), and claims stay with the
    # process that can start them soon; the gap between a task and the next is one commit.
    per_thread: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.lease_seconds >= 1:
            raise ConfigError(f"lease_seconds must be at least 1, got {self.lease_seconds}")
        if not self.stall_seconds >= 1:
            raise ConfigError(f"stall_seconds must be at least 1, got {self.stall_seconds}")
        if self.task_retries < 0:
            raise ConfigError(f"task_retries must be >= 0, got {self.task_retries}")


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
    # Escalate-below threshold of a cascade (lidframe.consensus.Cascade); None: every model on
    # every row.
    cascade: float | None = setting(None, identity=True)
    min_prob: float = setting(0.0, identity=True)
    # Candidate languages ("en,es,fr" or a list): every model answers one of them (renormalised
    # over its labels that are one of them); None: any language a model has.
    languages: tuple[str, ...] | None = setting(None, identity=True, omit_default=True)
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
    # Another job of the job database, or a results folder: what the models say is compared with
    # it every ``check_every`` partitions, with a warning the first time a statistic moves
    # (lidframe.observe); None: no comparison.
    reference: str | None = setting(None, identity=False)
    # Committed partitions between two checks (drift against the reference, the fleet's workers).
    check_every: int = setting(10, identity=False)
    # A worker whose answers depart from the other workers' (lidframe.observe.outliers) gets no
    # more partitions and none of its attempts counts (what it computed, and what died of its
    # failures, is redone elsewhere); without it, it is only named.
    quarantine: bool = setting(False, identity=False)
    # Rows a worker (and the rest of the fleet) must have answered before it is judged.
    fleet_min_rows: int = setting(200, identity=False)
    # Serve Prometheus metrics (progress, what the models say) on this port while the job works
    # (0: a free one); None: none. Bound to ``metrics_host``, loopback unless told otherwise.
    metrics_port: int | None = setting(None, identity=False)
    metrics_host: str = setting("127.0.0.1", identity=False)
    # The file holding the endpoint's token (created with a random one when missing: point
    # Prometheus' ``credentials_file`` at it); None: a random token, printed with the URL.
    metrics_token_file: str | None = setting(None, identity=False)
    overwrite: bool = setting(False, identity=False)
    # The half-precision (or int8) check against float32 (lidframe.kernel.check_fidelity): clips
    # compared, least top-1 agreement (below it the job runs in float32; None: by dtype, 0.995 for
    # half precision and 0.9 for int8).
    fidelity_clips: int = setting(32, identity=False)
    fidelity_threshold: float | None = setting(None, identity=False)

    def __post_init__(self) -> None:
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        object.__setattr__(self, "models", models)
        check_models(
            [column_alias(str(m).strip()) for m in models], cascade=self.cascade is not None
        )
        check_partition_rows(self.partition_rows)
        if self.cascade is not None:
            object.__setattr__(self, "cascade", check_threshold(self.cascade))
        check_batches(self.batch_size, self.batch_seconds)
        object.__setattr__(self, "languages", candidate_languages(self.languages))
        check_backend(self.backend)
        check_fidelity_settings(self.fidelity_clips, self.fidelity_threshold)
        self.job_settings()  # attempts, leases and stalls
        if self.metrics_port is not None and not (
            isinstance(self.metrics_port, int) and 0 <= self.metrics_port <= 65535
        ):
            raise ConfigError(f"metrics_port must be a port number, got {self.metrics_port}")
        if self.metrics_token_file is not None and self.metrics_port is None:
            raise ConfigError("metrics_token_file is the metrics endpoint's: give metrics_port too")
        for name in ("check_every", "fleet_min_rows"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name} must be a whole number, at least 1, got {value}")
        if self.audio is None:
            object.__setattr__(self, "audio", AudioConfig())
        if self.speech is None:
            object.__setattr__(self, "speech", SpeechConfig())
        if self.calibration is not None:
            object.__setattr__(self, "calibration", load_calibration(self.calibration))
        identity(self)  # every field declares whether it is identifying

    @classmethod
    def of(cls, **settings: Any) -> RunConfig:
        """From keyword settings; an unknown name is a :class:`ConfigError` naming it and the
        setting it is nearest to (``min_speech`` -> ``speech=SpeechConfig(min_speech=...)``)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            hints = [(name, setting_hint(name, names)) for name in unknown]
            text = "; ".join(
                f"unknown setting {name!r}" + (f": did you mean {hint}?" if hint else "")
                for name, hint in hints
            )
            if not all(hint for _, hint in hints):
                text += f" (the settings: {', '.join(sorted(names))})"
            raise ConfigError(text)
        return cls(**settings)

    def identity(self) -> dict[str, Any]:
        """The settings that change results (what the job id is derived from)."""
        return identity(self)

    def job_settings(self) -> JobSettings:
        """How hard the job's driver tries."""
        return JobSettings(
            max_attempts=self.max_attempts,
            lease_seconds=self.lease_seconds,
            stall_seconds=self.stall_seconds,
        )

    def consensus(self) -> ConsensusConfig | None:
        """How the models' answers combine (None: one model, no consensus)."""
        if len(self.models) < 2:
            return None
        return consensus_config(
            policy=self.consensus_policy, min_prob=self.min_prob, calibration=self.calibration
        )

    def kernel(self) -> KernelConfig:
        """What the job's partition tasks run (pass sizes and decoder processes left to the
        workers unless given)."""
        return KernelConfig.for_models(
            self.models,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            batch_seconds=self.batch_seconds,
            top_k=self.top_k,
            audio=self.audio,
            speech=self.speech,
            storage_options=self.storage_options,
            decode_threads=self.decode_threads,
            cascade=self.cascade,
            consensus=self.consensus(),
            languages=self.languages,
        )
