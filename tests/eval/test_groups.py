"""Scores by group (``by=``, ``--by``): per speaker, source, sample rate or any column, from the
results or from a manifest joined by ``id``; each figure checked against a pandas computation
written apart, every row in one group."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe import ConfigError
from lidframe.eval import evaluation_text
from tests.fixtures.eval_data import NORWEGIAN, results_frame, with_no_speech


def _by_speaker() -> pd.DataFrame:
    """Results of two speakers: whisper_base is right on every row of "ann" it scores, and wrong
    on a third of "bob"'s answered rows; a sample rate and a clip length per row."""
    df = with_no_speech(results_frame())
    n = len(df)
    speaker = np.where(np.arange(n) % 2 == 0, "ann", "bob")
    answered = df["whisper_base_lang"].notna() & (df["whisper_base_lang"] != "und")
    ann = (speaker == "ann") & df["error"].isna() & df["label"].notna()
    df.loc[ann, "whisper_base_lang"] = df.loc[ann, "label"].replace({"nb": "no"})
    bob = np.flatnonzero((speaker == "bob") & answered & df["label"].notna())[::3]
    df.loc[bob, "whisper_base_lang"] = "la"
    df["speaker"] = speaker
    df["sample_rate"] = np.where(np.arange(n) % 3 == 0, 16000, 8000)
    df["seconds"] = np.random.default_rng(5).uniform(0.5, 20.0, n).round(3)
    return df


def _expected(df: pd.DataFrame, column: str, source: str, answer: str) -> pd.DataFrame:
    """Rows, scored rows, the source's accuracy and the consensus' und rate per value, by pandas."""
    label = df["label"].replace(NORWEGIAN)
    decoded = df["error"].isna()
    scored = label.notna() & (label != "und") & decoded
    right = (df[answer].replace(NORWEGIAN).fillna("und") == label).astype(float).where(scored)
    und = (df["lang"] == "und").astype(float).where(decoded)
    frame = pd.DataFrame({"g": df[column], "scored": scored, "right": right, "und": und})
    out = frame.groupby("g").agg(
        rows=("scored", "size"), scored=("scored", "sum"), accuracy=("right", "mean"),
        und_rate=("und", "mean"),
    )  # fmt: skip
    out.index = out.index.map(str)
    return out


def test_accuracy_per_speaker_and_sample_rate_from_the_results_own_columns():
    df = _by_speaker()
    ev = lidframe.evaluate(df, by=["speaker", "sample_rate"])
    assert list(ev.by) == ["speaker", "sample_rate"]
    speakers = ev.by["speaker"]
    expected = _expected(df, "speaker", "whisper_base", "whisper_base_lang")
    assert list(speakers.index) == ["ann", "bob"]
    assert speakers["rows"].tolist() == expected["rows"].tolist() == [150, 150]
    assert speakers["scored"].tolist() == expected["scored"].tolist()
    np.testing.assert_allclose(speakers["whisper_base accuracy"], expected["accuracy"])
    np.testing.assert_allclose(speakers["und_rate"], expected["und_rate"])
    # the point of grouping: one speaker is always right, the other is not
    assert speakers.loc["ann", "whisper_base accuracy"] == 1.0
    assert speakers.loc["bob", "whisper_base accuracy"] < 0.75
    consensus = _expected(df, "speaker", "consensus", "lang")
    np.testing.assert_allclose(speakers["consensus accuracy"], consensus["accuracy"])
    # numbers are grouped as numbers: 8000 before 16000
    rates = ev.by["sample_rate"]
    assert list(rates.index) == ["8000", "16000"] and rates["rows"].sum() == len(df)
    expected = _expected(df, "sample_rate", "ecapa", "ecapa_lang")
    np.testing.assert_allclose(rates["ecapa accuracy"], expected.loc[["8000", "16000"], "accuracy"])
    # as a CSV with a blank reads them: floats, named as the integers they are
    blank = df.assign(sample_rate=df["sample_rate"].astype(float).where(df.index != 0))
    rates = lidframe.evaluate(blank, by="sample_rate").by["sample_rate"]
    assert list(rates.index) == ["8000", "16000", "(missing)"] and rates["rows"].sum() == len(df)

    record = json.loads(json.dumps(ev.record(), allow_nan=False))
    assert record["by"]["speaker"]["ann"]["whisper_base accuracy"] == 1.0
    assert record["by"]["sample_rate"]["16000"]["rows"] == 100
    text = evaluation_text(ev)
    assert "by speaker (2 groups):" in text and "by sample_rate (2 groups):" in text
    block = text.split("by speaker (2 groups):", 1)[1]
    ann_line = next(ln for ln in block.splitlines() if ln.startswith("ann "))
    assert ann_line.split()[:3] == ["ann", "150", str(speakers.loc["ann", "scored"])]
    assert "<h5>by speaker</h5>" in ev._repr_html_()
    # the same as one comma-separated value
    again = lidframe.evaluate(df, by="speaker, sample_rate")
    assert again.by["speaker"].equals(speakers)


