"""Language-identification accuracy against Whisper's encoder context, on speech of known length.

Whisper's encoder was trained on 30 s (3,000 mel frames); lidframe can run it on fewer frames
(``WhisperLid.padded_length``: the batch's longest clip rounded up to one of ``CONTEXT_FRAMES``, never
below the context asked for). Nobody publishes how accuracy moves with that, so this measures it.

Corpus: for each language of ``lidframe.testing.texts.TEXTS`` and each seeded speaker (espeak-ng
voice variant, speed and pitch drawn per language and speaker), the language's sentences are spoken,
joined with short quiet gaps (repeated until there is enough), given white noise at -40 dBFS, and
passed through ``lidframe.speech.listen`` (silero-vad): the speech alone, silence cut. Its first
``L`` seconds, less one 10 ms hop so that they fill exactly ``100 L`` mel frames, are the clip of
speech length ``L``. Clips are cached in ``--corpus-dir``.

Measured, with whisper-base on the CPU, per speech length and context (``full``: padded to 3,000
frames, today's behaviour; ``min N``: ``predict_prepared(context=N / 100)``, at least N frames, so
``min 0`` is just the bucket above the speech):

* accuracy: top-1 equal to the language (both sides through ``lidframe.languages.canonical``);
* forward time per clip: ``predict_prepared`` (batches of ``--batch-size``, the clips of one speech
  length together, sorted by length), features already prepared; a context that gives the same
  encoder length as one already run on the same clips reuses its answers and time (the same
  computation);
* agreement: top-1 equal to ``full``'s top-1.

With ``--no-speech`` it measures instead whether Whisper's no-speech probability (the softmax over
the whole vocabulary at the first decoder step after ``<|startoftranscript|>``, as openai/whisper
computes ``no_speech_prob``) separates speech from non-speech among the clips the VAD lets through:
the corpus at 1, 2 and 3 s against silence, white noise, mains hum, sine-chord music and a short
burst.

Usage: python benchmarks/context.py [--languages en,de,...] [--speakers 2]
    [--lengths 1,2,3,5,8,12,20,30] [--min-contexts 0,500,1000,1500] [--corpus-dir DIR]
    [--batch-size 8] [--threads 2] [--no-speech]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
HOP = 160
GAP_S = 0.25  # quiet between joined sentences (kept by listen: it keeps pauses up to 0.3 s)
NOISE_DB = -40.0
VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
NO_SPEECH_LENGTHS = (1.0, 2.0, 3.0)
NON_SPEECH_SECONDS = (2.0, 5.0, 10.0)
NON_SPEECH_SEEDS = 3


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _speech(lang: str, speaker: int, seed: int, seconds: float, work: Path) -> np.ndarray:
    """At least ``seconds`` of one speaker's speech in ``lang`` (VAD output), synthesized."""
    import soundfile as sf

    from lidframe.speech import SpeechConfig, listen
    from lidframe.testing.speech import synthesize
    from lidframe.testing.texts import TEXTS

    rng = random.Random(f"{seed}:{lang}:{speaker}")
    variant, speed, pitch = rng.choice(VARIANTS), rng.randint(130, 190), rng.randint(30, 70)
    noise = np.random.default_rng(rng.randrange(2**32))
    texts = TEXTS[lang]
    first = (random.Random(f"{seed}:{lang}").randrange(len(texts)) + speaker) % len(texts)
    sentences = []
    for i in range(len(texts)):
        path = work / f"{lang}-{speaker}-{i}.wav"
        text = texts[(first + i) % len(texts)]
        synthesize(text, lang, path, speed=speed, pitch=pitch, variant=variant)
        sentences.append(sf.read(path, dtype="float32")[0])
        path.unlink()
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    while True:
        for sentence in sentences:
            pieces += [sentence, gap]
        raw = np.concatenate(pieces)
        if len(raw) < 1.1 * seconds * SAMPLE_RATE:
            continue
        raw = raw + (noise.standard_normal(len(raw)) * 10 ** (NOISE_DB / 20)).astype(np.float32)
        heard = listen(np.clip(raw, -1, 1).astype(np.float32), SpeechConfig(), SAMPLE_RATE)
        if len(heard.wave) >= seconds * SAMPLE_RATE:
            return heard.wave


