"""The public entry points: ``identify`` (lazy) and ``run`` (the whole job on a cluster).

``identify`` only builds a graph: ``map_partitions`` over the manifest with an explicit ``meta``.
``run`` reads the manifest, submits one write task per partition in a single graph (so each manifest
block is read once), shows progress as partitions finish, removes part files left by an earlier,
larger partitioning, and returns a :class:`RunSummary`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
from dask.delayed import delayed

from lidframe.audio import AudioConfig
from lidframe.cluster import connect
from lidframe.columns import model_columns, result_meta, result_schema
from lidframe.consensus import consensus, consensus_config, consensus_meta
from lidframe.errors import ConfigError
from lidframe.job import JobSpec, check_job_id, environment
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import check_unique_ids, plan_manifest, read_manifest
from lidframe.models.base import parse_model
from lidframe.orchestrator import JobSettings, run_partitions
from lidframe.partition_task import PartitionTask
from lidframe.sinks.parquet import remove_stale_parts, write_part
from lidframe.store import open_store

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

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"lidframe: {self.rows} rows in {self.partitions} partitions, {self.errors} errors, "
            f"{self.seconds:.1f} s ({rate:.2f} rows/s) -> {self.out}",
        ]
        if self.job_id is not None:
            lines.append(
                f"  job {self.job_id} {self.status}: {self.committed} partitions done by this run, "
                f"{self.skipped} already done, {self.dead} dead (state in {self.db})"
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
    retry_dead: bool = False,
) -> RunSummary:
    """Identify the language of every row of ``manifest`` and write Parquet parts under ``out``.

    Starts a local cluster (or attaches to ``scheduler``), and returns a :class:`RunSummary`.
    ``storage_options`` apply to the manifest and the audio, ``out_storage_options`` to ``out``
    (default: the same). With more than one model, consensus columns are added
    (:func:`lidframe.consensus.consensus` with ``consensus_policy`` and ``min_prob``, or with a
    ``calibration`` fitted by ``lidframe calibrate``).

    Job state and results go to the database ``db`` (a SQLAlchemy URL; default: ``$LIDFRAME_DB``,
    else ``OUT/_lidframe.sqlite``; ``False`` runs without one). The job is ``job`` or an id derived from
    the manifest's content, ``out``, the models and the settings that change results, so running the
    same call again resumes it (see :mod:`lidframe.orchestrator`). A partition that fails
    ``max_attempts`` times is dead: its rows are written with an error (``retry_dead`` tries again).
    """
    started = time.perf_counter()
    if isinstance(models, str):
        models = [models]
    specs = [parse_model(name, device=device, dtype=dtype) for name in models]  # fail fast
    if calibration is not None:
        from lidframe.calibration import load_calibration

        calibration = load_calibration(calibration)
    out = os.fspath(out)
    out_options = (
        dict(storage_options or {}) if out_storage_options is None else dict(out_storage_options)
    )
    if db is None:
        db = os.environ.get("LIDFRAME_DB") or default_db(out)
    if db is False or db == "":
        summary = _run_untracked(
            manifest,
            out,
            models,
            workers=workers,
            scheduler=scheduler,
            batch_size=batch_size,
            partition_rows=partition_rows,
            top_k=top_k,
            device=device,
            dtype=dtype,
            audio=audio,
            storage_options=storage_options,
            out_options=out_options,
            consensus_policy=consensus_policy,
            min_prob=min_prob,
            calibration=calibration,
            progress=progress,
        )
    else:
        if db is True:
            db = default_db(out)
        settings = JobSettings(max_attempts=max_attempts, lease_seconds=lease_seconds)
        kernel = KernelConfig(
            models=tuple(specs),
            batch_size=batch_size,
            top_k=top_k,
            audio=audio or AudioConfig(),
            storage_options=dict(storage_options or {}),
        )
        aliases = [m.alias for m in specs]
        cons = (
            consensus_config(policy=consensus_policy, min_prob=min_prob, calibration=calibration)
            if len(aliases) > 1
            else None
        )
        with open_store(str(db)) as store, connect(scheduler=scheduler, workers=workers) as client:
            summary = _run_job(
                client,
                store,
                manifest,
                out,
                kernel,
                aliases,
                cons,
                settings,
                job=job,
                storage_options=storage_options,
                out_options=out_options,
                partition_rows=partition_rows,
                retry_dead=retry_dead,
                progress=progress,
                job_config={
                    "partition_rows": partition_rows,
                    "top_k": top_k,
                    "dtype": dtype,
                    "audio": dataclasses.asdict(kernel.audio),
                    "consensus": None if cons is None else _consensus_settings(cons),
                },
            )
    summary.seconds = time.perf_counter() - started
    return summary


def _consensus_settings(config: Any) -> dict[str, Any]:
    return {
        "policy": config.policy,
        "min_prob": config.min_prob,
        "weights": dict(config.weights),
        "temperatures": dict(config.temperatures),
        "label_counts": dict(config.label_counts),
        "equivalence": repr(config.equivalence),
    }


def _run_job(
    client: Any,
    store: Any,
    manifest: str | os.PathLike[str],
    out: str,
    kernel: KernelConfig,
    aliases: list[str],
    cons: Any,
    settings: JobSettings,
    *,
    job: str | None,
    storage_options: Mapping[str, Any] | None,
    out_options: dict[str, Any],
    partition_rows: int,
    retry_dead: bool,
    progress: bool,
    job_config: dict[str, Any],
) -> RunSummary:
    plan = plan_manifest(manifest, partition_rows=partition_rows, storage_options=storage_options)
    check_unique_ids(plan)
    meta = result_meta(plan.meta(), aliases)
    if cons is not None:
        meta = consensus_meta(meta)
    spec = JobSpec(
        manifest=_absolute(plan.url),
        manifest_digest=plan.digest,
        out=_absolute(out),
        models=tuple(m.name for m in kernel.models),
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
    skipped = store.states(job_id).get("done", 0)
    done = run_partitions(client, store, job_id, plan, task, settings, progress=progress)
    remove_stale_parts(out, plan.npartitions, out_options)
    totals = store.summary(job_id, multi_model=cons is not None)
    states = store.states(job_id)
    job_row = store.job(job_id) or {}
    return RunSummary(
        out=out,
        partitions=plan.npartitions,
        rows=totals["rows"],
        errors=sum(totals["error_categories"].values()),
        error_categories=totals["error_categories"],
        languages=totals["languages"],
        job_id=job_id,
        db=store.url,
        status=job_row.get("status"),
        committed=done.committed,
        skipped=skipped,
        dead=states.get("dead", 0),
    )


def _absolute(url: str) -> str:
    """Local paths made absolute (a job is the same from any working directory); URLs unchanged."""
    return url if "://" in url else os.path.abspath(url)


def _run_untracked(
    manifest: str | os.PathLike[str],
    out: str,
    models: Sequence[str],
    *,
    workers: int | None,
    scheduler: str | None,
    batch_size: int,
    partition_rows: int,
    top_k: int,
    device: str,
    dtype: str,
    audio: AudioConfig | None,
    storage_options: Mapping[str, Any] | None,
    out_options: dict[str, Any],
    consensus_policy: str,
    min_prob: float,
    calibration: Any,
    progress: bool,
) -> RunSummary:
    """The whole manifest as one graph, without job state (``db=False``)."""
    with connect(scheduler=scheduler, workers=workers) as client:
        ddf = read_manifest(
            manifest, partition_rows=partition_rows, storage_options=storage_options
        )
        result = identify(
            ddf,
            models,
            batch_size=batch_size,
            top_k=top_k,
            device=device,
            dtype=dtype,
            audio=audio,
            storage_options=storage_options,
        )
        aliases = [c.removesuffix("_lang") for c in result.columns if c.endswith("_lang")]
        if len(aliases) > 1:
            result = consensus(
                result, aliases, policy=consensus_policy, min_prob=min_prob, calibration=calibration
            )
        schema = result_schema(result._meta, aliases)
        language_columns = {a: model_columns(a)[0] for a in aliases}
        if len(aliases) > 1:
            language_columns["lang"] = "lang"
        tasks = [
            delayed(_write_and_count)(part, out, i, schema, out_options, language_columns)
            for i, part in enumerate(result.to_delayed())
        ]
        futures = client.compute(tasks)
        summary = RunSummary(out=out, partitions=len(tasks))
        summary.languages = {key: Counter() for key in language_columns}
        from distributed import as_completed
        from tqdm.auto import tqdm

        with tqdm(
            total=ddf.npartitions,
            unit="part",
            disable=not progress,
            file=sys.stderr,
            desc="lidframe",
        ) as bar:
            for future in as_completed(futures):
                counts = future.result()
                summary.rows += counts["rows"]
                summary.errors += counts["errors"]
                summary.error_categories.update(counts["error_categories"])
                for key in language_columns:
                    summary.languages[key].update(counts["languages"][key])
                bar.update(1)
                bar.set_postfix(rows=summary.rows, errors=summary.errors, refresh=False)
        remove_stale_parts(out, len(tasks), out_options)
    return summary


def _write_and_count(
    df: pd.DataFrame,
    out: str,
    index: int,
    schema: pa.Schema,
    storage_options: Mapping[str, Any],
    language_columns: Mapping[str, str],
) -> dict[str, Any]:
    write_part(df, out, index, schema, storage_options)
    errors = df["error"].dropna()
    return {
        "rows": len(df),
        "errors": len(errors),
        "error_categories": Counter(e.split(":", 1)[0] for e in errors),
        "languages": {k: Counter(df[c].dropna().tolist()) for k, c in language_columns.items()},
    }
