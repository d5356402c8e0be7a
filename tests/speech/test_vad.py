"""Voice activity with the real silero-vad model (shipped inside its pip package): non-speech has no
speech, espeak-ng speech is found where it was put, one session serves many threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from lidframe.speech import VadConfig, speech_only, speech_regions, speech_seconds
from lidframe.testing import TEXTS, sine, synthesize

SR = 16_000


def _non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR * 10) / SR
    chords = sum(
        0.2 * np.sin(2 * np.pi * f * t) * ((np.floor(t * 2) % 3) == k)
        for k, f in enumerate((262.0, 330.0, 392.0))
    )
    return {
        "digital silence": np.zeros(SR * 10, np.float32),
        "low hiss": (0.01 * rng.standard_normal(SR * 10)).astype(np.float32),
        "loud white noise": (0.3 * rng.standard_normal(SR * 10)).astype(np.float32),
        "mains hum": (0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)).astype(
            np.float32
        ),
        "tone": sine(10.0),
        "synthetic chords": np.asarray(chords, dtype=np.float32),
        "short burst": np.concatenate(
            [np.zeros(SR), (0.5 * rng.standard_normal(800)), np.zeros(SR)]
        ).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_non_speech()))
def test_non_speech_has_no_speech(name):
    wave = _non_speech()[name]
    assert speech_seconds(speech_regions(wave)) < VadConfig().min_speech_s


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, np.ndarray]:
    root = tmp_path_factory.mktemp("vad")
    out = {}
    for lang in ("de", "en", "fr"):
        path = root / f"{lang}.wav"
        synthesize(TEXTS[lang][0], lang, path)
        wave, rate = sf.read(path, dtype="float32")
        assert rate == SR
        out[lang] = wave
    return out


def test_speech_is_found_where_it_was_put(speech):
    for lang, wave in speech.items():
        padded = np.concatenate([np.zeros(5 * SR, np.float32), wave, np.zeros(3 * SR, np.float32)])
        regions = speech_regions(padded)
        assert regions, lang
        first, last = regions[0][0] / SR, regions[-1][1] / SR
        assert 4.8 <= first <= 5.0 + len(wave) / SR / 2, (lang, first)  # not in the leading silence
        assert last <= 5.0 + len(wave) / SR + 0.2, (lang, last)  # nor in the trailing one
        found = speech_seconds(regions)
        assert 0.5 * len(wave) / SR <= found <= len(wave) / SR + 0.1, (lang, found)
        kept = speech_only(padded, regions)
        assert 0.5 * len(wave) <= len(kept) <= len(wave) + 0.2 * SR  # the silences are gone


def test_one_session_serves_every_thread(speech):
    waves = [
        np.concatenate([np.zeros(k * SR // 2, np.float32), w])
        for k, w in enumerate(speech.values())
    ]
    waves = waves * 3
    alone = [speech_regions(w) for w in waves]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(speech_regions, waves))
    assert together == alone


def test_speech_only_keeps_short_pauses_and_stops_at_the_window():
    wave = np.arange(10 * SR, dtype=np.float32)
    regions = [(SR, 2 * SR), (2 * SR + SR // 10, 3 * SR), (6 * SR, 7 * SR)]
    joined = speech_only(wave, regions, keep_gap_s=0.3)
    # the 0.1 s pause is kept, the 3 s one is cut
    np.testing.assert_array_equal(
        joined, np.concatenate([wave[SR : 3 * SR], wave[6 * SR : 7 * SR]])
    )
    limited = speech_only(wave, regions, keep_gap_s=0.3, max_samples=SR + SR // 2)
    np.testing.assert_array_equal(limited, wave[SR : SR + SR + SR // 2])
    assert len(speech_only(wave, [])) == 0
    assert speech_regions(np.zeros(0, np.float32)) == []


def test_listening_leaves_torch_on_the_threads_it_had():
    """silero-vad sets ``torch.set_num_threads(1)`` when imported; the first clip heard (in the
    thread that runs the models, in threads that start later, in the decode threads) must not
    leave PyTorch on one core. In a fresh process, where silero-vad is not imported yet."""
    import subprocess
    import sys

    code = """
import threading, numpy as np, torch
torch.set_num_threads(2)
from lidframe.speech import speech_regions
speech_regions(np.zeros(16000, np.float32))
seen = []
t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
t.start(); t.join()
print(torch.get_num_threads(), seen[0])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split()[-2:] == ["2", "2"], done.stdout + done.stderr
