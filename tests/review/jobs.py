"""Finished jobs built straight into a real job database through the store's own functions (no
model runs): a seeded frame of answers, committed partition by partition as a driver would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lidframe.store import open_store
from lidframe.store.results import frame_rows

LANGS = ["en", "es", "fr", "de", "und"]
MIN_SPEECH = 0.25


def answers_frame(n: int, models: int = 2, seed: int = 0) -> pd.DataFrame:
    """``n`` result rows with ``models`` models (aliases m1, m2, ...) and, with several, a
    consensus; some rows have an error, some are code switches, some answered ``und``."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(LANGS[:4], size=n, p=[0.5, 0.25, 0.15, 0.1])
    speech = rng.uniform(0, 3, size=n).round(3)
    speech[rng.random(n) < 0.1] = 0.0
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "audio": [f"/audio/{i}.wav" for i in range(n)],
            "offset": np.where(rng.random(n) < 0.5, 1.0, np.nan),
            "duration": np.full(n, 2.5),
            "error": [
                "decode_failed: /audio/x.wav: bad" if rng.random() < 0.05 else None
                for _ in range(n)
            ],
            "sample_rate": pd.array([16000] * n, dtype="Int32"),
            "audio_seconds": np.full(n, 2.5, dtype="float32"),
            "speech_seconds": speech.astype("float32"),
            "code_switch": pd.array(
                [bool(v) if rng.random() < 0.5 else None for v in rng.random(n) < 0.1],
                dtype="boolean",
            ),
        }
    )
    none = speech < MIN_SPEECH
    answers = []
    for m in range(models):
        wrong = rng.random(n) < 0.2 + 0.1 * m
        lang = np.where(wrong, rng.choice(LANGS[:4], size=n), truth)
        lang = np.where(none, "und", lang)
        prob = rng.uniform(0.3, 1.0, size=n).round(4)
        second = (prob * rng.uniform(0, 1, size=n)).round(4)
        second = np.minimum(second, 1 - prob)
        alias = f"m{m + 1}"
        frame[f"{alias}_lang"] = pd.array(lang, dtype="string")
        frame[f"{alias}_prob"] = prob.astype("float32")
        frame[f"{alias}_topk"] = [
            [{"lang": a, "prob": float(p)}, {"lang": "xx" if a != "en" else "es", "prob": float(s)}]
            for a, p, s in zip(lang, prob, second, strict=True)
        ]
        frame[f"{alias}_windows"] = [None] * n
        answers.append(lang)
    if models > 1:
        agree = np.all([a == answers[0] for a in answers], axis=0)
        frame["lang"] = pd.array(answers[0], dtype="string")
        frame["agree"] = agree
        frame["n_agree"] = np.where(agree, models, 1).astype("int16")
        frame["consensus_prob"] = rng.uniform(0.2, 1.0, size=n).round(4).astype("float32")
        frame["consensus_method"] = pd.array([f"majority[{models}/{models}]"] * n, dtype="string")
    errors = frame["error"].notna().to_numpy()
    for c in [c for c in frame.columns if c.endswith(("_lang", "_prob", "_topk"))]:
        frame.loc[errors, c] = None
    if models > 1:
        frame.loc[errors, ["lang", "consensus_prob"]] = None
    return frame


def make_job(
    db_url: str,
    n: int = 400,
    models: int = 2,
    seed: int = 0,
    job_id: str = "job-review",
    out: str = "/data/out",
    partition_rows: int = 100,
    frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A finished job of ``n`` rows in ``db_url`` (or of ``frame``'s rows, made as
    :func:`answers_frame` makes them); returns its frame (index = manifest row)."""
    if frame is None:
        frame = answers_frame(n, models, seed)
    n = len(frame)
    aliases = [f"m{m + 1}" for m in range(models)]
    bounds = [(a, min(a + partition_rows, n)) for a in range(0, n, partition_rows)]
    with open_store(db_url) as store:
        store.ensure_job(
            job_id,
            fingerprint="fp",
            manifest="/data/manifest.csv",
            manifest_digest="d",
            out=out,
            models=aliases,
            config={"speech": {"min_speech": MIN_SPEECH}},
            environment={},
            bounds=bounds,
        )
        while leases := store.claim(job_id, "t", 100, lease_s=60, max_attempts=3):
            for lease in leases:
                part = frame.iloc[lease.row_start : lease.row_stop]
                assert store.commit(
                    job_id, lease, frame_rows(part, job_id, lease.partition, aliases)
                )
        store.finish_if_complete(job_id)
    return frame
