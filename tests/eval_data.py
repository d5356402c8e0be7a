"""Synthetic evaluation data shared by test_eval.py and test_report.py: answers of two models and
their consensus over a long-tailed set of languages, with unlabelled, error, unsupported and
equivalent-code rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

LANGS = ["en", "de", "fr", "es", "it", "pl", "sw", "yo"]


def random_answers(n: int, seed: int, accuracy: float = 0.7):
    rng = np.random.default_rng(seed)
    # a long tail: some languages much rarer than others
    weights = np.array([30, 25, 15, 10, 8, 6, 4, 2], dtype=float)
    truth = rng.choice(LANGS, size=n, p=weights / weights.sum())
    wrong = rng.random(n) > accuracy
    predicted = np.where(wrong, rng.choice([*LANGS, "la", "cs"], size=n), truth)
    confidence = np.clip(rng.beta(5, 2, size=n) - 0.2 * wrong, 0.001, 0.999)
    return truth.astype(object), predicted.astype(object), confidence


def results_frame(n: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth, a, conf_a = random_answers(n, seed, accuracy=0.8)
    _, b, conf_b = random_answers(n, seed + 100, accuracy=0.6)
    b = np.where(rng.random(n) < 0.6, truth, b)
    label = truth.copy()
    label[:10] = None  # unlabelled rows
    label[10:15] = "nb"  # Norwegian Bokmål: one language with "no" under the default equivalence
    a[10:13] = "no"
    label[15:20] = "zu"  # outside whisper's label set: unsupported for whisper, not wrong
    error = np.array([None] * n, dtype=object)
    error[20:26] = "not_found: /x.wav"
    a[20:26] = None
    b[20:26] = None
    lang = np.where(a == b, a, "und")
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "audio": [f"/data/{i}.wav" for i in range(n)],
            "label": label,
            "error": error,
            "whisper_base_lang": a,
            "whisper_base_prob": conf_a,
            "ecapa_lang": b,
            "ecapa_prob": conf_b,
            "lang": lang,
            "consensus_prob": (conf_a + conf_b) / 2,
        }
    )


# Rows answered "und" for no speech by with_no_speech: labelled speech (30-59) and unlabelled (0-2).
NO_SPEECH_ROWS = [*range(0, 3), *range(30, 60)]


def with_no_speech(df: pd.DataFrame, rows=NO_SPEECH_ROWS, seed: int = 3) -> pd.DataFrame:
    """``df`` with the speech columns (audio and speech seconds; null where the row failed to
    decode) and ``rows`` answered as voice activity answers a row without speech: every model
    ``und`` with no probability, the consensus ``und`` of ``[0/2]`` models, no error."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(out)
    audio = rng.uniform(2.0, 30.0, n).astype(np.float32)
    speech = (audio * rng.uniform(0.3, 1.0, n)).astype(np.float32)
    speech[rows] = rng.uniform(0.0, 0.4, len(rows)).astype(np.float32)  # below --min-speech 0.5
    failed = out["error"].notna().to_numpy()
    audio[failed] = np.nan
    speech[failed] = np.nan
    out["audio_seconds"], out["speech_seconds"] = audio, speech
    out.loc[rows, ["whisper_base_lang", "ecapa_lang", "lang"]] = "und"
    out.loc[rows, ["whisper_base_prob", "ecapa_prob", "consensus_prob"]] = np.nan
    return out
