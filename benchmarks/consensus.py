"""Consensus throughput: the row loop (``decide`` per row) against the frame operations.

Both compute the same columns (``tests/consensus/test_frames.py``). Rows are synthetic results of
two models with top-5 lists (a few rows errored, a few Norwegian codes); every policy's figures are
printed, as rows per second of one partition of ``--rows`` rows, and of ``--small`` rows (128: a run's
default partition, where the frame operations' fixed cost shows), with the ratio
frames / loop. On a GPU with cuDF installed, the frame operations on a cuDF partition too.

Usage: python benchmarks/consensus.py [--rows 100000] [--small 128,1000,3000] [--policies majority]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from lidframe.consensus import POLICIES, ConsensusConfig, consensus_rows
from lidframe.consensus._frames import consensus_columns
from lidframe.dataframes import cudf_imports

LANGS = ["de", "en", "es", "fi", "fr", "it", "nb", "nl", "nn", "no", "pl", "sv"]


def results(rows: int, models: int = 2, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """``rows`` synthetic rows of ``models`` models' ``{alias}_topk`` columns (2% errored)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(index=pd.RangeIndex(rows))
    for m in range(models):
        picks = np.argsort(rng.random((rows, len(LANGS))), axis=1)[:, :k]
        probs = rng.dirichlet(np.ones(k + 1), size=rows)[:, :k]
        probs = -np.sort(-probs, axis=1)
        errored = rng.random(rows) < 0.02
        cells: list[Any] = [
            None
            if errored[r]
            else [{"lang": LANGS[picks[r, j]], "prob": float(probs[r, j])} for j in range(k)]
            for r in range(rows)
        ]
        frame[f"m{m}_topk"] = pd.Series(cells, index=frame.index, dtype=object)
    return frame


def rate(func: Any, frame: Any, repeat: int, *args: Any) -> float:
    """Rows per second of ``func(frame, *args)``, the best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        func(frame, *args)
        best = min(best, time.perf_counter() - started)
    return len(frame) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--small", default="128,1000,3000", help="smaller partitions, comma-separated"
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    aliases = ["m0", "m1"]
    on_gpu = cudf_imports()
    print(f"{'policy':10} {'rows':>7} {'loop rows/s':>12} {'frames rows/s':>14} {'ratio':>6}"
          + ("  cudf rows/s" if on_gpu else ""))  # fmt: skip
    for policy in args.policies.split(","):
        config = ConsensusConfig(policy, temperatures={"m1": 1.5})
        for rows in (*(int(x) for x in args.small.split(",")), args.rows):
            frame = results(rows)
            repeat = 3 if rows <= 10_000 else 1
            loop = rate(consensus_rows, frame, repeat, aliases, config)
            frames = rate(consensus_columns, frame, repeat, aliases, config)
            line = f"{policy:10} {rows:7d} {loop:12,.0f} {frames:14,.0f} {frames / loop:6.2f}"
            if on_gpu:
                import cudf
                import pyarrow as pa

                arrow = pa.Table.from_pandas(frame, preserve_index=False)
                gpu = cudf.DataFrame.from_arrow(arrow)
                consensus_columns(gpu, aliases, config)  # warm up the kernels
                line += f"  {rate(consensus_columns, gpu, 3, aliases, config):11,.0f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
