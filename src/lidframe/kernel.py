"""The function ``map_partitions`` runs: decode each clip once, batch, run every model, typed columns.

This is the only place where audio meets models. Clips are decoded a window ahead of inference in
killable decoder processes (:mod:`lidframe.audio._pool`), and each model's
:meth:`~lidframe.models.LidModel.prepare` runs on the decoded waveform in the same decode thread, so
reading, decoding and feature extraction overlap the models' forward passes, and a hung or crashing
decoder costs one row. Before ``prepare``, voice activity detection finds the clip's speech
(:func:`lidframe.speech.listen`): a clip without enough speech is answered ``und`` by every model
without running any, and the others reach the models as their speech only. Every requested model
hears the same waveform. A long file without a ``duration`` is heard in several windows spread over
it, each like a clip of its own; :mod:`lidframe.row_windows` makes the row's answer from theirs.

One bad clip costs one row, never its batch or partition:

* a clip that cannot be decoded, or is shorter than a model can take (``too_short``), gets an
  ``error`` value and null model columns before it reaches any model; a clip one model cannot
  ``prepare`` gets ``model_failed: {alias}: prepare: ...`` and keeps the other models' answers;
* when a model raises on a batch, the batch is split in halves until the clips it fails on are
  alone; each of those gets ``model_failed: {alias}: ...`` and the others keep their answers; a
  model that fails a known-good clip too fails the partition with :class:`ModelError`; CUDA out of
  memory makes the passes smaller instead (:mod:`lidframe.model_faults`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lidframe.audio import AudioConfig, DecoderUnavailable, decoder_pool
from lidframe.columns import ROW, asked_value, cascade_values, model_values, speech_values
from lidframe.consensus import Cascade, topk_pairs
from lidframe.errors import AudioError, ConfigError
from lidframe.model_faults import PassSize, model_failure, predict_clips
from lidframe.models import LidModel, ModelSpec, load_model
from lidframe.models.registry import Factory, adopt_factories
from lidframe.row_windows import Part, code_switch, combine, switches, window_list
from lidframe.speech import SpeechConfig, listen

__all__ = [
    "BUCKETS",
    "CPU_BATCH_SIZE",
    "GPU_BATCH_SECONDS",
    "GPU_BATCH_SIZE",
    "NO_SPEECH",
    "KernelConfig",
    "identify_partition",
]

# Batches decoded and prepared per window: a model sorts a window's clips by length and cuts it
# into forward passes of ``batch_size``, so clips of similar length share a pass (less padding).
BUCKETS = 4
# Forward passes when a job leaves them to the workers: clips per pass on the CPU; on a GPU worker,
# up to GPU_BATCH_SIZE clips within GPU_BATCH_SECONDS of padded input (32 Whisper passes of 30 s, 48
# of 20 s). Not yet measured on a GPU: benchmarks/gpu.py will say (see benchmarks/gpu.md).
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 64
GPU_BATCH_SECONDS = 960.0
# Every model's language for a clip with less speech than ``SpeechConfig.min_speech``.
NO_SPEECH = "und"


@dataclass(frozen=True)
class KernelConfig:
    """What one partition task needs; pickled once per graph, small."""

    # The models to run, in column order.
    models: tuple[ModelSpec, ...]
    # Clips per forward pass.
    batch_size: int = 8
    # Seconds of padded input per forward pass (clips times their padded length), or no limit:
    # short clips then share a pass in greater numbers than long ones (see LidModel.passes).
    batch_seconds: float | None = None
    # Length of each ``{alias}_topk`` list.
    top_k: int = 5
    # Decoding limits and output rate.
    audio: AudioConfig = field(default_factory=AudioConfig)
    # fsspec options for remote audio (credentials, endpoint), passed to every open.
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    # Decoder processes per worker process (each decodes one clip at a time, ahead of inference).
    decode_threads: int = 4
    # Families registered with register_family() where the job started, carried to the workers
    # (see lidframe.models.registry.runtime_factories); built-in and entry-point ones are not.
    families: Mapping[str, Factory] = field(default_factory=dict)
    # Voice activity, ``und`` for no speech, and the encoder context models get.
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    # Run the models in order, each on the rows the ones before did not settle (None: all on all).
    cascade: Cascade | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is required")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.batch_seconds is not None and not self.batch_seconds > 0:
            raise ConfigError(f"batch_seconds must be positive, got {self.batch_seconds}")
        if self.top_k <= 0:
            raise ConfigError(f"top_k must be positive, got {self.top_k}")
        if self.decode_threads <= 0:
            raise ConfigError(f"decode_threads must be positive, got {self.decode_threads}")
        aliases = [m.alias for m in self.models]
        if len(set(aliases)) != len(aliases):
            raise ConfigError(f"two models share a column alias: {aliases}")
        if self.cascade is not None and len(aliases) < 2:
            raise ConfigError("a cascade needs at least two models")


def identify_partition(
    df: pd.DataFrame,
    config: KernelConfig,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Add ``error``, the speech columns and every model's columns to one manifest partition.

    ``progress(rows)`` is called as rows are decoded and answered (for stall detection).
    """
    n = len(df)
    out = df.copy()
    errors: list[str | None] = [None] * n
    found: dict[str, dict[str, list[Any]]] = {
        m.alias: {c: [None] * n for c in ("lang", "prob", "topk", "windows")} for m in config.models
    }
    heard: dict[str, list[Any]] = {c: [None] * n for c in ("audio_seconds", "speech_seconds")}
    heard["code_switch"] = [None] * n
    cascade = config.cascade
    asked: list[str | None] = [None if cascade is None else ""] * n
    tick = progress or (lambda rows: None)

    def fail(row: int, message: str) -> None:
        errors[row] = message if errors[row] is None else f"{errors[row]}; {message}"

    if n:
        adopt_factories(config.families)
        models = [load_model(spec) for spec in config.models]
        sizes = [PassSize(config.batch_size, config.batch_seconds) for _ in models]
        for window in _prepared_windows(df, config, models, errors, tick):
            switched: dict[int, list[bool | None]] = {}
            for row, parts in window:
                heard["audio_seconds"][row] = sum(p.heard.audio_seconds for p in parts)
                if config.speech.vad:
                    heard["speech_seconds"][row] = sum(p.heard.speech_seconds or 0 for p in parts)
            # Rows with speech that the models so far have not settled (all of them without a
            # cascade); a row without speech reaches no model and is answered ``und`` by each.
            open_rows = {row for row, parts in window if any(p.prepared for p in parts)}
            sent: dict[int, list[str]] = {row: [] for row in open_rows}
            for m, (spec, model) in enumerate(zip(config.models, models, strict=True)):
                asking = set(open_rows)
                items = [
                    (row, k, part.prepared[m])
                    for row, parts in window
                    if row in asking
                    for k, part in enumerate(parts)
                    if part.prepared is not None
                ]
                answers = predict_clips(
                    spec.alias,
                    model,
                    [features for _, _, features in items if not isinstance(features, str)],
                    sizes[m],
                    config.speech.min_context,
                )
                per_part: dict[tuple[int, int], np.ndarray | str] = {}
                given = iter(answers)
                for row, k, features in items:
                    per_part[row, k] = features if isinstance(features, str) else next(given)
                for row, parts in window:
                    if cascade is not None and row in sent and row not in asking:
                        continue  # settled by the models before: not sent to this one
                    if row in sent:
                        sent[row].append(spec.alias)
                    got = [per_part.get((row, k)) for k in range(len(parts))]
                    failure = next((a for a in got if isinstance(a, str)), None)
                    if failure is not None:
                        fail(row, failure)
                        continue
                    values = _row_answer(parts, got, model.labels, config.top_k)  # type: ignore[arg-type]
                    for name, value in values.items():
                        found[spec.alias][name][row] = value
                    if len(parts) > 1:
                        switched.setdefault(row, []).append(switches(parts, values["windows"]))
                if cascade is not None:
                    so_far = [s.alias for s in config.models[: m + 1]]
                    open_rows -= {
                        row
                        for row in asking
                        if cascade.settled({a: topk_pairs(found[a]["topk"][row]) for a in so_far})
                    }
            for row, said in switched.items():
                heard["code_switch"][row] = code_switch(said)
            if cascade is not None:
                for row, _ in window:
                    asked[row] = asked_value(sent.get(row, []))
            tick(0)

    out["error"] = ROW[0].values(errors, out.index)
    for name, column in speech_values(heard, out.index).items():
        out[name] = column
    for name, column in cascade_values({"models_asked": asked}, out.index).items():
        out[name] = column
    for spec in config.models:
        for name, column in model_values(spec.alias, found[spec.alias], out.index).items():
            out[name] = column
    return out


