"""Reduce per-model language columns to consensus columns. Pure functions over dataframes.

Agreement between models is the confidence proxy: single models are often confidently wrong, and
differently so. Each model contributes its ``{alias}_topk`` list (a truncated distribution); codes are
compared through a :class:`~lidframe.languages.LanguageEquivalence` (Norwegian ``no``/``nb``/``nn``
count as one language by default), and the answer is written in the group's representative code.

Policies (``policy=``):

``unanimous``  every model that answered has the same top-1 language, else ``und``
``majority``   more than half of the models that answered have the same top-1, else ``und``
``weighted``   the weighted sum of the models' distributions (the "sum rule"); weights default to 1
``product``    the weighted product of the distributions, renormalised over the candidates
               (a naive-Bayes combination; ``weights`` act as exponents)

Top-k lists leave out the tail of each distribution; a language missing from a model's list gets an
even share of that model's left-over mass, never more than the model's k-th probability, so a
language every model ranks first is never outscored by one they rank lower (unanimity is never
overruled). Ties break deterministically: more top-1 votes, then the higher single-model
probability, then the code in alphabetical order. The model order never matters.

Columns added: ``lang`` (consensus code or ``und``), ``agree`` (all answering models' top-1 are the
same language), ``n_agree`` (models whose top-1 is ``lang``), ``consensus_prob`` (the policy's
support for the best candidate, in [0, 1], also when ``lang`` is ``und``) and ``consensus_method``
(``policy[answered/total]``: a row where a model errored says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import pandas as pd

from lidframe.columns import (
    CONSENSUS,
    asked_aliases,
    consensus_names,
    model_columns,
    with_consensus_meta,
)
from lidframe.consensus_inputs import topk_pairs
from lidframe.consensus_settings import (
    DEFAULT_LABEL_COUNT,
    LOG_FLOOR,
    POLICIES,
    UNDETERMINED,
    ConsensusConfig,
)
from lidframe.errors import ConfigError
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence

__all__ = [
    "CONSENSUS_COLUMNS",
    "FRAME_OPS_ROWS",
    "POLICIES",
    "UNDETERMINED",
    "ConsensusConfig",
    "consensus",
    "consensus_config",
    "consensus_frame",
    "consensus_meta",
    "consensus_rows",
    "decide",
    "supports",
]

CONSENSUS_COLUMNS = consensus_names()
# From this many rows a pandas partition's consensus is computed by frame operations.
FRAME_OPS_ROWS = 2000


@dataclass(frozen=True)
class Decision:
    """The consensus of one row."""

    lang: str
    agree: bool
    n_agree: int
    prob: float
    method: str


def supports(
    answers: Mapping[str, Sequence[tuple[str, float]] | None], config: ConsensusConfig
) -> dict[str, float]:
    """The policy's support for every candidate language of one row (empty if no model answered)."""
    scored = _score(answers, config)
    return dict(scored.support) if scored else {}


@dataclass(frozen=True)
class _Scored:
    aliases: list[str]
    top1: dict[str, str]
    candidates: list[str]
    votes: dict[str, int]
    best_single: dict[str, float]
    support: dict[str, float]


def _score(
    answers: Mapping[str, Sequence[tuple[str, float]] | None], config: ConsensusConfig
) -> _Scored | None:
    # A model answered when its list has an entry with a language and a finite probability.
    aliases = sorted(a for a, topk in answers.items() if topk and _first(topk) is not None)
    if not aliases:
        return None
    dists = {a: _distribution(a, answers[a] or (), config) for a in aliases}
    # A model's answer is the first entry of its list (its own tie-breaking), in its group's code.
    top1 = {a: config.equivalence.key(str(_first(answers[a] or ()))) for a in aliases}
    candidates = sorted({lang for d in dists.values() for lang in d})
    votes = {c: sum(1 for a in aliases if top1[a] == c) for c in candidates}
    best_single = {c: max(dists[a].get(c, 0.0) for a in aliases) for c in candidates}
    floors = {a: _floor(a, answers[a] or (), dists[a], config) for a in aliases}

    def p(alias: str, lang: str) -> float:
        return dists[alias].get(lang, floors[alias])

    weight = {a: float(config.weights.get(a, 1.0)) for a in aliases}
    if config.policy == "product":
        logs = {
            c: sum(weight[a] * math.log(max(p(a, c), LOG_FLOOR)) for a in aliases)
            for c in candidates
        }
        top = max(logs.values())
        norm = sum(math.exp(v - top) for v in logs.values())
        support = {c: math.exp(v - top) / norm for c, v in logs.items()}
    else:
        wsum = sum(weight.values()) or 1.0
        support = {c: sum(weight[a] * p(a, c) for a in aliases) / wsum for c in candidates}
    return _Scored(aliases, top1, candidates, votes, best_single, support)


