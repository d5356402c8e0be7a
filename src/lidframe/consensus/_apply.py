"""The consensus applied to frames: one partition (:func:`consensus_frame`), a lazy Dask frame
(:func:`consensus`), and the settings users give (:func:`consensus_config`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd

from lidframe.columns import CONSENSUS, consensus_names, with_consensus_meta
from lidframe.consensus._calibration import load_calibration
from lidframe.consensus._frames import consensus_columns
from lidframe.consensus._rows import consensus_rows, topk_columns
from lidframe.consensus._settings import ConsensusConfig
from lidframe.errors import ConfigError
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence

__all__ = [
    "CONSENSUS_COLUMNS",
    "FRAME_OPS_ROWS",
    "consensus",
    "consensus_config",
    "consensus_frame",
    "consensus_meta",
]

CONSENSUS_COLUMNS = consensus_names()


# From this many rows a pandas partition's consensus is computed by frame operations. Measured
# (``benchmarks/consensus.py``, ``benchmarks/RESULTS.md``): their fixed cost is about 70 ms a
# partition, so at 128 rows they run at 0.11x the row loop, at 1,000 rows 0.6x, at 3,000 rows 1.5x
# and at 100,000 rows 3.2-3.7x.
FRAME_OPS_ROWS = 2000


def consensus_frame(
    df: Any, aliases: Sequence[str], config: ConsensusConfig, *, backend: str | None = None
) -> Any:
    """Add the consensus columns to one partition holding ``{alias}_topk`` columns.

    Two implementations give the same columns: frame operations (``_frames``) and
    :func:`~lidframe.consensus.decide` row by row (:func:`~lidframe.consensus.consensus_rows`). A
    cuDF partition always takes the frame operations and gives a cuDF frame. A pandas one takes them
    from :data:`FRAME_OPS_ROWS` rows up, where they are faster; below, their fixed cost loses to the
    loop. ``backend="cudf"`` computes a pandas partition's consensus on
    the GPU and hands back a pandas frame (what a worker of a ``backend="cudf"`` run does), from
    the same :data:`FRAME_OPS_ROWS` up: a small partition's copies and fixed cost would outweigh
    it (the frame operations' fixed cost on the GPU is not measured yet, and is not smaller).
    """
    from lidframe.dataframes import is_cudf, to_cudf

    topk_cols = topk_columns(df, aliases)
    if backend == "cudf" and not is_cudf(df) and len(df) >= FRAME_OPS_ROWS:
        inputs = [c for c in ("models_asked", *topk_cols) if c in df.columns]
        columns = consensus_columns(to_cudf(df[inputs]), aliases, config).to_pandas()
        columns = columns.astype({c.name: c.dtype for c in CONSENSUS})
    elif is_cudf(df) or len(df) >= FRAME_OPS_ROWS:
        columns = consensus_columns(df, aliases, config)
    else:
        return consensus_rows(df, aliases, config)
    out = df.copy()
    for column in CONSENSUS:
        out[column.name] = columns[column.name]
    return out


def consensus_meta(meta: Any) -> Any:
    """``meta`` with the consensus columns appended (a cuDF ``meta`` gives a cuDF one)."""
    from lidframe.dataframes import is_cudf, to_cudf

    if is_cudf(meta):
        return to_cudf(with_consensus_meta(meta.to_pandas()))
    return with_consensus_meta(meta)


def consensus_config(
    *,
    policy: str = "majority",
    min_prob: float = 0.0,
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
    label_counts: Mapping[str, int] | None = None,
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
    calibration: Any = None,
) -> ConsensusConfig:
    """A :class:`ConsensusConfig` from user-facing settings (model names or aliases as keys).

    ``calibration`` supplies the policy, weights, temperatures and final map fitted by ``lidframe
    calibrate``: the path of its JSON file, or a :class:`~lidframe.Calibration` (or any object
    with ``policy``, ``weights`` and ``temperatures``, and optionally ``final``). With a final map
    ``consensus_prob`` is calibrated: the probability that ``lang`` (or, for a row answered
    ``und`` by ``unanimous``/``majority``, the best candidate) is right, as measured on the
    labelled rows it was fitted on.
    """
    from lidframe.columns import column_alias

    final = None
    if calibration is not None:
        if weights or temperatures:
            raise ConfigError("pass either a calibration or weights/temperatures, not both")
        fitted = (
            load_calibration(calibration)
            if isinstance(calibration, str | os.PathLike)
            else calibration
        )
        policy, weights, temperatures = fitted.policy, fitted.weights, fitted.temperatures
        final = getattr(fitted, "final", None)
    return ConsensusConfig(
        policy=policy,
        min_prob=min_prob,
        weights={column_alias(k): v for k, v in (weights or {}).items()},
        temperatures={column_alias(k): v for k, v in (temperatures or {}).items()},
        label_counts={column_alias(k): v for k, v in (label_counts or {}).items()},
        equivalence=equivalence,
        final=final,
    )


def consensus(
    ddf: dd.DataFrame,
    models: Sequence[str] | None = None,
    *,
    policy: str = "majority",
    min_prob: float = 0.0,
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
    label_counts: Mapping[str, int] | None = None,
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
    calibration: Any = None,
) -> dd.DataFrame:
    """Add consensus columns to a result dataframe (lazy). ``models``: names or aliases; default all.

    Settings as in :func:`consensus_config`. A dask-cuDF ``ddf`` gives a dask-cuDF frame, its
    partitions reduced by frame operations on the GPU (``_frames``).
    """
    from lidframe.columns import column_alias

    config = consensus_config(
        policy=policy,
        min_prob=min_prob,
        weights=weights,
        temperatures=temperatures,
        label_counts=label_counts,
        equivalence=equivalence,
        calibration=calibration,
    )
    if models is None:
        aliases = [c.removesuffix("_topk") for c in ddf.columns if c.endswith("_topk")]
    else:
        aliases = [column_alias(m) for m in models]
    topk_columns(ddf._meta, aliases)  # validates the columns before any work
    return ddf.map_partitions(
        consensus_frame, aliases, config, meta=consensus_meta(ddf._meta), enforce_metadata=False
    )