def _row_answer(
    parts: Sequence[Part], answers: Sequence[np.ndarray | None], labels: Sequence[str], top_k: int
) -> dict[str, Any]:
    """One model's columns for one row from its windows' answers (None: a window without speech)."""
    spoken = [(a, p.weight) for a, p in zip(answers, parts, strict=True) if a is not None]
    windows = window_list(parts, answers, labels, NO_SPEECH) if len(parts) > 1 else None
    if not spoken:
        return {"lang": NO_SPEECH, "prob": None, "topk": None, "windows": windows}
    answer = combine([a for a, _ in spoken], [w for _, w in spoken])
    top = np.argsort(-answer, kind="stable")[: min(top_k, len(labels))]
    return {
        "lang": labels[top[0]],
        "prob": float(answer[top[0]]),
        "topk": [{"lang": labels[c], "prob": float(answer[c])} for c in top],
        "windows": windows,
    }


def _decode_and_prepare(
    pool: Any,
    uri: str,
    offset: float | None,
    duration: float | None,
    config: KernelConfig,
    models: Sequence[LidModel],
    min_samples: int,
) -> tuple[int, list[Part]]:
    """Decode one row (one window, or several of a long file), find the speech of each window and
    prepare it for every model (runs in a decode thread).

    Returns the samples decoded and the row's windows; none when the row is too short for a model.
    """
    found = pool.decode_windows(
        uri, offset, duration, config.audio, config.storage_options, config.speech.max_windows
    )
    samples = sum(len(wave) for _, wave in found)
    if len(found) == 1 and len(found[0][1]) < min_samples:
        return samples, []
    rate = config.audio.sample_rate
    parts = []
    for start, wave in found:
        heard = listen(wave, config.speech, rate)
        prepared: list[Any] | None = None
        if not heard.no_speech and len(heard.wave) >= min_samples:
            prepared = []
            for spec, model in zip(config.models, models, strict=True):
                try:
                    prepared.append(model.prepare(heard.wave))
                except Exception as exc:  # noqa: BLE001 - a clip a model cannot prepare is that row's error
                    prepared.append(model_failure(spec.alias, exc, "prepare: "))
        parts.append(Part(start, start + len(wave) / rate, heard, prepared))
    return samples, parts


