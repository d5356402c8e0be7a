"""Regenerate the bundled demo: 48 spoken clips in 12 languages and their manifest.

The clips are espeak-ng speech made by :func:`lidframe.testing.make_corpus`, so anyone can rebuild
them offline (``apt-get install espeak-ng``) and get the same labels. Most are Ogg/Opus, which
libsndfile decodes; every fifth is M4A/AAC, which only FFmpeg (PyAV) decodes, so a demo run
exercises both decoding paths of :mod:`lidframe.audio`. The languages mix ones whisper-base
recognises well on synthetic speech with a few harder ones, so the summary shows per-language
differences.

Usage: ``python examples/demo/make_demo.py [--out DIR]`` (default: this script's folder). Writes
``DIR/clips/*`` and ``DIR/manifest.csv`` (columns ``id,audio,label``; ``audio`` relative to it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lidframe.audio import decode_window
from lidframe.testing import make_corpus

# Languages whisper-base identifies well on espeak-ng speech, then harder ones.
LANGUAGES = ("en", "de", "es", "it", "fr", "fi", "cs", "pl", "hu", "ru", "nl", "sv")
PER_LANGUAGE = 4
# Four Opus clips, then one M4A: every fifth clip goes through the FFmpeg fallback.
FORMATS = (".opus", ".opus", ".opus", ".opus", ".m4a")
# Brisker than make_corpus's default range, so that every clip lasts 3 to 8 seconds.
SPEED_RANGE = (160, 185)
# A quiet noise floor, as in a real recording (espeak-ng leaves digital silence between words).
NOISE_DB = -40.0
MIN_SECONDS, MAX_SECONDS = 3.0, 8.0
SEED = 2024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder that receives clips/ and manifest.csv (default: this script's folder)",
    )
    args = parser.parse_args(argv)

    clips = args.out / "clips"
    if clips.is_dir():
        # Drop clips of an earlier run so the folder holds exactly what the manifest lists.
        for old in clips.iterdir():
            if old.suffix in FORMATS and old.is_file():
                old.unlink()
    corpus = make_corpus(
        clips,
        languages=LANGUAGES,
        per_language=PER_LANGUAGE,
        seed=SEED,
        formats=FORMATS,
        speed_range=SPEED_RANGE,
        noise_db=NOISE_DB,
        sample_rate=16_000,
    )

    seconds = []
    for name in corpus["audio"]:
        wave = decode_window(str(clips / name))
        seconds.append(wave.shape[0] / 16_000)
        if not MIN_SECONDS <= seconds[-1] <= MAX_SECONDS:
            raise SystemExit(
                f"{name}: {seconds[-1]:.1f} s is outside {MIN_SECONDS}-{MAX_SECONDS} s"
            )

    corpus["audio"] = "clips/" + corpus["audio"]
    manifest = args.out / "manifest.csv"
    corpus[["id", "audio", "label"]].to_csv(manifest, index=False)
    size = sum((clips / Path(a).name).stat().st_size for a in corpus["audio"])
    print(
        f"wrote {len(corpus)} clips in {corpus['label'].nunique()} languages "
        f"({min(seconds):.1f}-{max(seconds):.1f} s, {size / 1e6:.2f} MB) and {manifest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
