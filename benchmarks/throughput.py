"""Clips per second: lidframe versus a faster-whisper per-file ``detect_language`` loop.

Same clips, same whisper-base weights, same machine, one run. Measured:

* ``lidframe kernel``: ``identify_partition`` in this process (decode threads + batched Whisper),
  the model already loaded: the steady state of one worker.
* ``lidframe run``: the whole job through ``lidframe.run`` (local cluster start, manifest pass, model
  load, Parquet), wall time from call to return.
* ``faster-whisper``: for each file, ``decode_audio`` then ``WhisperModel.detect_language``, with
  ``compute_type`` int8 (its usual CPU setting) and float32 (the same arithmetic as ours).

With ``--corpus mixed`` the clips are a generated mixed-length corpus instead (:func:`mixed_corpus`:
espeak-ng speech of 1-28 s in every language of ``lidframe.testing.TEXTS``, a third of it padded
with silence and a third with noise, up to 30 s), and lidframe runs three ways: speech-aware (the
default: voice activity, speech only, encoder context proportional to speech, at least 10 s, the
full 30 s under 1 s of speech),
``--context 10`` (at least 10 s) and ``--context full`` (the padded 30 s of faster-whisper); the
default's forward passes alone on features already prepared are its ceiling. Printed: clips/s and
the ratio to the faster-whisper int8 loop, top-1 accuracy against the labels
(``und`` is a miss) and the voice-activity cost per clip.

With ``--corpus plain`` the generated clips are speech alone, 1.5-25 s, no padding (what a
collection of segmented utterances looks like); with ``--corpus real``, the test half of the
real-speech corpus's telephone prompts (``lidframe.testing.real_speech_corpus``: en, es and fr read
by people, 8 kHz; its non-speech rows left out). ``--contexts`` picks the least contexts run
(``speech`` is the default's); ``--dtype int8`` runs lidframe's whisper-base with int8 linear layers
(the kernel, the ceiling, and the job end to end, its check against float32 included).

Usage: python benchmarks/throughput.py [--manifest examples/demo/manifest.csv] [--batch-size 8]
       python benchmarks/throughput.py --corpus mixed|plain|real [--clips 136]
           [--contexts speech,10,full] [--dtype auto|int8|float32,bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default=str(ROOT / "examples/demo/manifest.csv"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-run", action="store_true", help="skip the end-to-end lidframe.run")
    parser.add_argument("--corpus", choices=["demo", "mixed", "plain", "real"], default="demo")
    parser.add_argument(
        "--clips", type=int, default=136, help="clips of a generated corpus (real: a sample)"
    )
    parser.add_argument("--contexts", default="speech,10,full", help="least contexts to run")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="lidframe's dtypes, comma-separated, each measured in turn against the one peer run "
        "(int8: the CPU's quantized linear layers; bfloat16 where the CPU has it natively)",
    )
    parser.add_argument(
        "--save", default=None, help="a CSV of every clip's answers (with --corpus)"
    )
    args = parser.parse_args()
    if args.corpus != "demo":
        mixed(args)
        return

    import torch
    from faster_whisper import WhisperModel, decode_audio

    import lidframe
    from lidframe.kernel import KernelConfig, identify_partition
    from lidframe.languages import canonical
    from lidframe.models.whisper_weights import packaged_whisper_dir

    torch.set_num_threads(args.threads)
    with dask.config.set(scheduler="synchronous"):
        manifest = lidframe.read_manifest(args.manifest, partition_rows=10**9).compute()
    n = len(manifest)
    results: dict[str, float] = {}

    config = KernelConfig(
        models=(lidframe.parse_model("whisper-base"),), batch_size=args.batch_size
    )
    identify_partition(manifest.head(args.batch_size), config)  # load the model, warm up
    start = time.perf_counter()
    ours = identify_partition(manifest, config)
    results["lidframe kernel"] = n / (time.perf_counter() - start)

    if not args.skip_run:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            lidframe.run(
                args.manifest,
                out,
                ["whisper-base"],
                workers=1,
                batch_size=args.batch_size,
                partition_rows=max(1, n // 4),
                progress=False,
            )
            results["lidframe run (end to end)"] = n / (time.perf_counter() - start)

    model_dir = str(packaged_whisper_dir())
    peer_langs = {}
    for compute_type in ("int8", "float32"):
        peer = WhisperModel(
            model_dir, device="cpu", compute_type=compute_type, cpu_threads=args.threads
        )
        peer.detect_language(decode_audio(manifest["audio"].iloc[0]))  # warm up
        start = time.perf_counter()
        langs = []
        for uri in manifest["audio"]:
            lang, _, _ = peer.detect_language(decode_audio(uri))
            langs.append(lang)
        results[f"faster-whisper {compute_type}"] = n / (time.perf_counter() - start)
        peer_langs[compute_type] = langs

    ok = ours["error"].isna()
    agree = {
        k: float(
            (
                ours.loc[ok, "whisper_base_lang"].to_numpy()
                == pd.Series(v)[ok.to_numpy()].map(canonical).to_numpy()
            ).mean()
        )
        for k, v in peer_langs.items()
    }
    base = results["faster-whisper int8"]
    print(f"machine: {_machine()}")
    print(f"clips: {n} from {args.manifest}; batch size {args.batch_size}; threads {args.threads}")
    print(f"{'':28s} {'clips/s':>9s} {'vs fw-int8':>11s}")
    for name, rate in results.items():
        print(f"{name:28s} {rate:9.2f} {rate / base:10.2f}x")
    print(f"top-1 agreement with faster-whisper: {json.dumps(agree)}")


def mixed_corpus(
    out: Path,
    clips: int,
    seed: int = 0,
    kinds: tuple[str, ...] = ("plain", "silence", "noise"),
    speech_range: tuple[float, float] = (1.0, 28.0),
) -> pd.DataFrame:
    """``clips`` labelled WAV files of 1-30 s: speech in every TEXTS language, some padded.

    Speech lengths are drawn from ``speech_range`` (log-uniform: short clips are common in real
    collections); clips take the ``kinds`` in turn: ``plain`` speech alone, ``silence`` and
    ``noise`` around the speech, up to 30 s in all.
    """
    import numpy as np
    import soundfile as sf

    from lidframe.testing import TEXTS, synthesize, write_wav

    rng = np.random.default_rng(seed)
    languages = sorted(TEXTS)
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        lang = languages[i % len(languages)]
        speech_s = float(np.exp(rng.uniform(*np.log(speech_range))))
        pieces, total, k = [], 0, int(rng.integers(0, 4))
        while total < speech_s * 16_000:
            tmp = out / "_sentence.wav"
            synthesize(
                TEXTS[lang][k % len(TEXTS[lang])], lang, tmp,
                speed=int(rng.integers(130, 190)), pitch=int(rng.integers(30, 70)),
                noise_db=-60, noise_seed=int(rng.integers(2**31)),
            )  # fmt: skip
            wave, _ = sf.read(tmp, dtype="float32")
            pieces.append(wave)
            total += len(wave)
            k += 1
        speech = np.concatenate(pieces)[: int(speech_s * 16_000)]
        kind = kinds[i % len(kinds)]
        room = max(0, 30 * 16_000 - len(speech))
        if kind == "plain" or room == 0:
            wave = speech
        else:
            lead = int(rng.integers(0, room + 1))
            tail = int(rng.integers(0, room - lead + 1))
            pad = (
                (lambda n: np.zeros(n, np.float32))
                if kind == "silence"
                else (lambda n: (0.003 * rng.standard_normal(n)).astype(np.float32))
            )
            wave = np.concatenate([pad(lead), speech, pad(tail)])
        name = f"{lang}-{i:03d}-{kind}.wav"
        write_wav(out / name, wave, 16_000)
        rows.append({"id": name[:-4], "audio": str(out / name), "label": lang,
                     "speech_s": len(speech) / 16_000, "kind": kind})  # fmt: skip
    (out / "_sentence.wav").unlink(missing_ok=True)
    frame = pd.DataFrame(rows)
    frame[["id", "audio", "label"]].to_csv(out / "manifest.csv", index=False)
    return frame


def _corpus(args: argparse.Namespace, folder: Path) -> tuple[pd.DataFrame, Path]:
    """The clips of ``--corpus`` (a frame with id, audio, label, speech_s, kind) and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    if args.corpus == "real":
        from lidframe.testing import real_speech_corpus

        real = pd.read_parquet(real_speech_corpus(folder / "real.parquet", encodings=("wav",)))
        real = real[
            (real["split"] == "test")
            & real["source"].str.startswith("asterisk")
            & (real["kind"] != "non-speech")
        ].reset_index(drop=True)
        if args.clips < len(real):  # a seeded sample of the half
            real = real.sample(args.clips, random_state=0).reset_index(drop=True)
        real = real.assign(speech_s=real["seconds"])
        real[["id", "audio", "label"]].to_csv(folder / "manifest.csv", index=False)
        return real, folder / "manifest.csv"
    if args.corpus == "plain":
        frame = mixed_corpus(folder, args.clips, kinds=("plain",), speech_range=(1.5, 25.0))
    else:
        frame = mixed_corpus(folder, args.clips)
    return frame, folder / "manifest.csv"


