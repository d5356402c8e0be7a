"""The public entry points: ``identify`` (lazy) and ``run`` (the whole job on a cluster).

``identify`` only builds a graph: ``map_partitions`` over the manifest with an explicit ``meta``.
``run`` is one code path, with or without a persistent job database (``db=False`` uses a temporary
SQLite file that is deleted afterwards; see :mod:`lidframe.job_database`). Everything that can be
found out before work is, in this order, so a bad setting fails in seconds with one line
(``ConfigError``, ``ManifestError``, ``ModelError``, ``StoreError``): settings, the job database,
the output folder is writable, the manifest is valid, the models load on a worker
(:mod:`lidframe.preflight`), the folder is this job's. A model that would run in half precision is
first checked against float32 on a worker (:mod:`lidframe.precision`): the job runs in float32
when it fails, and the check is stored with the job. Then the orchestrator works through the
partitions (:mod:`lidframe.orchestrator`) and a :class:`~lidframe.run_summary.RunSummary` comes
back; a systemic failure while working is :class:`~lidframe.errors.JobFailed`, an interrupt
:class:`~lidframe.errors.JobInterrupted`, both with the job's state kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from distributed import Client

from lidframe.audio import with_io_timeouts
from lidframe.cluster import connect
from lidframe.columns import result_meta, result_schema
from lidframe.consensus import consensus_config, consensus_meta
from lidframe.dataframes import resolve_backend
from lidframe.errors import JobInterrupted, ManifestError
from lidframe.job import JobSpec, check_job_id, environment
from lidframe.job_database import database_url, default_db, job_database, nothing_to_do
from lidframe.kernel import (
    KernelConfig,
    check_fidelity_settings,
)
from lidframe.manifest import open_manifest
from lidframe.models import parse_model
from lidframe.orchestrator import JobSettings, Progress, reconcile_parts, run_partitions
from lidframe.partition_task import PartitionTask
from lidframe.precision import settle_precision
from lidframe.preflight import preflight_models
from lidframe.results import check_writable, claim_folder
from lidframe.run_config import RunConfig
from lidframe.run_summary import RunSummary, summarize

# RunConfig, RunSummary and default_db live in run_config, run_summary and job_database; re-exported.
__all__ = ["RunConfig", "RunSummary", "default_db", "run"]


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

    Settings are the fields of :class:`~lidframe.run_config.RunConfig`, given as ``config`` or as
    keywords (``workers``, ``scheduler``, ``decode_threads``, ``gpu_threads``, ``batch_size``,
    ``partition_rows``, ``top_k``, ``device``, ``dtype``, ``audio``, ``speech``,
    ``storage_options``, ``out_storage_options``, ``consensus_policy``, ``min_prob``,
    ``calibration``, ``cascade``, ``backend``, ``progress``, ``db``, ``job``, ``max_attempts``,
    ``lease_seconds``, ``stall_seconds``, ``retry_dead``, ``overwrite``, ``fidelity_clips``,
    ``fidelity_threshold``).

    ``dtype`` ``auto`` (the default) runs half precision on a GPU that supports it and float32
    elsewhere. Half precision is checked against float32 first, on the first
    ``fidelity_clips`` clips with speech: when a model's top-1 agreement is below
    ``fidelity_threshold`` the job runs in float32. The figures are printed, stored with the job
    and in ``summary.fidelity`` (see :mod:`lidframe.kernel._fidelity`).

    Runs on ``client`` (a ``distributed.Client``), else on the cluster at ``scheduler``, else on
    the client Dask would use (``distributed.default_client()``: in a notebook, the ``Client`` made
    there), else on a local cluster started for the job and closed after it; a client that is not
    the job's own is left open. With ``progress``, the cluster's dashboard link is printed (when it
    has one). ``client`` is not a :class:`RunConfig` setting: a live connection, not a value to
    keep, compare or derive a job id from. Returns a :class:`RunSummary`
    (``summary.ok`` is False when partitions died). ``storage_options`` apply to the manifest and the
    audio, ``out_storage_options`` to ``out`` (default: the same). With more than one model,
    consensus columns are added (:func:`lidframe.consensus.consensus` with ``consensus_policy`` and
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
    resumes it (see :mod:`lidframe.orchestrator`). A partition that fails ``max_attempts`` times, or
    makes no progress for ``stall_seconds``, is dead: its rows are written with an error
    (``retry_dead`` tries again). ``out`` belongs to one job: another job's results there are refused
    unless ``overwrite`` replaces them.

    Raises :class:`~lidframe.errors.LidframeError` for bad settings or input (before any work),
    :class:`~lidframe.errors.JobFailed` for a systemic failure while working, and
    :class:`~lidframe.errors.JobInterrupted` (a ``KeyboardInterrupt``) when interrupted.
    """
    started = time.perf_counter()
    if models is not None:
        settings["models"] = models
    if config is not None:
        config = dataclasses.replace(config, **settings) if settings else config
    else:
        config = RunConfig.of(**settings)
    check_fidelity_settings(config.fidelity_clips, config.fidelity_threshold)
    if config.backend == "cudf":
        resolve_backend("cudf", gpus=True)  # cuDF must import before any work
    specs = tuple(
        parse_model(name, device=config.device, dtype=config.dtype) for name in config.models
    )
    out = os.fspath(out)
    audio = config.audio
    out_options = with_io_timeouts(
        out,
        config.storage_options
        if config.out_storage_options is None
        else config.out_storage_options,
        audio.io_timeout,
    )
    job_settings = JobSettings(
        max_attempts=config.max_attempts,
        lease_seconds=config.lease_seconds,
        stall_seconds=config.stall_seconds,
    )
    aliases = [m.alias for m in specs]
    cons = (
        consensus_config(
            policy=config.consensus_policy, min_prob=config.min_prob, calibration=config.calibration
        )
        if len(aliases) > 1
        else None
    )
    kernel = KernelConfig.for_models(
        config.models,
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
        batch_seconds=config.batch_seconds,
        top_k=config.top_k,
        audio=audio,
        speech=config.speech,
        storage_options=config.storage_options,
        decode_threads=config.decode_threads,
        cascade=config.cascade,
        consensus=cons,
    )
    db_url = database_url(config.db, out)
    job_id: str | None = None
    fidelity: dict[str, Any] | None = None
    try:
        with ExitStack() as stack:
            # A database server is checked first (a wrong password fails in seconds); the embedded
            # SQLite file lives in the output folder, which is touched only once the manifest and
            # the folder are known to be good.
            early = None
            if db_url is not None and not db_url.startswith("sqlite:"):
                early = stack.enter_context(job_database(db_url))
            source = open_manifest(
                manifest,
                storage_options=with_io_timeouts(
                    os.fspath(manifest), config.storage_options, audio.io_timeout
                ),
            )
            check_writable(out, out_options)
            store, kept = early or stack.enter_context(job_database(db_url))
            meta = result_meta(source.meta(), aliases)
            if cons is not None:
                meta = consensus_meta(meta)
            spec = JobSpec(
                manifest=_absolute(source.url),
                manifest_digest=source.identity,
                out=_absolute(out),
                models=tuple(m.name for m in specs),
                config=config.identity(),
            )
            job_id = check_job_id(config.job) if config.job else spec.derived_id
            task = PartitionTask(
                job_id=job_id,
                manifest=source,
                kernel=kernel,
                out=out,
                schema=result_schema(meta, aliases),
                out_options=out_options,
                settings=spec.config,
                backend=config.backend,
            )

            def take_over() -> None:
                """Make ``out`` this job's folder and the job a row of the database."""
                previous = store.job_for_out(spec.out)
                if (
                    previous is not None
                    and previous["job_id"] != job_id
                    and previous["manifest"] == spec.manifest
                    and previous["manifest_digest"] != spec.manifest_digest
                    and not config.overwrite
                ):
                    raise ManifestError(
                        f"{spec.manifest}: the manifest changed (its files' size or modification "
                        f"time) since job {previous['job_id']} wrote {out}; restore it, or start "
                        "over as a new job with --overwrite"
                    )
                claim_folder(
                    out,
                    job_id,
                    storage_options=out_options,
                    overwrite=config.overwrite,
                    known_owner=None if previous is None else previous["job_id"],
                    details={"manifest": spec.manifest, "models": list(spec.models)},
                )
                store.ensure_job(
                    job_id,
                    fingerprint=spec.fingerprint,
                    manifest=spec.manifest,
                    manifest_digest=spec.manifest_digest,
                    out=spec.out,
                    models=list(spec.models),
                    config=spec.config,
                    environment=environment(),
                )
                if config.retry_dead:
                    store.retry_dead(job_id)
                reconcile_parts(store, job_id, out, out_options)

            done = Progress()
            if not config.retry_dead and nothing_to_do(store, job_id):
                take_over()  # a finished job run again: no cluster, no model, no work
                skipped = store.states(job_id).get("done", 0)
            else:
                verbose = logging.getLogger("lidframe").isEnabledFor(logging.DEBUG)
                with connect(
                    scheduler=config.scheduler,
                    workers=config.workers,
                    client=client,
                    gpu_threads=config.gpu_threads,
                    verbose=verbose,
                    announce=config.progress,
                ) as client:
                    kernel, fidelity = settle_precision(
                        client,
                        source,
                        kernel,
                        clips=config.fidelity_clips,
                        threshold=config.fidelity_threshold,
                    )
                    labels = preflight_models(client, kernel)
                    if kernel.consensus is not None:
                        counts = {a: len(codes) for a, codes in labels.items()}
                        counted = dataclasses.replace(kernel.consensus, label_counts=counts)
                        kernel = dataclasses.replace(kernel, consensus=counted)
                    task = dataclasses.replace(task, labels=labels, kernel=kernel)
                    take_over()
                    store.record_labels(job_id, labels)
                    if fidelity is not None:
                        store.record_fidelity(job_id, fidelity)
                    skipped = store.states(job_id).get("done", 0)
                    done = run_partitions(
                        client,
                        store,
                        job_id,
                        task,
                        job_settings,
                        partition_rows=config.partition_rows,
                        progress=config.progress,
                    )
                    reconcile_parts(store, job_id, out, out_options, finished=True)
            summary = summarize(store, job_id, out, cons is not None)
            summary.db = store.url if kept else None
            summary.committed = done.committed
            summary.skipped = skipped
            summary.fidelity = fidelity
    except KeyboardInterrupt as exc:
        status = getattr(exc, "exit_status", 130)
        what = "terminated" if status == 143 else "interrupted"
        if job_id is None:
            message = f"{what} before any work started"
        elif db_url is None:
            message = f"{what}; job {job_id} kept no state (--no-db): a rerun starts over"
        else:
            message = f"{what}; job {job_id} kept its state: run the same command again to resume"
        raise JobInterrupted(message, exit_status=status) from None
    summary.seconds = time.perf_counter() - started
    return summary


def _absolute(url: str) -> str:
    """Local paths made absolute (a job is the same from any working directory); URLs unchanged."""
    return url if "://" in url else os.path.abspath(url)
