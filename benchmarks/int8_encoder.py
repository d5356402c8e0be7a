"""Whisper's encoder pass in int8 against float32 on the CPU, by encoder context.

The same whisper-base weights loaded twice (``dtype="float32"`` and ``dtype="int8"``: the encoder's
linear layers with int8 weights per row and inputs quantized per token, torchao's dynamic int8),
one batch of random log-mel features per context, the best of ``--repeats`` passes of each. Prints
the seconds per pass and int8's speed-up. Accuracy is measured on real speech by
``benchmarks/real_speech.py --dtypes float32,int8``.

Usage: python benchmarks/int8_encoder.py [--contexts 10,30] [--batch-size 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", default="10,30", help="encoder contexts in seconds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()

    import torch

    from lidframe.models import load_model, parse_model
    from lidframe.models.whisper import _encode  # the kernel's encoder pass at any context

    torch.set_num_threads(args.threads)
    models = {
        dtype: load_model(parse_model("whisper-base", device="cpu", dtype=dtype))
        for dtype in ("float32", "int8")
    }
    print(f"machine: {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__}, "
          f"threads {args.threads}, batch {args.batch_size}")  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for seconds in (float(s) for s in args.contexts.split(",")):
        frames = int(seconds * 100)
        mel = torch.randn(args.batch_size, 80, frames, generator=generator)
        best = {dtype: float("inf") for dtype in models}
        with torch.inference_mode():
            for _ in range(args.repeats):
                for dtype, model in models.items():
                    encoder = model._model.model.encoder
                    start = time.perf_counter()
                    _encode(encoder, mel)
                    best[dtype] = min(best[dtype], time.perf_counter() - start)
        print(
            f"context {seconds:4.0f} s: float32 {best['float32']:.3f} s, int8 {best['int8']:.3f} s "
            f"per pass of {args.batch_size}; int8 {best['float32'] / best['int8']:.2f}x"
        )


if __name__ == "__main__":
    main()
