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
