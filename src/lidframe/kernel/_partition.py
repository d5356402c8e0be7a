"""One partition: decode -> listen -> prepare -> forward -> the row's answer, in typed columns.

This is the only place where audio meets models. Rows are decoded, heard and prepared a group ahead
(``_prepare``); each model then runs on the group's clips with speech, in forward passes of similar
lengths; a clip without enough speech is answered ``und`` by every model without running any. A long
file without a ``duration`` is heard in several windows spread over it, each like a clip of its own
(``_windows`` makes the row's answer from theirs). With a cascade, each model after the first hears
only the rows the ones before left unsure.

One bad clip costs one row, never its group or partition:

* a clip that cannot be decoded, or is shorter than a model can take (``too_short``), gets an
  ``error`` value and null model columns before it reaches any model; a clip one model cannot
  ``prepare`` gets ``model_failed: {alias}: prepare: ...`` and keeps the other models' answers;
* when a model raises on a batch, the batch is split in halves until the clips it fails on are
  alone; each of those gets ``model_failed: {alias}: ...`` and the others keep their answers; a
  model that fails a known-good clip too fails the partition with :class:`ModelError`; CUDA out of
  memory makes the passes smaller instead (``_faults``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lidframe.columns import ROW, asked_value, cascade_values, model_values, speech_values
from lidframe.consensus import topk_pairs
from lidframe.kernel._config import NO_SPEECH, KernelConfig
from lidframe.kernel._faults import PassSize, predict_clips
from lidframe.kernel._prepare import prepared_groups
from lidframe.kernel._windows import HeardWindow, code_switch, combine, switches, window_list
from lidframe.models import load_model
from lidframe.models.registry import adopt_factories

__all__ = ["identify_partition"]


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
    heard["sample_rate"] = [None] * n  # the file's own rate, for every row that decoded
    cascade, consensus = config.cascade, config.consensus
    asked: list[str | None] = [None if cascade is None else ""] * n
    tick = progress or (lambda rows: None)

    def fail(row: int, message: str) -> None:
        errors[row] = message if errors[row] is None else f"{errors[row]}; {message}"

    if n:
        adopt_factories(config.families)
        models = [load_model(spec) for spec in config.models]
        allowed = [
            config.candidates(spec.alias, model.labels)
            for spec, model in zip(config.models, models, strict=True)
        ]
        sizes = config.sizes()
        passes = [PassSize(sizes.batch_size, sizes.batch_seconds) for _ in models]
        for group in prepared_groups(df, config, sizes, models, errors, tick, heard["sample_rate"]):
            switched: dict[int, list[bool | None]] = {}
            for row, windows in group:
                heard["audio_seconds"][row] = sum(w.heard.audio_seconds for w in windows)
                if config.speech.vad:
                    heard["speech_seconds"][row] = sum(w.heard.speech_seconds or 0 for w in windows)
            # Rows with speech that the models so far have not settled (all of them without a
            # cascade); a row without speech reaches no model and is answered ``und`` by each.
            open_rows = {row for row, windows in group if any(w.prepared for w in windows)}
            sent: dict[int, list[str]] = {row: [] for row in open_rows}
            for m, (spec, model) in enumerate(zip(config.models, models, strict=True)):
                asking = set(open_rows)
                items = [
                    (row, k, window.prepared[m], config.speech.context_for(window.weight))
                    for row, windows in group
                    if row in asking
                    for k, window in enumerate(windows)
                    if window.prepared is not None
                ]
                per_window: dict[tuple[int, int], np.ndarray | str] = {}
                # One call per least encoder context (short speech may get the full 30 s).
                for context in dict.fromkeys(c for *_, c in items):
                    chosen = [it for it in items if it[3] == context]
                    answers = predict_clips(
                        spec.alias,
                        model,
                        [f for _, _, f, _ in chosen if not isinstance(f, str)],
                        passes[m],
                        context,
                    )
                    given = iter(answers)
                    for row, k, features, _ in chosen:
                        per_window[row, k] = features if isinstance(features, str) else next(given)
                for row, windows in group:
                    if cascade is not None and row in sent and row not in asking:
                        continue  # settled by the models before: not sent to this one
                    if row in sent:
                        sent[row].append(spec.alias)
                    got = [per_window.get((row, k)) for k in range(len(windows))]
                    failure = next((a for a in got if isinstance(a, str)), None)
                    if failure is not None:
                        fail(row, failure)
                        continue
                    spoken = [
                        _restricted(a, allowed[m]) if isinstance(a, np.ndarray) else None
                        for a in got
                    ]
                    values = _row_answer(windows, spoken, model.labels, config.top_k, allowed[m])
                    for name, value in values.items():
                        found[spec.alias][name][row] = value
                    if len(windows) > 1:
                        switched.setdefault(row, []).append(switches(windows, values["windows"]))
                if cascade is not None and consensus is not None:
                    so_far = [s.alias for s in config.models[: m + 1]]
                    open_rows -= {
                        row
                        for row in asking
                        if cascade.settled(
                            {a: topk_pairs(found[a]["topk"][row]) for a in so_far}, consensus
                        )
                    }
            for row, said in switched.items():
                heard["code_switch"][row] = code_switch(said)
            if cascade is not None:
                for row, _ in group:
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
    windows: Sequence[HeardWindow],
    answers: Sequence[np.ndarray | None],
    labels: Sequence[str],
    top_k: int,
    allowed: Sequence[int] | None = None,
) -> dict[str, Any]:
    """One model's columns for one row from its windows' answers (None: a window without speech);
    ``allowed``: the label positions its top-k may name (candidate languages), None: all."""
    spoken = [(a, w.weight) for a, w in zip(answers, windows, strict=True) if a is not None]
    listed = window_list(windows, answers, labels, NO_SPEECH) if len(windows) > 1 else None
    if not spoken:
        return {"lang": NO_SPEECH, "prob": None, "topk": None, "windows": listed}
    answer = combine([a for a, _ in spoken], [w for _, w in spoken])
    among = np.arange(len(labels)) if allowed is None else np.asarray(allowed)
    top = among[np.argsort(-answer[among], kind="stable")][:top_k]
    return {
        "lang": labels[top[0]],
        "prob": float(answer[top[0]]),
        "topk": [{"lang": labels[c], "prob": float(answer[c])} for c in top],
        "windows": listed,
    }


def _restricted(answer: np.ndarray, allowed: Sequence[int] | None) -> np.ndarray:
    """``answer`` with the probability of every label outside ``allowed`` moved onto the allowed
    ones in proportion (renormalised over them; evenly when the model gave them none); ``answer``
    itself when every label is allowed."""
    if allowed is None:
        return answer
    index = np.asarray(allowed)
    kept = answer[index].astype(np.float64)
    total = kept.sum()
    out = np.zeros(len(answer), dtype=np.float32)
    out[index] = kept / total if total > 0 else 1.0 / len(index)
    return out
