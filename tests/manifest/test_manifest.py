"""Manifests: formats, relative paths, stable ids, exact partitions, and errors naming the row."""

from __future__ import annotations

import json
import os

import dask
import pandas as pd
import pytest

from lidframe import ConfigError, ManifestError, read_manifest
from lidframe.manifest import (
    FIRST_PARTITION_ROWS,
    derive_id,
    open_manifest,
    plan_partitions,
    read_partition,
)


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def _write(tmp_path, rows, fmt):
    df = pd.DataFrame(rows)
    path = tmp_path / f"manifest.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_formats_resolve_relative_paths_and_normalise(tmp_path, fmt):
    rows = [
        {"audio": "clips/a.wav", "label": "de", "offset": 1.5, "duration": 3.0},
        {"audio": "/data/b.flac", "label": "jw", "offset": None, "duration": None},
        {"audio": "s3://bucket/c.opus", "label": "EN", "offset": 0, "duration": 2},
    ]
    path = _write(tmp_path, rows, fmt)
    df = read_manifest(path).compute()
    assert list(df.columns) == ["id", "audio", "label", "offset", "duration"]
    assert df["audio"].tolist() == [
        os.path.join(str(tmp_path), "clips", "a.wav"),
        "/data/b.flac",
        "s3://bucket/c.opus",
    ]
    assert df["label"].tolist() == ["de", "jv", "en"]  # canonical codes: Whisper's jw is jv
    assert df["offset"].iloc[0] == 1.5 and pd.isna(df["offset"].iloc[1])
    assert df["id"].is_unique and df["id"].str.len().eq(24).all()


def test_derived_ids_are_stable_and_depend_on_window(tmp_path):
    rows = [
        {"audio": "a.wav", "offset": 0.0, "duration": 5.0},
        {"audio": "a.wav", "offset": 5.0, "duration": 5.0},
    ]
    first = read_manifest(_write(tmp_path, rows, "csv")).compute()["id"].tolist()
    other = tmp_path / "elsewhere"
    other.mkdir()
    again = read_manifest(_write(other, rows, "csv")).compute()["id"].tolist()
    assert first == again  # the id follows the manifest's own text, not where it lives
    assert first[0] != first[1]
    assert first[0] == derive_id("a.wav", 0.0, 5.0)


def test_given_ids_are_kept(tmp_path):
    rows = [{"id": "x1", "audio": "a.wav"}, {"id": "x2", "audio": "b.wav"}]
    assert read_manifest(_write(tmp_path, rows, "csv")).compute()["id"].tolist() == ["x1", "x2"]


@pytest.mark.parametrize("size", [1, 7, 10, 64])
def test_partitions_hold_exact_row_ranges(tmp_path, size):
    rows = [{"audio": f"clip-{i}.wav"} for i in range(23)]
    ddf = read_manifest(
        _write(tmp_path, rows, "csv"), partition_rows=size, first_partition_rows=None
    )
    parts = [p.compute() for p in ddf.to_delayed()]
    assert [len(p) for p in parts] == [min(size, 23 - k) for k in range(0, 23, size)]
    flat = pd.concat(parts)
    assert flat["audio"].str.rsplit("/", n=1).str[-1].tolist() == [
        f"clip-{i}.wav" for i in range(23)
    ]
    assert flat.index.tolist() == list(range(23))


@pytest.mark.parametrize(
    ("size", "first", "lengths"),
    [(10, 8, [8, 2, 10, 3]), (64, 8, [8, 15]), (7, 8, [7, 7, 7, 2]), (64, 30, [23])],
)
def test_the_first_partition_holds_at_most_first_partition_rows(tmp_path, size, first, lengths):
    rows = [{"audio": f"clip-{i}.wav"} for i in range(23)]
    ddf = read_manifest(
        _write(tmp_path, rows, "csv"), partition_rows=size, first_partition_rows=first
    )
    parts = [p.compute() for p in ddf.to_delayed()]
    assert [len(p) for p in parts] == lengths
    assert pd.concat(parts).index.tolist() == list(range(23))  # the rows keep their numbers


