"""Cheap model first: accuracy against model-seconds of a cascade, over a range of thresholds.

A cascade (``lidframe run --cascade --escalate-below P``) sends a row to the next model only while
the consensus support of the models so far is below ``P``. This measures what that buys on the
project's corpus, with the project's SpeechBrain ECAPA-TDNN first (``tests/assets/
voxlingua107-espeak-ecapa``: 12 languages, 0.6 M parameters) and whisper-base second (99 languages,
real weights).

Corpus: ``lidframe.testing.make_corpus`` in every language of ``lidframe.testing.texts.TEXTS``
(espeak-ng voices; most of them are languages the ECAPA model never saw, which is the case a cascade
must handle: a cheap model with narrow coverage, confidently wrong outside it).

Measured in one run, on the same clips:

* **every model**: the kernel (``identify_partition``) with both models on every row, timed end to
  end; its consensus accuracy is the reference;
* **model-seconds per clip**: each model's ``predict_prepared`` on each clip alone (features
  prepared beforehand, default encoder context), so a cascade's model cost is the sum over rows of
  the models it asked;
* **the cascade replayed** at each threshold from the every-model answers (the first model's answer
  alone decides whether a row goes on), through lidframe's own ``Cascade.settled`` and
  ``consensus_frame``: accuracy, share of rows sent to Whisper, model-seconds;
* **the cascade run** for real at the chosen threshold (the kernel with ``cascade=``): the rows it
  sent on must be the replay's, and its wall time is compared with the every-model run's.

Printed: the lowest threshold whose accuracy is within 1 point of every model's (the one that saves
the most Whisper calls while keeping accuracy), and the lowest that loses nothing; accuracy is also
split between the languages the first model knows and the others.

Usage: python benchmarks/cascade.py [--per-language 6] [--policies majority,weighted]
    [--thresholds 0,0.5,...] [--corpus-dir DIR] [--threads 2]
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
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"


def corpus(folder: Path, per_language: int, seed: int) -> pd.DataFrame:
    from lidframe.testing import make_corpus
    from lidframe.testing.texts import TEXTS

    table = folder / f"corpus-{per_language}-{seed}.csv"
    if table.exists():
        return pd.read_csv(table)
    df = make_corpus(folder, languages=list(TEXTS), per_language=per_language, seed=seed)
    df["audio"] = [str(folder / a) for a in df["audio"]]
    df.to_csv(table, index=False)
    return df


def per_clip_seconds(models, df: pd.DataFrame, speech) -> list[np.ndarray]:
    """Seconds of ``predict_prepared`` per clip and model, each clip alone (features ready)."""
    import soundfile as sf

    from lidframe.speech import listen

    heard = []
    for path in df["audio"]:
        wave, rate = sf.read(path, dtype="float32")
        heard.append(listen(wave, speech, rate).wave)
    costs = []
    for model in models:
        features = [model.prepare(w) for w in heard]
        model.predict_prepared(features[:2], 1, context=speech.min_context)  # warm up
        seconds = np.zeros(len(features))
        for i, f in enumerate(features):
            started = time.perf_counter()
            model.predict_prepared([f], 1, context=speech.min_context)
            seconds[i] = time.perf_counter() - started
        costs.append(seconds)
    return costs


def replay(full: pd.DataFrame, aliases: list[str], threshold: float, cons) -> pd.DataFrame:
    """The every-model frame as a cascade at ``threshold`` would have left it (two models)."""
    from lidframe.columns import asked_value, model_columns
    from lidframe.consensus import Cascade, consensus_frame, topk_pairs

    cascade = Cascade(threshold)
    first, second = aliases
    settled = np.array(
        [cascade.settled({first: topk_pairs(t)}, cons) for t in full[f"{first}_topk"].tolist()]
    )
    frame = full.drop(columns=["lang", "agree", "n_agree", "consensus_prob", "consensus_method"])
    frame["models_asked"] = pd.array(
        [asked_value([first] if s else [first, second]) for s in settled], dtype="string"
    )
    for column in model_columns(second):
        frame[column] = frame[column].where(~settled, None)
    return consensus_frame(frame, aliases, cons)


def _split(frame: pd.DataFrame, labels: np.ndarray, known: np.ndarray) -> str:
    right = frame["lang"].to_numpy() == labels
    return f"{100 * right[known].mean():.1f}% / {100 * right[~known].mean():.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--policies", default="majority,weighted")
    parser.add_argument("--thresholds", default=",".join(str(t) for t in THRESHOLDS))
    parser.add_argument("--corpus-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lidframe.consensus import Cascade, ConsensusConfig
    from lidframe.kernel import KernelConfig, identify_partition
    from lidframe.models import load_model, parse_model
    from lidframe.speech import SpeechConfig

    folder = Path(args.corpus_dir or tempfile.mkdtemp(prefix="lidframe-cascade-"))
    folder.mkdir(parents=True, exist_ok=True)
    df = corpus(folder, args.per_language, args.seed)
    specs = (
        parse_model(f"speechbrain:{ECAPA_DIR}", device="cpu"),
        parse_model("whisper-base", device="cpu"),
    )
    aliases = [s.alias for s in specs]
    models = [load_model(s) for s in specs]
    speech = SpeechConfig()
    label_counts = {s.alias: len(m.labels) for s, m in zip(specs, models, strict=True)}
    print(f"machine: {_machine()}")
    print(
        f"corpus: {len(df)} clips, {df['label'].nunique()} languages x {args.per_language} "
        f"(espeak-ng, seed {args.seed}); first model knows {len(models[0].labels)} of them"
    )

    costs = per_clip_seconds(models, df, speech)
    print(
        "model-seconds per clip (alone, features ready): "
        + ", ".join(
            f"{name} {c.mean() * 1000:.1f} ms"
            for name, c in zip(("ecapa", "whisper"), costs, strict=True)
        )
        + f"; whisper/ecapa = {costs[1].sum() / costs[0].sum():.1f}x"
    )
    thresholds = [float(t) for t in args.thresholds.split(",")]
    labels = df["label"].to_numpy()

    for policy in args.policies.split(","):
        cons = ConsensusConfig(policy=policy, label_counts=label_counts)
        kernel = KernelConfig(models=specs, batch_size=args.batch_size, speech=speech)
        started = time.perf_counter()
        full = identify_partition(df, kernel)
        wall_all = time.perf_counter() - started
        from lidframe.consensus import consensus_frame

        full = consensus_frame(full, aliases, cons)
        every = 100 * np.mean(full["lang"].to_numpy() == labels)
        alone = [100 * np.mean(full[f"{a}_lang"].to_numpy() == labels) for a in aliases]
        all_seconds = costs[0].sum() + costs[1].sum()
        print(
            f"\npolicy {policy}: every model {every:.1f}% (ecapa alone {alone[0]:.1f}%, whisper "
            f"alone {alone[1]:.1f}%), {all_seconds:.1f} model-s, kernel {wall_all:.1f} s"
        )
        known = np.isin(labels, models[0].labels)
        print(
            f"(accuracy on the {known.sum()} clips of the first model's languages / the "
            f"{(~known).sum()} of the others: every model {_split(full, labels, known)})"
        )
        print(
            "| escalate below | accuracy | vs every model | known / other languages "
            "| sent to whisper | model-s | of every |"
        )
        print("|---|---|---|---|---|---|---|")
        chosen = lossless = None
        for t in thresholds:
            got = replay(full, aliases, t, cons)
            sent = got["models_asked"].str.contains(",").to_numpy(dtype=bool)
            acc = 100 * np.mean(got["lang"].to_numpy() == labels)
            seconds = costs[0].sum() + costs[1][sent].sum()
            print(
                f"| {t:g} | {acc:.1f}% | {acc - every:+.1f} | {_split(got, labels, known)} | "
                f"{100 * sent.mean():.1f}% | {seconds:.1f} | {100 * seconds / all_seconds:.0f}% |"
            )
            if chosen is None and acc >= every - 1.0:
                chosen = (t, acc, sent)
            if lossless is None and acc >= every:
                lossless = (t, acc, sent)
        if chosen is None:
            print("no threshold keeps accuracy within 1 point of every model")
            continue
        runs = [("within 1 point", chosen)]
        if lossless is not None and lossless[0] != chosen[0]:
            runs.append(("no loss", lossless))
        for name, (t, acc, sent) in runs:
            print(
                f"{name}: escalate below {t:g}: accuracy {acc:.1f}% ({acc - every:+.1f} points), "
                f"saves {100 * (1 - sent.mean()):.1f}% of whisper calls"
            )
        for _, (t, _, sent) in runs:
            cascaded = KernelConfig(
                models=specs,
                batch_size=args.batch_size,
                speech=speech,
                cascade=Cascade(t),
                consensus=cons,
            )
            started = time.perf_counter()
            real = identify_partition(df, cascaded)
            wall = time.perf_counter() - started
            real = consensus_frame(real, aliases, cons)
            real_sent = real["models_asked"].str.contains(",").to_numpy(dtype=bool)
            real_acc = 100 * np.mean(real["lang"].to_numpy() == labels)
            same = "the same rows as the replay" if (real_sent == sent).all() else "OTHER rows"
            print(
                f"real cascade at {t:g}: sent {real_sent.sum()} of {len(real)} rows to whisper "
                f"({same}); accuracy {real_acc:.1f}%; kernel {wall:.1f} s vs every model "
                f"{wall_all:.1f} s ({wall_all / wall:.2f}x faster)"
            )


if __name__ == "__main__":
    main()
