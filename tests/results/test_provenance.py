"""Results that carry their provenance: every part's Parquet metadata says what produced it, and the
results read back (Parquet and database) in their declared dtypes. Real jobs, real weights."""

from __future__ import annotations

import datetime
import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

import lidframe
from lidframe import columns
from lidframe.columns import column_alias
from lidframe.store import open_store
from lidframe.testing import TEXTS, synthesize
from tests.fixtures.paths import ECAPA_DIR

pytestmark = pytest.mark.slow

ECAPA = f"speechbrain:{ECAPA_DIR}"
WHISPER = "whisper_base"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """One job with whisper-base, one with whisper-base and the ECAPA, on three clips, a missing file
    and a row repeating the first one's id (a ``duplicate_id`` error: the database nulls its
    answers after its part was staged); three partitions each. ``{name: (out folder, summary)}``."""
    root = tmp_path_factory.mktemp("provenance")
    rows = []
    for lang in ("en", "de", "es"):
        synthesize(TEXTS[lang][0], lang, root / f"{lang}.wav")
        rows.append({"id": lang, "audio": f"{lang}.wav", "label": lang})
    rows.append({"id": "gone", "audio": "missing.wav", "label": "en"})
    rows.append({"id": "en", "audio": "en.wav", "label": "en"})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    done = {}
    for name, models in (("one", ["whisper-base"]), ("two", ["whisper-base", ECAPA])):
        out = root / name
        summary = lidframe.run(
            manifest, out, models, workers=1, partition_rows=2, top_k=3, progress=False
        )
        assert summary.ok and summary.rows == 5 and summary.errors == 2
        done[name] = (out, summary)
    return done


def _declared(frame_columns, aliases):
    """The dtype each column should have, from lidframe.columns (frame or database names)."""
    fixed = {
        c.name: c
        for c in (*columns.MANIFEST, *columns.ROW, *columns.SPEECH, *columns.CASCADE,
                  *columns.CONSENSUS)
    }  # fmt: skip
    fixed["row_id"] = columns.MANIFEST[0]
    fixed.update({f"{a}_{c.name}": c for a in aliases for c in columns.MODEL})
    return {name: fixed[name] for name in frame_columns if name in fixed}


def _assert_declared(frame: pd.DataFrame, aliases: list[str]) -> None:
    declared = _declared(frame.columns, aliases)
    for alias in aliases:
        assert {f"{alias}_{c.name}" for c in columns.MODEL} <= set(declared)
    for name, c in declared.items():
        assert frame[name].dtype == c.empty().dtype, (name, frame[name].dtype, c.dtype)
    answered = frame[frame["error"].isna()]
    assert len(answered) == 3
    for alias in aliases:
        assert answered[f"{alias}_lang"].notna().all()
        topk = answered[f"{alias}_topk"].iloc[0]
        assert isinstance(topk, list) and len(topk) == 3 and set(topk[0]) == {"lang", "prob"}
    assert frame.loc[frame["error"].notna(), f"{aliases[0]}_lang"].isna().all()


def test_every_part_records_what_produced_it(jobs):
    out, summary = jobs["two"]
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        job = store.job(summary.job_id)
    alias = column_alias(ECAPA)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 3
    records = [json.loads(pq.read_schema(p).metadata[b"lidframe"]) for p in parts]
    for k, record in enumerate(records):
        assert record["lidframe_version"] == lidframe.__version__
        assert record["job_id"] == summary.job_id and record["partition"] == k
        assert record["lease_token"]
        created = datetime.datetime.fromisoformat(record["created"])
        assert created.utcoffset() == datetime.timedelta(0)
        assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(
            hours=1
        )
        assert record["settings"] == job["config"]  # what the job id derives from
        assert record["settings"]["models"] == ["whisper-base", ECAPA]
        assert set(record["models"]) == {WHISPER, alias}
        whisper, ecapa = record["models"][WHISPER], record["models"][alias]
        assert (whisper["name"], whisper["family"], whisper["dtype"]) == (
            "whisper-base", "whisper", "float32",
        )  # fmt: skip
        assert (ecapa["name"], ecapa["family"], ecapa["source"]) == (
            ECAPA, "speechbrain", ECAPA.removeprefix("speechbrain:"),
        )  # fmt: skip
        assert "en" in whisper["labels"] and len(whisper["labels"]) == 99
        assert record["labels"] == {WHISPER: whisper["labels"], alias: ecapa["labels"]}
        assert record["dtypes"] == {WHISPER: "float32", alias: "float32"}
        assert DIGEST.fullmatch(whisper["weights"]) and DIGEST.fullmatch(ecapa["weights"])
        assert whisper["weights"] != ecapa["weights"]
    # the public reader: a folder gives its first part's record, a part its own
    assert lidframe.read_provenance(out) == records[0]
    assert lidframe.read_provenance(str(parts[1])) == records[1]
    # the same weights loaded by another job's worker process give the same digest
    other = lidframe.read_provenance(jobs["one"][0])
    assert list(other["models"]) == [WHISPER]
    assert other["models"][WHISPER]["weights"] == records[0]["models"][WHISPER]["weights"]
    assert other["settings"]["models"] == ["whisper-base"]
    (out.parent / "empty").mkdir()
    with pytest.raises(lidframe.ConfigError, match="empty: no part-"):
        lidframe.read_provenance(out.parent / "empty")


@pytest.mark.parametrize("name", ["one", "two"])
def test_results_read_back_in_their_declared_dtypes(jobs, name):
    out, summary = jobs[name]
    aliases = [WHISPER] + ([column_alias(ECAPA)] if name == "two" else [])
    ddf = lidframe.read_results(str(out))
    frame = ddf.compute()
    assert len(frame) == 5 and frame["error"].str.startswith("duplicate_id").sum() == 1
    assert list(ddf.dtypes) == list(frame.dtypes)  # the lazy frame's meta says what comes
    _assert_declared(frame, aliases)
    assert ("lang" in frame.columns) == (name == "two")

    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        stored = store.results(summary.job_id)
    assert stored["row"].tolist() == [0, 1, 2, 3, 4]
    _assert_declared(stored, aliases)
    assert stored["offset"].dtype == "float64" and stored["duration"].dtype == "float64"
    # one model: no consensus columns (they would be null on every row); two: all of them
    consensus = {c.name for c in columns.CONSENSUS}
    assert (consensus <= set(stored.columns)) == (name == "two")
    assert not consensus & set(stored.columns) or name == "two"
    # the database and the Parquet parts (in manifest order) give the same answers
    frame = frame.reset_index(drop=True)
    assert stored["error"].fillna("").tolist() == frame["error"].fillna("").tolist()
    for alias in aliases:
        got, want = stored[f"{alias}_lang"], frame[f"{alias}_lang"]
        assert got.fillna("-").tolist() == want.fillna("-").tolist()
    if name == "two":
        for column in ("lang", "agree", "n_agree"):
            assert stored[column].tolist() == frame[column].tolist(), column