def test_by_default_the_first_partition_is_small_so_head_is_a_first_look(tmp_path):
    """``identify(ddf).head()`` computes the first partition whole: by default it holds
    FIRST_PARTITION_ROWS rows, split off the first planned one."""
    rows = [{"audio": f"clip-{i}.wav"} for i in range(23)]
    path = _write(tmp_path, rows, "csv")
    ddf = read_manifest(path)
    assert [len(p.compute()) for p in ddf.to_delayed()] == [FIRST_PARTITION_ROWS, 15]
    assert FIRST_PARTITION_ROWS >= 5  # what head() shows
    with pytest.raises(ConfigError, match="first_partition_rows"):
        read_manifest(path, first_partition_rows=0)


def test_partitions_stay_inside_one_file_of_a_folder(tmp_path):
    # A folder of Parquet files: each file is cut on its own (a partition never spans two files, so
    # it is read with one request), rows keep their order and global numbers.
    folder = tmp_path / "manifest"
    folder.mkdir()
    for k in range(3):
        pd.DataFrame({"audio": [f"f{k}-{i}.wav" for i in range(5)]}).to_parquet(
            folder / f"part{k}.parquet", index=False
        )
    ddf = read_manifest(folder, partition_rows=4)
    parts = [p.compute() for p in ddf.to_delayed()]
    assert [len(p) for p in parts] == [4, 1, 4, 1, 4, 1]
    assert pd.concat(parts).index.tolist() == list(range(15))
    names = pd.concat(parts)["audio"].str.rsplit("/", n=1).str[-1].tolist()
    assert names == [f"f{k}-{i}.wav" for k in range(3) for i in range(5)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"path": "a.wav"}], "required column 'audio' is missing"),
        (
            [{"audio": "a.wav", "offset": "1"}, {"audio": "b.wav", "offset": "abc"}],
            "row 1: column 'offset': 'abc' is not a number",
        ),
        ([{"audio": "a.wav", "duration": "-2"}], "row 0: column 'duration': -2.0 is not positive"),
        ([{"audio": "a.wav", "offset": "-1"}], "row 0: column 'offset': -1.0 is negative"),
        ([{"audio": "a.wav"}, {"audio": ""}], "row 1: column 'audio' is empty"),
        ([{"audio": "a.wav", "label": "klingonish"}], "row 0: column 'label': 'klingonish'"),
        (
            [{"id": "same", "audio": "a.wav"}, {"id": "same", "audio": "b.wav"}],
            "duplicate ids: 'same'",
        ),
    ],
)
def test_bad_manifests_name_column_or_row(tmp_path, rows, message):
    path = _write(tmp_path, rows, "csv")
    with pytest.raises(ManifestError, match=message.replace("(", r"\(")) as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_row_numbers_are_global_across_blocks(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    pd.DataFrame({"audio": ["a", "b", "c"], "offset": ["0", "1", None]}).to_parquet(
        folder / "p0.parquet", index=False
    )
    pd.DataFrame({"audio": ["d", "e"], "offset": ["1", "zz"]}).to_parquet(
        folder / "p1.parquet", index=False
    )
    with pytest.raises(ManifestError, match="row 4: column 'offset'"):
        read_manifest(folder)


def test_missing_manifest_and_bad_settings(tmp_path):
    with pytest.raises(ManifestError, match="not found|cannot read"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="cannot tell the manifest format"):
        read_manifest(tmp_path / "manifest.xlsx")
    path = _write(tmp_path, [{"audio": "a.wav"}], "csv")
    with pytest.raises(ConfigError, match="partition_rows"):
        read_manifest(path, partition_rows=0)


def test_a_label_may_say_no_language(tmp_path):
    """Ground truth for a recording without speech: ``und``, or BCP-47's ``zxx`` as its equivalent."""
    (tmp_path / "m.csv").write_text(
        "id,audio,label\na,a.wav,und\nb,b.wav,ZXX\nc,c.wav,en\nd,d.wav,xx\n"
    )
    source = open_manifest(tmp_path / "m.csv")
    (planned,) = plan_partitions(source, 10)
    rows = read_partition(source, planned).set_index("id")
    assert rows.loc[["a", "b", "c"], "label"].tolist() == ["und", "und", "en"]
    assert rows.loc[["a", "b", "c"], "error"].isna().all()
    assert rows.loc["d", "error"].startswith("bad_row: ") and "'xx'" in rows.loc["d", "error"]
