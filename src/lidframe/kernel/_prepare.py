"""Decode -> listen -> prepare, in the decode threads, a group of rows ahead of the forward passes.

Clips are decoded in killable decoder processes (:func:`lidframe.audio.decoder_pool`), and voice
activity (:func:`lidframe.speech.listen`) and each model's :meth:`~lidframe.models.LidModel.prepare`
run on the decoded waveform in the same decode thread, so reading, decoding and feature extraction
overlap the models' forward passes, and a hung or crashing decoder costs one row. Every requested
model hears the same speech, at its own :attr:`~lidframe.models.LidModel.sample_rate`: clips are
decoded at ``AudioConfig.sample_rate`` and the speech resampled once per other rate a model takes
(a model at the decoded rate gets the waveform itself, no copy). Each decoded row's file's own
sample rate is reported too (the ``sample_rate`` column).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from lidframe.audio import DecoderUnavailable, decoder_pool, resample
from lidframe.errors import AudioError
from lidframe.kernel._config import BUCKETS, KernelConfig, Sizes
from lidframe.kernel._faults import model_failure
from lidframe.kernel._windows import HeardWindow
from lidframe.models import LidModel
from lidframe.speech import listen

__all__ = ["prepared_groups"]


def _decode_and_prepare(
    pool: Any,
    uri: str,
    offset: float | None,
    duration: float | None,
    config: KernelConfig,
    models: Sequence[LidModel],
    min_samples: int,
) -> tuple[int, int, list[HeardWindow]]:
    """Decode one row (one window, or several of a long file), find the speech of each window and
    prepare it for every model, at the model's sample rate (runs in a decode thread).

    Returns the samples decoded, the file's own sample rate and the row's windows; none when the
    row is too short for a model.
    """
    decoded = pool.decode_clip(
        uri, offset, duration, config.audio, config.storage_options, config.speech.max_windows
    )
    found = decoded.windows
    samples = sum(len(wave) for _, wave in found)
    if len(found) == 1 and len(found[0][1]) < min_samples:
        return samples, decoded.native_rate, []
    rate = config.audio.sample_rate
    windows = []
    for start, wave in found:
        heard = listen(wave, config.speech, rate)
        prepared: list[Any] | None = None
        if not heard.no_speech and len(heard.wave) >= min_samples:
            prepared = []
            # The heard speech at each rate a model takes: resampled once per rate, and the
            # waveform itself (no copy) for the models that take the rate it was decoded at.
            waves = {rate: heard.wave}
            for spec, model in zip(config.models, models, strict=True):
                try:
                    if model.sample_rate not in waves:
                        waves[model.sample_rate] = resample(heard.wave, rate, model.sample_rate)
                    prepared.append(model.prepare(waves[model.sample_rate]))
                except Exception as exc:  # noqa: BLE001 - a clip a model cannot prepare is that row's error
                    prepared.append(model_failure(spec.alias, exc, "prepare: "))
        windows.append(HeardWindow(start, start + len(wave) / rate, heard, prepared))
    return samples, decoded.native_rate, windows


def _min_samples(models: Sequence[LidModel], rate: int) -> int:
    """Fewest samples at the decoded ``rate`` a clip needs so that, at its own sample rate, each
    model gets at least its :attr:`~lidframe.models.LidModel.min_samples`."""
    return max(math.ceil(m.min_samples * rate / m.sample_rate) for m in models)


def prepared_groups(
    df: pd.DataFrame,
    config: KernelConfig,
    sizes: Sizes,
    models: Sequence[LidModel],
    errors: list[str | None],
    tick: Callable[[int], None],
    rates: list[Any] | None = None,
) -> Iterator[list[tuple[int, list[HeardWindow]]]]:
    """Yield groups of ``(row position, the row's windows as heard and prepared)`` for the rows
    that decoded; decode errors go into ``errors``, and each decoded row's file's own sample rate
    into ``rates`` when given (too short rows' too).

    Decoding, voice activity and :meth:`~lidframe.models.LidModel.prepare` run in the decode
    threads, a group ahead of inference. A group holds :data:`BUCKETS` batches of windows with
    speech, so each model can sort them by length before cutting them into forward passes.
    """
    uris: Sequence[str] = df["audio"].tolist()
    offsets = df["offset"].to_numpy(dtype="float64") if "offset" in df else np.full(len(df), np.nan)
    durations = (
        df["duration"].to_numpy(dtype="float64") if "duration" in df else np.full(len(df), np.nan)
    )
    pool = decoder_pool(sizes.decode_threads)
    rate = config.audio.sample_rate
    min_samples = _min_samples(models, rate)
    size = sizes.batch_size * BUCKETS
    group: list[tuple[int, list[HeardWindow]]] = []
    spoken = 0
    with ThreadPoolExecutor(sizes.decode_threads, thread_name_prefix="lidframe-decode") as threads:
        pending: deque[tuple[int, Future[tuple[int, int, list[HeardWindow]]]]] = deque()
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
                    samples, native_rate, windows = future.result()
                except AudioError as exc:
                    errors[row] = str(exc)
                except DecoderUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure is one row's
                    errors[row] = f"decode_failed: {uris[row]}: {type(exc).__name__}: {exc}"
                else:
                    if rates is not None:
                        rates[row] = native_rate
                    if windows:
                        group.append((row, windows))
                        spoken += sum(w.prepared is not None for w in windows)
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
