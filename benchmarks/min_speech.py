"""``--min-speech`` and the VAD threshold on real voices: how much speech is answered ``und``.

A clip is answered ``und`` without any model when silero-vad finds less than ``--min-speech``
seconds of speech in it (``lidframe.speech.listen``). This decodes every clip once as the kernel
does (16 kHz mono), measures the seconds of speech silero-vad finds at each frame threshold, and
tabulates, for each least amount of speech, the share of clips that would be answered ``und``:

* real speech of 1 s or more (the asterisk prompts: sentences, digits, letters), and under 1 s;
* real single words (ktuberling, 0.5-3 s files);
* real non-speech (the packages' silence and tones): here the share answered ``und`` is the share
  right;
* espeak-ng speech (``lidframe.testing.make_corpus``, 34 languages) and generated non-speech
  (``lidframe.testing.non_speech``: silence, hiss, noise, hum, music, bursts of 0.5-10 s).

Usage: python benchmarks/min_speech.py [--half test] [--thresholds 0.5,0.35]
       [--min-speech 0.1,0.2,0.25,0.3,0.4,0.5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _found(waves: list[np.ndarray], threshold: float) -> np.ndarray:
    from lidframe.speech import VadConfig, speech_regions, speech_seconds

    vad = VadConfig(threshold=threshold)
    return np.array([speech_seconds(speech_regions(w, vad)) for w in waves])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--half", choices=["dev", "test"], default="test")
    parser.add_argument("--thresholds", default="0.5,0.35")
    parser.add_argument("--min-speech", default="0.1,0.2,0.25,0.3,0.4,0.5")
    args = parser.parse_args()

    from lidframe.audio import decode_window
    from lidframe.testing import NON_SPEECH_KINDS, make_corpus, non_speech, real_speech_corpus

    work = Path(tempfile.mkdtemp(prefix="lidframe-min-speech-"))
    real = pd.read_parquet(real_speech_corpus(work / "real.parquet"))
    real = real[real["split"] == args.half].reset_index(drop=True)
    groups: dict[str, tuple[list[np.ndarray], bool]] = {}
    waves = [decode_window(uri) for uri in real["audio"]]
    prompts = real["source"].str.startswith("asterisk").to_numpy()
    speech = (real["kind"] != "non-speech").to_numpy()
    long = (real["seconds"] >= 1.0).to_numpy()
    for name, chosen, is_speech in (
        ("real speech >= 1 s", prompts & speech & long, True),
        ("real speech < 1 s", prompts & speech & ~long, True),
        ("real single words", (real["kind"] == "word").to_numpy(), True),
        ("real non-speech", ~speech, False),
    ):
        groups[name] = ([w for w, keep in zip(waves, chosen, strict=True) if keep], is_speech)
    synthetic = make_corpus(work / "synthetic", per_language=3, seed=23, noise_db=-40.0)
    groups["espeak-ng speech (34 languages)"] = (
        [decode_window(str(work / "synthetic" / a)) for a in synthetic["audio"]],
        True,
    )
    lengths = (0.5, 1.0, 3.0, 10.0)
    groups["generated non-speech"] = (
        [
            non_speech(kind, seconds, seed=seed)
            for kind in NON_SPEECH_KINDS
            for seconds in lengths
            for seed in range(2)
        ],
        False,
    )

    mins = [float(x) for x in args.min_speech.split(",")]
    for threshold in (float(x) for x in args.thresholds.split(",")):
        print(f"\nsilero-vad threshold {threshold}: share of clips answered 'und'")
        print(f"{'':34s} {'clips':>6s} " + " ".join(f"{f'>= {m} s':>8s}" for m in mins))
        for name, (clips, is_speech) in groups.items():
            found = _found(clips, threshold)
            rates = " ".join(f"{(found < m).mean():8.3f}" for m in mins)
            what = "(wrong)" if is_speech else "(right)"
            print(f"{name:34s} {len(clips):6d} {rates}  {what}")
            if name == "real speech >= 1 s":
                low = np.sort(found)[:5]
                print(f"{'':34s} least speech found: {', '.join(f'{x:.2f}' for x in low)} s")


if __name__ == "__main__":
    main()
