"""Train a tiny VoxLingua107-layout ECAPA language classifier on espeak-ng speech.

The Hugging Face hub is out of reach in tests and CI, so lidframe's SpeechBrain path is exercised
with a model of its own that has EXACTLY the layout of ``speechbrain/lang-id-voxlingua107-ecapa``::

    hyperparams.yaml       same classes and keys as the hub file, smaller sizes
    embedding_model.ckpt   torch.save(ECAPA_TDNN.state_dict())
    classifier.ckpt        torch.save(Xvector.Classifier.state_dict())
    label_encoder.txt      CategoricalEncoder.save(), labels like 'de: German'
    README.md              what this is (NOT the real VoxLingua107 model) and how it was made

It is loaded by SpeechBrain's own ``EncoderClassifier.from_hparams`` and scored with
``classify_batch`` on padded batches, the real inference path.

Data: for each of 12 languages, espeak-ng speaks sentences of 12-20 words drawn from the language's
2,000 most frequent words (``wordfreq.top_n_list``), with voice variants (``de+f3``), speeds
(130-200 wpm) and pitches (30-70). Training and held-out clips are generated separately: held-out
clips use words from a held-out part of each vocabulary (never spoken in training), and half of them
use voice variants never used in training.

Run (about 10 minutes on 2 CPU cores)::

    python examples/models/train_espeak_ecapa.py --seed 0

Dev-only dependencies: wordfreq, espeak-ng (plus speechbrain, torch, soundfile, soxr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

SAMPLE_RATE = 16_000

# ISO 639-1 code -> (VoxLingua107 label, espeak-ng voice). Labels as in the hub's label_encoder.txt.
LANGUAGES: dict[str, tuple[str, str]] = {
    "cs": ("cs: Czech", "cs"),
    "de": ("de: German", "de"),
    "en": ("en: English", "en-us"),
    "es": ("es: Spanish", "es"),
    "fi": ("fi: Finnish", "fi"),
    "fr": ("fr: French", "fr-fr"),
    "hu": ("hu: Hungarian", "hu"),
    "it": ("it: Italian", "it"),
    "nl": ("nl: Dutch", "nl"),
    "pl": ("pl: Polish", "pl"),
    "ru": ("ru: Russian", "ru"),
    "sv": ("sv: Swedish", "sv"),
}
# espeak-ng voice variants: None is the plain voice. Held-out "unseen" clips use the second list.
TRAIN_VARIANTS: tuple[str | None, ...] = (
    None, "m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4",
    "iven", "john", "steph", "michel", "norbert", "anika", "Alex", "Andy",
)  # fmt: skip
UNSEEN_VARIANTS: tuple[str, ...] = ("m6", "m7", "m8", "f5")
SPEED_RANGE = (130, 200)
PITCH_RANGE = (30, 70)
WORDS_RANGE = (12, 20)
VOCAB_SIZE = 2000
HELDOUT_VOCAB_FRACTION = 0.2

HYPERPARAMS_TEMPLATE = """\
# ############################################################################
# Model: small ECAPA-TDNN for language identification, in the layout of
#        speechbrain/lang-id-voxlingua107-ecapa.
# NOT the real VoxLingua107 model: trained by lidframe on espeak-ng speech in
# {n_langs} languages, for tests. See README.md.
# ############################################################################

# Where the checkpoints are. Like the hub's file (which names the hub id), this is
# a placeholder: load with the directory itself, as lidframe does:
# EncoderClassifier.from_hparams(source=d, overrides={{"pretrained_path": d}})
pretrained_path: {pretrained_path}

# Feature parameters
n_mels: {n_mels}
left_frames: 0
right_frames: 0
deltas: False

# Number of languages
out_n_neurons: {n_langs}

# Functions
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
    left_frames: !ref <left_frames>
    right_frames: !ref <right_frames>
    deltas: !ref <deltas>

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {channels}
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: {attention_channels}
    lin_neurons: {emb_dim}

