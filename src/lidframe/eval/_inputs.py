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

__all__ = ["keys", "read_labels", "recorded_label_sets", "results_frame"]


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


def keys(values: Iterable[Any], equivalence: LanguageEquivalence) -> np.ndarray:
    """Each code as its equivalence key; ``und`` (and ``zxx``, no language:
    :func:`~lidframe.languages.label_code`) as ``und``, null as None."""
    out: list[str | None] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            code = label_code(str(v))
            out.append(code if code == NO_LANGUAGE else equivalence.key(code))
    return np.asarray(out, dtype=object)
