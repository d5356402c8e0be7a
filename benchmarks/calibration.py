"""Is the consensus probability a probability? k-fold held-out calibration on real voices (issue 24).

Corpus: the project's labelled real speech (``lidframe.testing.real_speech_corpus``): the asterisk
telephone prompts in en, es and fr (8 kHz WAV, both halves: every row is held out once by the
folds), ``--per-language`` of each language (seeded), and with ``--words N`` up to N ktuberling
single words per language besides. Non-speech rows (labelled ``und``) are left out: they have no
language to be right about.

Models: whisper-base (real weights) and the project's SpeechBrain ECAPA-TDNN
(``tests/assets/voxlingua107-espeak-ecapa``: real weights of a small model trained on espeak-ng
speech in 12 languages, en, es and fr among them; the only second family with weights here),
run once by the kernel (``identify_partition``, default speech settings); ``--save FILE`` keeps
every row's answers (Parquet) and ``--answers FILE`` reuses them.

Then, for each policy, :func:`lidframe.fit_calibration` with ``--folds`` folds: its held-out
figures (``report["heldout"]``) of the uncalibrated consensus, the per-model temperatures and
weights, each final map (temperature on the final distribution, isotonic), and the chosen one.
Accuracy is over every labelled speech row (``und`` is a miss); ECE (10 equal-width bins), NLL and
Brier are of the top-label probability. Independently of the fit's own bookkeeping, the held-out
ECE and accuracy of the chosen map are recomputed here from ``consensus_frame`` (the frame
operations a run uses) with each fold's calibration fitted on the other folds, beside the ECE a
perfectly calibrated predictor would show on the same probabilities (the estimator's own noise).

Usage: python benchmarks/calibration.py [--per-language 100] [--words 0] [--folds 5]
    [--policies product,weighted] [--threads 1] [--save FILE | --answers FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ECAPA_DIR = Path(__file__).resolve().parents[1] / "tests" / "assets" / "voxlingua107-espeak-ecapa"


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"


def _rows(per_language: int, words: int, seed: int) -> pd.DataFrame:
    from lidframe.testing import real_speech_corpus

    work = Path(tempfile.mkdtemp(prefix="lidframe-calibration-"))
    corpus = pd.read_parquet(real_speech_corpus(work / "corpus.parquet"))
    speech = corpus[corpus["kind"] != "non-speech"]
    prompts = speech[speech["source"].str.startswith("asterisk")]
    chosen = [prompts.sample(frac=1.0, random_state=seed).groupby("label").head(per_language)]
    if words:
        said = speech[speech["source"] == "ktuberling-data"]
        chosen.append(said.sample(frac=1.0, random_state=seed).groupby("label").head(words))
    return pd.concat(chosen).sort_values("id").reset_index(drop=True)


def _answers(rows: pd.DataFrame, threads: int) -> tuple[pd.DataFrame, dict[str, int], float]:
    import torch

    from lidframe.kernel import KernelConfig, identify_partition
    from lidframe.models import load_model, parse_model
    from lidframe.speech import SpeechConfig

    torch.set_num_threads(threads)
    specs = (
        parse_model("whisper-base", device="cpu"),
        parse_model(f"speechbrain:{ECAPA_DIR}", device="cpu"),
    )
    counts = {s.alias: len(load_model(s).labels) for s in specs}
    config = KernelConfig(models=specs, batch_size=8, speech=SpeechConfig())
    started = time.perf_counter()
    out = identify_partition(rows[["id", "audio", "label"]], config)
    return out, counts, time.perf_counter() - started


def _check(df: pd.DataFrame, aliases: list[str], policy: str, folds: int, counts) -> dict:
    """The held-out accuracy and ECE of the chosen final map, recomputed from the frame
    operations: each fold's consensus from a calibration fitted on the other folds."""
    from lidframe.consensus import consensus_frame
    from lidframe.eval import expected_calibration_error, fit_calibration
    from lidframe.eval._calibrate import fold_of

    labelled = df[df["label"].notna()].reset_index(drop=True)
    fold = fold_of(len(labelled), folds)
    prob = np.full(len(labelled), np.nan)
    lang = np.empty(len(labelled), dtype=object)
    for k in range(folds):
        fitted = fit_calibration(
            labelled[fold != k], aliases, policy=policy, label_counts=counts, folds=folds
        )
        held = consensus_frame(
            labelled[fold == k], aliases, fitted.consensus_config(label_counts=counts)
        )
        prob[fold == k] = held["consensus_prob"].to_numpy(dtype=float)
        lang[fold == k] = held["lang"].to_numpy(dtype=object)
    right = lang == labelled["label"].to_numpy(dtype=object)
    return {
        "accuracy": float(right.mean()),
        "ece": expected_calibration_error(prob, right),
        "floor": ece_floor(prob),
    }