def test_a_number_column_with_many_values_is_cut_into_quantile_bins():
    df = _by_speaker()
    df.loc[:4, "seconds"] = np.nan  # rows without a value: a group of their own
    ev = lidframe.evaluate(df, by="seconds")
    table = ev.by["seconds"]
    assert len(table) == 11 and table.index[-1] == "(missing)"
    assert table["rows"].sum() == len(df) and table.loc["(missing)", "rows"] == 5
    bins = pd.qcut(df["seconds"], 10)
    assert table["rows"].iloc[:-1].tolist() == bins.value_counts(sort=False).tolist()
    assert set(table["rows"].iloc[:-1]) <= {29, 30}  # 295 rows in tenths
    expected = _expected(df.assign(bin=bins.astype(str).where(bins.notna())), "bin", "", "lang")
    assert list(table.index[:-1]) == [str(b) for b in bins.cat.categories]  # lowest first
    np.testing.assert_allclose(
        table.loc[expected.index, "consensus accuracy"], expected["accuracy"]
    )
    note = f"seconds: {df['seconds'].nunique()} distinct values, more than 50: grouped into 10 "
    assert any(n.startswith(note) for n in ev.notes)
    # a text column with many values is grouped as it is (the text shows the first 50)
    ev = lidframe.evaluate(df, by="id")
    assert len(ev.by["id"]) == len(df)
    assert "... and 250 more groups" in evaluation_text(ev)


def test_a_column_found_nowhere_is_one_error_naming_it_and_the_available_ones():
    df = _by_speaker()
    with pytest.raises(ConfigError) as caught:
        lidframe.evaluate(df, by="speakr")
    message = str(caught.value)
    assert "\n" not in message and "'speakr'" in message
    assert "available: id, audio, label, error, " in message and "speaker" in message
    assert "whisper_base_topk" not in message
    with pytest.raises(ConfigError, match="'tags': its values are lists"):
        lidframe.evaluate(df.assign(tags=[["read", "male"]] * len(df)), by="tags")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_manifest_columns_are_joined_by_id_derived_ids_included(tmp_path, fmt):
    """The results keep only the manifest's own columns; its speaker comes from the manifest,
    whose rows have no id column (each row's id is derived from its audio, as a job derives it)."""
    df = _by_speaker()
    manifest = pd.DataFrame(
        {
            "audio": [f"/data/{i}.wav" for i in range(len(df))],
            "label": df["label"],
            "speaker": df["speaker"],
            "sample_rate": df["sample_rate"],
        }
    )
    path = tmp_path / f"m.{fmt}"
    if fmt == "parquet":
        manifest.to_parquet(path, index=False)
    elif fmt == "jsonl":
        manifest.to_json(path, orient="records", lines=True)
    else:
        manifest.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    ids = lidframe.read_manifest(path, partition_rows=1000).compute()["id"].to_numpy()
    results = df.drop(columns=["speaker", "sample_rate", "label"]).assign(id=ids)
    results = results.iloc[:-3]  # rows the results lack are no matter; the groups are of results
    results = results.sample(frac=1.0, random_state=0)  # joined by id, not by position
    ev = lidframe.evaluate(results, labels=path, by=["speaker", "sample_rate"])
    expected = lidframe.evaluate(df.iloc[:-3], by=["speaker", "sample_rate"])
    for column in ("speaker", "sample_rate"):
        pd.testing.assert_frame_equal(ev.by[column], expected.by[column])
    assert list(ev.by["sample_rate"].index) == ["8000", "16000"]  # numbers stay numbers
    # a row the manifest lacks is in the (missing) group
    stray = results.copy()
    stray.loc[0, "id"] = "not-in-the-manifest"
    table = lidframe.evaluate(stray, labels=path, by="speaker").by["speaker"]
    assert table.loc["(missing)", "rows"] == 1 and table["rows"].sum() == len(stray)
    with pytest.raises(ConfigError, match=f"no such column in the results or the manifest {path}"):
        lidframe.evaluate(results, labels=path, by="room")


def test_eval_command_prints_the_groups_and_refuses_an_unknown_column(tmp_path):
    df = _by_speaker()
    out = tmp_path / "out"
    out.mkdir()
    df.to_parquet(out / "part-00000.parquet", index=False)

    def lid(*args):
        return subprocess.run(
            [sys.executable, "-m", "lidframe.cli", "eval", str(out), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    proc = lid("--by", "speaker", "--by", "sample_rate,seconds")
    assert proc.returncode == 0, proc.stderr
    for heading in ("by speaker (2 groups):", "by sample_rate (2 groups):", "by seconds (10 "):
        assert heading in proc.stdout
    saved = json.loads((out / "_lidframe_evaluations" / "latest.json").read_text())
    assert set(saved["by"]) == {"speaker", "sample_rate", "seconds"}
    assert saved["by"]["speaker"]["ann"]["whisper_base accuracy"] == 1.0

    proc = lid("--by", "speaker,nope", "--no-save")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("lidframe: error: by column 'nope': no such column in the results")
    assert "available: id, audio, label" in line and "speaker" in line
