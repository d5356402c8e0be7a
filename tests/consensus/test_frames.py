"""The consensus as frame operations (lidframe.consensus._frames) against decide() row by row.

Random partitions (1-4 models, top-k 1-5, equivalent codes, ties, null/NaN/empty lists, entries
without a language or probability, weights including 0, temperatures, label counts, every policy,
min_prob, cascaded rows, final maps of the probability) must give the columns ``consensus_rows``
gives, probabilities to 1e-9.
The same frames on cuDF (``@pytest.mark.gpu``) must give what pandas gives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lidframe.columns import CONSENSUS
from lidframe.consensus import (
    FRAME_OPS_ROWS,
    POLICIES,
    ConsensusConfig,
    FinalMap,
    consensus_frame,
    consensus_meta,
    consensus_rows,
)
from lidframe.consensus._frames import consensus_columns
from lidframe.languages import DEFAULT_EQUIVALENCE, NO_EQUIVALENCE

LANGS = ["de", "en", "fr", "nb", "nn", "no", "pl", "sv"]
ALIASES = ["m_a", "m_b", "m_c", "m_d"]
# Probabilities that tie often, and ones that do not.
TIED = [0.0, 0.1, 0.2, 0.25, 0.4, 0.5]
CELLS = pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float64())]))
# Final maps of the consensus probability (issue 24): none, temperatures, an isotonic map.
FINALS = [
    None,
    None,
    FinalMap("temperature", temperature=0.6),
    FinalMap("temperature", temperature=2.5),
    FinalMap("isotonic", x=(0.2, 0.5, 0.9), y=(0.1, 0.3, 0.95)),
]


@st.composite
def topk_cells(draw):
    """One ``{alias}_topk`` cell: a list (or array, as Parquet gives back) of {lang, prob}, or no
    answer (None, NaN, an empty list). Any entry, the first too, may lack a language or have a NaN
    or null probability (what ``decide`` skips: a list without a usable entry is no answer)."""
    kind = draw(st.sampled_from(["list", "list", "list", "array", "none", "nan", "empty"]))
    if kind == "none":
        return None
    if kind == "nan":
        return float("nan")
    if kind == "empty":
        return []
    k = draw(st.integers(1, 5))
    langs = draw(st.lists(st.sampled_from(LANGS), min_size=k, max_size=k, unique=True))
    if draw(st.booleans()):
        probs = sorted(draw(st.lists(st.sampled_from(TIED), min_size=k, max_size=k)), reverse=True)
    else:
        raw = draw(st.lists(st.floats(0.001, 1.0), min_size=k + 1, max_size=k + 1))
        probs = sorted((r / sum(raw) for r in raw[:k]), reverse=True)
    items = [{"lang": lang, "prob": p} for lang, p in zip(langs, probs, strict=True)]
    for item in items:
        flaw = draw(st.sampled_from([None, None, None, None, None, "lang", "prob", "null"]))
        if flaw == "lang":
            item["lang"] = None
        elif flaw == "prob":
            item["prob"] = float("nan")
        elif flaw == "null":
            item["prob"] = None
    return np.array(items, dtype=object) if kind == "array" else items


@st.composite
def partitions(draw):
    """A partition with 1-4 models' topk columns (maybe a ``models_asked`` column) and a config."""
    aliases = draw(st.lists(st.sampled_from(ALIASES), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(0, 8))
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)]}, index=np.arange(n) * 3 + 7)
    for alias in aliases:
        frame[f"{alias}_topk"] = pd.Series(
            [draw(topk_cells()) for _ in range(n)], index=frame.index, dtype=object
        )
    if draw(st.booleans()):
        choices = [None, "", "zz", *aliases, ",".join(aliases[:2]), ",".join(reversed(aliases))]
        asked = [draw(st.sampled_from(choices)) for _ in range(n)]
        frame["models_asked"] = pd.array(asked, dtype="string")
    per_alias = st.fixed_dictionaries
    config = ConsensusConfig(
        policy=draw(st.sampled_from(POLICIES)),
        min_prob=draw(st.sampled_from([0.0, 0.0, 0.3, 0.5, 0.9])),
        weights=draw(
            per_alias({a: st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.7]) for a in aliases})
        ),
        temperatures=draw(
            per_alias({a: st.sampled_from([0.5, 1.0, 1.0, 1.7, 3.0]) for a in aliases})
        ),
        label_counts=draw(per_alias({a: st.sampled_from([1, 3, 5, 99, 107]) for a in aliases})),
        equivalence=draw(st.sampled_from([DEFAULT_EQUIVALENCE, NO_EQUIVALENCE])),
        final=draw(st.sampled_from(FINALS)),
    )
    return frame, aliases, config


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_index_equal(got.index, want.index)
    assert list(got.columns) == list(want.columns)
    for name in want.columns:
        g, w = got[name], want[name]
        if name.endswith("_topk"):
            continue  # the input, handed through
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        if name == "consensus_prob":
            gv, wv = g.to_numpy(dtype=float), w.to_numpy(dtype=float)
            assert np.array_equal(np.isnan(gv), np.isnan(wv)), name
            assert np.allclose(gv, wv, rtol=0, atol=1e-9, equal_nan=True), (name, gv, wv)
        else:
            assert g.tolist() == w.tolist(), (name, g.tolist(), w.tolist())


