"""Every setting of :func:`lidframe.run`, declared once, each saying whether it changes results,
and validated in one place (:class:`RunConfig`), which builds what the job's parts take from it.

The job id is derived from the identifying settings (:func:`lidframe.settings.identity`), so a
setting added here must declare ``identity=``; the audio limits are declared the same way on
:class:`~lidframe.audio.AudioConfig`. Speed settings (workers, batch size, device), limits on waiting,
credentials and retry policy are not identifying: a job resumes with other values of them. Each
rule is written once, where its concept lives (the models and pass sizes in the kernel, the
threshold in the cascade, partition rows in the manifest, the half-precision check in fidelity);
:class:`RunConfig` applies them all when it is made, so a bad setting fails before any work.

The rules are imported where they are applied, not with the module: ``lidframe``'s command line
builds its options from these declarations (:mod:`lidframe.settings`) and stays quick to start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lidframe.audio import AudioConfig
from lidframe.errors import ConfigError
from lidframe.settings import declared, identity, setting, settings_doc
from lidframe.speech import SpeechConfig

if TYPE_CHECKING:
    from lidframe.consensus import ConsensusConfig
    from lidframe.kernel import KernelConfig

__all__ = ["JobSettings", "RunConfig"]


def _calibration_identity(value: Any) -> Any:
    # Its fitted values; one without a final map as before it had one (the same job id).
    return None if value is None else value.identity()


def _dtype_identity(value: Any) -> str:
    # Every dtype stands for float32: half precision runs only after a fidelity check against
    # float32 passed (else the job falls back to it), so a job keeps its id on any hardware.
    return "float32"


# The command line's conveniences that are no setting's flag (lidframe.cli._settings).
_CLI_CONVENIENCES = {
    "escalate_below": "cascade=P (the escalate-below threshold)",
    "no_db": "db=False",
}


def _written() -> dict[str, str]:
    """How Python writes each setting, by its name and by its command-line flag (``no_vad`` ->
    ``speech=SpeechConfig(vad=False)``), from the declaration."""
    written: dict[str, str] = {}
    flags: dict[str, str] = {}
    for top in declared(RunConfig):
        for s in top.fields or (top,):
            value = "False" if s.cli_type is bool and s.default is True else "..."
            if s is top:
                text, off = f"{s.name}=...", f"{s.name}={value}"
            else:
                holder = f"{top.name}={type(top.default).__name__}"
                text, off = f"{holder}({s.name}=...)", f"{holder}({s.name}={value})"
            written[s.name] = text
            if s.flag:
                flags[s.flag.lstrip("-").replace("-", "_")] = off
    return {**flags, **written, **_CLI_CONVENIENCES}


def setting_hint(name: str) -> str | None:
    """The setting nearest to an unknown keyword ``name`` of :func:`lidframe.run`, as it is
    written there (``speech=SpeechConfig(min_speech=...)``, ``consensus_policy=...``); None when
    nothing is near."""
    written = _written()
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


# lidframe.models.spec.DTYPES and the aliases dtype_name() accepts, and lidframe.dataframes.BACKENDS
# (not imported: the command line reads these declarations and stays light; a test checks them).
_DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16", "int8", "fp32", "fp16", "bf16")
_BACKEND_CHOICES = ("auto", "pandas", "cudf")
_POLICIES = ("unanimous", "majority", "weighted", "product")


@dataclass(frozen=True)
class RunConfig:
    """The settings of one run, each declared once (:func:`lidframe.settings.setting`): its
    type, default, help, whether it changes results, and how ``lidframe run`` spells it."""

    models: tuple[str, ...] = setting(
        ("whisper-base",),
        identity=True,
        help="models to run, in order (see `lidframe models`); with several, their consensus too",
    )
    partition_rows: int = setting(128, identity=True, help="manifest rows per partition")
    top_k: int = setting(5, identity=True, help="languages kept in each *_topk column")
    dtype: str = setting(
        "auto",
        identity=_dtype_identity,
        choices=_DTYPE_CHOICES,
        help="auto: bfloat16 on a GPU that supports it, float16 on an older GPU; on the CPU "
        "float32, or bfloat16 for Whisper in a job of 256 rows or more where the CPU computes it "
        "natively (AVX512-BF16, AMX); int8: the CPU only (the encoder's linear layers in int8, "
        "inputs per token, as faster-whisper's int8); half precision and int8 are checked "
        "against float32 first (see `lidframe check`) and the job runs in float32 when they "
        "disagree",
    )
    audio: AudioConfig = setting(
        identity=True, factory=AudioConfig, help="what decoding may cost (lidframe.AudioConfig)"
    )
    speech: SpeechConfig = setting(
        identity=True, factory=SpeechConfig, help="what the models hear (lidframe.SpeechConfig)"
    )
    consensus_policy: str = setting(
        "majority",
        identity=True,
        flag="--consensus",
        choices=_POLICIES,
        help="how several models' answers are combined",
    )
    # The escalate-below threshold of lidframe.consensus.Cascade; the command line spells it
    # --cascade [--escalate-below P].
    cascade: float | None = setting(
        None,
        identity=True,
        help="run the models in the order given, each only on the rows the ones before left "
        "below this consensus support (cheap model first; lidframe.consensus.ESCALATE_BELOW is "
        "the measured choice); None: every model on every row",
    )
    min_prob: float = setting(
        0.0, identity=True, help="consensus support below which the answer is 'und'"
    )
    languages: tuple[str, ...] | None = setting(
        None,
        identity=True,
        omit_default=True,
        metavar="CODES",
        help="candidate languages, comma-separated (e.g. en,es,fr): every model answers one of "
        "them, its probabilities renormalised over them; 'und' still means no speech (default: "
        "any language a model has)",
    )
    # Recorded by its fitted values.
    calibration: Any = setting(
        None,
        identity=_calibration_identity,
        metavar="FILE",
        help="consensus calibration written by `lidframe calibrate` (its file, or a "
        "lidframe.Calibration)",
    )
    batch_size: int | None = setting(
        None,
        identity=False,
        help="clips per forward pass (default: 8; on a GPU worker 64, within {batch_seconds} 960)",
    )
    batch_seconds: float | None = setting(
        None,
        identity=False,
        metavar="S",
        help="at most this many seconds of padded input per forward pass (clips x padded length)",
    )
    device: str = setting(
        "auto", identity=False, help="auto (a GPU when the worker has one), cpu, cuda or cuda:N"
    )
    backend: str = setting(
        "auto",
        identity=False,
        choices=_BACKEND_CHOICES,
        help="frames on the workers: cudf computes the consensus on the GPU (needs "
        "pip install 'lidframe[gpu]'); auto: cudf on GPU workers where cudf imports, else pandas "
        "(results are the same)",
    )
    workers: int | None = setting(
        None,
        identity=False,
        help="worker processes of the local cluster (default: one per GPU, else 1)",
    )
    decode_threads: int | None = setting(
        None,
        identity=False,
        help="decoder processes per worker (default: 4; on a GPU worker, its host's cores per GPU "
        "less one)",
    )
    # lidframe.cluster.GPU_THREADS.
    gpu_threads: int = setting(
        2,
        identity=False,
        help="partitions in flight per local GPU worker: one decodes while the other is in the "
        "model",
    )
    scheduler: str | None = setting(
        None, identity=False, help="address of a running Dask scheduler"
    )
    storage_options: Mapping[str, Any] | None = setting(
        None,
        identity=False,
        flag="--storage-option",
        metavar="KEY=VALUE",
        help="fsspec options for the manifest, audio and output",
    )
    out_storage_options: Mapping[str, Any] | None = setting(
        None,
        identity=False,
        cli=False,
        help="fsspec options for the output folder (default: {storage_options})",
    )
    progress: bool = setting(
        True, identity=False, help="the progress bar (and the cluster's dashboard link)"
    )
    # Dask's dashboard cannot ask for a token, so a cluster lidframe starts serves none unless
    # asked (lidframe.cluster); a client or scheduler of the user's keeps its own.
    dashboard: bool = setting(
        False,
        identity=False,
        help="serve Dask's dashboard of a cluster lidframe starts, on 127.0.0.1 on a free port "
        "(it has no token: anyone on this machine can open it)",
    )
    db: str | bool | None = setting(
        None,
        identity=False,
        help="job database URL: postgresql+psycopg://USER@HOST/DB or sqlite:///FILE (default: "
        "$LIDFRAME_DB, else OUT/_lidframe.sqlite); prefer $LIDFRAME_DB for passwords",
    )
    job: str | None = setting(
        None,
        identity=False,
        help="job id (default: derived from the manifest, output, models and settings); "
        "running the same job again resumes it",
    )
    max_attempts: int = setting(
        3, identity=False, help="tries of one partition before it is given up as dead"
    )
    # Renewed every third of it while the task runs.
    lease_seconds: float = setting(
        60.0,
        identity=False,
        help="lease length; a crashed run's partitions are taken over after it",
    )
    # Progress is a row decoded or a batch answered.
    stall_seconds: float = setting(
        600.0,
        identity=False,
        help="a partition task silent for this long fails its attempt and its worker is restarted",
    )
    # Dask's retries hide a flaky node within one attempt; 0 makes every raise an attempt (and a
    # node that fails shows in `lidframe status` and in quarantine's accounting at once).
    task_retries: int = setting(
        1,
        identity=False,
        metavar="N",
        help="Dask retries of a partition task that raised (on any worker) before its attempt "
        "counts as failed",
    )
    retry_dead: bool = setting(
        False, identity=False, help="give dead partitions a new set of attempts"
    )
    # lidframe.observe.
    reference: str | None = setting(
        None,
        identity=False,
        metavar="REF",
        help="while working, compare what the models say with this reference (another job of "
        "the job database, or a results folder) every {check_every} partitions, as `lidframe "
        "drift` does, and warn once when a statistic moves beyond its default threshold",
    )
    check_every: int = setting(
        10,
        identity=False,
        metavar="N",
        help="partitions between two checks of what the models say: against {reference}, and "
        "each worker against the others",
    )
    # lidframe.observe.outliers.
    quarantine: bool = setting(
        False,
        identity=False,
        help="a worker whose answers depart from the other workers' (language shares, "
        "confidence, agreement, und or error rates) gets no more partitions and none of its "
        "attempts counts: what it computed, and what died of its failures, is redone "
        "elsewhere; without it, it is only named in a warning",
    )
    fleet_min_rows: int = setting(
        200,
        identity=False,
        metavar="ROWS",
        help="a worker whose answers depart from the other workers' is named once it, and the "
        "rest, have this many rows",
    )
    # Workers whose environment differs from the job's in what can change an answer
    # (lidframe.environment) get no partitions unless this is set; either way they are named.
    allow_mixed_environments: bool = setting(
        False,
        identity=False,
        help="let workers whose environment differs from the job's in what can change an answer "
        "(a package, audio library, GPU, CUDA or weights version: `lidframe env`) work too; "
        "without it they get no partitions; either way status names them",
    )
    metrics_port: int | None = setting(
        None,
        identity=False,
        metavar="PORT",
        help="serve Prometheus metrics while the job works (rows and errors by category, "
        "partitions by state, rows/s, language shares, agreement, und and error rates, drift) "
        "at /metrics on this port of {metrics_host} (0: a free port), to requests carrying the "
        "job's token; needs lidframe[metrics]",
    )
    metrics_host: str = setting(
        "127.0.0.1",
        identity=False,
        metavar="ADDRESS",
        help="address the metrics endpoint listens on (127.0.0.1: this machine only)",
    )
    # Created with a random token when missing: point Prometheus' ``credentials_file`` at it.
    metrics_token_file: str | None = setting(
        None,
        identity=False,
        metavar="PATH",
        help="the token every scrape must carry (Authorization: Bearer, or ?token=) is this "
        "file's content; a missing file is created with a random token (point Prometheus' "
        "credentials_file at it); default: a random token, printed with the URL",
    )
    overwrite: bool = setting(
        False,
        identity=False,
        help="delete another job's results in the output folder and write this job's there",
    )
    # lidframe.kernel.check_fidelity.
    fidelity_clips: int = setting(
        32,
        identity=False,
        help="clips with speech on which half precision or int8 is checked against float32",
    )
    fidelity_threshold: float | None = setting(
        None,
        identity=False,
        help="least top-1 agreement with float32 for half precision or int8; below it the job "
        "runs in float32 (default: 0.995 for float16, 0.95 for bfloat16, 0.9 for int8)",
    )

    def __post_init__(self) -> None:
        from lidframe.columns import column_alias
        from lidframe.consensus import check_threshold, load_calibration
        from lidframe.dataframes import check_backend
        from lidframe.kernel import check_batches, check_fidelity_settings, check_models
        from lidframe.languages import candidate_languages
        from lidframe.manifest import check_partition_rows

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
            hints = [(name, setting_hint(name)) for name in unknown]
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
            task_retries=self.task_retries,
        )

    def consensus(self) -> ConsensusConfig | None:
        """How the models' answers combine (None: one model, no consensus)."""
        from lidframe.consensus import consensus_config

        if len(self.models) < 2:
            return None
        return consensus_config(
            policy=self.consensus_policy, min_prob=self.min_prob, calibration=self.calibration
        )

    def kernel(self) -> KernelConfig:
        """What the job's partition tasks run (pass sizes and decoder processes left to the
        workers unless given)."""
        from lidframe.kernel import KernelConfig

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


# ``help(RunConfig)``: each setting's type, default and help, from the declaration.
RunConfig.__doc__ = f"{RunConfig.__doc__}\n\n    Settings:\n\n{settings_doc(RunConfig)}\n"
