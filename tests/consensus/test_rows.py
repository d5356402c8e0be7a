"""Consensus policies: invariants by property-based tests, and behaviour on concrete rows."""

from __future__ import annotations

import math

import dask
import dask.dataframe as dd
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lidframe import ConfigError
from lidframe.consensus import (
    POLICIES,
    UNDETERMINED,
    ConsensusConfig,
    consensus,
    consensus_frame,
    decide,
)
from lidframe.languages import NO_EQUIVALENCE

LANGS = ["de", "en", "es", "fi", "fr", "it", "nb", "nn", "no", "pl"]


@st.composite
def topk_lists(draw):
    """A model's top-k: distinct languages with descending probabilities summing to <= 1."""
    k = draw(st.integers(1, 5))
    langs = draw(st.lists(st.sampled_from(LANGS), min_size=k, max_size=k, unique=True))
    raw = draw(st.lists(st.floats(0.01, 1.0), min_size=k + 1, max_size=k + 1))
    total = sum(raw)
    probs = sorted((r / total for r in raw[:k]), reverse=True)
    return list(zip(langs, probs, strict=True))


answers_strategy = st.dictionaries(
    st.sampled_from(["m_a", "m_b", "m_c", "m_d"]),
    st.one_of(st.none(), topk_lists()),
    min_size=1,
    max_size=4,
)
policies = st.sampled_from(POLICIES)


@settings(max_examples=300, deadline=None)
@given(answers=answers_strategy, policy=policies)
def test_model_order_does_not_matter(answers, policy):
    config = ConsensusConfig(policy=policy)
    forward = decide(answers, config)
    backward = decide(dict(reversed(list(answers.items()))), config)
    assert forward.lang == backward.lang and forward.n_agree == backward.n_agree
    assert forward.agree == backward.agree
    assert forward.method == backward.method
    assert (math.isnan(forward.prob) and math.isnan(backward.prob)) or math.isclose(
        forward.prob, backward.prob, rel_tol=1e-9, abs_tol=1e-12
    )


@settings(max_examples=300, deadline=None)
@given(topk=topk_lists(), policy=policies)
def test_single_model_consensus_is_its_answer(topk, policy):
    config = ConsensusConfig(policy=policy, equivalence=NO_EQUIVALENCE)
    decision = decide({"only": topk}, config)
    assert decision.lang == topk[0][0]
    assert decision.agree and decision.n_agree == 1
    assert decision.method == f"{policy}[1/1]"


@settings(max_examples=300, deadline=None)
@given(data=st.data(), policy=policies, n=st.integers(2, 4))
def test_unanimous_agreement_is_never_overruled(data, policy, n):
    lang = data.draw(st.sampled_from(LANGS))
    answers = {}
    for i in range(n):
        rest = [(code, p) for code, p in data.draw(topk_lists()) if code != lang]
        top = max([p for _, p in rest] + [data.draw(st.floats(0.05, 1.0))])
        total = top + sum(p for _, p in rest)
        scale = 1.0 / total if total > 1.0 else 1.0  # the shared language stays each one's top-1
        answers[f"m{i}"] = [(lang, top * scale)] + [(code, p * scale) for code, p in rest]
    if not answers:
        return
    decision = decide(answers, ConsensusConfig(policy=policy, equivalence=NO_EQUIVALENCE))
    assert decision.lang == lang
    assert decision.agree and decision.n_agree == len(answers)


@settings(max_examples=300, deadline=None)
@given(answers=answers_strategy, policy=policies, min_prob=st.floats(0.0, 1.0))
def test_outputs_are_well_formed(answers, policy, min_prob):
    decision = decide(answers, ConsensusConfig(policy=policy, min_prob=min_prob))
    answered = [a for a, t in answers.items() if t]
    assert decision.method == f"{policy}[{len(answered)}/{len(answers)}]"
    if not answered:
        assert decision.lang == UNDETERMINED and math.isnan(decision.prob)
        return
    assert 0.0 <= decision.prob <= 1.0
    assert 0 <= decision.n_agree <= len(answered)
    if decision.lang != UNDETERMINED:
        assert decision.prob >= min_prob
        if policy == "unanimous":
            assert decision.agree and decision.n_agree == len(answered)
        if policy == "majority":
            assert decision.n_agree * 2 > len(answered)


def _row(**models):
    return {alias: [(lang, p) for lang, p in topk] for alias, topk in models.items()}