def _by_frames(frame: pd.DataFrame, aliases, config) -> pd.DataFrame:
    """``frame`` with the consensus columns of the frame operations, whatever its size."""
    out = frame.copy()
    columns = consensus_columns(frame, aliases, config)
    for c in CONSENSUS:
        out[c.name] = columns[c.name]
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=partitions())
def test_frame_consensus_equals_decide_row_by_row(case):
    frame, aliases, config = case
    _assert_same(_by_frames(frame, aliases, config), consensus_rows(frame, aliases, config))


def test_large_partitions_take_the_frame_operations_with_the_same_answers():
    """From FRAME_OPS_ROWS rows consensus_frame computes by frames; the answers stay decide's."""
    rng = np.random.default_rng(3)
    n = FRAME_OPS_ROWS + 7
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for alias in ("a", "b", "c"):
        picks = rng.integers(0, len(LANGS), size=(n, 3))
        probs = -np.sort(-rng.dirichlet(np.ones(4), size=n)[:, :3], axis=1)
        pairs = [list(zip(picks[r], probs[r], strict=True))[: 1 + r % 3] for r in range(n)]
        cells = [
            [{"lang": LANGS[p], "prob": float(q)} for p, q in pairs[r]] if r % 17 else None
            for r in range(n)
        ]
        frame[f"{alias}_topk"] = pd.Series(cells, index=frame.index, dtype=object)
    for policy in POLICIES:
        config = ConsensusConfig(policy, weights={"b": 2.0}, temperatures={"c": 1.5})
        got = consensus_frame(frame, ["a", "b", "c"], config)
        _assert_same(got, consensus_rows(frame, ["a", "b", "c"], config))
        assert got["lang"].nunique() > 3


def test_policies_and_ties_on_fixed_rows():
    def topk(*pairs):
        return [{"lang": lang, "prob": p} for lang, p in pairs]

    frame = pd.DataFrame(
        {
            "a_topk": [topk(("fr", 0.5), ("de", 0.5)), topk(("no", 0.6)), None],
            "b_topk": [topk(("de", 0.5), ("fr", 0.5)), topk(("nb", 0.7)), []],
        }
    )
    weighted = consensus_frame(frame, ["a", "b"], ConsensusConfig("weighted"))
    assert weighted["lang"].tolist() == ["de", "no", "und"]  # alphabetical after all else
    assert weighted["n_agree"].tolist() == [1, 2, 0]
    assert weighted["agree"].tolist() == [False, True, False]
    assert math.isnan(weighted["consensus_prob"].iloc[2])
    majority = consensus_frame(frame, ["a", "b"], ConsensusConfig("majority"))
    assert majority["lang"].tolist() == ["und", "no", "und"]
    assert majority["consensus_method"].tolist() == ["majority[2/2]"] * 2 + ["majority[0/2]"]


