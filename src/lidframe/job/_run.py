"""``run``: one job, in phases.

Everything that can be found out before work is, in this order, so a bad setting fails in seconds with
one line (``ConfigError``, ``ManifestError``, ``ModelError``, ``StoreError``): the settings (and the
kernel they make), a job database server, the manifest, the output folder, then the embedded
database in it and the job's identity. Then on the cluster: the half-precision check, the models
loaded on a worker, the folder and the database taken over by the job, and the driver through the
partitions. On the cluster, the job's environment comes first: the workers' fingerprints are read,
and the half-precision check and the models' loading run on a worker with the job's environment
(:mod:`lidframe.job._environments`). A job found complete is not run again: no cluster, no model, no work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from distributed import Client

from lidframe.audio import with_io_timeouts
from lidframe.cluster import active_client, connect
from lidframe.columns import result_meta, result_schema
from lidframe.consensus import consensus_meta
from lidframe.dataframes import resolve_backend
from lidframe.environment import Fingerprint, fingerprint
from lidframe.errors import ConfigError, JobInterrupted, ManifestError
from lidframe.job._config import RunConfig
from lidframe.job._database import database_url, job_database, nothing_to_do
from lidframe.job._driver import Progress, run_partitions
from lidframe.job._environments import (
    Environments,
    accelerator_counts,
    job_fingerprint,
    settle_reference,
)
from lidframe.job._identity import JobSpec
from lidframe.job._precision import settle_precision
from lidframe.job._preflight import preflight_models
from lidframe.job._promotion import reconcile_parts
from lidframe.job._queries import reference_behaviour
from lidframe.job._summary import RunSummary, summarize
from lidframe.job._watch import WatchSettings
from lidframe.job._worker import PartitionTask
from lidframe.kernel import KernelConfig
from lidframe.manifest import Manifest, open_manifest
from lidframe.models import check_available
from lidframe.observe import FleetThresholds, metrics_token
from lidframe.results import check_writable, claim_folder, folder_owner
from lidframe.settings import keyword_parameters, settings_doc
from lidframe.store import JobStore, job_differences

__all__ = ["run"]


def run(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    models: Sequence[str] | None = None,
    *,
    config: RunConfig | None = None,
    client: Client | None = None,
    **settings: Any,
) -> RunSummary:
    """Identify the language of every row of ``manifest`` and write Parquet parts under ``out``.

    Settings are the fields of :class:`~lidframe.RunConfig`, given as ``config`` or as
    keywords: each is listed at the end with its type, default and help (the same declaration
    gives ``lidframe run`` its options). An unknown keyword is a ``ConfigError`` naming the
    setting it is nearest to.

    ``dtype`` ``auto`` (the default) runs half precision on a GPU that supports it and float32
    elsewhere. Half precision is checked against float32 first, on the first
    ``fidelity_clips`` clips with speech: when a model's top-1 agreement is below
    ``fidelity_threshold`` the job runs in float32. The figures are printed, stored with the job
    and in ``summary.fidelity``.

    Runs on ``client`` (a ``distributed.Client``), else on the cluster at ``scheduler``, else on
    the client Dask would use (``distributed.default_client()``: in a notebook, the ``Client`` made
    there), else on a local cluster started for the job and closed after it; a client that is not
    the job's own is left open. With ``progress``, the cluster's dashboard link is printed (when it
    has one). ``client`` is not a :class:`RunConfig` setting: a live connection, not a value to
    keep, compare or derive a job id from. Returns a :class:`RunSummary`
    (``summary.ok`` is False when partitions died). ``storage_options`` apply to the manifest and the
    audio, ``out_storage_options`` to ``out`` (default: the same). With more than one model,
    consensus columns are added (:func:`lidframe.consensus` with ``consensus_policy`` and
    ``min_prob``, or with a ``calibration`` fitted by ``lidframe calibrate``). ``backend``
    (:mod:`lidframe.dataframes`): with ``cudf`` each worker computes its partitions' consensus with
    cuDF on its GPU (``auto``, the default: where the worker has a GPU and cuDF imports); the
    results are the same. ``cudf`` where cuDF does not import is a ``ConfigError``.

    Work starts while the manifest is still being planned (see :mod:`lidframe.manifest`); a bad row
    gets its own ``bad_row`` error, a duplicate id a ``duplicate_id`` error naming the other row.

    Job state and results go to the database ``db`` (a SQLAlchemy URL; default: ``$LIDFRAME_DB``,
    else ``OUT/_lidframe.sqlite``; ``False`` keeps no state: a temporary SQLite file, the same code
    path). The job is ``job`` or an id derived from the manifest (what storage says of its files),
    ``out`` and the identifying settings (:meth:`RunConfig.identity`), so running the same call again
    resumes it (see :mod:`lidframe.job`). A partition that fails ``max_attempts`` times, or
    makes no progress for ``stall_seconds``, is dead: its rows are written with an error
    (``retry_dead`` tries again). ``out`` belongs to one job: another job's results there are refused
    unless ``overwrite`` replaces them.

    Raises :class:`~lidframe.errors.LidframeError` for bad settings or input (before any work),
    :class:`~lidframe.errors.JobFailed` for a systemic failure while working, and
    :class:`~lidframe.errors.JobInterrupted` (a ``KeyboardInterrupt``) when interrupted.
    """
    started = time.perf_counter()
    config, kernel = _settings(config, models, settings)
    out = os.fspath(out)
    db_url = database_url(config.db, out)
    job_id: str | None = None
    left = _Leftovers(out, db_url)
    try:
        with ExitStack() as stack:
            # A database server is checked first (a wrong password fails in seconds); the embedded
            # SQLite file lives in the output folder, which is touched only once the manifest and
            # the folder are known to be good.
            server = _server_database(db_url, stack)
            source = _manifest(manifest, config)
            out_options = _folder(out, config)
            store, kept = server or stack.enter_context(job_database(db_url))
            job = _Job.of(config, kernel, source, out, out_options, store)
            job_id = job.id
            _check_folder(job)  # another job's folder is refused before any cluster starts
            watching = _watching(job)
            fidelity: dict[str, Any] | None = None
            if not config.retry_dead and nothing_to_do(store, job.id):
                _take_over(job)  # a finished job run again: no cluster, no model, no work
                left.kept = True
                skipped, done = _done_partitions(job), Progress()
            else:
                if client is None and not config.scheduler and active_client() is None:
                    _check_models_here(kernel)  # the local cluster's workers share this machine
                with _cluster(config, client) as live:
                    recorded, workers = _environment(job, live)
                    # on two workers with the job's environment where there are two: both warm
                    job, fidelity = _settle_precision(job, live, workers[-1] if workers else None)
                    job = _preflight(job, live, workers[0] if workers else None, recorded)
                    _take_over(job, fidelity)
                    left.kept = True
                    skipped = _done_partitions(job)
                    done = _drive(job, live, watching)
            summary = _summary(job, kept, done, skipped, fidelity)
    except KeyboardInterrupt as exc:
        left.clean()
        raise _interrupted(exc, job_id, db_url) from None
    except BaseException:
        left.clean()
        raise
    summary.seconds = time.perf_counter() - started
    return summary


class _Leftovers:
    """What a run refused before it took the folder over must not leave behind: the output folder
    and the embedded job database, when this run created them (a local folder only)."""

    def __init__(self, out: str, db_url: str | None) -> None:
        local = "://" not in out or out.startswith("file://")
        self.folder = os.path.abspath(out.removeprefix("file://")) if local else None
        self.made_folder = self.folder is not None and not os.path.exists(self.folder)
        embedded = db_url is not None and db_url.startswith("sqlite:///")
        self.db = db_url.removeprefix("sqlite:///") if embedded and db_url else None
        self.made_db = self.db is not None and not os.path.exists(self.db)
        # Set once the job took the folder over: from then on its state is the job's.
        self.kept = False

    def clean(self) -> None:
        if self.kept:
            return
        if self.made_db and self.db is not None:
            for path in (self.db, f"{self.db}-journal", f"{self.db}-wal", f"{self.db}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        if self.made_folder and self.folder is not None:
            with contextlib.suppress(OSError):  # only when empty: nothing of anyone else's
                os.rmdir(self.folder)


def _document(function: Any) -> None:
    """``help(lidframe.run)``: its settings in its signature and at the end of its docstring, each
    with its type, default and help, read from :class:`RunConfig`'s declaration (so they cannot
    drift from it, nor from ``lidframe run``'s options, made from the same declaration)."""
    signature = inspect.signature(function)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    function.__signature__ = signature.replace(
        parameters=[*kept, *keyword_parameters(RunConfig, skip=tuple(signature.parameters))]
    )
    function.__doc__ = (
        (function.__doc__ or "").rstrip()
        + "\n\n    Settings (keywords: the fields of :class:`RunConfig`, each with its type and "
        "default; ``audio`` and ``speech`` are configurations of their own):\n\n"
        + settings_doc(RunConfig)
        + "\n"
    )


