"""The public entry points: ``identify`` (lazy) and ``run`` (the whole job on a cluster).

``identify`` only builds a graph: ``map_partitions`` over the manifest with an explicit ``meta``.
``run`` is one code path, with or without a persistent job database (``db=False`` uses a temporary
SQLite file that is deleted afterwards). Everything that can be found out before work is, in this
order, so a bad setting fails in seconds with one line (``ConfigError``, ``ManifestError``,
``ModelError``, ``StoreError``): settings, the job database, the output folder is writable, the
manifest is valid, the models load on a worker, the folder is this job's. Then the orchestrator
works through the partitions (:mod:`lidframe.orchestrator`) and a :class:`RunSummary` comes back;
a systemic failure while working is :class:`~lidframe.errors.JobFailed`, an interrupt
:class:`~lidframe.errors.JobInterrupted`, both with the job's state kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd

from lidframe.audio import AudioConfig, with_io_timeouts
from lidframe.cluster import connect
from lidframe.columns import result_meta, result_schema
from lidframe.consensus import consensus_config, consensus_meta
from lidframe.errors import ConfigError, JobInterrupted, LidframeError, ModelError
from lidframe.job import JobSpec, check_job_id, environment
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import check_unique_ids, plan_manifest
from lidframe.models.base import ModelSpec, load_model, parse_model
from lidframe.orchestrator import JobSettings, Progress, reconcile_parts, run_partitions
from lidframe.partition_task import PartitionTask
from lidframe.sinks.parquet import check_writable, claim_folder
from lidframe.store import open_store
from lidframe.store.jobs import JobStore

__all__ = ["RunSummary", "default_db", "identify", "run"]


def identify(
    ddf: dd.DataFrame,
    models: Sequence[str] = ("whisper-base",),
    *,
    batch_size: int = 8,
    top_k: int = 5,
    device: str = "auto",
    dtype: str = "float32",
    audio: AudioConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    decode_threads: int = 4,
) -> dd.DataFrame:
    """Add ``error`` and per-model language columns to a manifest dataframe (lazy)."""
    if isinstance(models, str):
        models = [models]
    config = KernelConfig(
        models=tuple(parse_model(m, device=device, dtype=dtype) for m in models),
        batch_size=batch_size,
        top_k=top_k,
        audio=audio or AudioConfig(),
        storage_options=dict(storage_options or {}),
        decode_threads=decode_threads,
    )
    meta = result_meta(ddf._meta, [m.alias for m in config.models])
    return ddf.map_partitions(identify_partition, config, meta=meta, enforce_metadata=False)


@dataclass
class RunSummary:
    """What a run did: counts, errors by category, languages per model, and time.

    With a job database the counts cover the whole job (also partitions done by earlier runs);
    ``committed`` is what this run added, ``skipped`` what it found already done.
    """

    out: str
    partitions: int
    rows: int = 0
    errors: int = 0
    error_categories: Counter[str] = field(default_factory=Counter)
    languages: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0
    job_id: str | None = None
    db: str | None = None
    status: str | None = None
    committed: int = 0
    skipped: int = 0
    dead: int = 0

    @property
    def ok(self) -> bool:
        """The job finished and every row has an answer or its own row error (no dead partition)."""
        return self.status == "finished"

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"lidframe: {self.rows} rows in {self.partitions} partitions, {self.errors} errors, "
            f"{self.seconds:.1f} s ({rate:.2f} rows/s) -> {self.out}",
        ]
        if self.job_id is not None:
            lines.append(
                f"  job {self.job_id} {self.status}: {self.committed} partitions done by this run, "
                f"{self.skipped} already done, {self.dead} dead "
                + (f"(state in {self.db})" if self.db else "(no job database kept: --no-db)")
            )
        if self.error_categories:
            lines.append(
                "  errors: " + ", ".join(f"{k} {v}" for k, v in self.error_categories.most_common())
            )
        for alias, counts in self.languages.items():
            top = ", ".join(f"{k} {v}" for k, v in counts.most_common(12))
            more = f" (+{len(counts) - 12} more)" if len(counts) > 12 else ""
            lines.append(f"  {alias}: {len(counts)} languages: {top}{more}")
        return "\n".join(lines)


def default_db(out: str) -> str:
    """The embedded default: ``OUT/_lidframe.sqlite`` (pyarrow and dask skip ``_`` files)."""
    if "://" in out and not out.startswith("file://"):
        raise ConfigError(
            f"the output {out!r} is not a local folder, so there is no default job database: "
            "pass --db postgresql+psycopg://... (or sqlite:///FILE), or --no-db"
        )
    path = os.path.abspath(out.removeprefix("file://"))
    return f"sqlite:///{path}/_lidframe.sqlite"


def run(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    models: Sequence[str] = ("whisper-base",),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int = 8,
    partition_rows: int = 128,
    top_k: int = 5,
    device: str = "auto",
    dtype: str = "float32",
    audio: AudioConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    out_storage_options: Mapping[str, Any] | None = None,
    consensus_policy: str = "majority",
    min_prob: float = 0.0,
    calibration: Any = None,
    progress: bool = True,
    db: str | bool | None = None,
    job: str | None = None,
    max_attempts: int = 3,
    lease_seconds: float = 60.0,
    stall_seconds: float = 600.0,
    retry_dead: bool = False,
    overwrite: bool = False,
) -> RunSummary:
    """Identify the language of every row of ``manifest`` and write Parquet parts under ``out``.

    Starts a local cluster (or attaches to ``scheduler``), and returns a :class:`RunSummary`
    (``summary.ok`` is False when partitions died). ``storage_options`` apply to the manifest and the
    audio, ``out_storage_options`` to ``out`` (default: the same). With more than one model,
    consensus columns are added (:func:`lidframe.consensus.consensus` with ``consensus_policy`` and
    ``min_prob``, or with a ``calibration`` fitted by ``lidframe calibrate``).

    Job state and results go to the database ``db`` (a SQLAlchemy URL; default: ``$LIDFRAME_DB``,
    else ``OUT/_lidframe.sqlite``; ``False`` keeps no state). The job is ``job`` or an id derived from
    the manifest's content, ``out``, the models and the settings that change results, so running the
    same call again resumes it (see :mod:`lidframe.orchestrator`). A partition that fails
    ``max_attempts`` times, or makes no progress for ``stall_seconds``, is dead: its rows are written
    with an error (``retry_dead`` tries again). ``out`` belongs to one job: another job's results there
    are refused unless ``overwrite`` replaces them.

    Raises :class:`~lidframe.errors.LidframeError` for bad settings or input (before any work),
    :class:`~lidframe.errors.JobFailed` for a systemic failure while working, and
    :class:`~lidframe.errors.JobInterrupted` (a ``KeyboardInterrupt``) when interrupted.
    """
    started = time.perf_counter()
    if isinstance(models, str):
        models = [models]
    specs = tuple(parse_model(name, device=device, dtype=dtype) for name in models)
    if calibration is not None:
        from lidframe.calibration import load_calibration

        calibration = load_calibration(calibration)
    out = os.fspath(out)
    audio = audio or AudioConfig()
    out_options = with_io_timeouts(
        out,
        storage_options if out_storage_options is None else out_storage_options,
        audio.io_timeout,
    )
    settings = JobSettings(
        max_attempts=max_attempts, lease_seconds=lease_seconds, stall_seconds=stall_seconds
    )
    kernel = KernelConfig(
        models=specs,
        batch_size=batch_size,
        top_k=top_k,
        audio=audio,
        storage_options=dict(storage_options or {}),
    )
    aliases = [m.alias for m in specs]
    cons = (
        consensus_config(policy=consensus_policy, min_prob=min_prob, calibration=calibration)
        if len(aliases) > 1
        else None
    )
    job_config = {
        "partition_rows": partition_rows,
        "top_k": top_k,
        "dtype": dtype,
        "audio": {
            k: v
            for k, v in dataclasses.asdict(kernel.audio).items()
            if k not in ("io_timeout", "timeout", "block_size")  # how long to wait, not what
        },
        "consensus": None if cons is None else _consensus_settings(cons),
    }
    db_url = _database_url(db, out)
    job_id: str | None = None
    try:
        with ExitStack() as stack:
            # A database server is checked first (a wrong password fails in seconds); the embedded
            # SQLite file lives in the output folder, which is touched only once the manifest and
            # the folder are known to be good.
            early = None
            if db_url is not None and not db_url.startswith("sqlite:"):
                early = stack.enter_context(_job_database(db_url))
            plan = plan_manifest(
                manifest,
                partition_rows=partition_rows,
                storage_options=with_io_timeouts(
                    os.fspath(manifest), storage_options, audio.io_timeout
                ),
            )
            check_unique_ids(plan)
            check_writable(out, out_options)
            store, kept = early or stack.enter_context(_job_database(db_url))
            meta = result_meta(plan.meta(), aliases)
            if cons is not None:
                meta = consensus_meta(meta)
            spec = JobSpec(
                manifest=_absolute(plan.url),
                manifest_digest=plan.digest,
                out=_absolute(out),
                models=tuple(m.name for m in specs),
                config=job_config,
            )
            job_id = check_job_id(job) if job else spec.derived_id
            task = PartitionTask(
                job_id=job_id,
                kernel=kernel,
                aliases=tuple(aliases),
                consensus=cons,
                out=out,
                schema=result_schema(meta, aliases),
                out_options=out_options,
            )

            def take_over() -> None:
                """Make ``out`` this job's folder and the job a row of the database."""
                previous = store.job_for_out(spec.out)
                claim_folder(
                    out,
                    job_id,
                    storage_options=out_options,
                    overwrite=overwrite,
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
                    bounds=[
                        (k * partition_rows, min((k + 1) * partition_rows, plan.rows))
                        for k in range(plan.npartitions)
                    ],
                )
                if retry_dead:
                    store.retry_dead(job_id)
                reconcile_parts(store, job_id, out, out_options)

            done = Progress()
            if not retry_dead and _nothing_to_do(store, job_id):
                take_over()  # a finished job run again: no cluster, no model, no work
                skipped = store.states(job_id).get("done", 0)
            else:
                verbose = logging.getLogger("lidframe").isEnabledFor(logging.DEBUG)
                with connect(scheduler=scheduler, workers=workers, verbose=verbose) as client:
                    _preflight_models(client, specs)
                    take_over()
                    skipped = store.states(job_id).get("done", 0)
                    done = run_partitions(
                        client, store, job_id, plan, task, settings, progress=progress
                    )
                    reconcile_parts(store, job_id, out, out_options, finished=True)
            summary = _summary(store, job_id, out, plan.npartitions, cons is not None)
            summary.db = store.url if kept else None
            summary.committed = done.committed
            summary.skipped = skipped
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