def test_policies_on_a_disagreement():
    answers = _row(
        whisper=[("de", 0.5), ("nl", 0.3), ("en", 0.1)],
        ecapa=[("nl", 0.9), ("de", 0.05)],
        third=[("nl", 0.4), ("de", 0.35)],
    )
    assert decide(answers, ConsensusConfig("unanimous")).lang == UNDETERMINED
    majority = decide(answers, ConsensusConfig("majority"))
    assert (majority.lang, majority.n_agree, majority.agree) == ("nl", 2, False)
    assert majority.prob == pytest.approx((0.3 + 0.9 + 0.4) / 3)
    weighted = decide(answers, ConsensusConfig("weighted", weights={"whisper": 10.0}))
    assert weighted.lang == "de"  # a heavy enough weight carries the vote
    assert decide(answers, ConsensusConfig("product")).lang == "nl"
    assert decide(answers, ConsensusConfig("majority", min_prob=0.6)).lang == UNDETERMINED


def test_ties_break_deterministically():
    answers = _row(a=[("fr", 0.5), ("de", 0.5)], b=[("de", 0.5), ("fr", 0.5)])
    for policy in ("weighted", "product"):
        assert decide(answers, ConsensusConfig(policy)).lang == "de"  # alphabetical after all else
    assert decide(answers, ConsensusConfig("majority")).lang == UNDETERMINED


def test_equivalent_codes_agree_and_answer_with_the_group_code():
    answers = _row(whisper=[("no", 0.6), ("da", 0.3)], ecapa=[("nb", 0.7), ("sv", 0.2)])
    decision = decide(answers, ConsensusConfig("unanimous"))
    assert decision.agree and decision.lang == "no" and decision.n_agree == 2
    assert decide(answers, ConsensusConfig("unanimous", equivalence=NO_EQUIVALENCE)).lang == "und"


def test_errored_model_is_left_out_and_said_so():
    answers = {"whisper": [("fi", 0.8)], "ecapa": None}
    decision = decide(answers, ConsensusConfig("unanimous"))
    assert (decision.lang, decision.n_agree, decision.method) == ("fi", 1, "unanimous[1/2]")


def test_bad_settings():
    with pytest.raises(ConfigError, match="policy"):
        ConsensusConfig("plurality")
    with pytest.raises(ConfigError, match="min_prob"):
        ConsensusConfig(min_prob=1.5)
    with pytest.raises(ConfigError, match="weights"):
        ConsensusConfig(weights={"a": -1.0})
    with pytest.raises(ConfigError, match="temperatures"):
        ConsensusConfig(temperatures={"a": 0.0})


def _results_frame():
    def topk(*pairs):
        return [{"lang": lang, "prob": p} for lang, p in pairs]

    return pd.DataFrame(
        {
            "id": ["r0", "r1", "r2"],
            "error": [None, None, "not_found: x"],
            "whisper_base_lang": ["de", "en", None],
            "whisper_base_prob": [0.7, 0.5, float("nan")],
            "whisper_base_topk": [topk(("de", 0.7), ("nl", 0.2)), topk(("en", 0.5)), None],
            "ecapa_lang": ["de", "fr", None],
            "ecapa_prob": [0.9, 0.6, float("nan")],
            "ecapa_topk": [topk(("de", 0.9)), topk(("fr", 0.6), ("en", 0.3)), None],
        }
    )


def test_consensus_on_a_dask_dataframe_matches_meta():
    df = _results_frame()
    # (from_pandas would turn the list column into strings; results read from Parquet keep lists)
    with dask.config.set({"scheduler": "synchronous", "dataframe.convert-string": False}):
        ddf = dd.from_pandas(df, npartitions=2)
        out = consensus(ddf, ["whisper-base", "ecapa"], policy="weighted")
        computed = out.compute()
    assert dict(computed.dtypes) == dict(out._meta.dtypes)
    assert computed["lang"].tolist() == ["de", "en", "und"]
    assert computed["agree"].tolist() == [True, False, False]
    assert computed["n_agree"].tolist() == [2, 1, 0]
    assert computed["consensus_method"].tolist() == [
        "weighted[2/2]",
        "weighted[2/2]",
        "weighted[0/2]",
    ]


def test_consensus_names_a_missing_model_column():
    with pytest.raises(ConfigError, match="no column 'voxlingua_topk'"):
        consensus_frame(_results_frame(), ["voxlingua"], ConsensusConfig())
