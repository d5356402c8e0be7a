"""No speech and speech seconds in an evaluation.

A row is *no speech* when voice activity found less than ``--min-speech`` seconds of speech in it:
it has no ``error`` and every model's language is ``und`` (with no probability and no top-k). On a
labelled row that is an answer, and a wrong one: it counts against accuracy and against the recall
of the row's language like any other miss, where a row with an ``error`` has no answer and is
counted apart. The consensus of a no-speech row is ``und`` too; a consensus ``und`` because the
models disagree is not no speech (some model answered a language).

The figures here need the speech columns (:data:`lidframe.columns.SPEECH`). Results written before
them have none, and then every figure is omitted (None, or an empty table); when voice activity did
not run (``--no-vad``: ``speech_seconds`` all null) the no-speech and speech figures are omitted and
the audio seconds kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NO_SPEECH",
    "has_speech_columns",
    "no_speech_by_language",
    "no_speech_rows",
    "no_speech_summary",
    "speech_by_language",
    "speech_overview",
    "speech_record",
    "speech_text",
    "vad_ran",
    "worst_no_speech",
]

# Every model's language on a row without speech (lidframe.kernel.NO_SPEECH).
NO_SPEECH = "und"
# The speech columns (lidframe.columns.SPEECH).
_NAMES = ("audio_seconds", "speech_seconds")


def has_speech_columns(df: pd.DataFrame) -> bool:
    return all(name in df.columns for name in _NAMES)


def vad_ran(df: pd.DataFrame) -> bool:
    """Whether the results say how much speech their rows have (voice activity ran)."""
    return has_speech_columns(df) and bool(df["speech_seconds"].notna().any())


def no_speech_rows(df: pd.DataFrame, aliases: Sequence[str], errors: np.ndarray) -> np.ndarray:
    """Rows answered ``und`` for no speech: no error, and every model in ``aliases`` says ``und``."""
    if not aliases:
        return np.zeros(len(df), dtype=bool)
    und = [df[f"{a}_lang"].eq(NO_SPEECH).fillna(False).to_numpy(dtype=bool) for a in aliases]
    return np.all(und, axis=0) & ~errors


def _seconds(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    return df.loc[keep, list(_NAMES)].astype("float64").reset_index(drop=True)


def speech_overview(
    df: pd.DataFrame, errors: np.ndarray, no_speech: np.ndarray
) -> dict[str, Any] | None:
    """Over every decoded row (no ``error``): how many are no speech, and the audio and speech
    seconds (total, and median a row); None without the speech columns."""
    if not has_speech_columns(df):
        return None
    decoded = ~errors
    seconds = _seconds(df, decoded)
    out: dict[str, Any] = {"decoded": int(decoded.sum())}
    measured = vad_ran(df)
    if measured:
        found = int((no_speech & decoded).sum())
        out["no_speech"] = found
        out["no_speech_rate"] = found / out["decoded"] if out["decoded"] else math.nan
    for name in _NAMES if measured else ("audio_seconds",):
        out[name] = float(seconds[name].sum(min_count=1))
        out[f"median_{name}"] = float(seconds[name].median())
    return out


def speech_by_language(
    df: pd.DataFrame,
    truth: np.ndarray,
    labelled: np.ndarray,
    errors: np.ndarray,
    no_speech: np.ndarray,
) -> pd.DataFrame:
    """Per labelled language, over its decoded rows: rows, no-speech rows and their share, and the
    median audio and speech seconds a row. Sorted by rows (descending) then code; empty without
    the speech columns."""
    if not has_speech_columns(df):
        return pd.DataFrame()
    keep = labelled & ~errors
    frame = _seconds(df, keep).assign(lang=truth[keep], no_speech=no_speech[keep])
    table = frame.groupby("lang").agg(
        rows=("no_speech", "size"),
        no_speech=("no_speech", "sum"),
        no_speech_rate=("no_speech", "mean"),
        median_audio_seconds=("audio_seconds", "median"),
        median_speech_seconds=("speech_seconds", "median"),
    )
    if not vad_ran(df):
        table = table.drop(columns=["no_speech", "no_speech_rate", "median_speech_seconds"])
    return (
        table.reset_index().sort_values(["rows", "lang"], ascending=[False, True]).set_index("lang")
    )


def no_speech_by_language(truth: np.ndarray, no_speech: np.ndarray, langs: pd.Index) -> np.ndarray:
    """How many rows of each of ``langs`` (scored rows' ``truth``) are no speech."""
    counts = pd.Series(truth[no_speech], dtype=object).value_counts()
    return counts.reindex(langs, fill_value=0).to_numpy(dtype=int)


def no_speech_summary(no_speech: int | None, scored: int) -> dict[str, Any]:
    """A source's summary entries: its no-speech rows and their share of its scored rows (none
    when the results do not say)."""
    if no_speech is None:
        return {}
    return {"no_speech": no_speech, "no_speech_rate": no_speech / scored if scored else math.nan}


def speech_record(
    overview: dict[str, Any] | None, by_language: pd.DataFrame, clean: Callable[[Any], Any]
) -> dict[str, Any] | None:
    """:func:`speech_overview` and :func:`speech_by_language` as JSON-able values (``clean`` turns
    each number into one: NaN to None)."""
    if overview is None:
        return None
    languages = by_language.to_dict("index").items()
    return {
        **{k: clean(v) for k, v in overview.items()},
        "per_language": {str(g): {k: clean(v) for k, v in r.items()} for g, r in languages},
    }


def _s(x: float) -> str:
    return "\u2013" if math.isnan(x) else f"{x:.1f} s"


def speech_text(overview: dict[str, Any]) -> str:
    """One line: the no-speech rows and the audio and speech seconds of :func:`speech_overview`."""
    parts = []
    if "no_speech" in overview:
        rate = overview["no_speech_rate"]
        share = "\u2013" if math.isnan(rate) else f"{rate:.1%}"
        parts.append(
            f"no speech: {overview['no_speech']} of {overview['decoded']} decoded rows ({share})"
        )
    for name in _NAMES:
        if name in overview:
            parts.append(
                f"{name.split('_')[0]} {_s(overview[name])} "
                f"(median {_s(overview[f'median_{name}'])} a row)"
            )
    return "; ".join(parts)


def worst_no_speech(by_language: pd.DataFrame, n: int = 5) -> str:
    """The ``n`` labelled languages with the highest no-speech rate (some no speech), as text."""
    if "no_speech_rate" not in by_language.columns:
        return ""
    some = by_language[by_language["no_speech"] > 0].reset_index()
    top = some.sort_values(["no_speech_rate", "lang"], ascending=[False, True]).head(n)
    return ", ".join(
        f"{r.lang} {r.no_speech_rate:.1%} ({r.no_speech} of {r.rows})" for r in top.itertuples()
    )
