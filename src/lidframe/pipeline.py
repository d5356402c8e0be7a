"""The public entry points: ``identify`` (lazy) and ``run`` (the whole job on a cluster).

``identify`` only builds a graph: ``map_partitions`` over the manifest with an explicit ``meta``.
``run`` reads the manifest, submits one write task per partition in a single graph (so each manifest
block is read once), shows progress as partitions finish, removes part files left by an earlier,
larger partitioning, and returns a :class:`RunSummary`.
"""

from __future__ import annotations

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
from lidframe.consensus import consensus
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import read_manifest
from lidframe.models.base import parse_model
from lidframe.sinks.parquet import remove_stale_parts, write_part

__all__ = ["RunSummary", "identify", "run"]


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
    """What a run did: counts, errors by category, languages per model, and time."""

    out: str
    partitions: int
    rows: int = 0
    errors: int = 0
    error_categories: Counter[str] = field(default_factory=Counter)
    languages: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"lidframe: {self.rows} rows in {self.partitions} partitions, {self.errors} errors, "
            f"{self.seconds:.1f} s ({rate:.2f} rows/s) -> {self.out}",
        ]
        if self.error_categories:
            lines.append(
                "  errors: " + ", ".join(f"{k} {v}" for k, v in self.error_categories.most_common())
            )
        for alias, counts in self.languages.items():
            top = ", ".join(f"{k} {v}" for k, v in counts.most_common(12))
            more = f" (+{len(counts) - 12} more)" if len(counts) > 12 else ""
            lines.append(f"  {alias}: {len(counts)} languages: {top}{more}")
        return "\n".join(lines)


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
) -> RunSummary:
    """Identify the language of every row of ``manifest`` and write Parquet parts under ``out``.

    Starts a local cluster (or attaches to ``scheduler``), and returns a :class:`RunSummary`.
    ``storage_options`` apply to the manifest and the audio, ``out_storage_options`` to ``out``
    (default: the same). With more than one model, consensus columns are added
    (:func:`lidframe.consensus.consensus` with ``consensus_policy`` and ``min_prob``, or with a
    ``calibration`` fitted by ``lidframe calibrate``).
    """
    started = time.perf_counter()
    if isinstance(models, str):
        models = [models]
    for name in models:  # fail on a bad model name or calibration before starting anything
        parse_model(name, device=device, dtype=dtype)
    if calibration is not None:
        from lidframe.calibration import load_calibration

        calibration = load_calibration(calibration)
    out = os.fspath(out)
    out_options = (
        dict(storage_options or {}) if out_storage_options is None else dict(out_storage_options)
    )
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
    summary.seconds = time.perf_counter() - started
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
