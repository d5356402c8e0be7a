"""Result parts on a real local file system: staged under the lease token in ``OUT/_staging``, marked,
promoted or discarded; the ``part-N.parquet`` files lidframe reads; and the folder's owner marker
and write checks (``lidframe.results``: ``_parts`` and ``_folder``).

Every test writes real Parquet files with pyarrow under ``tmp_path`` and reads them back; the part
schema has a nested ``list<struct>`` column as the model columns of real results do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lidframe.columns import TOPK_TYPE
from lidframe.errors import ConfigError
from lidframe.results import (
    KEY,
    MARKER,
    STAGING,
    check_writable,
    claim_folder,
    discard,
    mark_staged,
    part_files,
    part_name,
    promote,
    read_provenance,
    remove_staging,
    staged_parts,
    write_staged,
)

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("audio", pa.string()),
        ("error", pa.string()),
        ("m_lang", pa.string()),
        ("m_prob", pa.float32()),
        ("m_topk", TOPK_TYPE),
    ]
)
TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def _frame(n: int = 3, lang: str = "en", start: int = 0) -> pd.DataFrame:
    rows = range(start, start + n)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in rows],
            "audio": [f"/audio/{i}.wav" for i in rows],
            "error": [None] * n,
            "m_lang": [lang] * n,
            "m_prob": [0.75] * n,
            "m_topk": [[{"lang": lang, "prob": 0.75}, {"lang": "xx", "prob": 0.25}] for _ in rows],
        }
    )


def _provenance(index: int, token: str) -> dict[str, object]:
    return {"job_id": "job-a", "partition": index, "lease_token": token, "models": {}}


def _stage(out: Path, index: int, token: str, frame: pd.DataFrame | None = None) -> str:
    return write_staged(
        _frame() if frame is None else frame,
        str(out),
        index,
        token,
        SCHEMA,
        provenance=_provenance(index, token),
    )


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# -- write_staged ---------------------------------------------------------------------------------


def test_write_staged_writes_the_token_named_part_with_its_provenance(tmp_path: Path) -> None:
    out = tmp_path / "out"
    frame = _frame(4, lang="de")
    path = _stage(out, 7, TOKEN, frame)

    staged = out / STAGING / f"part-00007.{TOKEN}.parquet"
    assert Path(path) == staged
    assert _names(out / STAGING) == [staged.name]  # the file alone: no temporary left behind
    assert not (out / part_name(7)).exists()  # staged only: not a result before its commit
    table = pq.read_table(staged)
    assert table.schema.remove_metadata() == SCHEMA
    back = table.to_pandas()
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["m_lang"].tolist() == ["de"] * 4
    assert back["m_topk"].iloc[0].tolist() == [
        {"lang": "de", "prob": 0.75},
        {"lang": "xx", "prob": 0.25},
    ]
    record = json.loads(table.schema.metadata[KEY])
    assert record == _provenance(7, TOKEN)
    assert read_provenance(str(staged)) == record  # readable with the public reader too


def test_a_failed_write_leaves_the_staged_name_as_it_was_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _stage(out, 3, TOKEN)
    before = (out / STAGING / f"part-00003.{TOKEN}.parquet").read_bytes()
    bad = _frame()
    bad["m_prob"] = ["not a number"] * len(bad)  # does not fit the schema
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        _stage(out, 3, TOKEN, bad)
    assert _names(out / STAGING) == [f"part-00003.{TOKEN}.parquet"]
    assert (out / STAGING / f"part-00003.{TOKEN}.parquet").read_bytes() == before


def test_a_second_write_of_a_part_already_in_place_under_its_token_is_a_no_op(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _stage(out, 2, TOKEN)
    assert promote(str(out), 2, TOKEN)
    in_place = out / part_name(2)
    before = in_place.read_bytes()

    # Dask ran the task again after its first run was committed and promoted
    again = _stage(out, 2, TOKEN, _frame(lang="fr"))
    assert Path(again) == in_place
    assert staged_parts(str(out)) == []  # nothing staged, nothing left behind
    assert in_place.read_bytes() == before

    # another lease's write of the same partition is staged as usual
    other = _stage(out, 2, OTHER, _frame(lang="fr"))
    assert Path(other) == out / STAGING / f"part-00002.{OTHER}.parquet"
    assert staged_parts(str(out)) == [(2, OTHER)]
    assert in_place.read_bytes() == before  # the part in place is not touched by staging


# -- mark_staged ----------------------------------------------------------------------------------


def test_mark_staged_nulls_the_columns_not_kept_of_marked_rows_and_sets_their_error(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _stage(out, 0, TOKEN, _frame(4))
    errors = {1: "duplicate_id: id 'r1' of row 1 is also the id of row 9", 3: "duplicate_id: x"}
    assert mark_staged(str(out), 0, TOKEN, errors, keep=("id", "audio"))

    table = pq.read_table(out / STAGING / f"part-00000.{TOKEN}.parquet")
    back = table.to_pandas()
    assert back["id"].tolist() == ["r0", "r1", "r2", "r3"]  # kept columns untouched
    assert back["audio"].tolist() == [f"/audio/{i}.wav" for i in range(4)]
    assert table.column("error").to_pylist() == [None, errors[1], None, errors[3]]
    for column in ("m_lang", "m_prob", "m_topk"):
        assert back[column].isna().tolist() == [False, True, False, True], column
    assert back.loc[0, "m_lang"] == "en" and back.loc[2, "m_prob"] == pytest.approx(0.75)
    assert back.loc[2, "m_topk"].tolist()[0] == {"lang": "en", "prob": 0.75}
    # the rewritten part keeps its schema and provenance, under the same staged name
    assert table.schema.remove_metadata() == SCHEMA
    assert json.loads(table.schema.metadata[KEY]) == _provenance(0, TOKEN)
    assert _names(out / STAGING) == [f"part-00000.{TOKEN}.parquet"]


def test_mark_staged_without_such_a_staged_part_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not mark_staged(str(out), 0, TOKEN, {0: "duplicate_id: x"}, keep=("id",))
    _stage(out, 0, TOKEN)
    assert not mark_staged(str(out), 0, OTHER, {0: "duplicate_id: x"}, keep=("id",))
    assert not mark_staged(str(out), 1, TOKEN, {0: "duplicate_id: x"}, keep=("id",))
    assert pq.read_table(out / STAGING / f"part-00000.{TOKEN}.parquet")["error"].null_count == 3


# -- promote, discard, staged_parts, remove_staging -----------------------------------------------


def test_promote_moves_the_staged_part_into_place_and_replaces_an_earlier_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    assert not promote(str(out), 5, TOKEN)  # nothing staged
    _stage(out, 5, TOKEN, _frame(lang="en"))
    assert promote(str(out), 5, TOKEN)
    assert staged_parts(str(out)) == []
    assert pd.read_parquet(out / part_name(5))["m_lang"].tolist() == ["en"] * 3
    assert not promote(str(out), 5, TOKEN)  # moved already

    # a redo under another lease replaces the part: one file per partition, never two
    _stage(out, 5, OTHER, _frame(2, lang="de"))
    assert promote(str(out), 5, OTHER)
    assert [Path(p).name for p in part_files(str(out))] == [part_name(5)]
    assert pd.read_parquet(out / part_name(5))["m_lang"].tolist() == ["de"] * 2
    assert read_provenance(str(out / part_name(5)))["lease_token"] == OTHER


def test_discard_deletes_only_the_staged_part_of_that_partition_and_token(tmp_path: Path) -> None:
    out = tmp_path / "out"
    discard(str(out), 1, TOKEN)  # nothing there: no error
    _stage(out, 1, TOKEN)
    _stage(out, 1, OTHER)
    _stage(out, 2, TOKEN)
    discard(str(out), 1, TOKEN)
    assert staged_parts(str(out)) == [(1, OTHER), (2, TOKEN)]
    discard(str(out), 1, TOKEN)  # twice: still no error
    assert staged_parts(str(out)) == [(1, OTHER), (2, TOKEN)]


def test_staged_parts_lists_partition_and_token_of_staged_files_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert staged_parts(str(out)) == []  # no folder at all
    _stage(out, 12, OTHER)
    _stage(out, 3, TOKEN)
    _stage(out, 12, TOKEN)
    dead = "dead-" + TOKEN  # the token a dead partition's rows are written under
    _stage(out, 4, dead)
    staging = out / STAGING
    (staging / ".part-00009.0a1b2c.tmp").write_bytes(b"half a file")  # a write cut short
    (staging / "part-00010.parquet").write_bytes(b"")  # no token
    (staging / "notes.txt").write_text("x")
    assert staged_parts(str(out)) == [(3, TOKEN), (4, dead), (12, TOKEN), (12, OTHER)]


def test_remove_staging_removes_the_staging_folder_only_when_it_is_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    remove_staging(str(out))  # no staging folder: no error
    _stage(out, 0, TOKEN)
    remove_staging(str(out))
    assert staged_parts(str(out)) == [(0, TOKEN)]  # kept: it still holds a part
    assert promote(str(out), 0, TOKEN)
    assert (out / STAGING).is_dir()
    remove_staging(str(out))
    assert not (out / STAGING).exists()
    assert _names(out) == [part_name(0)]


# -- part_files -----------------------------------------------------------------------------------


def test_part_files_lists_only_the_part_files_of_the_folder_sorted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert part_files(str(out)) == []  # no folder at all
    for k in (10, 0, 2):
        _stage(out, k, TOKEN)
        promote(str(out), k, TOKEN)
    _stage(out, 1, TOKEN)  # staged: not a result
    (out / MARKER).write_text(json.dumps({"job_id": "job-a"}))
    (out / "_lidframe.sqlite").write_bytes(b"")
    (out / "part-1.parquet").write_bytes(b"")  # fewer than five digits: not lidframe's name
    (out / "part-00003.parquet.tmp").write_bytes(b"")
    (out / "sub").mkdir()
    (out / "sub" / "part-00004.parquet").write_bytes(b"")  # in a subfolder
    assert part_files(str(out)) == [str(out / part_name(k)) for k in (0, 2, 10)]


def test_part_files_ignores_names_that_only_end_like_a_part(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _stage(out, 0, TOKEN)
    promote(str(out), 0, TOKEN)
    (out / "backup-part-00003.parquet").write_bytes((out / part_name(0)).read_bytes())
    (out / ".part-00004.parquet").write_bytes(b"")
    assert part_files(str(out)) == [str(out / part_name(0))]


def test_part_files_are_in_partition_order_past_five_digits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for k in (99_999, 100_000):
        _stage(out, k, TOKEN)
        promote(str(out), k, TOKEN)
    assert part_files(str(out)) == [str(out / part_name(k)) for k in (99_999, 100_000)]


# -- the folder: claim_folder, check_writable -----------------------------------------------------


def _owner(out: Path) -> str:
    return str(json.loads((out / MARKER).read_text())["job_id"])


def test_claim_folder_makes_the_folder_and_writes_the_owner_marker(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    claim_folder(str(out), "job-a", details={"manifest": "/data/m.csv", "models": ["m"]})
    record = json.loads((out / MARKER).read_text())
    assert record["job_id"] == "job-a"
    assert record["manifest"] == "/data/m.csv" and record["models"] == ["m"]
    assert record["claimed_at"].endswith("Z")
    assert _names(out) == [MARKER]  # no temporary left behind

    # the same job again (a resume) keeps its parts
    _stage(out, 0, TOKEN)
    promote(str(out), 0, TOKEN)
    claim_folder(str(out), "job-a")
    assert _owner(out) == "job-a" and (out / part_name(0)).exists()


def test_another_jobs_folder_is_refused_unless_overwrite_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    claim_folder(str(out), "job-a")
    for k in (0, 1):
        _stage(out, k, TOKEN)
        promote(str(out), k, TOKEN)
    _stage(out, 2, TOKEN)  # staged, not yet promoted
    (out / "notes.txt").write_text("mine")
    before = {name: (out / name).read_bytes() for name in (part_name(0), part_name(1))}

    with pytest.raises(ConfigError) as refused:
        claim_folder(str(out), "job-b")
    message = str(refused.value)
    assert "job job-a" in message and "2 part files" in message and "--overwrite" in message
    assert _owner(out) == "job-a"
    assert {name: (out / name).read_bytes() for name in before} == before
    assert staged_parts(str(out)) == [(2, TOKEN)]

    claim_folder(str(out), "job-b", overwrite=True)
    assert _owner(out) == "job-b"
    assert part_files(str(out)) == [] and not (out / STAGING).exists()
    assert (out / "notes.txt").read_text() == "mine"  # only parts and staged files go


def test_a_folder_of_parts_without_a_marker_belongs_to_the_job_that_wrote_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _stage(out, 0, TOKEN)
    promote(str(out), 0, TOKEN)
    with pytest.raises(ConfigError, match="an unknown job"):
        claim_folder(str(out), "job-b")
    with pytest.raises(ConfigError, match="job job-old"):
        claim_folder(str(out), "job-b", known_owner="job-old")
    assert not (out / MARKER).exists()
    claim_folder(str(out), "job-old", known_owner="job-old")  # the job that wrote it resumes
    assert _owner(out) == "job-old" and (out / part_name(0)).exists()


def test_claim_folder_refuses_a_file_and_a_foreign_marker(tmp_path: Path) -> None:
    afile = tmp_path / "results.parquet"
    afile.write_bytes(b"data")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        claim_folder(str(afile), "job-a")
    assert afile.read_bytes() == b"data"

    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("not json")
    with pytest.raises(ConfigError, match="not a lidframe folder marker"):
        claim_folder(str(out), "job-a", overwrite=True)
    assert (out / MARKER).read_text() == "not json"


def test_check_writable_makes_the_folder_and_leaves_nothing_in_it(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    check_writable(str(out))
    assert out.is_dir() and _names(out) == []

    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable(str(afile))
    with pytest.raises(ConfigError, match="is not writable"):
        check_writable(str(afile / "out"))  # under a file: cannot be made
    assert afile.read_text() == "x"