_document(run)


@dataclass(frozen=True)
class _Job:
    """What a run works on once its settings, database, manifest and folder are known."""

    spec: JobSpec
    config: RunConfig
    store: JobStore
    # What every partition task takes (the kernel, the folder, the schema of the parts).
    task: PartitionTask
    # The environment the job runs with (lidframe.environment), once its models are loaded.
    environment: Fingerprint | None = None

    @property
    def id(self) -> str:
        return self.task.job_id

    @classmethod
    def of(
        cls,
        config: RunConfig,
        kernel: KernelConfig,
        source: Manifest,
        out: str,
        out_options: Mapping[str, Any],
        store: JobStore,
    ) -> _Job:
        aliases = [m.alias for m in kernel.models]
        meta = result_meta(source.meta(), aliases)
        if kernel.consensus is not None:
            meta = consensus_meta(meta)
        spec = JobSpec.of(source, out, [m.name for m in kernel.models], config.identity())
        task = PartitionTask(
            job_id=spec.job_id(config.job),
            manifest=source,
            kernel=kernel,
            out=out,
            schema=result_schema(meta, aliases),
            out_options=out_options,
            settings=spec.config,
            backend=config.backend,
        )
        return cls(spec, config, store, task)

    def with_kernel(self, kernel: KernelConfig, **task: Any) -> _Job:
        return dataclasses.replace(self, task=dataclasses.replace(self.task, kernel=kernel, **task))