def decide(
    answers: Mapping[str, Sequence[tuple[str, float]] | None], config: ConsensusConfig
) -> Decision:
    """Combine one row's answers: alias -> top-k ``(lang, prob)`` list, or ``None`` if it errored."""
    scored = _score(answers, config)
    n_answered = len(scored.aliases) if scored else 0
    method = f"{config.policy}[{n_answered}/{len(answers)}]"
    if scored is None:
        return Decision(UNDETERMINED, False, 0, math.nan, method)
    support, votes, best_single = scored.support, scored.votes, scored.best_single
    candidates = scored.candidates
    best = max(candidates, key=lambda c: (round(support[c], 12), votes[c], best_single[c], _neg(c)))
    agree = len(set(scored.top1.values())) == 1
    lang = best
    if config.policy == "unanimous" and not agree:
        lang = UNDETERMINED
    if config.policy == "majority":
        best = max(candidates, key=lambda c: (votes[c], support[c], best_single[c], _neg(c)))
        lang = best if votes[best] * 2 > n_answered else UNDETERMINED
    prob = float(min(1.0, max(0.0, support[best])))
    if prob < config.min_prob:
        lang = UNDETERMINED
    n_agree = votes.get(lang, 0) if lang != UNDETERMINED else 0
    return Decision(lang, agree, n_agree, prob, method)


def _first(topk: Sequence[tuple[str, float]]) -> str | None:
    """The model's answer: its list's first entry with a language and a finite probability."""
    return next(
        (lang for lang, prob in topk if lang is not None and _usable(prob)),
        None,
    )


def _usable(prob: float | None) -> bool:
    return prob is not None and math.isfinite(prob)


def _neg(code: str) -> tuple[int, ...]:
    """Sort key that makes ``max`` prefer the alphabetically first code."""
    return tuple(-ord(ch) for ch in code)


def _distribution(
    alias: str, topk: Sequence[tuple[str, float]], config: ConsensusConfig
) -> dict[str, float]:
    """A model's top-k as ``{group code: prob}``, temperature applied.

    A group's probability within one model is that of its most probable member (not the sum), so a
    model's top-1 stays its own answer and unanimity can be checked on the answers themselves.
    """
    raw = [
        (lang, max(float(prob), 0.0))
        for lang, prob in topk
        if lang is not None and prob is not None and math.isfinite(prob)
    ]
    temperature = float(config.temperatures.get(alias, 1.0))
    if temperature != 1.0 and raw:
        rest = max(0.0, 1.0 - sum(p for _, p in raw))
        scaled = [(lang, p ** (1.0 / temperature)) for lang, p in raw]
        norm = sum(p for _, p in scaled) + rest ** (1.0 / temperature)
        raw = [(lang, p / norm) for lang, p in scaled]
    out: dict[str, float] = {}
    for lang, prob in raw:
        key = config.equivalence.key(lang)
        out[key] = max(out.get(key, 0.0), prob)
    return out


def _floor(
    alias: str,
    topk: Sequence[tuple[str, float]],
    dist: Mapping[str, float],
    config: ConsensusConfig,
) -> float:
    """Probability given to a language missing from ``alias``'s top-k list."""
    if not dist:
        return 0.0
    n_labels = int(config.label_counts.get(alias, DEFAULT_LABEL_COUNT))
    missing = max(1, n_labels - len(topk))
    residual = max(
        0.0, 1.0 - sum(max(float(p), 0.0) for _, p in topk if p is not None and math.isfinite(p))
    )
    return min(residual / missing, min(dist.values()))