def _prepared_windows(
    df: pd.DataFrame,
    config: KernelConfig,
    models: Sequence[LidModel],
    errors: list[str | None],
    tick: Callable[[int], None],
) -> Iterator[list[tuple[int, list[Part]]]]:
    """Yield groups of ``(row position, the row's windows as heard and prepared)`` for the rows
    that decoded; decode errors go into ``errors``.

    Decoding, voice activity and :meth:`~lidframe.models.LidModel.prepare` run in the decode
    threads, a group ahead of inference. A group holds :data:`BUCKETS` batches of windows with
    speech, so each model can sort them by length before cutting them into forward passes.
    """
    uris: Sequence[str] = df["audio"].tolist()
    offsets = df["offset"].to_numpy(dtype="float64") if "offset" in df else np.full(len(df), np.nan)
    durations = (
        df["duration"].to_numpy(dtype="float64") if "duration" in df else np.full(len(df), np.nan)
    )
    min_samples = max(model.min_samples for model in models)
    pool = decoder_pool(config.decode_threads)
    rate = config.audio.sample_rate
    size = config.batch_size * BUCKETS
    group: list[tuple[int, list[Part]]] = []
    spoken = 0
    with ThreadPoolExecutor(config.decode_threads, thread_name_prefix="lidframe-decode") as threads:
        pending: deque[tuple[int, Future[tuple[int, list[Part]]]]] = deque()
        nxt = 0
        try:
            while nxt < len(uris) or pending:
                while nxt < len(uris) and len(pending) < size:
                    off = None if np.isnan(offsets[nxt]) else float(offsets[nxt])
                    dur = None if np.isnan(durations[nxt]) else float(durations[nxt])
                    future = threads.submit(
                        _decode_and_prepare,
                        pool, uris[nxt], off, dur, config, models, min_samples,
                    )  # fmt: skip
                    pending.append((nxt, future))
                    nxt += 1
                row, future = pending.popleft()
                try:
                    samples, parts = future.result()
                except AudioError as exc:
                    errors[row] = str(exc)
                except DecoderUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure is one row's
                    errors[row] = f"decode_failed: {uris[row]}: {type(exc).__name__}: {exc}"
                else:
                    if parts:
                        group.append((row, parts))
                        spoken += sum(p.prepared is not None for p in parts)
                    else:
                        errors[row] = (
                            f"too_short: {uris[row]}: {samples / rate:.4f} s of audio; "
                            f"the models need at least {min_samples / rate:.3f} s"
                        )
                tick(1)
                if spoken >= size or len(group) >= 4 * size:
                    yield group
                    group, spoken = [], 0
            if group:
                yield group
        finally:
            for _, future in pending:
                future.cancel()
