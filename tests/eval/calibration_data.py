"""Labelled results of two over-confident models (``a``, ``b``): what a final calibration map is
for (tests/eval/test_calibrate.py, tests/eval/report/test_page.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["consensus_results", "overconfident_results"]


def overconfident_results(n: int, seed: int) -> pd.DataFrame:
    """Two over-confident models (sharp top-3 lists, right 75% and 60% of the time) on ``n``
    rows labelled in five languages, so the consensus of the two is over-confident too."""
    rng = np.random.default_rng(seed)
    langs = ("en", "de", "fr", "es", "it")
    labels = [langs[k] for k in rng.integers(0, len(langs), n)]

    def cell(label: str, right: float) -> list[dict]:
        answer = label if rng.random() < right else langs[rng.integers(0, len(langs))]
        probs = rng.dirichlet(np.full(len(langs), 0.3))
        probs = np.sort(probs)[::-1]
        probs[0] = max(probs[0], 0.85)  # sure of itself, right or not
        others = [x for x in langs if x != answer]
        rng.shuffle(others)
        rest = probs[1:3] / probs[1:].sum() * (1 - probs[0])
        return [{"lang": answer, "prob": float(probs[0])}] + [
            {"lang": x, "prob": float(p)} for x, p in zip(others[:2], rest, strict=True)
        ]

    return pd.DataFrame(
        {
            "label": labels,
            "a_topk": [cell(lab, 0.75) for lab in labels],
            "b_topk": [cell(lab, 0.6) for lab in labels],
        }
    )


def consensus_results(n: int = 240, seed: int = 11) -> pd.DataFrame:
    """:func:`overconfident_results` as a run writes them: ``id``, ``audio``, each model's
    answer and probability, and their uncalibrated product consensus."""
    from lidframe.consensus import ConsensusConfig, consensus_frame

    df = overconfident_results(n, seed=seed)
    df.insert(0, "id", [f"r{i}" for i in range(len(df))])
    df.insert(1, "audio", [f"/data/{i}.wav" for i in range(len(df))])
    for alias in ("a", "b"):
        df[f"{alias}_lang"] = [cell[0]["lang"] for cell in df[f"{alias}_topk"]]
        df[f"{alias}_prob"] = [cell[0]["prob"] for cell in df[f"{alias}_topk"]]
    return consensus_frame(df, ["a", "b"], ConsensusConfig("product"))
