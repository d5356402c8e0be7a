"""Build the real-speech manifest from the installed Debian packages (lidframe.testing.real).

    python scripts/real_speech_corpus.py OUT.parquet [--g722] [--seed 0] [--min-seconds 0]

Install the packages first (``scripts/setup.sh --test`` does): asterisk-core-sounds-{en,es,fr}-wav
(and -g722 for the 16 kHz prompts), ktuberling-data. Prints the rows per source, kind and split.
"""

from __future__ import annotations

import argparse

import pandas as pd

from lidframe.testing.real import corpus_sources, real_speech_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the manifest to write (.parquet)")
    parser.add_argument("--g722", action="store_true", help="also the 16 kHz G.722 prompts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="shorter speech left out")
    args = parser.parse_args()
    path = real_speech_corpus(
        args.out,
        seed=args.seed,
        encodings=("wav", "g722") if args.g722 else ("wav",),
        min_seconds=args.min_seconds,
    )
    frame = pd.read_parquet(path)
    print(frame.groupby(["source", "kind", "split"]).size().unstack(fill_value=0).to_string())
    for source in corpus_sources(path):
        print(f"{source.package} {source.version}: {source.licence}; {source.attribution}")
    print(f"{len(frame)} rows -> {path}")


if __name__ == "__main__":
    main()
