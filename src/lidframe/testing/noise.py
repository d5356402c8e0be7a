"""Audio that is not speech, of the kinds a large collection holds: for ``und`` tests and benchmarks.

Each kind is varied by a seed (level, frequencies, rhythm), so a test can draw many different
clips of one kind: digital silence, low hiss, loud white noise, mains hum with harmonics, synthetic
music (chords and a melody with note onsets), and a short burst of noise in silence.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NON_SPEECH_KINDS", "non_speech"]

NON_SPEECH_KINDS = ("silence", "hiss", "noise", "hum", "music", "burst")


def non_speech(kind: str, seconds: float, seed: int = 0, sample_rate: int = 16_000) -> np.ndarray:
    """``seconds`` of ``kind`` (one of :data:`NON_SPEECH_KINDS`), float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = max(1, int(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    if kind == "silence":
        wave = np.zeros(n)
    elif kind == "hiss":
        wave = 10 ** (rng.uniform(-70, -45) / 20) * rng.standard_normal(n)
    elif kind == "noise":
        wave = 10 ** (rng.uniform(-20, -8) / 20) * rng.standard_normal(n)
    elif kind == "hum":
        mains = rng.choice([50.0, 60.0])
        wave = sum(
            rng.uniform(0.02, 0.3) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6))
            for k in (1, 2, 3, 5)
        )
    elif kind == "music":
        wave = _music(t, rng, sample_rate)
    elif kind == "burst":
        wave = np.zeros(n)
        length = min(n, int(0.05 * sample_rate))
        start = int(rng.integers(0, n - length + 1))
        wave[start : start + length] = rng.uniform(0.1, 0.6) * rng.standard_normal(length)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(NON_SPEECH_KINDS)}")
    return np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)


def _music(t: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Chords changing on the beat, a melody of plucked notes over them, a little noise."""
    beat = rng.uniform(0.3, 0.7)  # seconds per beat
    root = 220.0 * 2 ** (rng.integers(0, 12) / 12)
    step = np.floor(t / beat).astype(int)
    phase = (t % beat) / beat
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4))
    progression = rng.permutation(len(chords))
    wave = np.zeros_like(t)
    for voice in range(3):
        semis = np.array([chords[progression[s % 4]][voice] for s in range(step.max() + 1)])
        freq = root * 2 ** (semis[step] / 12)
        wave += 0.08 * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    notes = rng.choice(scale, size=step.max() + 1)
    melody = root * 2 ** ((notes[step] + 12) / 12)
    envelope = np.exp(-4.0 * phase)
    wave += 0.15 * envelope * np.sin(2 * np.pi * np.cumsum(melody) / sample_rate)
    return wave + 0.003 * rng.standard_normal(len(t))