def consensus_frame(
    df: Any, aliases: Sequence[str], config: ConsensusConfig, *, backend: str | None = None
) -> Any:
    """Add the consensus columns to one partition holding ``{alias}_topk`` columns.

    Two implementations give the same columns (``tests/test_consensus_frames.py``): frame
    operations (:func:`lidframe.consensus_frames.consensus_columns`) and :func:`decide` row by row
    (:func:`consensus_rows`). A cuDF partition always takes the frame operations and gives a cuDF
    frame. A pandas one takes them from :data:`FRAME_OPS_ROWS` rows up, where they are faster
    (about 3x at 100,000 rows); below, their fixed cost (tens of milliseconds) loses to the loop
    (``benchmarks/consensus.py``). ``backend="cudf"`` computes a pandas partition's consensus on
    the GPU and hands back a pandas frame (what a worker of a ``backend="cudf"`` run does), from
    the same :data:`FRAME_OPS_ROWS` up: a small partition's copies and fixed cost would outweigh
    it (the frame operations' fixed cost on the GPU is not measured yet, and is not smaller).
    """
    from lidframe.consensus_frames import consensus_columns
    from lidframe.dataframes import is_cudf, to_cudf

    topk_cols = _topk_columns(df, aliases)
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


def consensus_rows(
    df: pd.DataFrame, aliases: Sequence[str], config: ConsensusConfig
) -> pd.DataFrame:
    """:func:`consensus_frame` computed row by row with :func:`decide` (pandas only): the reference
    the frame operations are tested against."""
    topk_cols = _topk_columns(df, aliases)
    # A cascaded row's consensus is over the models it was sent to (lidframe.cascade).
    asked = df["models_asked"].tolist() if "models_asked" in df.columns else [None] * len(df)
    decisions = []
    for sent, *row in zip(asked, *(df[c].tolist() for c in topk_cols), strict=True):
        answers = {alias: topk_pairs(topk) for alias, topk in zip(aliases, row, strict=True)}
        if isinstance(sent, str) and sent:
            answers = {a: answers[a] for a in asked_aliases(sent, aliases)}
        decisions.append(decide(answers, config))
    out = df.copy()
    values: dict[str, list[Any]] = {
        "lang": [d.lang for d in decisions],
        "agree": [d.agree for d in decisions],
        "n_agree": [d.n_agree for d in decisions],
        "consensus_prob": [d.prob for d in decisions],
        "consensus_method": [d.method for d in decisions],
    }
    for column in CONSENSUS:
        out[column.name] = column.values(values[column.name], out.index)
    return out


def _topk_columns(df: Any, aliases: Sequence[str]) -> list[str]:
    """The ``{alias}_topk`` column of each alias; a missing one is a :class:`ConfigError`."""
    if not aliases:
        raise ConfigError("consensus needs at least one model")
    columns = []
    for alias in aliases:
        col = model_columns(alias)[2]
        if col not in df.columns:
            raise ConfigError(f"no column {col!r}: is {alias!r} one of the models of this run?")
        columns.append(col)
    return columns


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

    ``calibration`` supplies the policy, weights and temperatures fitted by ``lidframe calibrate``:
    the path of its JSON file, or any object with those three attributes
    (:class:`~lidframe.consensus_inputs.FittedConsensus`, e.g. a loaded
    :class:`~lidframe.calibration.Calibration`). The consensus never imports the calibration module.
    """
    from lidframe.columns import column_alias
    from lidframe.consensus_inputs import fitted_settings

    if calibration is not None:
        if weights or temperatures:
            raise ConfigError("pass either a calibration or weights/temperatures, not both")
        policy, weights, temperatures = fitted_settings(calibration)
    return ConsensusConfig(
        policy=policy,
        min_prob=min_prob,
        weights={column_alias(k): v for k, v in (weights or {}).items()},
        temperatures={column_alias(k): v for k, v in (temperatures or {}).items()},
        label_counts={column_alias(k): v for k, v in (label_counts or {}).items()},
        equivalence=equivalence,
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
    partitions reduced by frame operations on the GPU (:mod:`lidframe.consensus_frames`).
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
    _topk_columns(ddf._meta, aliases)  # validates the columns before any work
    return ddf.map_partitions(
        consensus_frame, aliases, config, meta=consensus_meta(ddf._meta), enforce_metadata=False
    )
