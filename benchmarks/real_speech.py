"""Real voices: accuracy, ``und`` rates and speed on recordings of people (lidframe.testing.real).

The same whisper-base weights, the same files, one run, on one half of the real-speech corpus
(telephone prompts in en, es and fr read by professional voice talents; single words in about 20
languages; the packages' tones and digital silence):

* the lidframe kernel at each least encoder context asked (``--contexts``: the default ``speech``
  (20 s), ``15``, ``10``, ``5``, ``full``), the model loaded: accuracy, ``und`` rates, clips/s;
* faster-whisper's ``detect_language`` per file (int8, its usual CPU setting): the peer;
* with ``--rates``: the default on the same prompts at 16 kHz (the packages' G.722 files) beside
  8 kHz, which is what telephone audio costs;
* with ``--run``: the default end to end (``lidframe.run``: cluster, manifest, model load, Parquet).

Accuracy is top-1 against the label over the speech rows (``und`` is a miss); ``und`` rates are the
share of speech rows of at least 1 s answered ``und``, and of non-speech rows answered something else
(which is wrong). Words are reported apart: whisper-base does not know every ktuberling language, and
0.5-2 s single words are a stress test, not a fair accuracy test.

Usage: python benchmarks/real_speech.py [--half test] [--per-language 0] [--contexts speech,10,full]
       [--rates] [--run] [--words] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"


def _context(text: str) -> float | str:
    return text if text in ("speech", "full") else float(text)


def _rows(corpus: pd.DataFrame, args: argparse.Namespace, encoding: str) -> pd.DataFrame:
    """The half asked for: the asterisk prompts (speech and not) in ``encoding``, and the words."""
    half = corpus[corpus["split"] == args.half]
    prompts = half[half["source"].str.startswith("asterisk") & (half["encoding"] == encoding)]
    words = half[half["source"] == "ktuberling-data"] if args.words else half.iloc[:0]
    chosen = pd.concat([prompts, words])
    if args.per_language:
        shuffled = chosen.sample(frac=1.0, random_state=0)
        chosen = shuffled.groupby(["source", "label"]).head(args.per_language)
    return chosen.sort_values("id").reset_index(drop=True)


def _scores(rows: pd.DataFrame, answers: np.ndarray) -> dict[str, float]:
    speech = (rows["kind"] != "non-speech").to_numpy()
    prompts = speech & rows["source"].str.startswith("asterisk").to_numpy()
    words = (rows["kind"] == "word").to_numpy()
    labels = rows["label"].to_numpy()
    long_enough = prompts & (rows["seconds"] >= 1.0).to_numpy()
    out = {
        "accuracy": float((answers[prompts] == labels[prompts]).mean()),
        "und on speech >= 1 s": float((answers[long_enough] == "und").mean()),
        "lang on non-speech": float((answers[~speech] != "und").mean()) if (~speech).any() else 0.0,
    }
    for kind in ("prompt", "digits", "letters"):
        chosen = prompts & (rows["kind"] == kind).to_numpy()
        out[f"accuracy {kind}"] = float((answers[chosen] == labels[chosen]).mean())
    for lo, hi in ((0, 1), (1, 3), (3, 10), (10, 1e9)):
        chosen = prompts & (rows["seconds"] >= lo).to_numpy() & (rows["seconds"] < hi).to_numpy()
        out[f"accuracy {lo}-{hi if hi < 1e9 else ''} s"] = (
            float((answers[chosen] == labels[chosen]).mean()) if chosen.any() else float("nan")
        )
    if words.any():
        out["words accuracy"] = float((answers[words] == labels[words]).mean())
        out["words und"] = float((answers[words] == "und").mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--half", choices=["dev", "test"], default="test")
    parser.add_argument("--per-language", type=int, default=0, help="rows per language (0: all)")
    parser.add_argument("--contexts", default="speech,15,10,5,full")
    parser.add_argument("--rates", action="store_true", help="also the 16 kHz G.722 prompts")
    parser.add_argument("--run", action="store_true", help="also lidframe.run end to end")
    parser.add_argument("--words", action="store_true", help="also the ktuberling words")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--save", default=None, help="folder for every row's answers (CSV)")
    parser.add_argument("--min-speech", type=float, default=None, help="(default: the default's)")
    parser.add_argument("--skip-peer", action="store_true", help="no faster-whisper loop")
    parser.add_argument(
        "--dtypes", default="float32", help="whisper-base's dtypes, each at every context (int8)"
    )
    parser.add_argument(
        "--peers",
        default="int8",
        help="faster-whisper loops to run, comma-separated: a compute type (int8, float32), "
        "with '+soxr' to feed it lidframe's decoding (soxr) instead of its own (PyAV)",
    )
    args = parser.parse_args()
    answers: dict[str, pd.DataFrame] = {}

    import torch
    from faster_whisper import WhisperModel, decode_audio

    import lidframe
    from lidframe.kernel import KernelConfig, identify_partition
    from lidframe.languages import canonical
    from lidframe.models.whisper_weights import packaged_whisper_dir
    from lidframe.speech import SpeechConfig
    from lidframe.testing import real_speech_corpus

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="lidframe-real-"))
    corpus = pd.read_parquet(real_speech_corpus(work / "corpus.parquet", encodings=("wav", "g722")))
    rows = _rows(corpus, args, "wav")
    for uri in pd.concat([rows, corpus[corpus["encoding"] == "g722"]])["audio"]:
        Path(uri).read_bytes()  # every run reads from the page cache, the first one too
    manifest_path = work / "manifest.parquet"
    rows[["id", "audio", "label"]].to_parquet(manifest_path)
    with dask.config.set(scheduler="synchronous"):
        manifest = lidframe.read_manifest(manifest_path, partition_rows=10**9).compute()
    manifest = manifest.set_index("id").loc[rows["id"]].reset_index()
    n = len(manifest)
    rates: dict[str, float] = {}
    scores: dict[str, dict[str, float]] = {}
    for dtype, text in [(d, t) for d in args.dtypes.split(",") for t in args.contexts.split(",")]:
        spec = lidframe.parse_model("whisper-base", dtype=dtype)
        name = f"lidframe kernel, context {text}" + ("" if dtype == "float32" else f", {dtype}")
        speech = SpeechConfig(context=_context(text))
        if args.min_speech is not None:
            speech = dataclasses.replace(speech, min_speech=args.min_speech)
        config = KernelConfig(models=(spec,), batch_size=args.batch_size, speech=speech)
        identify_partition(manifest.head(args.batch_size), config)  # load, warm up
        start = time.perf_counter()
        ours = identify_partition(manifest, config)
        rates[name] = n / (time.perf_counter() - start)
        scores[name] = _scores(rows, ours["whisper_base_lang"].astype(str).to_numpy())
        answers[name] = ours
    if args.rates:
        wide = _rows(corpus, args, "g722")
        wide = wide[wide["source"].str.startswith("asterisk")].reset_index(drop=True)
        wide_path = work / "g722.parquet"
        wide[["id", "audio", "label"]].to_parquet(wide_path)
        with dask.config.set(scheduler="synchronous"):
            wide_manifest = lidframe.read_manifest(wide_path, partition_rows=10**9).compute()
        wide_manifest = wide_manifest.set_index("id").loc[wide["id"]].reset_index()
        config = KernelConfig(
            models=(lidframe.parse_model("whisper-base"),), batch_size=args.batch_size
        )
        start = time.perf_counter()
        ours = identify_partition(wide_manifest, config)
        name = "lidframe kernel, default, 16 kHz G.722"
        rates[name] = len(wide) / (time.perf_counter() - start)
        scores[name] = _scores(wide, ours["whisper_base_lang"].astype(str).to_numpy())
        answers[name] = ours
    if args.run:
        out = work / "out"
        start = time.perf_counter()
        lidframe.run(
            manifest_path, out, ["whisper-base"], workers=1, partition_rows=max(1, n // 4),
            progress=False,
        )  # fmt: skip
        rates["lidframe run, default (end to end)"] = n / (time.perf_counter() - start)
        done = pd.read_parquet(out).set_index("id").loc[rows["id"]]
        scores["lidframe run, default (end to end)"] = _scores(
            rows, done["whisper_base_lang"].astype(str).to_numpy()
        )
        answers["lidframe run, default (end to end)"] = done.reset_index()

    if args.skip_peer:
        for name, rate in rates.items():
            print(f"{name:42s} {rate:8.2f} " + json.dumps(scores[name]))
        _save(args, answers, corpus, {}, rows)
        return
    from lidframe.audio import decode_window

    peer_answers: dict[str, list[str]] = {}
    for variant in args.peers.split(","):
        compute_type, _, feed = variant.partition("+")
        peer = WhisperModel(
            str(packaged_whisper_dir()),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=args.threads,
        )
        load = decode_window if feed == "soxr" else decode_audio
        peer.detect_language(load(rows["audio"].iloc[0]))  # warm up
        start = time.perf_counter()
        langs = [peer.detect_language(load(uri))[0] for uri in rows["audio"]]
        name = f"faster-whisper {compute_type} loop" + (f", {feed} decoding" if feed else "")
        rates[name] = n / (time.perf_counter() - start)
        scores[name] = _scores(rows, np.array([canonical(c) for c in langs]))
        peer_answers[name] = langs
    first_peer = next(iter(peer_answers))
    _save(args, answers, corpus, peer_answers, rows)

    base = rates[first_peer]
    speech = rows[rows["kind"] != "non-speech"]
    print(f"machine: {_machine()}")
    print(
        f"rows: {n} of the {args.half} half ({len(speech)} speech: "
        f"{', '.join(f'{k} {v}' for k, v in speech['label'].value_counts().items() if v > 20)}; "
        f"{n - len(speech)} non-speech); speech {speech['seconds'].median():.1f} s median, "
        f"{speech['seconds'].min():.1f}-{speech['seconds'].max():.1f} s; batch size "
        f"{args.batch_size}; threads {args.threads}"
    )
    columns = list(next(iter(scores.values())))
    print(f"{'':42s} {'clips/s':>8s} {'vs fw':>6s} " + " ".join(f"{c[:14]:>14s}" for c in columns))
    for name, rate in rates.items():
        values = " ".join(f"{scores[name].get(c, float('nan')):14.3f}" for c in columns)
        print(f"{name:42s} {rate:8.2f} {rate / base:5.2f}x {values}")


def _save(
    args: argparse.Namespace,
    answers: dict[str, pd.DataFrame],
    corpus: pd.DataFrame,
    peer_answers: dict[str, list[str]],
    rows: pd.DataFrame,
) -> None:
    """Every row's answers, one CSV per configuration, in ``--save``."""
    if not args.save:
        return
    folder = Path(args.save)
    folder.mkdir(parents=True, exist_ok=True)
    keep = ["id", "whisper_base_lang", "whisper_base_prob", "speech_seconds", "audio_seconds"]
    described = corpus[["id", "label", "kind", "seconds", "speaker", "encoding"]]
    suffix = "" if args.min_speech is None else f"-min-speech-{args.min_speech:g}"
    for name, frame in answers.items():
        slug = "".join(c if c.isalnum() else "-" for c in name).strip("-") + suffix
        frame[keep].merge(described, on="id").to_csv(folder / f"{slug}.csv", index=False)
    for name, langs in peer_answers.items():
        slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
        peer = pd.DataFrame({"id": rows["id"], "whisper_base_lang": langs})
        peer.merge(described, on="id").to_csv(folder / f"{slug}.csv", index=False)


if __name__ == "__main__":
    main()
