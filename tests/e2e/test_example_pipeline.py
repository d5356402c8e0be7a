"""examples/pipeline: lidframe's answers joined onto a user's own Dask dataframe by its key.

The example module is loaded from its file, as a user would copy it. A frame with columns of the
user's own (``speaker``, ``episode``, a nullable integer, a missing file among the clips) goes
through it on a small test model family (``loudness``, tests/test_gpu_workers.py) and, as a
command, on real whisper-base weights with espeak-ng speech.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.testing import make_corpus, write_wav
from tests.fixtures.models import register_loudness
from tests.fixtures.paths import EXAMPLES

pytestmark = pytest.mark.timeout(300)

EXAMPLE = EXAMPLES / "pipeline" / "add_languages.py"


def _example():
    spec = importlib.util.spec_from_file_location("add_languages", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _users_frame(tmp_path: Path, rows: int = 12) -> pd.DataFrame:
    """Loud clips (``en`` to the loudness model) and quiet ones (``de``), one file missing, with
    columns of the user's own; the key is not the first column and the index is not 0..n."""
    rng = np.random.default_rng(1)
    records = []
    for i in range(rows):
        path = tmp_path / f"ep{i // 4}-{i}.wav"
        if i != 5:
            write_wav(path, (0.9 if i % 2 else 0.1) * np.sign(rng.standard_normal(4000)), 16_000)
        records.append(
            {
                "speaker": f"spk{i % 3}",
                "path": str(path),
                "clip_id": f"clip-{i:03d}",
                "episode": i // 4,
                "rating": pd.NA if i % 4 == 0 else i,
            }
        )
    frame = pd.DataFrame(records).astype({"rating": "Int64"})
    frame.index = pd.RangeIndex(100, 100 + rows)
    return frame


def test_every_row_comes_back_once_with_its_columns_and_a_language(tmp_path):
    register_loudness()
    mine = _users_frame(tmp_path)
    ddf = dd.from_pandas(mine, npartitions=3)
    enriched = _example().add_languages(
        ddf,
        key="clip_id",
        audio="path",
        models=["loudness:x"],
        speech=lidframe.SpeechConfig(vad=False),
        verbose=False,
    )
    with dask.config.set(scheduler="threads"):
        got = enriched.compute()
        plain = ddf.compute()  # the user's frame as Dask gives it (string columns as Arrow's)
    assert sorted(got["clip_id"]) == sorted(mine["clip_id"])  # each row once
    assert list(got.columns) == [
        *mine.columns,
        "error",
        "speech_seconds",
        "loudness_x_lang",
        "loudness_x_prob",
    ]
    both = plain.merge(got, on="clip_id", suffixes=("", "_back"))
    for column in ("speaker", "path", "episode", "rating"):  # the user's columns, as they were
        pd.testing.assert_series_equal(
            both[column], both[f"{column}_back"], check_names=False, check_dtype=True
        )
    missing = both["clip_id"] == "clip-005"
    assert both.loc[missing, "error"].str.startswith("not_found: ").all()
    assert both.loc[missing, "loudness_x_lang"].isna().all()
    answered = both[~missing]
    assert answered["error"].isna().all()
    expected = np.where(answered["path"].str.extract(r"-(\d+)\.wav")[0].astype(int) % 2, "en", "de")
    assert answered["loudness_x_lang"].tolist() == expected.tolist()


def test_a_column_the_frame_already_has_is_refused(tmp_path):
    mine = _users_frame(tmp_path, rows=2).assign(error="mine")
    with pytest.raises(ValueError, match=r"already has columns \['error'\]"):
        _example().add_languages(dd.from_pandas(mine, npartitions=1), key="clip_id", audio="path")


@pytest.mark.slow
def test_the_command_adds_whisper_languages_to_a_parquet_of_episodes(tmp_path):
    corpus = make_corpus(tmp_path / "clips", languages=["en", "de"], per_language=1, seed=5)
    frame = pd.DataFrame(
        {
            "clip_id": corpus["id"],
            "path": [str(tmp_path / "clips" / a) for a in corpus["audio"]],
            "speaker": ["ana", "ben"],
            "episode": [7, 8],
        }
    )
    frame.to_parquet(tmp_path / "episodes.parquet", index=False)
    proc = subprocess.run(
        [
            sys.executable, str(EXAMPLE), str(tmp_path / "episodes.parquet"),
            str(tmp_path / "enriched"), "--key", "clip_id", "--audio", "path",
        ],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = pd.read_parquet(tmp_path / "enriched").sort_values("clip_id").reset_index(drop=True)
    assert got["clip_id"].tolist() == sorted(frame["clip_id"])
    assert dict(zip(got["clip_id"], got["speaker"], strict=True)) == dict(
        zip(frame["clip_id"], frame["speaker"], strict=True)
    )
    assert dict(zip(got["clip_id"], got["whisper_base_lang"], strict=True)) == dict(
        zip(corpus["id"], corpus["label"], strict=True)
    )
    assert got["error"].isna().all() and (got["speech_seconds"] > 0.5).all()
