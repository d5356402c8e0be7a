"""Reading a results folder whose parts were written by two lidframe versions.

A job resumed across an upgrade that added a result column (``sample_rate``, ``models_asked``)
holds parts with the column and parts without it; every row reads back, in its declared dtype,
with nulls where a part did not have the column, whichever kind of part comes first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lidframe
from lidframe.results import part_name


def _part(folder: Path, index: int, with_rate: bool) -> None:
    rows = {
        "id": [f"r{index}-{i}" for i in range(3)],
        "audio": [f"/a/{index}-{i}.wav" for i in range(3)],
        "error": pa.array([None, None, "decode_failed: x"], pa.string()),
        "sample_rate": pa.array([8000, 16000, None], pa.int32()),
        "audio_seconds": pa.array([1.5, 2.0, None], pa.float32()),
        "whisper_base_lang": ["en", "fr", None],
        "whisper_base_prob": pa.array([0.9, 0.8, None], pa.float32()),
        "whisper_base_topk": pa.array(
            [[{"lang": "en", "prob": 0.9}], [{"lang": "fr", "prob": 0.8}], None],
            pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float32())])),
        ),
        "speaker": ["ann", "bob", "ann"],  # a manifest column of the user's
    }
    if not with_rate:
        del rows["sample_rate"]
    pq.write_table(pa.table(rows), folder / part_name(index))


@pytest.mark.parametrize("new_first", [True, False])
def test_parts_with_and_without_a_later_column_read_as_one_frame(
    tmp_path: Path, new_first: bool
) -> None:
    _part(tmp_path, 0, with_rate=new_first)
    _part(tmp_path, 1, with_rate=not new_first)
    ddf = lidframe.read_results(str(tmp_path))
    df = ddf.compute().set_index("id")
    assert len(df) == 6 and str(ddf.dtypes["sample_rate"]) == "Int32"
    assert dict(df.dtypes) == dict(ddf._meta.set_index("id").dtypes)
    new, old = ("r0", "r1") if new_first else ("r1", "r0")
    assert list(df.loc[[f"{new}-0", f"{new}-1"], "sample_rate"]) == [8000, 16000]
    assert df.loc[[f"{old}-{i}" for i in range(3)], "sample_rate"].isna().all()
    assert df.loc[f"{old}-0", "whisper_base_topk"] == [{"lang": "en", "prob": pytest.approx(0.9)}]
    assert df.loc[f"{new}-2", "whisper_base_topk"] is None
    assert list(df["speaker"]) == ["ann", "bob", "ann"] * 2
    assert pd.isna(df.loc[f"{old}-2", "whisper_base_prob"])
