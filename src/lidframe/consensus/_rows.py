"""The consensus of one row (:func:`decide`): the reference the frame operations are tested against.

A model answered a row when its list has an entry with a language and a finite probability; its
answer is the first such entry (its own tie-breaking), in its group's code. Top-k lists leave out
the tail of each distribution; a language missing from a model's list gets an even share of that
model's left-over mass, never more than the model's k-th probability, so a language every model
ranks first is never outscored by one they rank lower (unanimity is never overruled). Ties break
deterministically: more top-1 votes, then the higher single-model probability, then the code in
alphabetical order. The model order never matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lidframe.columns import CONSENSUS, asked_aliases, model_columns
from lidframe.consensus._settings import (
    DEFAULT_LABEL_COUNT,
    LOG_FLOOR,
    UNDETERMINED,
    ConsensusConfig,
)
from lidframe.errors import ConfigError

__all__ = ["Decision", "consensus_rows", "decide", "supports", "topk_columns", "topk_pairs"]


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
    if config.final is not None:  # calibrated: the answer stays, its probability changes
        prob = config.final.prob(prob, support.values())
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


def consensus_rows(
    df: pd.DataFrame, aliases: Sequence[str], config: ConsensusConfig
) -> pd.DataFrame:
    """:func:`consensus_frame` computed row by row with :func:`decide` (pandas only): the reference
    the frame operations are tested against."""
    topk_cols = topk_columns(df, aliases)
    # A cascaded row's consensus is over the models it was sent to (see Cascade).
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


def topk_pairs(topk: Any) -> list[tuple[str, float]] | None:
    """One ``{alias}_topk`` cell as ``(lang, prob)`` pairs; None when the model has no answer."""
    if not isinstance(topk, (list, tuple, np.ndarray)):
        return None  # None, NaN or pd.NA: the model has no answer for this row
    pairs = [
        (item["lang"], math.nan if item["prob"] is None else float(item["prob"])) for item in topk
    ]
    return pairs or None


def topk_columns(df: Any, aliases: Sequence[str]) -> list[str]:
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