def _settings(
    config: RunConfig | None, models: Sequence[str] | None, settings: dict[str, Any]
) -> tuple[RunConfig, KernelConfig]:
    """The run's settings, validated (:class:`RunConfig`), and the kernel they make."""
    if models is not None:
        settings["models"] = models
    if config is not None:
        config = dataclasses.replace(config, **settings) if settings else config
    else:
        config = RunConfig.of(**settings)
    if config.backend == "cudf":
        resolve_backend("cudf", gpus=True)  # cuDF must import before any work
    return config, config.kernel()


def _server_database(url: str | None, stack: ExitStack) -> tuple[JobStore, bool] | None:
    """A job database server, opened now; None for SQLite (embedded in the folder, opened later)."""
    if url is None or url.startswith("sqlite:"):
        return None
    return stack.enter_context(job_database(url))


def _manifest(manifest: str | os.PathLike[str], config: RunConfig) -> Manifest:
    """The manifest described (files, format, columns), with the storage timeouts of audio."""
    options = with_io_timeouts(os.fspath(manifest), config.storage_options, config.audio.io_timeout)
    return open_manifest(manifest, storage_options=options)


def _folder(out: str, config: RunConfig) -> dict[str, Any]:
    """The storage options of the output folder, once it is known to be writable."""
    options = (
        config.storage_options if config.out_storage_options is None else config.out_storage_options
    )
    out_options = with_io_timeouts(out, options, config.audio.io_timeout)
    check_writable(out, out_options)
    return out_options


@contextmanager
def _cluster(config: RunConfig, client: Client | None) -> Iterator[Any]:
    """The Dask client the job runs on (see :func:`lidframe.cluster.connect`)."""
    with connect(
        scheduler=config.scheduler,
        workers=config.workers,
        client=client,
        gpu_threads=config.gpu_threads,
        dashboard=config.dashboard,
        verbose=logging.getLogger("lidframe").isEnabledFor(logging.DEBUG),
        announce=config.progress,
    ) as live:
        yield live