def _context(text: str) -> float | str:
    return text if text in ("speech", "full") else float(text)


def mixed(args: argparse.Namespace) -> None:
    """The kernel at each least context, end to end, and faster-whisper int8 on generated or real
    clips."""
    import numpy as np
    import torch
    from faster_whisper import WhisperModel, decode_audio

    import lidframe
    from lidframe.audio import decode_window
    from lidframe.kernel import BUCKETS, KernelConfig, identify_partition
    from lidframe.languages import canonical
    from lidframe.models import load_model
    from lidframe.models.whisper_weights import packaged_whisper_dir
    from lidframe.speech import SpeechConfig, listen

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, manifest_path = _corpus(args, Path(tmp) / "clips")
        with dask.config.set(scheduler="synchronous"):
            manifest = lidframe.read_manifest(manifest_path, partition_rows=10**9).compute()
        n = len(manifest)
        labels = manifest["label"].astype(str).to_numpy()
        rates: dict[str, float] = {}
        accuracy: dict[str, float] = {}
        answers: dict[str, np.ndarray] = {}
        waves = [decode_window(uri) for uri in manifest["audio"]]
        default = SpeechConfig()
        start = time.perf_counter()
        heard = [listen(wave, default) for wave in waves]  # timed: the voice activity per clip
        vad_ms = 1000 * (time.perf_counter() - start) / n
        for dtype in args.dtype.split(","):
            spec = lidframe.parse_model("whisper-base", dtype=dtype)
            tag = "" if dtype == "auto" else f" {dtype}"
            for name, speech in (
                (
                    f"lidframe speech-aware{tag} kernel"
                    if text == "speech"
                    else f"lidframe --context {text}{tag} kernel",
                    SpeechConfig(context=_context(text)),
                )
                for text in args.contexts.split(",")
            ):
                config = KernelConfig(models=(spec,), batch_size=args.batch_size, speech=speech)
                identify_partition(manifest.head(args.batch_size), config)  # load, warm up
                start = time.perf_counter()
                ours = identify_partition(manifest, config)
                rates[name] = n / (time.perf_counter() - start)
                answers[name] = ours["whisper_base_lang"].astype(str).to_numpy()
                accuracy[name] = float((answers[name] == labels).mean())
            if not args.skip_run:
                with tempfile.TemporaryDirectory() as out:
                    start = time.perf_counter()
                    summary = lidframe.run(
                        manifest_path, out, ["whisper-base"], workers=1, dtype=dtype,
                        batch_size=args.batch_size, partition_rows=max(1, n // 4),
                        progress=False,
                    )  # fmt: skip
                    run_name = f"lidframe run, speech-aware{tag} (end to end)"
                    if summary.fidelity and summary.fidelity.get("fallback"):
                        run_name += ", fell back to float32"
                    elif dtype == "auto":  # auto: the dtype the job settled (large CPU jobs: bf16)
                        ran = (summary.fidelity or {}).get("job_dtypes", {}).get("whisper_base")
                        run_name = run_name.replace("(end", f"{ran or 'float32'} (end")
                    rates[run_name] = n / (time.perf_counter() - start)
                    done = pd.read_parquet(out).set_index("id").loc[manifest["id"]]
                    accuracy[run_name] = float(
                        (done["whisper_base_lang"].astype(str).to_numpy() == labels).mean()
                    )
            # The ceiling: the default's forward passes alone, on features already decoded,
            # heard and prepared, cut into windows as the kernel cuts them. No pipeline work can
            # beat it.
            model = load_model(spec)
            by_context: dict[float | None, list[Any]] = {}
            for h in heard:  # clips without speech reach no model; each at its least context
                if not h.no_speech and len(h.wave) >= model.min_samples:
                    context = default.context_for(h.speech_seconds or 0.0)
                    by_context.setdefault(context, []).append(model.prepare(h.wave))
            window = args.batch_size * BUCKETS
            start = time.perf_counter()
            for context, features in by_context.items():
                for lo in range(0, len(features), window):
                    model.predict_prepared(
                        features[lo : lo + window], args.batch_size, context=context
                    )
            ceiling = f"model only, speech-aware{tag} (ceiling)"
            rates[ceiling] = n / (time.perf_counter() - start)
            accuracy[ceiling] = accuracy.get(f"lidframe speech-aware{tag} kernel", float("nan"))
            del model

        peer = WhisperModel(
            str(packaged_whisper_dir()), device="cpu", compute_type="int8",
            cpu_threads=args.threads,
        )  # fmt: skip
        peer.detect_language(decode_audio(manifest["audio"].iloc[0]))  # warm up
        start = time.perf_counter()
        peer_langs = [peer.detect_language(decode_audio(uri))[0] for uri in manifest["audio"]]
        rates["faster-whisper int8 loop"] = n / (time.perf_counter() - start)
        accuracy["faster-whisper int8 loop"] = float(
            (np.array([canonical(c) for c in peer_langs]) == labels).mean()
        )
        if args.save:  # every clip's answers, with its label and speech seconds
            saved = corpus.set_index("id").loc[manifest["id"]].reset_index()
            saved = saved[["id", "label", "kind", "speech_s"]].assign(
                **{name: answers[name] for name in answers},
                **{"faster-whisper int8 loop": [canonical(c) for c in peer_langs]},
            )
            saved.to_csv(args.save, index=False)

    base = rates["faster-whisper int8 loop"]
    seconds = np.array([len(w) / 16_000 for w in waves])
    print(f"machine: {_machine()}")
    print(
        f"clips: {n} {args.corpus} ({seconds.min():.1f}-{seconds.max():.1f} s, mean "
        f"{seconds.mean():.1f} s; speech {corpus['speech_s'].min():.1f}-"
        f"{corpus['speech_s'].max():.1f} s, mean {corpus['speech_s'].mean():.1f} s; "
        f"{corpus['label'].nunique()} languages); batch size {args.batch_size}; "
        f"threads {args.threads}"
    )
    print(f"{'':50s} {'clips/s':>8s} {'vs fw-int8':>11s} {'accuracy':>9s}")
    for name, rate in rates.items():
        acc = accuracy.get(name)
        print(f"{name:50s} {rate:8.2f} {rate / base:10.2f}x {acc:9.3f}")
    print(f"voice activity: {vad_ms:.1f} ms per clip (one thread, in the decode threads)")
    for kind in corpus["kind"].unique():
        chosen = (corpus["kind"] == kind).to_numpy()
        line = ", ".join(
            f"{name.split(' kernel')[0]} {float((answers[name][chosen] == labels[chosen]).mean()):.3f}"
            for name in answers
        )
        print(f"accuracy on {kind} clips ({chosen.sum()}): {line}")


if __name__ == "__main__":
    main()
