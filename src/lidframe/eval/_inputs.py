"""What an evaluation reads: a run's results, its ground truth, and codes as comparable keys.

Results are a results folder (any fsspec URL) or a frame with the same columns; ground truth is the
results' own ``label`` column or a labelled manifest joined by ``id``. Codes become the keys of a
:class:`~lidframe.languages.LanguageEquivalence` (``und`` stays ``und``, ``zxx`` becomes it, null
stays None), so that scores, distributions and wrong rows all compare the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError
from lidframe.languages import NO_LANGUAGE, LanguageEquivalence, label_code

__all__ = ["keys", "read_labels", "recorded_label_sets", "results_frame", "shown_names"]


def recorded_label_sets(results: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The models' label sets a run recorded with its results (read by :func:`results_frame`), by alias.

    Every run writes them into its parts' metadata; results from elsewhere have none, and then every
    label counts as one the model could answer.
    """
    from lidframe.results import LABELS_ATTR

    return dict(results.attrs.get(LABELS_ATTR) or {})


def results_frame(
    results: str | os.PathLike[str] | pd.DataFrame, options: Mapping[str, Any]
) -> pd.DataFrame:
    """A results folder read into pandas; a frame as it is, a cuDF one copied to the host."""
    from lidframe.dataframes import is_cudf, to_pandas
    from lidframe.results import read_parts

    if is_cudf(results):
        return to_pandas(results)  # language codes and calibration are host work
    if isinstance(results, pd.DataFrame):
        return results

    return read_parts(os.fspath(results), options)


def read_labels(
    labels: str | os.PathLike[str] | pd.DataFrame, options: Mapping[str, Any]
) -> pd.Series:
    """``id -> canonical label`` from a labelled manifest (any format :func:`read_manifest` reads)."""
    if isinstance(labels, pd.DataFrame):
        frame = labels
    else:
        import dask

        from lidframe.manifest import read_manifest

        with dask.config.set(scheduler="synchronous"):
            frame = read_manifest(
                labels, partition_rows=1 << 30, storage_options=options, backend="pandas"
            ).compute()
    if "label" not in frame.columns or "id" not in frame.columns:
        raise ConfigError(
            f"labels {labels if not isinstance(labels, pd.DataFrame) else ''}: need 'id' and 'label' columns"
        )
    return frame.set_index("id")["label"]


def keys(
    values: Iterable[Any],
    equivalence: LanguageEquivalence,
    names: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Each code as its equivalence key; ``und`` (and ``zxx``, no language:
    :func:`~lidframe.languages.label_code`) as ``und``, null as None. ``names``: a key shown as
    the codes the data holds for it (:func:`shown_names`)."""
    out: list[str | None] = []
    names = names or {}
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            code = label_code(str(v))
            key = code if code == NO_LANGUAGE else equivalence.key(code)
            out.append(names.get(key, key))
    return np.asarray(out, dtype=object)


def shown_names(
    columns: Iterable[pd.Series], equivalence: LanguageEquivalence
) -> tuple[dict[str, str], str | None]:
    """How each language shows in an evaluation: as the code the data holds (``nn``, not the
    equivalence key ``no`` a user filtering the results would not find), or, where an
    equivalence merged several codes the data holds, those codes joined (``nb+nn``). Returns
    ``{key: name}`` and a note naming the merges (None without any)."""
    seen: dict[str, set[str]] = {}
    for column in columns:
        for v in column.dropna().unique():
            code = label_code(str(v))
            if code != NO_LANGUAGE:
                seen.setdefault(equivalence.key(code), set()).add(code)
    names = {key: "+".join(sorted(codes)) for key, codes in seen.items()}
    merged = sorted(name for name in names.values() if "+" in name)
    note = (
        "codes counted as one language (an equivalence of lidframe.languages): " + ", ".join(merged)
        if merged
        else None
    )
    return names, note
