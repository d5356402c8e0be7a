"""Real recordings from Debian packages (lidframe.testing.real): the manifest is built from what is
installed (``scripts/setup.sh --test`` installs the packages), every row points at a recording that
decodes, the split keeps a prompt in one half across languages and rates, and each source's licence
travels with the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lidframe.audio import decode_window
from lidframe.manifest import read_manifest
from lidframe.testing import corpus_sources, real_speech_corpus
from lidframe.testing.real import PACKAGES


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    path = real_speech_corpus(
        tmp_path_factory.mktemp("real") / "real.parquet", encodings=("wav", "g722")
    )
    return path, pd.read_parquet(path)


def test_every_row_is_a_labelled_recording_of_an_installed_package(
    corpus: tuple[Path, pd.DataFrame],
) -> None:
    _, frame = corpus
    assert frame["id"].is_unique
    assert set(frame["source"]) == set(PACKAGES)
    assert all(Path(a).is_file() for a in frame["audio"])
    assert (frame["seconds"] > 0).all()
    prompts = frame[frame["source"].str.startswith("asterisk")]
    assert set(prompts["label"]) == {"en", "es", "fr", "und"}
    assert set(prompts.loc[prompts["encoding"] == "wav", "sample_rate"]) == {8000}
    assert set(prompts.loc[prompts["encoding"] == "g722", "sample_rate"]) == {16000}
    assert (prompts.groupby("label").size().drop("und") > 400).all()
    speakers = prompts[prompts["kind"] != "non-speech"].groupby("label")["speaker"].unique()
    assert speakers.to_dict() == {
        "en": ["Allison Smith"],
        "es": ["Allison Smith"],
        "fr": ["June Wallack"],
    }
    # the packages' tones and digital silence are rows too, labelled "no language"
    silence = frame[frame["kind"] == "non-speech"]
    assert len(silence) >= 3 * 2 * 12 and (silence["label"] == "und").all()
    # tones and the monkeys of tt-monkeys are no speech, whatever their folder says
    for name in ("confbridge-join", "tt-monkeys", "beeperr"):
        assert (frame.loc[frame["id"].str.contains(f"/{name}\\."), "label"] == "und").all()
        assert frame["id"].str.contains(f"/{name}\\.").sum() >= 3
    assert (
        silence["id"].str.contains("/silence/").any() and silence["id"].str.contains("beep").any()
    )
    words = frame[frame["source"] == "ktuberling-data"]
    assert words["label"].nunique() >= 15 and (words["kind"] == "word").all()
    assert words["seconds"].median() < 2.5


def test_a_prompt_falls_in_one_half_in_every_language_and_rate(
    corpus: tuple[Path, pd.DataFrame],
) -> None:
    _, frame = corpus
    prompts = frame[frame["source"].str.startswith("asterisk")].copy()
    prompts["prompt"] = prompts["id"].str.split("/", n=2).str[2].str.rsplit(".", n=1).str[0]
    halves = prompts.groupby("prompt")["split"].nunique()
    assert (halves == 1).all()
    share = (prompts.drop_duplicates("prompt")["split"] == "test").mean()
    assert 0.4 < share < 0.6
    again = pd.read_parquet(real_speech_corpus(corpus[0].with_name("again.parquet")))
    assert (
        again.set_index("id")["split"].to_dict().items()
        <= frame.set_index("id")["split"].to_dict().items()
    )  # the same seed gives the same split
    other = pd.read_parquet(real_speech_corpus(corpus[0].with_name("s1.parquet"), seed=1))
    reseeded = other.set_index("id")["split"]
    assert (reseeded != frame.set_index("id")["split"].loc[reseeded.index]).any()


def test_the_licence_and_attribution_of_each_source_travel_with_the_manifest(
    corpus: tuple[Path, pd.DataFrame],
) -> None:
    sources = {s.package: s for s in corpus_sources(corpus[0])}
    assert set(sources) == set(PACKAGES)
    assert sources["asterisk-core-sounds-fr-wav"].licence == "CC-BY-SA-3.0"
    assert "June Wallack" in sources["asterisk-core-sounds-fr-wav"].attribution
    assert sources["ktuberling-data"].licence == "GPL-2+"
    assert all(Path(s.copyright).is_file() and s.version for s in sources.values())


def test_lidframe_reads_the_manifest_and_decodes_every_kind_of_recording(
    corpus: tuple[Path, pd.DataFrame],
) -> None:
    path, frame = corpus
    rows = read_manifest(path, partition_rows=10_000).compute()  # labels "und" included
    assert len(rows) == len(frame) and rows["label"].isna().sum() == 0
    assert set(rows.loc[rows["id"].str.contains("/silence/"), "label"]) == {"und"}
    for encoding in ("wav", "g722", "ogg", "opus"):
        row = frame[frame["encoding"] == encoding].iloc[0]
        wave = decode_window(row["audio"])
        assert abs(len(wave) / 16_000 - row["seconds"]) < 0.05, (encoding, row["id"])
        assert np.isfinite(wave).all() and np.abs(wave).max() > 0.01


def test_a_source_that_is_not_installed_names_the_package(tmp_path: Path, monkeypatch) -> None:
    import lidframe.testing.real as real

    monkeypatch.setattr(real, "KTUBERLING_ROOT", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="ktuberling-data"):
        real_speech_corpus(tmp_path / "m.parquet", sources=("ktuberling",))