def _database_url(db: str | bool | None, out: str) -> str | None:
    """The job database's URL (None: a temporary one, for ``db=False``)."""
    if db is False or db == "":
        return None
    if db is None:
        return os.environ.get("LIDFRAME_DB") or default_db(out)
    if db is True:
        return default_db(out)
    return str(db)


@contextmanager
def _job_database(url: str | None) -> Iterator[tuple[JobStore, bool]]:
    """The job's store and whether it is kept (``url`` None: a temporary SQLite file)."""
    if url is None:
        folder = tempfile.mkdtemp(prefix="lidframe-nodb-")
        try:
            with open_store(f"sqlite:///{folder}/jobs.sqlite") as store:
                yield store, False
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    with open_store(url) as store:
        yield store, True


def _nothing_to_do(store: JobStore, job_id: str) -> bool:
    """The job exists and every partition is done, or dead with its rows written."""
    if store.job(job_id) is None:
        return False
    states = store.states(job_id)
    return not (states.get("pending") or states.get("running")) and not store.dead_without_rows(
        job_id, limit=1
    )


def _preflight_models(client: Any, specs: Sequence[ModelSpec]) -> None:
    """Load every model on one worker before the manifest is scheduled (and keep it warm there).

    An unavailable model fails here in seconds with one line saying how to provide it, instead of
    failing every partition of the job.
    """
    future = client.submit(
        _load_models, list(specs), key=f"lidframe-preflight-{uuid.uuid4().hex[:8]}", pure=False
    )
    try:
        future.result()
    except LidframeError:
        raise
    except Exception as exc:
        raise ModelError(
            f"the models could not be loaded on a worker: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    finally:
        future.release()


def _load_models(specs: Sequence[ModelSpec]) -> list[int]:
    sizes = []
    for spec in specs:
        try:
            sizes.append(len(load_model(spec).labels))
        except LidframeError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {spec.name!r} failed to load: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())}"
            ) from exc
    return sizes


def _consensus_settings(config: Any) -> dict[str, Any]:
    return {
        "policy": config.policy,
        "min_prob": config.min_prob,
        "weights": dict(config.weights),
        "temperatures": dict(config.temperatures),
        "label_counts": dict(config.label_counts),
        "equivalence": repr(config.equivalence),
    }


def _summary(
    store: JobStore, job_id: str, out: str, npartitions: int, multi_model: bool
) -> RunSummary:
    totals = store.summary(job_id, multi_model=multi_model)
    states = store.states(job_id)
    job_row = store.job(job_id) or {}
    return RunSummary(
        out=out,
        partitions=npartitions,
        rows=totals["rows"],
        errors=sum(totals["error_categories"].values()),
        error_categories=totals["error_categories"],
        languages=totals["languages"],
        job_id=job_id,
        status=job_row.get("status"),
        dead=states.get("dead", 0),
    )


def _absolute(url: str) -> str:
    """Local paths made absolute (a job is the same from any working directory); URLs unchanged."""
    return url if "://" in url else os.path.abspath(url)
