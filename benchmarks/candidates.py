"""Candidate languages (``--languages``): what restricting the answer does to accuracy.

On the same clips, whisper-base through the lidframe kernel (default settings) and faster-whisper's
``detect_language`` (int8, the same weights), each restricted to a candidate set the way
``--languages`` does it: the model's probabilities renormalised over its labels that are one of
the candidates (``lidframe.languages.candidate_labels``), so its answer is the most probable
candidate. Each model runs once per clip with every label's probability kept (the kernel with
``top_k`` = all labels, faster-whisper's ``all_language_probs``) and every set is applied to those
distributions: the same answers as a run per set (the kernel's restriction is exactly this
renormalisation, ``tests/kernel/test_candidates.py``), at a fraction of the cost.

Corpora (one half of ``lidframe.testing.real_speech_corpus``, and espeak-ng speech):

* **real prompts**: the asterisk telephone prompts in en, es and fr (8 kHz), sentences, digits and
  letters; sets: none, the true three, and Europe-20;
* **real words**: ktuberling's single spoken words (0.5-3 s, about 20 languages); sets: none, the
  true languages whisper knows, and Europe-20 (words in languages outside it can then not be right);
* **synthetic**: espeak-ng sentences (``lidframe.testing.make_corpus``) in the 20 languages of
  Europe-20; sets: none and Europe-20 (here the true set).

Europe-20 is a plausible regional set fixed before measuring: en, fr, de, es, it, pt, nl, pl, ro,
hu, cs, el, sv, da, fi, sk, bg, hr, ca, no.

Usage: python benchmarks/candidates.py [--half test] [--per-language 0] [--words-per-language N]
       [--synthetic-per-language 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import dask
import numpy as np
import pandas as pd

EUROPE_20 = (
    "en", "fr", "de", "es", "it", "pt", "nl", "pl", "ro", "hu",
    "cs", "el", "sv", "da", "fi", "sk", "bg", "hr", "ca", "no",
)  # fmt: skip


def _restricted_answers(
    probs: Sequence[dict[str, float] | None], candidates: Sequence[str] | None
) -> np.ndarray:
    """Each clip's answer when its distribution is restricted to ``candidates`` (None: not)."""
    from lidframe.languages import candidate_labels

    out = []
    for dist in probs:
        if dist is None:
            out.append("und")
            continue
        labels = list(dist)
        keep = range(len(labels)) if candidates is None else candidate_labels(labels, candidates)
        out.append(max((labels[i] for i in keep), key=lambda code: dist[code]))
    return np.asarray(out, dtype=object)


def _kernel(manifest: pd.DataFrame, batch_size: int) -> list[dict[str, float] | None]:
    from lidframe.kernel import KernelConfig, identify_partition

    config = KernelConfig.for_models(["whisper-base"], batch_size=batch_size, top_k=200)
    out = identify_partition(manifest, config).set_index("id").loc[manifest["id"]]
    return [
        None if not isinstance(topk, (list, np.ndarray)) else {t["lang"]: t["prob"] for t in topk}
        for topk in out["whisper_base_topk"]
    ]


def _peer(uris: Sequence[str], threads: int) -> list[dict[str, float]]:
    from faster_whisper import WhisperModel, decode_audio

    from lidframe.languages import canonical
    from lidframe.models.whisper_weights import packaged_whisper_dir

    peer = WhisperModel(
        str(packaged_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    out = []
    for uri in uris:
        _, _, everything = peer.detect_language(decode_audio(uri))
        out.append({canonical(code): float(p) for code, p in everything})
    return out


def _manifest(rows: pd.DataFrame, work: Path, name: str) -> pd.DataFrame:
    import lidframe

    path = work / f"{name}.parquet"
    rows[["id", "audio", "label"]].to_parquet(path)
    with dask.config.set(scheduler="synchronous"):
        manifest = lidframe.read_manifest(path, partition_rows=10**9).compute()
    return manifest.set_index("id").loc[rows["id"]].reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--half", choices=["dev", "test"], default="test")
    parser.add_argument("--synthetic-per-language", type=int, default=6)
    parser.add_argument(
        "--per-language", type=int, default=0, help="real clips per language (0: all)"
    )
    parser.add_argument(
        "--words-per-language", type=int, default=None, help="(default: --per-language)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import torch

    from lidframe.models import load_model, parse_model
    from lidframe.testing import make_corpus, real_speech_corpus

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="lidframe-candidates-"))
    whisper_labels = set(load_model(parse_model("whisper-base")).labels)
    real = pd.read_parquet(real_speech_corpus(work / "real.parquet"))
    real = real[(real["split"] == args.half) & (real["kind"] != "non-speech")]
    prompts = real[real["source"].str.startswith("asterisk")].reset_index(drop=True)
    words = real[real["kind"] == "word"].reset_index(drop=True)
    words_each = args.per_language if args.words_per_language is None else args.words_per_language
    if args.per_language:
        prompts = prompts.sample(frac=1.0, random_state=0).groupby("label").head(args.per_language)
    if words_each:
        words = words.sample(frac=1.0, random_state=0).groupby("label").head(words_each)
    synthetic = make_corpus(
        work / "synthetic", EUROPE_20, args.synthetic_per_language, seed=23, noise_db=-40.0
    )
    synthetic["audio"] = [str(work / "synthetic" / a) for a in synthetic["audio"]]
    word_langs = tuple(sorted(set(words["label"]) & whisper_labels))
    corpora = {
        "real prompts (en, es, fr)": (prompts, {"true 3": ("en", "es", "fr")}),
        f"real words ({words['label'].nunique()} languages)": (
            words,
            {f"true {len(word_langs)} whisper knows": word_langs},
        ),
        f"synthetic ({len(EUROPE_20)} languages)": (synthetic, {}),
    }
    print(f"{'':38s} {'set':>24s} {'clips':>6s} {'lidframe':>9s} {'fw int8':>8s}")
    for name, (rows, sets) in corpora.items():
        manifest = _manifest(rows, work, name.split()[1])
        start = time.perf_counter()
        ours = _kernel(manifest, args.batch_size)
        ours_s = time.perf_counter() - start
        theirs = _peer(list(rows["audio"]), args.threads)
        labels = rows["label"].to_numpy()
        for set_name, candidates in {"none": None, **sets, "Europe-20": EUROPE_20}.items():
            acc = [
                float((_restricted_answers(p, candidates) == labels).mean()) for p in (ours, theirs)
            ]
            print(f"{name:38s} {set_name:>24s} {len(rows):6d} {acc[0]:9.3f} {acc[1]:8.3f}")
        print(f"{'':38s} (kernel {len(rows) / ours_s:.2f} clips/s, one pass, top_k all labels)")


if __name__ == "__main__":
    main()
