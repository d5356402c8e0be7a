"""The consensus as frame operations: :func:`lidframe.consensus.decide` for a whole partition at once,
on pandas or cuDF.

Only the API pandas and cuDF share is used (explode, merge, groupby, sort_values, drop_duplicates,
arithmetic, ``where``): no Python function applied per row, no loop over rows (the loops below run
over the models). The same code therefore runs on a pandas partition on a CPU and on a cuDF one on
a GPU, and :func:`~lidframe.consensus.decide` stays the reference it is tested against
(``tests/consensus/test_frames.py``): the same columns, probabilities to 1e-9.

How a partition is reduced:

1. each model's ``{alias}_topk`` cells are exploded to long rows ``(row, pos, lang, prob)``
   (``pos``: the position in the exploded order, i.e. list order within a row);
2. codes become their equivalence keys by a merge with a small ``(lang, key)`` frame;
3. per model, temperature (``p ** (1/T)`` renormalised with the left-over mass), the maximum per
   ``(row, key)``, the model's top-1 key (its first entry), and its floor (an even share of the
   left-over mass, never above its smallest listed probability);
4. each row's candidates (every key some counted model listed) are crossed with the models by one
   merge per model; a missing pair takes the model's floor; supports are accumulated model by
   model in alias order, as ``decide`` sums them (so sums agree to the last bit);
5. the winner per row is the first after ``sort_values`` on the tie-breaking keys and
   ``drop_duplicates`` on the row;
6. with a final map (``config.final``, :mod:`~lidframe.consensus._final`), the winner's support
   becomes its calibrated probability (a final temperature needs each row's normaliser: one
   groupby over the candidates).

A model is counted for a row when its list has an entry with a language and a finite probability
(its answer is the first such entry), and (for a cascaded row, ``models_asked``) when the row
reached it; an errored model's null list is not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lidframe.columns import CONSENSUS, model_columns
from lidframe.consensus._final import REST_TOLERANCE
from lidframe.consensus._settings import (
    DEFAULT_LABEL_COUNT,
    LOG_FLOOR,
    UNDETERMINED,
    ConsensusConfig,
)
from lidframe.dataframes import frame_library, is_cudf

__all__ = ["consensus_columns"]

# What pandas' object ``{alias}_topk`` cells (lists of {lang, prob} dicts) are read as. Probabilities
# as float64: a float32 value converts exactly, and a Python float stays what ``decide`` sees.
_CELLS = pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float64())]))


def consensus_columns(df: Any, aliases: Sequence[str], config: ConsensusConfig) -> Any:
    """The consensus columns (``lang``, ``agree``, ``n_agree``, ``consensus_prob``,
    ``consensus_method``) of a partition holding ``{alias}_topk`` columns, as a frame of the same
    library (pandas or cuDF) and index as ``df``. The columns are assumed present.

    Every intermediate value lives in a column of the frame it belongs to (cuDF's merges do not
    keep row order, so nothing relies on it; the result is sorted by row at the end).
    """
    xd = frame_library(df)
    n = len(df)
    models = sorted(set(aliases))
    rows = xd.DataFrame({"row": np.arange(n, dtype="int64")})
    sent = _models_asked(df, xd)
    for i, alias in enumerate(models):
        # A cascaded row counts only the models it reached (lidframe.columns.asked_aliases).
        reached = ("," + sent + ",").str.contains(f",{alias},", regex=False).fillna(False)
        rows[f"asked{i}"] = (sent == "") | reached
    rows["total"] = 0
    rows["answered"] = 0
    rows["wsum"] = 0.0
    rows["first"] = ""
    eq = _equivalence_frame(config, xd)
    dists = []
    for i, alias in enumerate(models):
        stats, dist = _model_answers(df[model_columns(alias)[2]], alias, config, eq, xd, n)
        rows = rows.merge(stats, on="row", how="left")
        asked = rows[f"asked{i}"]
        counted = rows["top1"].notna() & asked
        rows[f"counted{i}"] = counted
        rows[f"top1_{i}"] = rows["top1"].where(counted, "")
        rows[f"floor{i}"] = rows["floor"].where(counted, 0.0)
        rows["total"] = rows["total"] + asked.astype("int64")
        rows["answered"] = rows["answered"] + counted.astype("int64")
        # Summed in alias order, as decide() sums them (0 + w is w exactly).
        rows["wsum"] = rows["wsum"] + counted.astype("float64") * float(
            config.weights.get(alias, 1.0)
        )
        rows["first"] = rows["first"].where(rows["first"] != "", rows[f"top1_{i}"])
        rows = rows.drop(columns=["top1", "floor"])
        kept = rows.loc[counted, ["row"]]
        dists.append(dist.merge(kept, on="row", how="inner").rename(columns={"p": f"p{i}"}))
    agree = rows["answered"] > 0
    for i in range(len(models)):
        top1 = rows[f"top1_{i}"]
        agree = agree & ((top1 == "") | (top1 == rows["first"]))
    rows["agree"] = agree
    rows["wsum"] = rows["wsum"].where(rows["wsum"] != 0.0, 1.0)

    per_model = [
        "row",
        *(f"{c}{i}" for i in range(len(models)) for c in ("counted", "top1_", "floor")),
    ]
    cand = xd.concat([d[["row", "key"]] for d in dists]).drop_duplicates()
    cand = cand.merge(rows[[*per_model, "wsum"]], on="row", how="left")
    cand["support"] = 0.0
    cand["best"] = 0.0
    cand["votes"] = 0
    for i, alias in enumerate(models):
        cand = cand.merge(dists[i], on=["row", "key"], how="left")
        raw = cand[f"p{i}"]
        counted = cand[f"counted{i}"]
        p = raw.where(raw.notna(), cand[f"floor{i}"])
        weight = float(config.weights.get(alias, 1.0))
        term = (
            np.log(p.clip(lower=LOG_FLOOR)) * weight if config.policy == "product" else p * weight
        )
        cand["support"] = cand["support"] + term.where(counted, 0.0)
        filled = raw.fillna(0.0)
        cand["best"] = cand["best"].where(cand["best"] >= filled, filled)
        hit = (cand["key"] == cand[f"top1_{i}"]) & counted
        cand["votes"] = cand["votes"] + hit.astype("int64")
    cand = cand[["row", "key", "wsum", "support", "best", "votes"]]
    if config.policy == "product":
        top = cand.groupby("row")["support"].max().reset_index().rename(columns={"support": "top"})
        cand = cand.merge(top, on="row", how="left")
        cand["e"] = np.exp(cand["support"] - cand["top"])
        norm = cand.groupby("row")["e"].sum().reset_index().rename(columns={"e": "norm"})
        cand = cand.merge(norm, on="row", how="left")
        cand["support"] = cand["e"] / cand["norm"]
    else:
        cand["support"] = cand["support"] / cand["wsum"]
    return _decide(rows, cand, config, df, xd)


def _decide(rows: Any, cand: Any, config: ConsensusConfig, df: Any, xd: Any) -> Any:
    """Each row's winner by ``decide``'s tie-breaking, then its consensus columns."""
    if config.policy == "majority":
        order = ["row", "votes", "support", "best", "key"]
    else:
        cand["rounded"] = cand["support"].round(12)
        order = ["row", "rounded", "votes", "best", "key"]
    win = cand.sort_values(order, ascending=[True, False, False, False, True])
    win = win.drop_duplicates(subset="row", keep="first")[["row", "key", "support", "votes"]]
    if config.final is not None and config.final.kind == "temperature":
        win = win.merge(_scaled(cand, config.final.power()), on="row", how="left")
    out = rows[["row", "total", "answered", "agree"]].merge(win, on="row", how="left")
    out = out.sort_values("row").reset_index(drop=True)
    answered = out["answered"]
    prob = out["support"].clip(lower=0.0, upper=1.0)
    if config.final is not None:  # calibrated: the answer stays, its probability changes
        prob = config.final.top(prob, out["scaled"] if "scaled" in out.columns else None)
    votes = out["votes"].fillna(0)
    lang = out["key"].fillna(UNDETERMINED)
    if config.policy == "majority":
        lang = lang.where(votes * 2 > answered, UNDETERMINED)
    if config.policy == "unanimous":
        lang = lang.where(out["agree"], UNDETERMINED)
    lang = lang.where(~(prob < config.min_prob).fillna(False), UNDETERMINED)
    method = (
        f"{config.policy}["
        + answered.astype("int64").astype("str")
        + "/"
        + out["total"].astype("int64").astype("str")
        + "]"
    )
    values = {
        "lang": lang,
        "agree": out["agree"],
        "n_agree": votes.where(lang != UNDETERMINED, 0),
        "consensus_prob": prob,
        "consensus_method": method,
    }
    result = xd.DataFrame({c.name: _typed(values[c.name], c.dtype, xd) for c in CONSENSUS})
    result.index = df.index
    return result


def _scaled(cand: Any, power: float) -> Any:
    """Per row, the final temperature's normaliser: the sum over its candidates of
    ``support ** power`` plus the mass they leave out (``1 - sum``) to the same power."""
    cand = cand.assign(positive=cand["support"].clip(lower=0.0))
    cand["powered"] = cand["positive"] ** power
    sums = cand.groupby("row")[["positive", "powered"]].sum().reset_index()
    rest = 1.0 - sums["positive"]
    rest = rest.where(rest > REST_TOLERANCE, 0.0)
    sums["scaled"] = sums["powered"] + rest**power
    return sums[["row", "scaled"]]


def _model_answers(
    cells: Any, alias: str, config: ConsensusConfig, eq: Any, xd: Any, n: int
) -> tuple[Any, Any]:
    """One model's answers: per row ``(row, top1, floor)`` (top1 null when it listed no language)
    and its distribution ``(row, key, p)``, temperature applied, max per equivalence key."""
    lists = _as_lists(cells, xd).reset_index(drop=True)
    frame = xd.DataFrame({"row": np.arange(n, dtype="int64")})
    frame["items"] = lists.list.len().fillna(0).astype("int64")
    frame["cell"] = lists
    long = frame[["row", "cell"]].explode("cell").reset_index(drop=True)
    long["pos"] = long.index  # explode keeps list order: the position orders a row's entries
    long = long[long["cell"].notna()]
    entries = xd.DataFrame({"row": long["row"], "pos": long["pos"]})
    entries["lang"] = long["cell"].struct.field("lang")
    prob = long["cell"].struct.field("prob").astype("float64")
    finite = (prob.notna() & (prob.abs() != np.inf)).fillna(False)
    entries["finite"] = finite
    entries["p"] = prob.clip(lower=0.0).where(finite, 0.0)
    # The left-over mass is 1 - the listed probabilities, entries without a language included.
    listed = entries.groupby("row")["p"].sum().reset_index().rename(columns={"p": "listed"})
    named = entries[entries["lang"].notna()]
    named = named.assign(lang=named["lang"].astype("str")).merge(eq, on="lang", how="left")
    named["key"] = named["key"].where(named["key"].notna(), named["lang"])
    # Its answer is the first entry with a language and a finite probability (none: not counted).
    top1 = named[named["finite"]].sort_values("pos").drop_duplicates(subset="row", keep="first")
    top1 = top1[["row", "key"]].rename(columns={"key": "top1"})
    raw = named[named["finite"]][["row", "key", "p"]]
    temperature = float(config.temperatures.get(alias, 1.0))
    if temperature != 1.0:
        mass = raw.groupby("row")["p"].sum().reset_index().rename(columns={"p": "mass"})
        raw = raw.merge(mass, on="row", how="left")
        raw["p"] = raw["p"] ** (1.0 / temperature)
        scaled = raw.groupby("row")["p"].sum().reset_index().rename(columns={"p": "scaled"})
        raw = raw.merge(scaled, on="row", how="left")
        rest = (1.0 - raw["mass"]).clip(lower=0.0) ** (1.0 / temperature)
        raw["p"] = raw["p"] / (raw["scaled"] + rest)
        raw = raw[["row", "key", "p"]]
    dist = raw.groupby(["row", "key"])["p"].max().reset_index()
    smallest = dist.groupby("row")["p"].min().reset_index().rename(columns={"p": "smallest"})
    stats = frame[["row", "items"]].merge(top1, on="row", how="left")
    stats = stats.merge(listed, on="row", how="left").merge(smallest, on="row", how="left")
    labels = int(config.label_counts.get(alias, DEFAULT_LABEL_COUNT))
    missing = (labels - stats["items"]).clip(lower=1).astype("float64")
    share = (1.0 - stats["listed"].fillna(0.0)).clip(lower=0.0) / missing
    floor = share.where(share <= stats["smallest"], stats["smallest"])
    stats["floor"] = floor.where(stats["smallest"].notna(), 0.0)
    return stats[["row", "top1", "floor"]], dist


def _as_lists(cells: Any, xd: Any) -> Any:
    """``{alias}_topk`` cells as a list-of-struct column: cuDF's and Arrow-backed pandas ones as
    they are; pandas' object cells (lists or arrays of dicts, None, NaN) converted by Arrow."""
    if is_cudf(cells):
        return cells
    import pandas as pd

    if isinstance(cells.dtype, pd.ArrowDtype) and pa.types.is_list(cells.dtype.pyarrow_dtype):
        return cells
    values = pa.array(cells.to_numpy(dtype=object), type=_CELLS, from_pandas=True)
    return pd.Series(values, dtype=pd.ArrowDtype(_CELLS), index=cells.index)


def _models_asked(df: Any, xd: Any) -> Any:
    """Each row's ``models_asked`` as a string (empty: not cascaded, or no such column)."""
    n = len(df)
    if "models_asked" not in df.columns:
        return xd.Series([""] * n, dtype="str")
    sent = df["models_asked"].reset_index(drop=True)
    return sent.where(sent.notna(), "").astype("str")


def _equivalence_frame(config: ConsensusConfig, xd: Any) -> Any:
    """``(lang, key)`` for every code in a group of the equivalence."""
    pairs = [(code, group[0]) for group in config.equivalence.groups for code in group]
    return xd.DataFrame(
        {
            "lang": xd.Series([c for c, _ in pairs], dtype="str"),
            "key": xd.Series([k for _, k in pairs], dtype="str"),
        }
    )


def _typed(values: Any, dtype: str, xd: Any) -> Any:
    """``values`` in a declared consensus dtype (cuDF: its own string dtype for ``string``)."""
    values = values.reset_index(drop=True)
    if dtype == "string":
        return values.astype("str") if xd.__name__ == "cudf" else values.astype("string")
    return values.astype(dtype)
