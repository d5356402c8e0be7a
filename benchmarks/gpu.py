"""GPU throughput: the CPU pool alone, the model alone, end to end, GPU busy share; fp32 against bf16.

For each model (``base``: whisper-base, real weights; ``large-v3``: the whisper-large-v3
architecture with random weights, since throughput does not depend on the values and hub weights
cannot be downloaded on the lent machine) and each dtype, one run measures on the same corpus:

* ``cpu pool``: the kernel (``identify_partition``) with a model that answers without computing:
  decoding in the decoder processes, voice activity and the model's ``prepare`` (log-mel) in the
  decode threads. What the CPU side can feed.
* ``model``: forward passes only, over the corpus's batches already collated on the device (the
  kernel's grouping: :data:`lidframe.kernel.BUCKETS` batches sorted by length, the speech-aware
  encoder context). What the GPU can answer.
* ``end to end``: the kernel from the files with the real model loaded (one worker's steady
  state), while a thread samples NVML's utilisation every 100 ms (GPU busy share: the share of time
  a kernel was running, not SM occupancy); ``--run`` adds ``lidframe.run`` (cluster start, job).

Every rate is manifest rows (clips) per second, so ``end to end / min(cpu pool, model)`` says how
much of the slower side the overlap keeps; audio-seconds per wall-second is the corpus's audio over
the end-to-end time. Targets (issue 13, on the H200): end to end >= 90% of min(cpu pool, model);
large-v3 GPU busy >= 90%; whisper-base bf16 top-1 agreement with fp32 >= 99.5%.

Corpus: the mixed-length espeak-ng corpus of ``benchmarks/throughput.py`` (speech of 1-28 s in
every language of ``lidframe.testing.TEXTS``, some padded with silence or noise), made here with
``--corpus-out DIR`` (FLAC) and read with ``--corpus DIR``; ``--clips`` rows cycle over its files.

    python benchmarks/gpu.py --device cpu --clips 16 --models base --dtypes float32   # here
    python benchmarks/gpu.py --device cuda --corpus /tmp/stage/corpus --clips 1024 \
        --models base,large-v3 --dtypes float32,bfloat16 --whisper-base /tmp/stage/wb  # the H200

On the H200 (benchmarks/gpu.md says how): the machine has torch, transformers, numpy, pandas,
pyarrow, onnxruntime and nvidia-ml-py but no espeak-ng, no Dask and none of lidframe's audio
libraries, and a call carries at most 64 MiB: the wheels it lacks, the corpus made here and
whisper-base's converted directory (145 MB) go as one tar cut into pieces, one per staging call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGET_OVERLAP, TARGET_BUSY, TARGET_AGREEMENT = 0.90, 0.90, 0.995
# whisper-large-v3's sizes (openai/whisper-large-v3 config.json).
LARGE_V3 = {
    "d_model": 1280, "encoder_layers": 32, "decoder_layers": 32, "encoder_attention_heads": 20,
    "decoder_attention_heads": 20, "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120,
    "num_mel_bins": 128, "vocab_size": 51866, "max_source_positions": 1500,
    "max_target_positions": 448, "pad_token_id": 50256, "bos_token_id": 50257,
    "eos_token_id": 50257, "decoder_start_token_id": 50258,
}  # fmt: skip
YUE = 50358  # large-v3 added <|yue|> here; every special token from here on moved up one


def make_corpus(out: Path, clips: int) -> None:
    """The mixed-length corpus as FLAC files and a manifest of relative names (espeak-ng here)."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import mixed_corpus

    with tempfile.TemporaryDirectory() as tmp:
        frame = mixed_corpus(Path(tmp), clips)
        out.mkdir(parents=True, exist_ok=True)
        for row in frame.itertuples():
            wave, rate = sf.read(row.audio, dtype="float32")
            sf.write(out / f"{row.id}.flac", wave, rate, format="FLAC")
    frame.assign(audio=frame["id"] + ".flac")[["id", "audio", "label"]].to_csv(
        out / "manifest.csv", index=False
    )


