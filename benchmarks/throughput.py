"""Clips per second: lidframe versus a faster-whisper per-file ``detect_language`` loop.

Same clips, same whisper-base weights, same machine, one run. Measured:

* ``lidframe kernel``: ``identify_partition`` in this process (decode threads + batched Whisper),
  the model already loaded: the steady state of one worker.
* ``lidframe run``: the whole job through ``lidframe.run`` (local cluster start, manifest pass, model
  load, Parquet), wall time from call to return.
* ``faster-whisper``: for each file, ``decode_audio`` then ``WhisperModel.detect_language``, with
  ``compute_type`` int8 (its usual CPU setting) and float32 (the same arithmetic as ours).

Usage: python benchmarks/throughput.py [--manifest examples/demo/manifest.csv] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