def test_lists_without_a_usable_entry_are_no_answer_in_both():
    """A list whose entries all lack a language or a finite probability is no answer (it used to
    stop ``decide`` with StopIteration); the model's answer is its first usable entry."""
    frame = pd.DataFrame(
        {
            "a_topk": [
                [{"lang": None, "prob": 0.5}],
                [{"lang": "en", "prob": float("nan")}],
                [{"lang": "en", "prob": None}, {"lang": "fr", "prob": 0.3}],
                [{"lang": "en", "prob": None}],
            ],
            "b_topk": [
                [{"lang": "de", "prob": 0.7}],
                [{"lang": "de", "prob": None}],
                [{"lang": None, "prob": None}],
                None,
            ],
        }
    )
    for policy in POLICIES:
        config = ConsensusConfig(policy)
        rows = consensus_rows(frame, ["a", "b"], config)
        _assert_same(_by_frames(frame, ["a", "b"], config), rows)
        assert rows["lang"].tolist() == ["de", "und", "fr", "und"]
        assert rows["consensus_method"].tolist() == [f"{policy}[{k}/2]" for k in (1, 0, 1, 0)]
        assert rows["agree"].tolist() == [True, False, True, False]


def test_arrow_cells_and_empty_partitions_match():
    """Cells already Arrow lists (Parquet read with Arrow dtypes) and an empty partition (Dask's
    meta) give what object cells give, in the declared dtypes."""
    frame = pd.DataFrame(
        {
            "a_topk": [[{"lang": "en", "prob": 0.75}], None],
            "b_topk": [[{"lang": "en", "prob": 0.5}, {"lang": "de", "prob": 0.25}], None],
        }
    )
    config = ConsensusConfig("product")
    arrow = frame.copy()
    schema = pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float32())]))
    for name in ("a_topk", "b_topk"):
        cells = pa.array(frame[name].tolist(), type=schema)
        arrow[name] = pd.Series(cells, dtype=pd.ArrowDtype(schema))
    _assert_same(_by_frames(arrow, ["a", "b"], config), consensus_rows(frame, ["a", "b"], config))
    empty = frame.iloc[:0]
    got = _by_frames(empty, ["a", "b"], config)
    assert dict(got.dtypes) == dict(consensus_meta(empty).dtypes)
    assert list(consensus_columns(empty, ["a", "b"], config).columns) == [c.name for c in CONSENSUS]


@pytest.fixture(scope="module")
def cudf():
    """The cudf module; the test skips where it does not import (no GPU, no lidframe[gpu])."""
    return pytest.importorskip("cudf")


@pytest.mark.gpu
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=partitions())
def test_cudf_frame_consensus_equals_pandas(cudf, case):
    frame, aliases, config = case
    inputs = frame.drop(columns="id")
    for name in inputs.columns:
        if name.endswith("_topk"):  # object cells as Arrow lists, which cuDF takes over as they are
            cells = pa.array(inputs[name].to_numpy(dtype=object), type=CELLS, from_pandas=True)
            inputs[name] = pd.Series(cells, dtype=pd.ArrowDtype(cells.type), index=inputs.index)
    on_gpu = cudf.from_pandas(inputs)
    got = consensus_columns(on_gpu, aliases, config)
    assert type(got).__module__.startswith("cudf")
    want = consensus_columns(inputs, aliases, config)
    host = got.to_pandas().astype({c.name: c.dtype for c in CONSENSUS})
    _assert_same(host, want)
    # a pandas partition whose consensus a GPU worker computes (run with backend="cudf")
    _assert_same(consensus_frame(frame, aliases, config, backend="cudf")[list(want.columns)], want)
