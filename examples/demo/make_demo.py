"""Regenerate the bundled demo: 48 synthetic clips in 12 languages, 13 real recordings, the manifest.

The synthetic clips are espeak-ng speech made by :func:`lidframe.testing.make_corpus`, so anyone can
rebuild them offline (``apt-get install espeak-ng``) and get the same labels. Most are Ogg/Opus, which
libsndfile decodes; every fifth is M4A/AAC, which only FFmpeg (PyAV) decodes, so a demo run
exercises both decoding paths of :mod:`lidframe.audio`. The languages mix ones whisper-base
recognises well on synthetic speech with a few harder ones, so the summary shows per-language
differences.

The real recordings (``real/``) are people: 4 telephone prompts of 3-8 s in each of English,
Spanish and French, read by professional voice talents, and one recording of monkeys (no speech:
its right answer is ``und``), from Debian's ``asterisk-core-sounds-{en,es,fr}-wav`` packages
(CC-BY-SA-3.0; ``real/ATTRIBUTION.md``), chosen by a seeded draw from the test half of
:func:`lidframe.testing.real_speech_corpus` and stored as FLAC at their own 8 kHz (lossless: the
same samples). Rebuilding them needs those packages (``scripts/setup.sh --test`` installs them).

Usage: ``python examples/demo/make_demo.py [--out DIR]`` (default: this script's folder). Writes
``DIR/clips/*``, ``DIR/real/*`` and ``DIR/manifest.csv`` (columns ``id,audio,label,source``;
``audio`` relative to it; ``source`` is ``synthetic`` or ``real``, for ``lidframe eval --by source``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import soundfile as sf

from lidframe.audio import decode_window
from lidframe.testing import make_corpus, real_speech_corpus

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
# Real telephone prompts per language, and the recording that is no speech.
REAL_LANGUAGES = ("en", "es", "fr")
REAL_PER_LANGUAGE = 4
REAL_NON_SPEECH = "asterisk/en_US_f_Allison/tt-monkeys.wav"


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
    corpus["source"] = "synthetic"
    real = _real(args.out / "real")
    manifest = args.out / "manifest.csv"
    pd.concat([corpus, real])[["id", "audio", "label", "source"]].to_csv(manifest, index=False)
    size = sum((args.out / a).stat().st_size for a in [*corpus["audio"], *real["audio"]])
    print(
        f"wrote {len(corpus)} synthetic clips in {corpus['label'].nunique()} languages "
        f"({min(seconds):.1f}-{max(seconds):.1f} s), {len(real)} real recordings "
        f"({size / 1e6:.2f} MB in all) and {manifest}"
    )
    return 0


def _real(folder: Path) -> pd.DataFrame:
    """Copy the real recordings the demo uses into ``folder`` (FLAC, their own rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_parquet(real_speech_corpus(Path(tmp) / "real.parquet", encodings=("wav",)))
    prompts = frame[
        (frame["split"] == "test")
        & (frame["kind"] == "prompt")
        & frame["seconds"].between(MIN_SECONDS, MAX_SECONDS)
        & frame["label"].isin(REAL_LANGUAGES)
    ]
    chosen = pd.concat(
        [
            prompts[prompts["label"] == lang].sample(REAL_PER_LANGUAGE, random_state=SEED)
            for lang in REAL_LANGUAGES
        ]
        + [frame[frame["id"] == REAL_NON_SPEECH]]
    )
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.flac"):
        old.unlink()
    rows = []
    for (label, _), group in chosen.groupby(["label", "source"], sort=False):
        for i, (_, row) in enumerate(group.iterrows()):
            name = f"{label}-real-{i:03d}.flac"
            samples, rate = sf.read(row["audio"], dtype="int16")
            sf.write(folder / name, samples, rate, format="FLAC")
            rows.append(
                {"id": name.removesuffix(".flac"), "audio": f"real/{name}", "label": label,
                 "source": "real", "original": row["id"], "speaker": row["speaker"]}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    table[["id", "original", "speaker"]].to_csv(folder / "originals.csv", index=False)
    return table


if __name__ == "__main__":
    raise SystemExit(main())