def _environment(job: _Job, client: Any) -> tuple[Fingerprint | None, list[str]]:
    """The environment the job recorded when it started (None: a new job, or one made before
    environments were fingerprinted), and the workers with the job's environment (none: any may
    load the models), found from the workers' fingerprints (:func:`settle_reference`)."""
    row = job.store.job(job.id)
    recorded = Fingerprint.from_record(row["environment"] if row else None)
    _, workers = settle_reference(
        client,
        recorded,
        job_id=job.id,
        allow_mixed=job.config.allow_mixed_environments,
        accelerator=accelerator_counts(job.task.kernel),
    )
    return recorded, workers


def _settle_precision(
    job: _Job, client: Any, worker: str | None = None
) -> tuple[_Job, dict[str, Any] | None]:
    """Half precision only after it passed a check against float32 on a worker (the record of the
    check, None when every model runs in float32)."""
    kernel, fidelity = settle_precision(
        client,
        job.task.manifest,
        job.task.kernel,
        clips=job.config.fidelity_clips,
        threshold=job.config.fidelity_threshold,
        worker=worker,
    )
    return job.with_kernel(kernel), fidelity


def _preflight(
    job: _Job, client: Any, worker: str | None = None, recorded: Fingerprint | None = None
) -> _Job:
    """The models loaded on a worker (``worker``: one with the job's environment); their label
    sets go with every part, and the consensus spreads the mass a top-k list leaves out over them.
    That worker's fingerprint, with the models' weights, is the job's environment (or, on a resume,
    is checked against the one it ``recorded``): every partition task checks its own against it,
    unless mixed environments are allowed."""
    labels, loaded = preflight_models(client, job.task.kernel, worker)
    accelerator = accelerator_counts(job.task.kernel)
    allow_mixed = job.config.allow_mixed_environments
    environment = job_fingerprint(
        loaded, recorded, job_id=job.id, allow_mixed=allow_mixed, accelerator=accelerator
    )
    job = dataclasses.replace(job, environment=environment)
    checked = None if allow_mixed else environment.compact()
    kernel = job.task.kernel
    # With candidate languages, a model's answers spread over those it has (a model that has
    # none of them is refused here, before any work).
    counts = {
        alias: len(kernel.candidates(alias, codes) or codes) for alias, codes in labels.items()
    }
    if kernel.consensus is not None:
        counted = dataclasses.replace(kernel.consensus, label_counts=counts)
        kernel = dataclasses.replace(kernel, consensus=counted)
    return job.with_kernel(kernel, labels=labels, environment=checked, accelerator=accelerator)


def _check_folder(job: _Job) -> None:
    """Refuse, before any work, an output folder that holds another job's results, saying how
    that job differs from this one (its settings are in the job database)."""
    spec, store, config, task = job.spec, job.store, job.config, job.task
    if config.overwrite:
        return
    previous = store.job_for_out(spec.out)
    if (
        previous is not None
        and previous["job_id"] != job.id
        and previous["manifest"] == spec.manifest
        and previous["manifest_digest"] != spec.manifest_digest
    ):
        raise ManifestError(
            f"{spec.manifest}: the manifest changed (its files' size or modification "
            f"time) since job {previous['job_id']} wrote {task.out}; restore it, or start "
            "over as a new job with --overwrite"
        )
    owner, parts = folder_owner(task.out, task.out_options)
    if owner is None and parts:
        owner = None if previous is None else previous["job_id"]
        if owner is None:
            return  # parts of an unknown job: claim_folder refuses them in its words
    if owner is None or owner == job.id:
        return
    other = store.job(owner)
    if other is None:
        why = "; its job database is not here, so how it differs cannot be said"
    else:
        differences = job_differences(
            other,
            manifest=spec.manifest,
            manifest_digest=spec.manifest_digest,
            out=spec.out,
            models=spec.models,
            config=spec.config,
        )
        why = (
            f", made with other settings (that job's vs this run's): {', '.join(differences)}"
            if differences
            else ""
        )
    raise ConfigError(
        f"--out {task.out} holds the results of job {owner} ({parts} part files){why}; run "
        "with its settings to resume it, choose another --out, or pass --overwrite to "
        f"delete them and write job {job.id} there"
    )


