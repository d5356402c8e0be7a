"""Scores by group: accuracy per speaker, source, sample rate or any other column of the rows.

Each ``by`` column makes one table (columns are grouped one at a time, not crossed), one row per
value, every row of the results in exactly one group (rows without a value in ``MISSING``):

* ``rows``: the group's rows; ``scored``: those with a language label and no ``error`` (rows
  labelled ``und`` are no language: :mod:`~lidframe.eval._detection`);
* ``{source} accuracy`` per source, over the rows that source is scored on (its label set
  applies as in the overall figures); NaN without one;
* ``und_rate``: the share of the group's rows without an error that the main source (the
  consensus when there is one) answered ``und``.

A numeric column with more than ``MAX_GROUPS`` distinct values (``seconds``, ``speech_seconds``)
is cut into ``QUANTILE_BINS`` quantile bins: as many rows in each, so every accuracy stands on a
similar number of rows, where equal-width bins of a skewed column (clip lengths) would leave most
rows in one bin and a few in the others; the groups are then the bins, lowest first. Other columns
are grouped by value, whatever their number of values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from lidframe.eval._answers import Answers
from lidframe.languages import NO_LANGUAGE

__all__ = ["MAX_GROUPS", "MISSING", "QUANTILE_BINS", "group_table", "group_values"]

MAX_GROUPS = 50
QUANTILE_BINS = 10
# The group of rows without a value in the column.
MISSING = "(missing)"


def group_values(values: pd.Series) -> tuple[pd.Series, str | None]:
    """Each row's group as text, in the order groups are listed (a categorical), and a note when
    the column was cut into quantile bins (None otherwise)."""
    note = None
    if _numeric(values) and values.nunique() > MAX_GROUPS:
        binned = pd.qcut(values.astype("float64"), QUANTILE_BINS, duplicates="drop")
        order = [str(b) for b in binned.cat.categories]
        groups = binned.astype(object).map(lambda b: MISSING if pd.isna(b) else str(b))
        note = (
            f"{values.name}: {values.nunique()} distinct values, more than {MAX_GROUPS}: "
            f"grouped into {len(order)} quantile bins"
        )
    else:
        known = values.dropna().unique()
        try:
            order = [_text(v) for v in sorted(known)]
        except TypeError:  # values of mixed types
            order = sorted(_text(v) for v in known)
        groups = values.astype(object).map(lambda v: MISSING if pd.isna(v) else _text(v))
    if (groups == MISSING).any():
        order.append(MISSING)
    categorical = pd.Categorical(groups, categories=order)
    return pd.Series(categorical, index=values.index, name=values.name), note


def _text(value: object) -> str:
    """A group's name: a whole float as an integer (8000, not 8000.0: a CSV column of integers
    with a blank reads as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def group_table(
    groups: pd.Series,
    truth: np.ndarray,
    languages: np.ndarray,
    errors: np.ndarray,
    given: Mapping[str, Answers],
    main: str,
) -> pd.DataFrame:
    """The table of one ``by`` column (:func:`group_values`' groups): indexed by group, in order.

    ``truth``: equivalence keys; ``languages``: rows with a language label (not ``und``)."""
    frame = pd.DataFrame({"group": groups.array, "rows": 1})
    frame["scored"] = languages & ~errors
    for name, a in given.items():
        said = np.asarray([x if x is not None else NO_LANGUAGE for x in a.predicted], dtype=object)
        right = (said == truth).astype("float64")
        frame[f"{name} accuracy"] = np.where(a.scored, right, np.nan)
    if main:
        und = np.array([x == NO_LANGUAGE for x in given[main].predicted], dtype="float64")
        frame["und_rate"] = np.where(errors, np.nan, und)
    table = frame.groupby("group", observed=False, sort=True).agg(
        {c: ("sum" if c in ("rows", "scored") else "mean") for c in frame.columns if c != "group"}
    )
    table["rows"] = table["rows"].astype(int)
    table["scored"] = table["scored"].astype(int)
    table.index = pd.Index([str(g) for g in table.index], name=str(groups.name))
    return table
