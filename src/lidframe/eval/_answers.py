"""What the sources answered, row by row: the predicted-language distribution, the wrong rows, and
the clip window each row was heard in.

These need no ground truth to be useful (the distribution is the main view of an unlabelled run),
and they keep the rows' identity (``id``, ``audio`` and the window), which the scores of
:mod:`lidframe.eval._metrics` drop, so that a report can list and play the rows a model got wrong.

Codes are the equivalence keys :func:`lidframe.eval._evaluate.evaluate` compares (``nb`` counts as
``no``); a row with an ``error`` has no answer and is left out of the distribution; a row a model
was not asked (a cascade) is counted as :data:`NOT_ASKED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["NOT_ASKED", "Answers", "clip_windows", "distribution", "wrong_rows"]

# The distribution's row for rows without an error where a source gave no language (a cascade
# that did not send the row to the model).
NOT_ASKED = "(not asked)"


@dataclass(frozen=True)
class Answers:
    """One source's answers over every row of the results (equivalence keys, None: no answer),
    their probabilities, and the rows it is scored on (labelled, no error, label in its set)."""

    predicted: np.ndarray
    confidence: np.ndarray
    scored: np.ndarray


def distribution(
    answers: Mapping[str, Answers], truth: np.ndarray, errors: np.ndarray
) -> pd.DataFrame:
    """How many rows got each language, per source, over the rows without an error: columns
    ``{source} rows`` and ``{source} share``, and first ``true rows`` (the labels' counts) when
    some row is labelled. Indexed by language (``und`` included), most answered by the first source
    first, then by code."""
    keep = ~errors
    columns: dict[str, pd.Series] = {}
    labelled = np.array([k is not None for k in truth], dtype=bool) & keep
    if labelled.any():
        columns["true rows"] = pd.Series(truth[labelled], dtype=object).value_counts()
    for name, a in answers.items():
        codes = [NOT_ASKED if x is None else str(x) for x in a.predicted[keep]]
        counts = pd.Series(codes, dtype=object).value_counts()
        columns[f"{name} rows"] = counts
        columns[f"{name} share"] = counts / max(int(keep.sum()), 1)
    table = pd.DataFrame(columns).fillna(0)
    if table.empty:
        return pd.DataFrame(index=pd.Index([], name="lang"))
    for column in table.columns:
        if column.endswith(" rows"):
            table[column] = table[column].astype(int)
    first = next((c for c in table.columns if c.endswith(" rows") and c != "true rows"), None)
    order = sorted(table.index, key=lambda g: (-table.loc[g, first] if first else 0, str(g)))
    table = table.loc[order]
    table.index = pd.Index([str(g) for g in order], name="lang")
    return table


def clip_windows(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's clip window in its file, ``(start, end)`` in seconds: start is ``offset`` (0 when
    absent); end is ``offset + duration`` when the row has a duration, else ``start +
    audio_seconds`` (what was decoded) when known and the row was heard in one window; NaN when
    unknown (a long file heard in several windows: its whole file is the clip)."""
    n = len(df)
    start = _floats(df, "offset", n)
    start = np.where(np.isfinite(start), start, 0.0)
    duration = _floats(df, "duration", n)
    decoded = _floats(df, "audio_seconds", n)
    several = np.zeros(n, dtype=bool)
    for column in df.columns:
        if column.endswith("_windows"):
            several |= df[column].map(_has_windows).to_numpy(dtype=bool)
    decoded = np.where(several, np.nan, decoded)
    end = np.where(np.isfinite(duration), start + duration, start + decoded)
    return start, end


def _floats(df: pd.DataFrame, column: str, n: int) -> np.ndarray:
    if column not in df.columns:
        return np.full(n, np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _has_windows(cell: object) -> bool:
    return isinstance(cell, (list, tuple, np.ndarray)) and len(cell) > 0


def wrong_rows(
    df: pd.DataFrame,
    truth: np.ndarray,
    answers: Mapping[str, Answers],
    main: str,
    judged: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every row some source is scored on and answered wrong (``und`` for no speech included),
    and every row of ``judged`` (labelled, no error) labelled ``und`` that a source did not answer
    ``und`` (a no-speech row heard as a language).

    Columns: ``id``, ``audio``, ``start`` and ``end`` (:func:`clip_windows`), ``true``, per source
    ``{source}`` (its answer) and ``{source} prob``, and ``wrong in`` (the sources wrong on the
    row, comma-separated). Rows ``main`` got wrong come first, most confident first; then the rest
    in the same order.
    """
    if not answers:
        return pd.DataFrame()
    wrong: dict[str, np.ndarray] = {}
    silent = (truth == "und") & (judged if judged is not None else False)
    for name, a in answers.items():
        said = np.asarray([x if x is not None else "und" for x in a.predicted], dtype=object)
        heard = np.array([x != "und" for x in a.predicted], dtype=bool)  # None: not "und" either
        wrong[name] = (a.scored & (said != truth)) | (silent & heard)
    any_wrong = np.any(list(wrong.values()), axis=0)
    at = np.flatnonzero(any_wrong)
    start, end = clip_windows(df.iloc[at])
    ids = df["id"].astype(str).to_numpy()[at] if "id" in df.columns else at.astype(str)
    out = pd.DataFrame(
        {
            "id": ids,
            "audio": df["audio"].astype(str).to_numpy()[at] if "audio" in df.columns else "",
            "start": start,
            "end": end,
            "true": truth[at],
        }
    )
    for name, a in answers.items():
        out[name] = a.predicted[at]
        out[f"{name} prob"] = a.confidence[at]
    out["wrong in"] = [", ".join(name for name in answers if wrong[name][i]) for i in at]
    main_wrong = wrong[main][at]
    main_prob = np.nan_to_num(answers[main].confidence[at], nan=-1.0)
    order = np.lexsort((np.arange(len(at)), -main_prob, ~main_wrong))
    return out.iloc[order].reset_index(drop=True)