def corpus(
    languages: list[str], speakers: int, lengths: list[float], seed: int, cache: Path
) -> list[tuple[str, float, np.ndarray]]:
    """``(language, speech length, waveform)`` for every language, speaker and length."""
    import soundfile as sf

    cache.mkdir(parents=True, exist_ok=True)
    longest = max(lengths)
    clips = []
    for lang in languages:
        for speaker in range(speakers):
            path = cache / f"{lang}-seed{seed}-speaker{speaker}.wav"
            wave = sf.read(path, dtype="float32")[0] if path.is_file() else np.zeros(0)
            if len(wave) < longest * SAMPLE_RATE:
                wave = _speech(lang, speaker, seed, longest, cache)
                sf.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
            # Less one hop: prepare() gives samples / 160 + 1 frames, so L s would need one frame
            # more than L * 100 and run in the next bucket up.
            clips += [(lang, L, wave[: int(L * SAMPLE_RATE) - HOP]) for L in lengths]
    return clips


def context_run(model, clips, lengths, min_contexts, batch_size):
    """Answers, time and encoder frames per (speech length, context name)."""
    from lidframe.models.whisper import N_FRAMES

    contexts = [("full", None)] + [(f"min {m}", m / 100) for m in min_contexts]
    top: dict[tuple[float, str], np.ndarray] = {}
    seconds: dict[tuple[float, str], float] = {}
    frames: dict[tuple[float, str], int] = {}
    for length in lengths:
        features = [model.prepare(wave) for _, size, wave in clips if size == length]
        longest = max(f.shape[-1] for f in features)
        done: dict[int, tuple[np.ndarray, float]] = {}
        for name, context in contexts:
            n = model.padded_length(longest, context)
            if n not in done:
                start = time.perf_counter()
                probs = model.predict_prepared(features, batch_size, context=context)
                done[n] = (probs.argmax(axis=1), (time.perf_counter() - start) / len(features))
            top[length, name], seconds[length, name] = done[n]
            frames[length, name] = n
    assert all(frames[L, "full"] == N_FRAMES for L in lengths)
    return [c[0] for c in contexts], top, seconds, frames


def print_context(model, clips, lengths, names, top, seconds, frames) -> None:
    from lidframe.languages import canonical

    labels = np.array([canonical(lang) for lang, _, _ in clips])
    answers = np.array(model.labels)
    truth = {L: labels[[c[1] == L for c in clips]] for L in lengths}
    counts = {L: len(truth[L]) for L in lengths}
    n = sum(counts.values())

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    head = row(["speech s", "clips", *names])
    rule = row(["---:"] * (len(names) + 2))
    print("\n### Accuracy (% top-1 correct)\n")
    print(head)
    print(rule)
    for L in lengths:
        cells = [f"{100 * np.mean(answers[top[L, c]] == truth[L]):.1f}" for c in names]
        print(row([f"{L:g}", str(counts[L]), *cells]))
    overall = [
        100 * sum(np.sum(answers[top[L, c]] == truth[L]) for L in lengths) / n for c in names
    ]
    print(row(["**all**", str(n), *[f"**{a:.1f}**" for a in overall]]))

    print("\n### Forward time per clip, s (encoder frames)\n")
    print(head)
    print(rule)
    for L in lengths:
        cells = [f"{seconds[L, c]:.3f} ({frames[L, c]})" for c in names]
        print(row([f"{L:g}", str(counts[L]), *cells]))
    mean = {c: sum(seconds[L, c] * counts[L] for L in lengths) / n for c in names}
    speed = [f"**{mean[c]:.3f}** ({mean['full'] / mean[c]:.1f}x)" for c in names]
    print(row(["**all**", str(n), *speed]))

    print("\n### Agreement with `full` (% same top-1)\n")
    print(head)
    print(rule)
    for L in lengths:
        cells = [f"{100 * np.mean(top[L, c] == top[L, 'full']):.1f}" for c in names]
        print(row([f"{L:g}", str(counts[L]), *cells]))
    agree = [100 * sum(np.sum(top[L, c] == top[L, "full"]) for L in lengths) / n for c in names]
    print(row(["**all**", str(n), *[f"**{a:.1f}**" for a in agree]]))