classifier: !new:speechbrain.lobes.models.Xvector.Classifier
    input_shape: [null, null, {emb_dim}]
    activation: !name:torch.nn.LeakyReLU
    lin_blocks: 1
    lin_neurons: {cls_neurons}
    out_neurons: !ref <out_n_neurons>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def vocabularies(seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """Per language: (training words, held-out words), a seeded split of the top-2000 words."""
    import wordfreq

    out = {}
    for lang in LANGUAGES:
        words = [w for w in wordfreq.top_n_list(lang, VOCAB_SIZE) if w.isalpha()]
        rng = random.Random(f"vocab-{seed}-{lang}")
        shuffled = words[:]
        rng.shuffle(shuffled)
        n_held = int(len(shuffled) * HELDOUT_VOCAB_FRACTION)
        out[lang] = (sorted(shuffled[n_held:]), sorted(shuffled[:n_held]))
    return out


def plan_clips(seed: int, n_train: int, n_heldout: int) -> list[dict]:
    """Every clip to synthesize: language, split, text, voice variant, speed, pitch."""
    vocab = vocabularies(seed)
    jobs = []
    for lang in LANGUAGES:
        train_words, held_words = vocab[lang]
        for split, count in (("train", n_train), ("heldout", n_heldout)):
            for i in range(count):
                rng = random.Random(f"clip-{seed}-{split}-{lang}-{i}")
                words = train_words if split == "train" else held_words
                n_words = rng.randint(*WORDS_RANGE)
                text = " ".join(rng.choice(words) for _ in range(n_words))
                if split == "train":
                    variant, subset = rng.choice(TRAIN_VARIANTS), "train"
                elif i % 2 == 0:
                    variant, subset = rng.choice(TRAIN_VARIANTS), "seen-variant"
                else:
                    variant, subset = rng.choice(UNSEEN_VARIANTS), "unseen-variant"
                jobs.append(
                    {
                        "lang": lang,
                        "split": split,
                        "subset": subset,
                        "index": i,
                        "text": text,
                        "variant": variant,
                        "speed": rng.randint(*SPEED_RANGE),
                        "pitch": rng.randint(*PITCH_RANGE),
                    }
                )
    return jobs


def speak(job: dict) -> np.ndarray:
    """espeak-ng -> mono float32 at 16 kHz."""
    voice = LANGUAGES[job["lang"]][1]
    spoken = f"{voice}+{job['variant']}" if job["variant"] else voice
    with tempfile.TemporaryDirectory(prefix="espeak-ecapa-") as tmp:
        wav = Path(tmp) / "x.wav"
        cmd = ["espeak-ng", "-b", "1", "-v", spoken, "-s", str(job["speed"]), "-p",
               str(job["pitch"]), "-w", str(wav), "--", job["text"]]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def synthesize_all(jobs: list[dict], work: Path, workers: int) -> list[np.ndarray]:
    """Synthesize every clip (2 processes), cached in ``work`` by a hash of the plan."""
    key = hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()[:16]
    cache = work / f"clips-{key}.pt"
    if cache.exists():
        print(f"using cached clips {cache}", flush=True)
        return [t.numpy() for t in torch.load(cache)]
    t0 = time.time()
    with Pool(workers) as pool:
        audio = pool.map(speak, jobs, chunksize=16)
    work.mkdir(parents=True, exist_ok=True)
    torch.save([torch.from_numpy(a) for a in audio], cache)
    hours = sum(a.shape[0] for a in audio) / SAMPLE_RATE / 3600
    print(f"synthesized {len(jobs)} clips ({hours:.2f} h) in {time.time() - t0:.0f} s", flush=True)
    return audio


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def build_modules(args, n_langs: int):
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.lobes.models.Xvector import Classifier
    from speechbrain.processing.features import InputNormalization

    channels = [args.channels] * 4 + [args.channels * 3]
    compute_features = Fbank(n_mels=args.n_mels, left_frames=0, right_frames=0, deltas=False)
    mean_var_norm = InputNormalization(norm_type="sentence", std_norm=False)
    embedding_model = ECAPA_TDNN(
        input_size=args.n_mels,
        channels=channels,
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=args.attention_channels,
        lin_neurons=args.emb_dim,
    )
    classifier = Classifier(
        input_shape=[None, None, args.emb_dim],
        activation=torch.nn.LeakyReLU,
        lin_blocks=1,
        lin_neurons=args.cls_neurons,
        out_neurons=n_langs,
    )
    return compute_features, mean_var_norm, embedding_model, classifier, channels


def random_eq(wav: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One or two random peaking-EQ bands (+-12 dB): unseen voices differ in spectral tilt."""
    import torchaudio.functional as F

    for _ in range(rng.integers(1, 3)):
        freq = float(np.exp(rng.uniform(np.log(150.0), np.log(6000.0))))
        wav = F.equalizer_biquad(wav, SAMPLE_RATE, freq, float(rng.uniform(-12, 12)),
                                 float(rng.uniform(0.5, 2.0)))  # fmt: skip
    return wav


def make_batch(clips, labels, idx, rng: np.random.Generator, crop_range, noise_p, eq_p):
    """Random crops of one length (seconds from ``crop_range``), random EQ, light noise, gain."""
    seconds = rng.uniform(*crop_range)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros((len(idx), n), dtype=np.float32)
    for row, i in enumerate(idx):
        clip = clips[i]
        if clip.shape[0] > n:
            start = rng.integers(0, clip.shape[0] - n + 1)
            seg = clip[start : start + n]
        else:
            start = rng.integers(0, n - clip.shape[0] + 1)
            seg = np.zeros(n, dtype=np.float32)
            seg[start : start + clip.shape[0]] = clip
        if rng.random() < eq_p:
            seg = random_eq(torch.from_numpy(seg), rng).numpy()
            seg = seg / max(1.0, float(np.abs(seg).max()))
        seg = seg * rng.uniform(0.3, 1.0)
        if rng.random() < noise_p:  # white noise, -70 .. -30 dB below full scale
            seg = seg + rng.standard_normal(n).astype(np.float32) * 10 ** (
                rng.uniform(-70, -30) / 20
            )
        out[row] = seg
    return torch.from_numpy(out), torch.as_tensor([labels[i] for i in idx])


def train(args, train_clips, train_labels, modules, n_langs):
    compute_features, mean_var_norm, embedding_model, classifier = modules
    params = list(embedding_model.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=2e-6)
    steps_per_epoch = math.ceil(len(train_clips) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = min(50, total // 10)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * progress))

    rng = np.random.default_rng(args.seed)
    embedding_model.train()
    classifier.train()
    step = 0
    t0 = time.time()
    for epoch in range(args.epochs):
        order = rng.permutation(len(train_clips))
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one example
                continue
            wavs, y = make_batch(
                train_clips, train_labels, idx, rng, args.crop, args.noise_p, args.eq_p
            )
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            feats = compute_features(wavs)
            feats = mean_var_norm(feats, torch.ones(len(idx)))
            logp = classifier(embedding_model(feats)).squeeze(1)
            loss = torch.nn.functional.nll_loss(logp, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logp.argmax(-1) == y).sum())
            seen += len(idx)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.4f} "
            f"train-crop acc {correct / seen:.3f} lr {lr_at(step - 1):.2e} "
            f"elapsed {time.time() - t0:.0f} s",
            flush=True,
        )
    embedding_model.eval()
    classifier.eval()
    return time.time() - t0


# ----------------------------------------------------------------------------------------------
# Writing the hub layout and evaluating through SpeechBrain
# ----------------------------------------------------------------------------------------------


def write_model_dir(out: Path, args, channels, embedding_model, classifier, labels):
    from speechbrain.dataio.encoder import CategoricalEncoder

    out.mkdir(parents=True, exist_ok=True)
    for name in ("hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt",
                 "label_encoder.txt", "README.md"):  # fmt: skip
        (out / name).unlink(missing_ok=True)
    hparams = HYPERPARAMS_TEMPLATE.format(
        pretrained_path="voxlingua107-espeak-ecapa",
        n_mels=args.n_mels,
        n_langs=len(labels),
        channels="[" + ", ".join(str(c) for c in channels) + "]",
        attention_channels=args.attention_channels,
        emb_dim=args.emb_dim,
        cls_neurons=args.cls_neurons,
    )
    (out / "hyperparams.yaml").write_text(hparams, encoding="utf-8")
    torch.save(embedding_model.state_dict(), out / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), out / "classifier.ckpt")
    encoder = CategoricalEncoder()
    for label in labels:
        encoder.add_label(label)
    encoder.save(out / "label_encoder.txt")


def evaluate_loaded(out: Path, clips, jobs, batch_size: int, seed: int, noise_db=None):
    """Held-out accuracy through EncoderClassifier.from_hparams + classify_batch (padded batches)."""
    from speechbrain.inference.classifiers import EncoderClassifier

    with tempfile.TemporaryDirectory(prefix="espeak-ecapa-savedir-") as savedir:
        clf = EncoderClassifier.from_hparams(
            source=str(out), savedir=savedir, overrides={"pretrained_path": str(out)}
        )
        clf.eval()
        rng = np.random.default_rng(seed + 1)
        order = rng.permutation(len(clips))  # mixed lengths in each batch: padding is exercised
        preds = [None] * len(clips)
        first = None
        with torch.no_grad():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                batch_clips = []
                for i in idx:
                    clip = clips[i]
                    if noise_db is not None:
                        noise = np.random.default_rng(int(i)).standard_normal(clip.shape[0])
                        clip = np.clip(clip + noise * 10 ** (noise_db / 20), -1, 1)
                    batch_clips.append(clip.astype(np.float32))
                longest = max(c.shape[0] for c in batch_clips)
                wavs = torch.zeros(len(idx), longest)
                for row, c in enumerate(batch_clips):
                    wavs[row, : c.shape[0]] = torch.from_numpy(c)
                wav_lens = torch.tensor([c.shape[0] / longest for c in batch_clips])
                out_prob, score, index, text_lab = clf.classify_batch(wavs, wav_lens)
                if first is None:
                    first = (tuple(out_prob.shape), tuple(score.shape), tuple(index.shape),
                             type(text_lab).__name__, text_lab[:2],
                             float(out_prob.exp().sum(-1).mean()))  # fmt: skip
                for row, i in enumerate(idx):
                    preds[i] = text_lab[row].split(":", 1)[0]
    results = {}
    for subset in ("all", "seen-variant", "unseen-variant"):
        for lang in [*LANGUAGES, "all"]:
            sel = [
                k
                for k, j in enumerate(jobs)
                if (subset == "all" or j["subset"] == subset)
                and (lang == "all" or j["lang"] == lang)
            ]
            if sel:
                acc = sum(preds[k] == jobs[k]["lang"] for k in sel) / len(sel)
                results[(subset, lang)] = (acc, len(sel))
    return results, first, preds


def format_results(results) -> str:
    lines = ["| language | held-out (all) | seen variants | unseen variants |", "|---|---|---|---|"]
    for lang in [*LANGUAGES, "all"]:
        cells = []
        for subset in ("all", "seen-variant", "unseen-variant"):
            acc, n = results[(subset, lang)]
            cells.append(f"{100 * acc:.1f}% ({round(acc * n)}/{n})")
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme(out: Path, args, argv, n_params, size, train_s, results, noisy, counts):
    acc, n = results[("all", "all")]
    variants = ", ".join(v for v in TRAIN_VARIANTS if v)
    readme = f"""# voxlingua107-espeak-ecapa: a tiny test model (NOT VoxLingua107)

This directory has exactly the layout of the Hugging Face model
`speechbrain/lang-id-voxlingua107-ecapa` (`hyperparams.yaml`, `embedding_model.ckpt`,
`classifier.ckpt`, `label_encoder.txt`, labels like `de: German`) and loads with SpeechBrain's own
`EncoderClassifier.from_hparams(source=THIS_DIR, savedir=...)`. It is **not** the real VoxLingua107
model: it is a small ECAPA-TDNN ({n_params:,} parameters) trained from scratch by lidframe on
synthetic espeak-ng speech in {len(LANGUAGES)} languages ({", ".join(LANGUAGES)}), so that tests can run
the SpeechBrain path offline. Do not use it on real speech.

## How it was made

    python examples/models/train_espeak_ecapa.py {" ".join(argv)}

Seed {args.seed}, {args.epochs} epochs, {train_s / 60:.1f} min of training on 2 CPU cores
(torch {torch.__version__}). Data: per language {counts[0]} training clips and {counts[1]} held-out clips,
12-20 words sampled from the language's 2,000 most frequent words (`wordfreq.top_n_list`), spoken by
espeak-ng with voice variants ({variants} and the plain voice),
speeds 130-200 wpm and pitches 30-70, resampled to
16 kHz mono. Held-out clips use only words from a held-out 20% of each vocabulary; half of them use
voice variants never used in training ({", ".join(UNSEEN_VARIANTS)}). Training used random 2-4 s
crops with random EQ, light noise and gain; Adam, NLL loss on the classifier's log-softmax output.

Features and model: `Fbank(n_mels={args.n_mels})` -> `InputNormalization(sentence, std_norm=False)`
-> `ECAPA_TDNN(channels={[args.channels] * 4 + [args.channels * 3]}, lin_neurons={args.emb_dim})`
-> `Xvector.Classifier(lin_neurons={args.cls_neurons}, out_neurons={len(LANGUAGES)})`.
Size on disk: {size / 1e6:.2f} MB.

## Held-out top-1 accuracy

Computed by loading this directory with `EncoderClassifier.from_hparams` and calling
`classify_batch` on padded batches with relative `wav_lens`: **{100 * acc:.1f}%** ({round(acc * n)}/{n});
with white noise at -40 dBFS added: {100 * noisy:.1f}%.

{format_results(results)}

`pretrained_path` in `hyperparams.yaml` is a placeholder, as the hub's is: load with
`overrides={{"pretrained_path": "/path/to/this/dir"}}` (lidframe does this for local directories).
"""
    (out / "README.md").write_text(readme, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_out = Path(__file__).resolve().parents[2] / "tests/assets/voxlingua107-espeak-ecapa"
    p.add_argument("--out", type=Path, default=default_out)
    p.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "lidframe-espeak-ecapa"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--train-per-lang", type=int, default=150)
    p.add_argument("--heldout-per-lang", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-final", type=float, default=5e-5)
    p.add_argument("--crop", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN_S", "MAX_S"))
    p.add_argument("--noise-p", type=float, default=0.5, help="fraction of crops given noise")
    p.add_argument("--eq-p", type=float, default=0.5, help="fraction of crops given random EQ")
    p.add_argument("--n-mels", type=int, default=60)
    p.add_argument("--channels", type=int, default=128, help="ECAPA channels (last block: 3x)")
    p.add_argument("--attention-channels", type=int, default=64)
    p.add_argument("--emb-dim", type=int, default=96)
    p.add_argument("--cls-neurons", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    codes = sorted(LANGUAGES)
    labels = [LANGUAGES[c][0] for c in codes]

    jobs = plan_clips(args.seed, args.train_per_lang, args.heldout_per_lang)
    audio = synthesize_all(jobs, args.work, workers=args.threads)
    train_idx = [k for k, j in enumerate(jobs) if j["split"] == "train"]
    held_idx = [k for k, j in enumerate(jobs) if j["split"] == "heldout"]
    train_clips = [audio[k] for k in train_idx]
    train_labels = [codes.index(jobs[k]["lang"]) for k in train_idx]
    held_clips = [audio[k] for k in held_idx]
    held_jobs = [jobs[k] for k in held_idx]
    lens = np.array([a.shape[0] / SAMPLE_RATE for a in audio])
    print(f"clip length: mean {lens.mean():.1f} s, min {lens.min():.1f} s, max {lens.max():.1f} s")

    compute_features, mean_var_norm, embedding_model, classifier, channels = build_modules(
        args, len(codes)
    )
    n_params = sum(q.numel() for m in (embedding_model, classifier) for q in m.parameters())
    print(
        f"parameters: {n_params:,} (embedding {sum(q.numel() for q in embedding_model.parameters()):,})"
    )
    train_s = train(
        args, train_clips, train_labels,
        (compute_features, mean_var_norm, embedding_model, classifier), len(codes),
    )  # fmt: skip
    print(f"training time: {train_s:.0f} s")

    write_model_dir(args.out, args, channels, embedding_model, classifier, labels)
    results, first, _ = evaluate_loaded(args.out, held_clips, held_jobs, 16, args.seed)
    noisy_results, _, _ = evaluate_loaded(
        args.out, held_clips, held_jobs, 16, args.seed, noise_db=-40
    )
    print(
        "classify_batch -> out_prob {}, score {}, index {}, text_lab {} e.g. {}; "
        "sum(exp(out_prob)) = {:.4f}".format(*first)
    )
    print(format_results(results))
    noisy = noisy_results[("all", "all")][0]
    print(f"held-out accuracy with -40 dBFS noise: {100 * noisy:.1f}%")
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    write_readme(args.out, args, argv, n_params, size, train_s, results, noisy,
                 (args.train_per_lang, args.heldout_per_lang))  # fmt: skip
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    acc = results[("all", "all")][0]
    print(f"wrote {args.out} ({size / 1e6:.2f} MB); held-out top-1 accuracy {100 * acc:.1f}%")
    return 0 if acc >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
