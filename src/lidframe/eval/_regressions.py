"""Regressions between two runs: paired McNemar tests per source, overall and per language.

The two runs are scored on the same labelled rows (paired by ``id``: rows scored in both). For each
source (model or consensus) present in both, ``b`` counts rows A got right and B got wrong, ``c`` the
reverse; McNemar's test asks whether ``b`` and ``c`` differ by more than chance. The exact two-sided
binomial test is used up to 10,000 discordant rows, the chi-square test with continuity correction
beyond. Per-language p-values are Holm-corrected within each source (many languages, many tests).
A *regression* is a drop in accuracy (``c < b``) with a (corrected) p-value below ``alpha``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError
from lidframe.eval._evaluate import Evaluation, evaluate

__all__ = ["Comparison", "compare", "compare_results", "mcnemar_p"]

_EXACT_UP_TO = 10_000


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided p-value of McNemar's test for ``b`` and ``c`` discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    if n <= _EXACT_UP_TO:
        k = min(b, c)
        # P(X <= k) for X ~ Binomial(n, 1/2), in log space, doubled and capped at 1
        logs = [
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)
        ]
        top = max(logs)
        tail = math.exp(top + math.log(sum(math.exp(x - top) for x in logs)) - n * math.log(2))
        return min(1.0, 2.0 * tail)
    chi2 = (abs(b - c) - 1.0) ** 2 / n
    return math.erfc(math.sqrt(chi2 / 2.0))


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 0.0
    m = len(pvalues)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    """Per source: overall and per-language changes, with paired tests."""

    overall: pd.DataFrame  # index source
    per_language: pd.DataFrame  # columns source, lang, ...
    alpha: float
    # The baseline and the new run, when known: named first in the text.
    runs: tuple[str, str] | None = None

    @property
    def regressions(self) -> pd.DataFrame:
        """Overall and per-language rows that got significantly worse."""
        over = self.overall[self.overall["regression"]].reset_index().assign(lang="(all)")
        lang = self.per_language[self.per_language["regression"]]
        return pd.concat([over, lang], ignore_index=True)[
            ["source", "lang", "rows", "accuracy_a", "accuracy_b", "b", "c", "p"]
        ]

    @property
    def regressed(self) -> bool:
        return bool(len(self.regressions))

    def __str__(self) -> str:
        fmt = {"accuracy_a": "{:.3f}", "accuracy_b": "{:.3f}", "delta": "{:+.3f}", "p": "{:.3g}"}
        table = self.overall.copy()
        for col, f in fmt.items():
            table[col] = table[col].map(f.format)
        lines = [f"A: {self.runs[0]}", f"B: {self.runs[1]}"] if self.runs else []
        lines += [f"paired rows per source, McNemar, alpha {self.alpha}", table.to_string()]
        regs = self.regressions
        if len(regs):
            lines.append(f"\n{len(regs)} significant regression(s):")
            lines.append(regs.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
        else:
            lines.append("\nno significant regression")
        return "\n".join(lines)


def _outcomes(ev: Evaluation, source: str) -> pd.DataFrame:
    rows = ev.sources[source].rows
    return rows.set_index("id")[["truth", "correct"]]


def compare(a: Evaluation, b: Evaluation, *, alpha: float = 0.05) -> Comparison:
    """Compare run ``b`` against run ``a`` (the baseline) on the rows both scored."""
    overall: list[dict[str, Any]] = []
    per_language: list[dict[str, Any]] = []
    for source in [s for s in a.sources if s in b.sources]:
        joined = pd.merge(
            _outcomes(a, source),
            _outcomes(b, source),
            left_index=True,
            right_index=True,
            suffixes=("_a", "_b"),
        )
        # The same label shows as the codes each run's data holds for it ("nb" in one run,
        # "nb+no" in another where a model answered "no"): the same truth shares a code.
        same = [
            bool(set(str(x).split("+")) & set(str(y).split("+")))
            for x, y in zip(joined["truth_a"], joined["truth_b"], strict=True)
        ]
        joined = joined[np.asarray(same, dtype=bool)]
        ra, rb = joined["correct_a"].to_numpy(bool), joined["correct_b"].to_numpy(bool)
        overall.append(_row(source, None, ra, rb))
        langs = []
        for lang, group in joined.groupby("truth_a", sort=True):
            langs.append(
                _row(
                    source,
                    str(lang),
                    group["correct_a"].to_numpy(bool),
                    group["correct_b"].to_numpy(bool),
                )
            )
        for row, p in zip(langs, _holm([r["p_raw"] for r in langs]), strict=True):
            row["p"] = p
        per_language.extend(langs)
    over = pd.DataFrame(overall)
    over["p"] = over["p_raw"] if len(over) else []
    for table in (over, per := pd.DataFrame(per_language)):
        if len(table):
            table["regression"] = (table["c"] < table["b"]) & (table["p"] < alpha)
    if not len(per):
        per = pd.DataFrame(columns=["source", "lang", "rows", "regression"])
    return Comparison(overall=over.set_index("source"), per_language=per, alpha=alpha)


def compare_results(
    run_a: str | os.PathLike[str],
    run_b: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    alpha: float = 0.05,
    storage_options: Mapping[str, Any] | None = None,
) -> Comparison:
    """Evaluate two results folders against the same ground truth (``labels``, default their label
    columns) and :func:`compare` run ``run_b`` against the baseline ``run_a``; the text of the
    result names both runs, and ``.regressed`` says whether B got significantly worse."""

    def scored(run: str | os.PathLike[str]) -> Evaluation:
        ev = evaluate(run, labels=labels, storage_options=storage_options)
        if not ev.labelled:
            raise ConfigError(f"no ground truth in {os.fspath(run)}: no labelled row; pass labels")
        return ev

    a, b = scored(run_a), scored(run_b)
    runs = (os.fspath(run_a), os.fspath(run_b))
    return dataclasses.replace(compare(a, b, alpha=alpha), runs=runs)


def _row(source: str, lang: str | None, ra: np.ndarray, rb: np.ndarray) -> dict[str, Any]:
    b = int(np.sum(ra & ~rb))
    c = int(np.sum(~ra & rb))
    n = len(ra)
    acc_a = float(ra.mean()) if n else float("nan")
    acc_b = float(rb.mean()) if n else float("nan")
    row: dict[str, Any] = {"source": source}
    if lang is not None:
        row["lang"] = lang
    row.update(
        rows=n,
        accuracy_a=acc_a,
        accuracy_b=acc_b,
        delta=acc_b - acc_a,
        b=b,
        c=c,
        p_raw=mcnemar_p(b, c),
    )
    return row