def corpus_manifest(folder: Path, clips: int) -> tuple[pd.DataFrame, float]:
    """``clips`` rows cycling over the corpus's files, and their audio seconds."""
    import soundfile as sf

    files = pd.read_csv(folder / "manifest.csv")
    seconds = {a: sf.info(str(folder / a)).duration for a in files["audio"]}
    picks = [files.iloc[i % len(files)] for i in range(clips)]
    frame = pd.DataFrame(
        {
            "id": [f"{p['id']}-{i}" for i, p in enumerate(picks)],
            "audio": [str(folder / p["audio"]) for p in picks],
            "label": [p["label"] for p in picks],
        }
    )
    return frame, float(sum(seconds[p["audio"]] for p in picks))


def large_v3_dir(
    out: Path, base_dir: Path, device: str, sizes: dict[str, int] | None = None
) -> Path:
    """A transformers Whisper directory with large-v3's architecture, random weights (seeded, bf16
    on disk) and a large-v3 tokenizer made from whisper-base's (``<|yue|>`` inserted). ``sizes``:
    other sizes than :data:`LARGE_V3` (tests build a small one)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if (out / "model.safetensors").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device):  # random initialisation of 1.5 B parameters is slow on a CPU
        model = WhisperForConditionalGeneration(WhisperConfig(**(sizes or LARGE_V3)))
    model.to(torch.bfloat16).save_pretrained(out)
    tok = json.loads((base_dir / "tokenizer.json").read_text())
    for token in tok["added_tokens"]:
        token["id"] += token["id"] >= YUE
    yue = dict(next(t for t in tok["added_tokens"] if t["content"] == "<|su|>"), content="<|yue|>")
    tok["added_tokens"].append(dict(yue, id=YUE))
    tok["added_tokens"].sort(key=lambda t: t["id"])
    for special in (tok.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [i + (i >= YUE) for i in special.get("ids", [])]
    (out / "tokenizer.json").write_text(json.dumps(tok))
    return out


def _cpu_pool_family(real: Any) -> Any:
    """A model that hears like ``real`` (its ``prepare``) and answers uniformly without computing."""
    from lidframe.models import LidModel

    class CpuPool(LidModel):
        min_samples = real.min_samples

        @property
        def labels(self) -> tuple[str, ...]:
            return tuple(real.labels)

        def prepare(self, waveform: np.ndarray) -> np.ndarray:
            return real.prepare(waveform)

        def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
            # Without forward(), the kernel's prepared features come here as they are.
            return np.full((len(waveforms), len(self.labels)), 1 / len(self.labels), np.float32)

    return CpuPool


def _kernel(spec: Any, args: argparse.Namespace) -> Any:
    from lidframe.kernel import KernelConfig

    extra = {}
    names = {f.name for f in dataclasses.fields(KernelConfig)}
    if args.batch_seconds is not None and "batch_seconds" in names:
        extra["batch_seconds"] = args.batch_seconds  # a per-pass seconds budget, where it exists
    return KernelConfig(
        models=(spec,), batch_size=args.batch_size, decode_threads=args.decode_threads, **extra
    )


class Busy:
    """Samples NVML utilisation ("a kernel was running" share) every 100 ms while in a ``with``."""

    def __init__(self, device: str) -> None:
        self.samples: list[int] = []
        self.handle = None
        if device.startswith("cuda"):
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(
                int(visible) if visible.isdigit() else 0
            )
            self.read = lambda: pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
        self.stop = threading.Event()

    def __enter__(self) -> Busy:
        if self.handle is not None:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.1):
            self.samples.append(int(self.read()))

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.handle is not None:
            self.thread.join()

    @property
    def share(self) -> float | None:
        return float(np.mean(self.samples)) / 100 if self.samples else None


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_only(model: Any, manifest: pd.DataFrame, args: argparse.Namespace) -> float:
    """Seconds of the forward passes the corpus needs, its batches already on the device."""
    import torch

    from lidframe.audio import decode_window
    from lidframe.kernel import BUCKETS
    from lidframe.speech import SpeechConfig, listen

    speech = SpeechConfig()
    prepared: dict[str, np.ndarray | None] = {}
    for uri in dict.fromkeys(manifest["audio"]):
        heard = listen(decode_window(uri), speech)
        prepared[uri] = None if heard.no_speech else model.prepare(heard.wave)
    features = [f for f in (prepared[u] for u in manifest["audio"]) if f is not None]
    batches = []
    group = BUCKETS * args.batch_size
    for start in range(0, len(features), group):
        window = sorted(features[start : start + group], key=lambda f: f.shape[-1])
        for i in range(0, len(window), args.batch_size):
            batches.append(
                model.collate(window[i : i + args.batch_size], context=speech.min_context)
            )
    with torch.inference_mode():
        model.forward(batches[0])  # warm up
        _sync(args.device)
        started = time.perf_counter()
        for batch in batches:
            model.forward(batch)
        _sync(args.device)
    return time.perf_counter() - started


def measure(spec: Any, manifest: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    """The three rates, busy share and answers of one model in one dtype."""
    import lidframe
    from lidframe.kernel import identify_partition
    from lidframe.models import load_model, register_family

    n = len(manifest)
    real = load_model(spec)
    pool_class = _cpu_pool_family(real)
    register_family("cpu-pool", pool_class)
    pool_spec = lidframe.parse_model(f"cpu-pool:{spec.alias}-{spec.dtype}", device="cpu")
    pool_config = _kernel(pool_spec, args)
    identify_partition(manifest.head(args.batch_size), pool_config)  # start the decoders
    started = time.perf_counter()
    identify_partition(manifest, pool_config)
    figures: dict[str, Any] = {"cpu pool": n / (time.perf_counter() - started)}
    figures["model"] = n / model_only(real, manifest, args)
    config = _kernel(spec, args)
    identify_partition(manifest.head(args.batch_size), config)  # warm up
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
    with Busy(args.device) as busy:
        started = time.perf_counter()
        out = identify_partition(manifest, config)
        _sync(args.device)
        seconds = time.perf_counter() - started
    figures.update({"end to end": n / seconds, "busy": busy.share, "wall": seconds})
    figures["langs"] = out[f"{spec.alias}_lang"].astype(str).to_numpy()
    figures["errors"] = int(out["error"].notna().sum())
    if args.device.startswith("cuda"):
        import torch

        figures["peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
    if args.run:
        with tempfile.TemporaryDirectory() as tmp:
            manifest.to_csv(Path(tmp) / "m.csv", index=False)
            started = time.perf_counter()
            lidframe.run(
                Path(tmp) / "m.csv", Path(tmp) / "out", [spec.name], device=args.device,
                dtype=spec.dtype, batch_size=args.batch_size, partition_rows=max(1, n // 8),
                progress=False, db=False,
            )  # fmt: skip
            figures["lidframe.run"] = n / (time.perf_counter() - started)
    return figures


def _machine(device: str) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU used"
    return f"{os.cpu_count()} cores ({platform.machine()}), {gpu}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--clips", type=int, default=512, help="manifest rows (cycling the corpus)")
    parser.add_argument("--models", default="base,large-v3", help="base and/or large-v3")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 cuda, 8 cpu")
    parser.add_argument("--batch-seconds", type=float, default=None, help="if the kernel has it")
    parser.add_argument("--decode-threads", type=int, default=None, help="default: cores per GPU")
    parser.add_argument("--corpus", type=Path, default=None, help="a corpus made by --corpus-out")
    parser.add_argument("--corpus-out", type=Path, default=None, help="make a corpus; exit")
    parser.add_argument("--whisper-base", default="packaged:whisper-base", help="its weights")
    parser.add_argument("--work", type=Path, default=None, help="where large-v3 is built")
    parser.add_argument("--run", action="store_true", help="also time lidframe.run (a cluster)")
    args = parser.parse_args()
    if args.corpus_out is not None:
        make_corpus(args.corpus_out, args.clips)
        print(f"corpus of {args.clips} clips in {args.corpus_out}")
        return

    import torch

    import lidframe
    from lidframe.cluster import gpu_decode_threads
    from lidframe.models.whisper_weights import resolve_whisper_source

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU; use --device cpu")
    args.batch_size = args.batch_size or (32 if cuda else 8)
    args.decode_threads = args.decode_threads or (
        gpu_decode_threads() if cuda else os.cpu_count() or 1
    )
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            corpus = Path(tmp) / "corpus"
            make_corpus(corpus, min(args.clips, 96))
        manifest, audio_seconds = corpus_manifest(corpus, args.clips)
        # A directory is used as it is (large-v3 alone needs only its tokenizer.json).
        given = Path(args.whisper_base)
        base_dir = given if given.is_dir() else Path(resolve_whisper_source(args.whisper_base))
        sources = {"base": str(base_dir)}
        if "large-v3" in args.models:
            work = args.work or Path(tmp)
            sources["large-v3"] = str(large_v3_dir(work / "large-v3", base_dir, args.device))
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for name in args.models.split(","):
            for dtype in args.dtypes.split(","):
                spec = lidframe.parse_model(
                    f"whisper:{sources[name]}", device=args.device, dtype=dtype
                )
                results[name, dtype] = measure(spec, manifest, args)
                if cuda:
                    torch.cuda.empty_cache()
    report(results, manifest, audio_seconds, args)


def report(
    results: dict[tuple[str, str], dict[str, Any]],
    manifest: pd.DataFrame,
    audio_seconds: float,
    args: argparse.Namespace,
) -> None:
    """The table, the fp32/bf16 agreement and each target, met or not."""
    n = len(manifest)
    print(f"machine: {_machine(args.device)}")
    print(
        f"clips: {n} rows over {manifest['audio'].nunique()} files, {audio_seconds / n:.1f} s "
        f"mean; batch {args.batch_size}; decode threads {args.decode_threads}; speech-aware context"
    )
    head = f"{'model':9s} {'dtype':9s} {'cpu pool':>9s} {'model':>9s} {'end2end':>9s}"
    print(head + f" {'e2e/min':>8s} {'GPU busy':>9s} {'audio s/s':>10s} {'errors':>6s}")
    for (name, dtype), f in results.items():
        ratio = f["end to end"] / min(f["cpu pool"], f["model"])
        busy = "n/a" if f["busy"] is None else f"{f['busy']:.1%}"
        print(
            f"{name:9s} {dtype:9s} {f['cpu pool']:9.2f} {f['model']:9.2f} {f['end to end']:9.2f} "
            f"{ratio:8.2f} {busy:>9s} {audio_seconds / f['wall']:10.1f} {f['errors']:6d}"
            + (f"   peak {f['peak GiB']:.1f} GiB" if "peak GiB" in f else "")
            + (f"   lidframe.run {f['lidframe.run']:.2f} clips/s" if "lidframe.run" in f else "")
        )
    print(
        "(clips/s per manifest row; cpu pool: decode + VAD + prepare; model: forward passes only)"
    )
    print("targets:")
    for (name, dtype), f in results.items():
        ratio = f["end to end"] / min(f["cpu pool"], f["model"])
        met = "met" if ratio >= TARGET_OVERLAP else "NOT met"
        print(f"  {name} {dtype}: end to end {ratio:.1%} of min(cpu pool, model) >= 90%: {met}")
        if name == "large-v3":
            busy = f["busy"]
            verdict = (
                "n/a (no GPU)" if busy is None else ("met" if busy >= TARGET_BUSY else "NOT met")
            )
            print(f"  {name} {dtype}: GPU busy >= 90%: {verdict}")
    for name in dict.fromkeys(k[0] for k in results):
        if (name, "float32") in results and (name, "bfloat16") in results:
            a, b = results[name, "float32"]["langs"], results[name, "bfloat16"]["langs"]
            agree = float((a == b).mean())
            if name == "base":
                met = "met" if agree >= TARGET_AGREEMENT else "NOT met"
                print(f"  base bf16 top-1 agreement with fp32 {agree:.2%} >= 99.5%: {met}")
            else:
                print(f"  {name} bf16 top-1 agreement with fp32 {agree:.2%} (random weights)")
    labels = manifest["label"].astype(str).to_numpy()
    for (name, dtype), f in results.items():
        if name == "base":
            print(
                f"  (base {dtype} top-1 accuracy on the corpus: {(f['langs'] == labels).mean():.1%})"
            )
        elif name == "base":
            print("  base bf16 top-1 agreement with fp32: n/a (run --dtypes float32,bfloat16)")


if __name__ == "__main__":
    main()
