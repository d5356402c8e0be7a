"""The behaviour stored with every partition (``lidframe.store.behaviour``) against an independent
recount of a real job's Parquet parts; its fixed size.

The job is real (``lidframe.run`` on worker processes, the job database on SQLite and PostgreSQL):
two models registered in this process, ``loudness`` (``en`` loud, ``de`` quiet) and ``frloud``
(``en`` loud, ``fr`` quiet), so they agree on loud clips and not on quiet ones; a missing file and
a repeated id give rows of two error categories.
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.store import open_store
from lidframe.store.behaviour import ANSWER, MARGIN_BINS, PROB_BINS, Stats
from lidframe.store.results import frame_rows
from tests.fixtures.models import loudness_manifest, register_loudness

pytestmark = pytest.mark.timeout(300)

MODELS = ["loudness:x", "frloud:y"]
ALIASES = ["loudness_x", "frloud_y"]


def register_frloud() -> None:
    """``frloud``: ``en`` for loud clips, ``fr`` for quiet ones (defined in a function, so the job
    carries it to its workers by value)."""

    class FrLoud(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "fr")

        def forward(self, batch):  # type: ignore[no-untyped-def]
            import torch

            loud = ((batch.values.abs() * batch.mask).sum(-1) / batch.lengths).clamp(0, 1)
            return torch.stack([loud**0.5, 1 - loud**0.5], -1)

    def factory(spec: ModelSpec) -> LidModel:
        return FrLoud(spec)

    register_family("frloud", factory)


def _manifest(root: Path) -> Path:
    path = loudness_manifest(root, 9, labels=True)
    rows = pd.read_csv(path)
    extra = pd.DataFrame(
        [
            {"id": "gone", "audio": str(root / "missing.wav")},
            {"id": "c03", "audio": str(root / "c4.wav")},  # the id of row 3 again
        ]
    )
    pd.concat([rows, extra]).to_csv(path, index=False)
    return path


def _recount(parts: pd.DataFrame, column: str, margin: pd.Series | None) -> Stats:
    """The stats of one answer column of the Parquet rows, counted here without lidframe."""
    lang = parts[f"{column}_lang" if column != ANSWER else "lang"]
    prob = parts[f"{column}_prob" if column != ANSWER else "consensus_prob"].astype("float64")
    said = lang.notna() & (lang != "und")
    failed = parts["error"].notna() & ~said
    category = parts["error"].str.split(":").str[0]
    out = Stats(rows=len(parts))
    out.answered = int(said.sum())
    out.und = int(((lang == "und") & ~failed).sum())
    out.errors = int(failed.sum())
    out.error_categories = Counter(category[failed].tolist())
    out.langs = Counter(lang[said].tolist())
    out.prob_sum = float(prob[said].sum())
    out.prob = np.histogram(prob[said], bins=PROB_BINS, range=(0, 1))[0].tolist()
    if column == ANSWER:
        out.agree = int((parts["agree"] & ~failed).sum())
        out.code_switch = int((parts["code_switch"] == True).sum())  # noqa: E712
        out.speech_seconds = float(parts["speech_seconds"].fillna(0).sum())
        out.margin = np.histogram(margin[said], bins=MARGIN_BINS, range=(-1, 1))[0].tolist()
        labelled = parts["label"].notna() & ~failed
        out.labels = Counter(
            {
                "labelled": int(labelled.sum()),
                "correct": int((labelled & (lang == parts["label"])).sum()),
            }
        )
    return out


def test_behaviour_rows_equal_a_recount_of_the_parquet_parts(tmp_path, db_url, capsys):
    register_loudness()
    register_frloud()
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"
    summary = lidframe.run(
        manifest,
        out,
        MODELS,
        partition_rows=4,
        db=db_url,
        workers=2,
        progress=True,
        speech=lidframe.SpeechConfig(vad=False),
    )
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    parts = pd.read_parquet(out)
    assert summary.rows == 11 and len(parts) == 11
    with open_store(db_url) as store:
        stored = store.behaviour(summary.job_id)
        workers = store.behaviour(summary.job_id, by_worker=True)
    total = stored[None]
    assert set(total.stats) == {*ALIASES, ANSWER}
    margin = 2 * parts["consensus_prob"].astype("float64") - 1
    for column in (*ALIASES, ANSWER):
        expected, got = _recount(parts, column, margin), total.stats[column]
        assert got.prob_sum == pytest.approx(expected.prob_sum, rel=1e-6)
        assert got.speech_seconds == pytest.approx(expected.speech_seconds, rel=1e-6)
        got.prob_sum, got.speech_seconds = expected.prob_sum, expected.speech_seconds
        assert got == expected, column
    # what the test set up is in it: the models agree on loud clips only; two error categories
    answer = total.stats[ANSWER]
    # (which of the two rows with id c03 is the duplicate depends on which committed first)
    loud = total.stats["loudness_x"].langs["en"]
    assert total.stats["loudness_x"].langs == {"en": loud, "de": 9 - loud}
    assert total.stats["frloud_y"].langs == {"en": loud, "fr": 9 - loud}
    assert answer.agree == loud and answer.errors == 2  # quiet rows: de against fr, so und
    assert set(answer.error_categories) == {"duplicate_id", lidframe_category(parts, "gone")}
    # the progress bar showed the same, summed as partitions committed; so does the status
    final = [line for line in bar if line.startswith(f"lidframe {summary.job_id}")][-1]
    assert final.rstrip().endswith(f"{total.line()}]"), (final, total.line())
    assert f"agree {loud / 9:.0%}" in final  # they agree on the loud rows only
    with open_store(db_url) as store:
        text = str(store.status(summary.job_id))
    assert f"answers (11 rows): en 100%; und {answer.und / 11:.1%}, row errors 18.2%" in text
    assert f"agreement {loud / 9:.1%} of the rows with an answer" in text
    assert "loudness_x: " in text and "frloud_y: " in text
    # per worker, the same rows in all
    assert len(workers) >= 1 and all(w is not None for w in workers)
    assert sum(b.stats[ANSWER].rows for b in workers.values()) == 11
    assert {b.host for b in workers.values()} == {__import__("socket").gethostname()}


def lidframe_category(parts: pd.DataFrame, row_id: str) -> str:
    return str(parts.loc[parts["id"] == row_id, "error"].iloc[0]).split(":")[0]


def _partition(rows: int, seed: int = 0) -> pd.DataFrame:
    """A result frame of ``rows`` rows, two models answering among five languages."""
    rng = np.random.default_rng(seed)
    langs = np.array(["en", "de", "fr", "es", "und"])
    frame = pd.DataFrame(
        {
            "id": pd.array([f"r{i}" for i in range(rows)], dtype="string"),
            "audio": pd.array([f"a{i}.wav" for i in range(rows)], dtype="string"),
            "error": pd.array([None] * rows, dtype="string"),
            "speech_seconds": rng.uniform(0, 10, rows).astype("float32"),
        }
    )
    for alias in ALIASES:
        frame[f"{alias}_lang"] = pd.array(rng.choice(langs, rows), dtype="string")
        frame[f"{alias}_prob"] = rng.uniform(0, 1, rows).astype("float32")
        frame[f"{alias}_topk"] = [[{"lang": "en", "prob": 0.6}, {"lang": "de", "prob": 0.3}]] * rows
    frame["lang"] = pd.array(rng.choice(langs, rows), dtype="string")
    frame["agree"] = rng.random(rows) < 0.7
    frame["consensus_prob"] = rng.uniform(0, 1, rows).astype("float32")
    return frame


def test_a_partitions_behaviour_has_the_same_size_whatever_its_rows():
    """(Its cost: benchmarks/behaviour.py.)"""
    small = frame_rows(_partition(20), "j", 0, ALIASES)
    large = frame_rows(_partition(20_000, seed=1), "j", 1, ALIASES)
    sizes = []
    for rows in (small, large):
        summary = rows.summarised("tcp://127.0.0.1:1", "host").behaviour
        assert summary is not None and summary.stats[ANSWER].rows == len(rows)
        sizes.append(len(pickle.dumps(summary)))
    # the counters hold the same languages; only the digits of the counts differ
    assert abs(sizes[0] - sizes[1]) < 64, sizes