def _check_models_here(kernel: KernelConfig) -> None:
    """A model that cannot be loaded on this machine (weights not installed, not cached and the
    hub not reachable), found before a local cluster is started for it."""
    for spec in kernel.models:
        if spec.family not in kernel.families:  # a family registered at run time loads its own
            check_available(spec.family, spec.source, spec.name)


def _take_over(job: _Job, fidelity: dict[str, Any] | None = None) -> None:
    """Make the output folder the job's and the job a row of the database (with its models' label
    sets and the half-precision check, once known), and finish what a crash left staged."""
    spec, store, config, task = job.spec, job.store, job.config, job.task
    previous = store.job_for_out(spec.out)
    claim_folder(
        task.out,
        job.id,
        storage_options=task.out_options,
        overwrite=config.overwrite,
        known_owner=None if previous is None else previous["job_id"],
        details={"manifest": spec.manifest, "models": list(spec.models)},
    )
    row = store.ensure_job(
        job.id,
        fingerprint=spec.fingerprint,
        manifest=spec.manifest,
        manifest_digest=spec.manifest_digest,
        out=spec.out,
        models=list(spec.models),
        config=spec.config,
        environment=(job.environment or fingerprint()).record(),
    )
    if job.environment is not None and Fingerprint.from_record(row["environment"]) is None:
        store.record_environment(job.id, job.environment.record())  # made by an older lidframe
    if config.retry_dead:
        store.retry_dead(job.id)
    reconcile_parts(store, job.id, task.out, task.out_options)
    if task.labels:
        store.record_labels(job.id, dict(task.labels))
    if fidelity is not None:
        store.record_fidelity(job.id, fidelity)


def _done_partitions(job: _Job) -> int:
    return job.store.states(job.id).get("done", 0)


def _watching(job: _Job) -> WatchSettings:
    """What the driver watches (a reference, the fleet, the metrics' token), found before any
    cluster starts: a reference that does not exist, or a token file that cannot be read, is a
    setting error."""
    config = job.config
    reference = None
    if config.reference is not None:
        reference = reference_behaviour(job.store, config.reference)
    token = None
    if config.metrics_port is not None:
        token = metrics_token(config.metrics_token_file)
    return WatchSettings(
        reference=reference,
        every=config.check_every,
        fleet=FleetThresholds(min_rows=config.fleet_min_rows),
        quarantine=config.quarantine,
        metrics_port=config.metrics_port,
        metrics_host=config.metrics_host,
        metrics_token=token,
    )


def _drive(job: _Job, client: Any, watching: WatchSettings | None = None) -> Progress:
    """The driver through the job's partitions, then the staging folder settled."""
    environments = None
    if job.environment is not None:
        environments = Environments(
            job.store,
            job.id,
            job.environment,
            allow_mixed=job.config.allow_mixed_environments,
            accelerator=accelerator_counts(job.task.kernel),
        )
    done = run_partitions(
        client,
        job.store,
        job.id,
        job.task,
        job.config.job_settings(),
        partition_rows=job.config.partition_rows,
        progress=job.config.progress,
        watch=watching,
        environments=environments,
    )
    reconcile_parts(job.store, job.id, job.task.out, job.task.out_options, finished=True)
    return done


def _summary(
    job: _Job, kept: bool, done: Progress, skipped: int, fidelity: dict[str, Any] | None
) -> RunSummary:
    summary = summarize(job.store, job.id, job.task.out, job.task.kernel.consensus is not None)
    summary.db = job.store.url if kept else None
    summary.committed = done.committed
    summary.skipped = skipped
    summary.fidelity = fidelity
    return summary


def _interrupted(exc: KeyboardInterrupt, job_id: str | None, db_url: str | None) -> JobInterrupted:
    """What a Ctrl-C or SIGTERM says: whether the job kept its state."""
    status = getattr(exc, "exit_status", 130)
    what = "terminated" if status == 143 else "interrupted"
    if job_id is None:
        message = f"{what} before any work started"
    elif db_url is None:
        message = f"{what}; job {job_id} kept no state (--no-db): a rerun starts over"
    else:
        message = f"{what}; job {job_id} kept its state: run the same command again to resume"
    return JobInterrupted(message, exit_status=status)