def ece_floor(prob: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The ECE a perfectly calibrated predictor shows on rows with these probabilities (each row
    right with probability p, drawn): mean, 5th and 95th percentile. On a few hundred rows the
    binned ECE of a perfect predictor is far from 0, so a held-out ECE within this range cannot
    be told from perfect calibration."""
    from lidframe.eval import expected_calibration_error

    p = prob[np.isfinite(prob)]
    rng = np.random.default_rng(seed)
    values = [expected_calibration_error(p, rng.random(p.size) < p) for _ in range(draws)]
    return (
        float(np.mean(values)),
        float(np.quantile(values, 0.05)),
        float(np.quantile(values, 0.95)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=100)
    parser.add_argument("--words", type=int, default=0, help="ktuberling words per language")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--policies", default="product,weighted")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="Parquet file for every row's answers")
    parser.add_argument("--answers", default=None, help="reuse a --save file: no inference")
    args = parser.parse_args()

    from lidframe.columns import column_alias
    from lidframe.eval import fit_calibration

    print(f"machine: {_machine()}, torch threads {args.threads}")
    if args.answers:
        df = pd.read_parquet(args.answers)
        counts = {str(k): int(v) for k, v in df.attrs.get("label_counts", {}).items()}
        seconds = float("nan")
    else:
        rows = _rows(args.per_language, args.words, args.seed)
        df, counts, seconds = _answers(rows, args.threads)
        if args.save:
            df.attrs["label_counts"] = counts
            df.to_parquet(args.save)
    if not counts:
        counts = {column_alias("whisper-base"): 99, column_alias(f"speechbrain:{ECAPA_DIR}"): 12}
    aliases = list(counts)
    print(
        f"corpus: real_speech_corpus, {len(df)} speech rows "
        f"({', '.join(f'{k} {v}' for k, v in df['label'].value_counts().sort_index().items())}); "
        f"models: {', '.join(aliases)}; kernel {seconds:.0f} s"
    )
    for alias in aliases:
        right = df[f"{alias}_lang"].to_numpy(dtype=object) == df["label"].to_numpy(dtype=object)
        print(f"  {alias} alone: accuracy {right.mean():.3f}")
    for policy in args.policies.split(","):
        started = time.perf_counter()
        fitted = fit_calibration(df, aliases, policy=policy, label_counts=counts, folds=args.folds)
        took = time.perf_counter() - started
        held = fitted.report["heldout"]
        print(
            f"\npolicy {policy}: {held['rows']} labelled rows, {held['folds']}-fold held out "
            f"(fit {took:.0f} s); chosen {fitted.report['chosen']}"
        )
        print("| consensus | accuracy | ECE | NLL | Brier |")
        print("|---|---|---|---|---|")
        shown = {
            "uncalibrated": held["stages"]["uncalibrated"],
            "per-model temperatures + weights": held["stages"]["temperatures"],
            **{f"+ final {k}": m for k, m in held["candidates"].items()},
        }
        for name, m in shown.items():
            print(
                f"| {name} | {m['accuracy']:.3f} | {m['ece']:.3f} | {m['nll']:.3f} "
                f"| {m['brier']:.3f} |"
            )
        final = held["stages"]["final"]
        gap = final["ece"] - 0.05
        verdict = "met" if gap < 0 else f"missed by {gap:.3f}"
        before = held["stages"]["uncalibrated"]["accuracy"]
        print(
            f"chosen final map ({fitted.final.describe() if fitted.final else 'none'}): held-out "
            f"ECE {final['ece']:.3f} (target < 0.05: {verdict}), accuracy "
            f"{final['accuracy']:.3f} against {before:.3f} uncalibrated"
        )
        check = _check(df, aliases, policy, args.folds, counts)
        print(
            "nested: each fold's consensus_frame with a calibration fitted (map chosen too) on the "
            f"other folds: accuracy "
            f"{check['accuracy']:.3f}, ECE {check['ece']:.3f}"
        )
        mean, low, high = check["floor"]
        print(
            f"ECE of a perfectly calibrated predictor on these rows' probabilities: mean "
            f"{mean:.3f}, 90% of draws within {low:.3f}-{high:.3f}"
        )


if __name__ == "__main__":
    main()
