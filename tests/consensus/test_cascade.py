"""Cheap model first (``--cascade``): only the rows the first model leaves unsure reach the second.

Real models through the real kernel: the project's ECAPA-TDNN (SpeechBrain, 12 languages) first,
real whisper-base second, on espeak-ng speech in languages the ECAPA knows and in some it does not
(where it is unsure or wrong, which is what sends rows on). Whisper runs with full context here so
that its answers do not depend on which clips share a batch, and a cascaded row's Whisper answer can
be compared with the every-model run's exactly.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import lidframe
from lidframe.columns import asked_aliases, asked_value, column_alias
from lidframe.consensus import ESCALATE_BELOW, Cascade, ConsensusConfig, consensus_frame
from lidframe.errors import ConfigError
from lidframe.job import RunConfig
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import parse_model
from lidframe.speech import SpeechConfig
from lidframe.testing import make_corpus, write_wav
from tests.fixtures.paths import ECAPA_DIR

ECAPA = f"speechbrain:{ECAPA_DIR}"
ECAPA_ALIAS = column_alias(ECAPA)
FULL = SpeechConfig(context="full")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("cascade")
    df = make_corpus(root, languages=["en", "de", "es", "it", "pt", "ro", "tr"], per_language=2,
                     seed=5)  # fmt: skip
    df["audio"] = [str(root / a) for a in df["audio"]]
    return df


@pytest.fixture(scope="module")
def specs():
    return (parse_model(ECAPA, device="cpu"), parse_model("whisper-base", device="cpu"))


@pytest.fixture(scope="module")
def every(clips, specs) -> pd.DataFrame:
    return identify_partition(clips, KernelConfig(models=specs, speech=FULL))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_only_unsettled_rows_reach_the_second_model(clips, specs, every):
    first = every[f"{ECAPA_ALIAS}_prob"].to_numpy(dtype=float)
    assert every["models_asked"].isna().all()  # no cascade: the column is null
    # A threshold between the first model's probabilities: some rows settle, some go on.
    threshold = float(np.median(first))
    got = identify_partition(clips, KernelConfig(models=specs, speech=FULL,
                                                 cascade=Cascade(threshold)))  # fmt: skip
    assert got["error"].isna().all()
    went_on = first < threshold  # one model: the consensus support is its probability
    assert 0 < went_on.sum() < len(clips)
    expected = [asked_value([ECAPA_ALIAS, "whisper_base"] if g else [ECAPA_ALIAS]) for g in went_on]
    assert got["models_asked"].tolist() == expected
    # The first model's answers are the same as when every model runs on every row.
    pd.testing.assert_series_equal(got[f"{ECAPA_ALIAS}_lang"], every[f"{ECAPA_ALIAS}_lang"])
    np.testing.assert_allclose(got[f"{ECAPA_ALIAS}_prob"], first, rtol=1e-4)
    # Settled rows have no Whisper answer (and no error); rows sent on have the every-model answer.
    assert got.loc[~went_on, "whisper_base_lang"].isna().all()
    assert got.loc[~went_on, "whisper_base_topk"].isna().all()
    assert (got.loc[went_on, "whisper_base_lang"] == every.loc[went_on, "whisper_base_lang"]).all()
    np.testing.assert_allclose(got.loc[went_on, "whisper_base_prob"],
                               every.loc[went_on, "whisper_base_prob"], rtol=1e-4)  # fmt: skip

    # The consensus of a settled row is the first model's alone, of the others both models'.
    aliases = [ECAPA_ALIAS, "whisper_base"]
    decided = consensus_frame(got, aliases, ConsensusConfig())
    assert (decided.loc[~went_on, "consensus_method"] == "majority[1/1]").all()
    assert (decided.loc[~went_on, "lang"] == got.loc[~went_on, f"{ECAPA_ALIAS}_lang"]).all()
    assert (decided.loc[went_on, "consensus_method"] == "majority[2/2]").all()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_thresholds_zero_and_one_are_first_model_only_and_every_model(clips, specs, every):
    none = identify_partition(clips, KernelConfig(models=specs, speech=FULL, cascade=Cascade(0)))
    assert (none["models_asked"] == ECAPA_ALIAS).all()
    assert none["whisper_base_lang"].isna().all() and none["error"].isna().all()

    first = every[f"{ECAPA_ALIAS}_prob"].to_numpy(dtype=float)
    assert (first < 1.0).all()  # else escalate-below 1 would settle a row
    both = identify_partition(clips, KernelConfig(models=specs, speech=FULL, cascade=Cascade(1.0)))
    assert (both["models_asked"] == f"{ECAPA_ALIAS},whisper_base").all()
    assert (both["whisper_base_lang"] == every["whisper_base_lang"]).all()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rows_without_speech_or_audio_reach_no_model(tmp_path, specs):
    write_wav(tmp_path / "silence.wav", np.zeros(3 * 16_000, dtype=np.float32), 16_000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    df = pd.DataFrame({"audio": [str(tmp_path / "silence.wav"), str(tmp_path / "broken.wav")]})
    got = identify_partition(df, KernelConfig(models=specs, cascade=Cascade(1.0)))
    assert got["models_asked"].tolist() == ["", ""]
    assert got.loc[0, f"{ECAPA_ALIAS}_lang"] == "und" and got.loc[0, "whisper_base_lang"] == "und"
    assert pd.isna(got.loc[0, "error"]) and got.loc[1, "error"].startswith("decode_failed")
    decided = consensus_frame(got, [ECAPA_ALIAS, "whisper_base"], ConsensusConfig())
    assert decided["lang"].tolist() == ["und", "und"]
    assert decided["consensus_method"].tolist() == ["majority[0/2]", "majority[0/2]"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cli_cascade_job_stores_which_models_each_row_reached(clips, tmp_path):
    manifest = tmp_path / "manifest.csv"
    clips.to_csv(manifest, index=False)
    out = tmp_path / "out"
    db = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "run", str(manifest), "--out", str(out),
         "--models", f"{ECAPA},whisper-base", "--cascade", "--escalate-below", "0.99",
         "--workers", "1", "--no-progress", "--db", db],
        capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert len(df) == len(clips) and df["error"].isna().all()
    asked = df["models_asked"].tolist()
    assert set(asked) <= {ECAPA_ALIAS, f"{ECAPA_ALIAS},whisper_base"}
    went_on = np.array([a.endswith("whisper_base") for a in asked])
    assert 0 < went_on.sum() < len(df)  # pt, ro and tr are outside the first model's languages
    assert (df.loc[~went_on, f"{ECAPA_ALIAS}_prob"] >= 0.99).all()
    assert (df.loc[went_on, f"{ECAPA_ALIAS}_prob"] < 0.99).all()
    assert df.loc[~went_on, "whisper_base_lang"].isna().all()
    assert df.loc[went_on, "whisper_base_lang"].notna().all()
    assert (df.loc[~went_on, "consensus_method"] == "majority[1/1]").all()
    assert pq.read_schema(next(out.glob("*.parquet"))).field("models_asked").type == "string"
    with sa.create_engine(db).connect() as conn:
        stored = dict(
            conn.execute(sa.text("SELECT row_id, models_asked FROM lidframe_results")).all()
        )
    assert stored == dict(zip(df["id"], asked, strict=True))


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--escalate-below", "0.5"], ["--escalate-below", "--cascade"]),
        (["--cascade"], ["cascade", "two models"]),
        (
            ["--models", "a,b", "--cascade", "--escalate-below", "1.5"],
            ["--escalate-below", "1.5"],
        ),
    ],
)
def test_cli_cascade_settings_errors_exit_2_in_one_line(tmp_path, flags, words):
    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "run", str(tmp_path / "m.csv"), "--out",
         str(tmp_path / "out"), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lidframe: error:"), proc.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out").exists()


def test_cascade_is_part_of_the_job_identity_and_checked():
    two = ("whisper-base", ECAPA)
    assert RunConfig(models=two, cascade=0.9).identity() != RunConfig(models=two).identity()
    assert (
        RunConfig(models=two, cascade=0.9).identity()
        != RunConfig(models=two, cascade=0.8).identity()
    )
    with pytest.raises(ConfigError, match="two models"):
        RunConfig(models=("whisper-base",), cascade=0.9)
    for bad in (-0.1, 1.5, float("nan"), "high", True):
        with pytest.raises(ConfigError, match="escalate-below"):
            RunConfig(models=two, cascade=bad)
    with pytest.raises(ConfigError, match="two models"):
        KernelConfig(models=(parse_model("whisper-base"),), cascade=Cascade(0.5))
    assert 0 < ESCALATE_BELOW < 1


def test_consensus_of_a_cascaded_row_is_over_the_models_it_reached():
    def topk(lang, p):
        return [{"lang": lang, "prob": p}, {"lang": "xx", "prob": 1 - p}]

    frame = pd.DataFrame({
        "a_topk": [topk("de", 0.95), topk("de", 0.6), topk("de", 0.6)],
        "b_topk": [None, topk("fr", 0.9), None],
        "models_asked": pd.array(["a", "a,b", "a,b"], dtype="string"),
    })  # fmt: skip
    got = consensus_frame(frame, ["a", "b"], ConsensusConfig(policy="weighted"))
    assert got["consensus_method"].tolist() == ["weighted[1/1]", "weighted[2/2]", "weighted[1/2]"]
    assert got["lang"].tolist() == ["de", "fr", "de"]  # row 3: b was asked and failed
    assert asked_aliases("b,a", ["a", "b"]) == ["a", "b"]
    assert asked_aliases(None, ["a", "b"]) == asked_aliases("", ["a", "b"]) == ["a", "b"]


def test_run_accepts_a_cascade_threshold_as_a_setting():
    assert RunConfig.of(models=["whisper-base", ECAPA], cascade=0.8).cascade == 0.8
    assert "cascade" in lidframe.run.__doc__