def _non_speech(seed: int) -> list[tuple[str, np.ndarray]]:
    """Non-speech clips: silence, white noise, mains hum, sine-chord music, a short burst."""
    clips = []
    for s in range(NON_SPEECH_SEEDS):
        rng = np.random.default_rng([seed, s])
        for dur in NON_SPEECH_SECONDS:
            n = int(dur * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            clips.append(("silence", np.zeros(n)))
            for db in (-30, -50):
                clips.append((f"white noise {db} dBFS", rng.standard_normal(n) * 10 ** (db / 20)))
            mains = (50.0, 60.0, 50.0)[s]
            hum = sum(
                a * np.sin(2 * np.pi * k * mains * t) for k, a in ((1, 1), (2, 0.5), (3, 0.3))
            )
            hum = 0.1 * hum + rng.standard_normal(n) * 10 ** (-60 / 20)
            clips.append((f"hum {mains:g} Hz", hum))
            music = np.zeros(n)
            beat = int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
            envelope = np.exp(-3 * np.arange(beat) / beat)
            for start in range(0, n, beat):
                root = 220 * 2 ** (rng.integers(0, 12) / 12)
                chord = (1, 2 ** (4 / 12), 2 ** (7 / 12))  # major triad
                seg = np.arange(min(beat, n - start)) / SAMPLE_RATE
                tone = sum(np.sin(2 * np.pi * root * r * seg) for r in chord)
                music[start : start + len(seg)] = 0.1 * tone * envelope[: len(seg)]
            clips.append(("music (sine chords)", music))
        clips.append(("burst 0.05 s", rng.standard_normal(int(0.05 * SAMPLE_RATE)) * 0.3))
    return [(kind, np.clip(w, -1, 1).astype(np.float32)) for kind, w in clips]


def _first_step(model, features, context: float | None, batch_size: int) -> np.ndarray:
    """No-speech probability of each clip: softmax over the vocabulary after SOT."""
    import torch

    from lidframe.models.whisper import _encode, _token_id
    from lidframe.models.whisper_weights import resolve_whisper_source

    location = resolve_whisper_source(model.spec.source)
    try:
        token = _token_id(location, "<|nospeech|>")
    except Exception:  # noqa: BLE001 - older tokenizers call it <|nocaptions|>
        token = _token_id(location, "<|nocaptions|>")
    whisper = model._model
    out = np.zeros(len(features), dtype=np.float64)
    order = np.argsort([f.shape[-1] for f in features], kind="stable")
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        with torch.inference_mode():
            batch = model.collate([features[i] for i in chosen], context=context)
            encoded = _encode(whisper.model.encoder, batch.values)
            sot = model._sot.expand(len(chosen), 1)
            hidden = whisper.model.decoder(
                input_ids=sot, encoder_hidden_states=encoded, use_cache=False
            ).last_hidden_state[:, -1]
            probs = torch.softmax(whisper.proj_out(hidden).float(), dim=-1)
        out[chosen] = probs[:, token].numpy()
    return out


def no_speech_run(model, speech_clips, seed: int, batch_size: int, min_context: int) -> None:
    from lidframe.speech import SpeechConfig, listen

    config = SpeechConfig()
    rows = [(f"speech {L:g} s", w) for _, L, w in speech_clips]
    rows += _non_speech(seed)
    kinds = list(dict.fromkeys(k for k, _ in rows))
    heard = [listen(w, config, SAMPLE_RATE) for _, w in rows]
    passed = [i for i, h in enumerate(heard) if not h.no_speech]
    probs = {}
    for name, context in (("full", None), (f"min {min_context}", min_context / 100)):
        p = np.full(len(rows), np.nan)
        feats = [model.prepare(heard[i].wave) for i in passed]
        p[passed] = _first_step(model, feats, context, batch_size)
        probs[name] = p
    # Whisper alone, no VAD: the clip whole, padded to 30 s (the speech clips are VAD output
    # already, so only the non-speech clips).
    raw = np.full(len(rows), np.nan)
    others = [i for i, (k, _) in enumerate(rows) if not k.startswith("speech")]
    raw[others] = _first_step(model, [model.prepare(rows[i][1]) for i in others], None, batch_size)

    def stats(values: np.ndarray) -> str:
        if len(values) == 0:
            return "-"
        return f"{np.median(values):.3f} [{values.min():.3f}, {values.max():.3f}]"

    names = list(probs)
    print("\n### No-speech probability (median [min, max])\n")
    cells = ["clips", "kind", "VAD: speech", *[f"after VAD, {c}" for c in names]]
    print("| " + " | ".join([*cells, "no VAD, full (clip whole)"]) + " |")
    print("| " + " | ".join(["---:"] * (len(cells) + 1)) + " |")
    kind_of = np.array([k for k, _ in rows])
    ok = np.array([not h.no_speech for h in heard])
    for kind in kinds:
        mask = kind_of == kind
        cols = [str(int(mask.sum())), kind, str(int((mask & ok).sum()))]
        cols += [stats(probs[c][mask & ok]) for c in names]
        cols.append(stats(raw[mask & ~np.isnan(raw)]))
        print("| " + " | ".join(cols) + " |")

    is_speech = np.array([k.startswith("speech") for k in kind_of])
    print("\n### Separation of speech from non-speech by the no-speech probability\n")
    print(
        "| speech (after VAD) vs non-speech | speech clips | non-speech clips | AUC |"
        " best threshold: errors | at 0.6: speech dropped / non-speech caught |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in names:
        sp, ns = probs[c][ok & is_speech], probs[c][ok & ~is_speech]
        print(_separation(f"{c} / VAD-passed, {c}", sp, ns))
    # Whisper alone: would the no-speech probability have caught what the VAD caught?
    sp, ns = probs["full"][ok & is_speech], raw[~is_speech]
    print(_separation("full / every clip whole, full (no VAD)", sp, ns))


def _separation(name: str, sp: np.ndarray, ns: np.ndarray) -> str:
    """One table row: how well ``p >= threshold`` tells non-speech ``ns`` from speech ``sp``."""
    dropped = f"{int(np.sum(sp >= 0.6))} / {int(np.sum(ns >= 0.6)) if len(ns) else '-'}"
    if len(ns) == 0 or len(sp) == 0:
        return f"| {name} | {len(sp)} | {len(ns)} | - | - | {dropped} |"
    auc = float(np.mean(sp[:, None] < ns[None, :]) + 0.5 * np.mean(sp[:, None] == ns[None, :]))
    cuts = np.unique(np.concatenate([sp, ns, [1.1]]))
    best, at = min((int(np.sum(sp >= t) + np.sum(ns < t)), t) for t in cuts)
    return f"| {name} | {len(sp)} | {len(ns)} | {auc:.3f} | {best} (>= {at:.3f}) | {dropped} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--languages", help="comma-separated TEXTS keys (default: all 34)")
    parser.add_argument("--speakers", type=int, default=2, help="seeded speakers per language")
    parser.add_argument("--lengths", default="1,2,3,5,8,12,20,30", help="speech seconds")
    parser.add_argument("--min-contexts", default="0,500,1000,1500", help="frames")
    parser.add_argument("--corpus-dir", help="cache of the speech (default: a temporary dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-speech", action="store_true", help="the no-speech measurement")
    parser.add_argument(
        "--no-speech-context", type=int, default=1000, help="min_context beside full (frames)"
    )
    args = parser.parse_args()

    import torch

    from lidframe.models import load_model, parse_model
    from lidframe.testing.texts import TEXTS

    torch.set_num_threads(args.threads)
    languages = args.languages.split(",") if args.languages else list(TEXTS)
    lengths = sorted(NO_SPEECH_LENGTHS if args.no_speech else _floats(args.lengths))
    min_contexts = [int(x) for x in _floats(args.min_contexts)]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lidframe-context-") as tmp:
        cache = Path(args.corpus_dir or tmp)
        clips = corpus(languages, args.speakers, lengths, args.seed, cache)
    built = time.perf_counter() - began
    model = load_model(parse_model("whisper-base", device="cpu"))
    warm = [np.zeros((80, 100), dtype=np.float32)] * args.batch_size
    model.predict_prepared(warm, args.batch_size)  # warm up
    print(f"machine: {_machine()}; threads {args.threads}; batch size {args.batch_size}")
    print(
        f"corpus: {len(languages)} languages x {args.speakers} speakers x {len(lengths)} lengths"
        f" = {len(clips)} clips (espeak-ng, noise {NOISE_DB:g} dBFS, silero-vad speech only);"
        f" built in {built:.0f} s"
    )
    if args.no_speech:
        no_speech_run(model, clips, args.seed, args.batch_size, args.no_speech_context)
    else:
        names, top, seconds, frames = context_run(
            model, clips, lengths, min_contexts, args.batch_size
        )
        print_context(model, clips, lengths, names, top, seconds, frames)
    print(f"\nwall time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
