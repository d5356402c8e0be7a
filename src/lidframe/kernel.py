"""The function ``map_partitions`` runs: decode each clip once, batch, run every model, typed columns.

This is the only place where audio meets models. Decoding runs in a small thread pool a few batches
ahead of inference (decoders release the GIL), so reading and decoding overlap the models' forward
passes; every requested model sees the same waveform batch. A clip that cannot be decoded gets an
``error`` value and null model columns; the rest of the partition goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lidframe.audio import AudioConfig, decode_window
from lidframe.columns import model_columns
from lidframe.errors import AudioError, ConfigError
from lidframe.models.base import ModelSpec, load_model

__all__ = ["KernelConfig", "identify_partition"]


@dataclass(frozen=True)
class KernelConfig:
    """What one partition task needs; pickled once per graph, small."""

    # The models to run, in column order.
    models: tuple[ModelSpec, ...]
    # Clips per forward pass.
    batch_size: int = 8
    # Length of each ``{alias}_topk`` list.
    top_k: int = 5
    # Decoding limits and output rate.
    audio: AudioConfig = field(default_factory=AudioConfig)
    # fsspec options for remote audio (credentials, endpoint), passed to every open.
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    # Threads decoding ahead of inference.
    decode_threads: int = 4

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is required")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.top_k <= 0:
            raise ConfigError(f"top_k must be positive, got {self.top_k}")
        if self.decode_threads <= 0:
            raise ConfigError(f"decode_threads must be positive, got {self.decode_threads}")
        aliases = [m.alias for m in self.models]
        if len(set(aliases)) != len(aliases):
            raise ConfigError(f"two models share a column alias: {aliases}")


def identify_partition(df: pd.DataFrame, config: KernelConfig) -> pd.DataFrame:
    """Add ``error`` and every model's columns to one manifest partition."""
    n = len(df)
    out = df.copy()
    errors: list[str | None] = [None] * n
    langs = {m.alias: [None] * n for m in config.models}
    probs = {m.alias: np.full(n, np.nan, dtype=np.float32) for m in config.models}
    topks: dict[str, list[Any]] = {m.alias: [None] * n for m in config.models}

    if n:
        models = [load_model(spec) for spec in config.models]
        for rows, waves in _decoded_batches(df, config, errors):
            for spec, model in zip(config.models, models, strict=True):
                p = model.predict_batch(waves)
                labels = model.labels
                k = min(config.top_k, p.shape[1])
                order = np.argsort(-p, axis=1, kind="stable")[:, :k]
                for j, row in enumerate(rows):
                    top = order[j]
                    langs[spec.alias][row] = labels[top[0]]
                    probs[spec.alias][row] = p[j, top[0]]
                    topks[spec.alias][row] = [
                        {"lang": labels[c], "prob": float(p[j, c])} for c in top
                    ]

    out["error"] = pd.array(errors, dtype="string")
    for spec in config.models:
        lang, prob, topk = model_columns(spec.alias)
        out[lang] = pd.array(langs[spec.alias], dtype="string")
        out[prob] = probs[spec.alias]
        out[topk] = pd.Series(topks[spec.alias], index=out.index, dtype="object")
    return out


def _decoded_batches(
    df: pd.DataFrame, config: KernelConfig, errors: list[str | None]
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Yield ``(row positions, waveforms)`` batches; decode errors are written into ``errors``."""
    uris: Sequence[str] = df["audio"].tolist()
    offsets = df["offset"].to_numpy(dtype="float64") if "offset" in df else np.full(len(df), np.nan)
    durations = (
        df["duration"].to_numpy(dtype="float64") if "duration" in df else np.full(len(df), np.nan)
    )
    ahead = config.batch_size * 2
    rows: list[int] = []
    waves: list[np.ndarray] = []
    with ThreadPoolExecutor(config.decode_threads, thread_name_prefix="lidframe-decode") as pool:
        pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        nxt = 0
        while nxt < len(uris) or pending:
            while nxt < len(uris) and len(pending) < ahead:
                off = None if np.isnan(offsets[nxt]) else float(offsets[nxt])
                dur = None if np.isnan(durations[nxt]) else float(durations[nxt])
                pending.append(
                    (
                        nxt,
                        pool.submit(
                            decode_window, uris[nxt], off, dur, config.audio, config.storage_options
                        ),
                    )
                )
                nxt += 1
            row, future = pending.popleft()
            try:
                waves.append(future.result())
                rows.append(row)
            except AudioError as exc:
                errors[row] = str(exc)
            except Exception as exc:  # noqa: BLE001 - an unexpected decoder crash is still one row's
                errors[row] = f"decode_failed: {uris[row]}: {type(exc).__name__}: {exc}"
            if len(rows) == config.batch_size:
                yield rows, waves
                rows, waves = [], []
        if rows:
            yield rows, waves
