"""Every place a result column appears derives from ``lidframe.columns``, and they agree.

Each derived thing is made the way the library makes it (the kernel on a real partition, the
consensus, the rows of a partition given up on, the Parquet writer, the job database migrated by
Alembic, the rows read back from it, the README) and compared with the declarations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from lidframe import columns
from lidframe.consensus import ConsensusConfig, consensus_frame, consensus_meta
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.manifest import manifest_meta
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.store import open_store
from lidframe.store.results import frame_rows, replace_rows
from lidframe.store.schema import predictions, results
from lidframe.testing import TEXTS, sine, synthesize, write_wav
from tests.fixtures.paths import README


class Half(LidModel):
    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de", "fr")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        return np.tile(np.array([[0.5, 0.3, 0.2]], np.float32), (len(waveforms), 1))


def _result_frame(tmp_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A real kernel output for two models over three rows: speech, a tone (no speech: ``und``
    without reaching a model) and an unreadable file."""
    register_family("test-half", Half)
    synthesize(TEXTS["en"][0], "en", tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav", sine(0.5, freq=220.0), 16_000)
    manifest = pd.DataFrame(
        {
            "id": ["a", "b", "gone"],
            "audio": [str(tmp_path / n) for n in ("a.wav", "b.wav", "gone.wav")],
            "label": ["en", "de", "fr"],
            "offset": [np.nan] * 3,
            "duration": [np.nan] * 3,
        }
    ).astype({"id": "string", "audio": "string", "label": "string"})
    specs = tuple(
        ModelSpec(name=f"test-half:{s}", family="test-half", source=s, device="cpu")
        for s in ("one", "two")
    )
    frame = identify_partition(manifest, KernelConfig(models=specs, decode_threads=1))
    aliases = [s.alias for s in specs]
    return consensus_frame(frame, aliases, ConsensusConfig()), aliases


def test_frames_meta_and_parquet_schema_follow_the_declarations(tmp_path):
    frame, aliases = _result_frame(tmp_path)
    meta = consensus_meta(columns.result_meta(manifest_meta(with_label=True), aliases))
    expected = [c.name for c in columns.MANIFEST] + ["error"] + [c.name for c in columns.SPEECH]
    expected += [c.name for c in columns.CASCADE]
    expected += [f"{a}_{c.name}" for a in aliases for c in columns.MODEL]
    expected += [c.name for c in columns.CONSENSUS]
    assert list(meta.columns) == expected
    assert list(frame.columns) == expected
    # the kernel's and the consensus's columns have the declared dtypes, as the meta says
    assert dict(frame.dtypes.astype(str)) == dict(meta.dtypes.astype(str))
    schema = columns.result_schema(meta, aliases)
    declared = {
        c.name: c.arrow_type
        for c in (*columns.MANIFEST, *columns.SPEECH, *columns.CASCADE, *columns.CONSENSUS)
    }
    declared["error"] = pa.string()
    declared.update({f"{a}_{c.name}": c.arrow_type for a in aliases for c in columns.MODEL})
    assert dict(zip(schema.names, schema.types, strict=True)) == declared
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    assert table.column("test_half_one_topk").type == columns.TOPK_TYPE
    assert frame["error"].notna().tolist() == [False, False, True]
    assert frame["sample_rate"].tolist()[:2] == [16_000, 16_000]  # decoded: their files' rate
    assert frame["sample_rate"].isna().tolist() == [False, False, True]


def test_rows_given_up_on_have_the_same_columns(tmp_path):
    from lidframe.columns import null_model_values, speech_values

    frame, aliases = _result_frame(tmp_path)
    index = pd.RangeIndex(2)
    speech = pd.DataFrame(speech_values({}, index), index=index)
    assert dict(speech.dtypes.astype(str)) == {
        c.name: str(frame[c.name].dtype) for c in columns.SPEECH
    }
    assert speech.isna().all().all()
    for alias in aliases:
        nulls = pd.DataFrame(null_model_values(alias, index), index=index)
        assert dict(nulls.dtypes.astype(str)) == {
            c: str(frame[c].dtype) for c in columns.model_columns(alias)
        }
        assert nulls.isna().all().all()


def test_database_tables_and_rows_follow_the_declarations(tmp_path, db_url):
    stored = [
        c.sql_name
        for c in (
            *columns.MANIFEST,
            *columns.ROW,
            *columns.SPEECH,
            *columns.CASCADE,
            *columns.CONSENSUS,
        )
    ]
    assert [c.name for c in results.columns if c.name not in ("job_id", "row", "partition")] == [
        stored[0],
        *stored[1:],
    ]
    assert [c.name for c in predictions.columns][3:] == [c.sql_name for c in columns.MODEL]

    frame, aliases = _result_frame(tmp_path)
    frame.index = pd.RangeIndex(10, 13)  # manifest rows 10-12
    with open_store(db_url) as store:
        inspector = sa.inspect(store.engine)
        for table in (results, predictions):
            migrated = {c["name"] for c in inspector.get_columns(table.name)}
            assert migrated == {c.name for c in table.columns}, table.name
        store.ensure_job(
            "job-columns", fingerprint="fp", manifest="m", manifest_digest="d", out="o",
            models=aliases, config={}, environment={}, bounds=[(10, 13)],
        )  # fmt: skip
        with store.engine.begin() as conn:
            replace_rows(conn, "job-columns", 0, frame_rows(frame, "job-columns", 0, aliases))
        back = store.results("job-columns").set_index("row")
        preds = store.predictions("job-columns")
    # every stored column reads back as the frame had it, by name
    assert back["row_id"].tolist() == frame["id"].tolist()
    for c in (
        *columns.MANIFEST[1:],
        *columns.SPEECH,
        *columns.CASCADE,
        *columns.CONSENSUS,
        columns.ROW[0],
    ):
        got = [None if pd.isna(v) else v for v in back[c.sql_name].tolist()]
        want = [None if pd.isna(v) else v for v in frame[c.name].tolist()]
        if c.dtype.startswith("float"):
            assert [g is None for g in got] == [w is None for w in want], c.name
            np.testing.assert_allclose(
                np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-6
            )
        else:
            assert got == want, c.name
    category = back["error_category"].tolist()
    assert pd.isna(category[0]) and pd.isna(category[1]) and category[2] == "not_found"
    one = preds[preds["model"] == aliases[0]].set_index("row_id").loc[["a", "b"]]
    assert one["lang"].tolist() == ["en", "und"]
    assert one["topk"].iloc[0][0] == {"lang": "en", "prob": 0.5}
    assert pd.isna(one["prob"].iloc[1]) and one["topk"].iloc[1] is None
    assert back["speech_seconds"].tolist()[:2] == pytest.approx(
        frame["speech_seconds"].tolist()[:2]
    )
    assert back["speech_seconds"].iloc[0] > 1.0 and back["speech_seconds"].iloc[1] < 0.5


def test_readme_shows_the_declared_columns():
    assert columns.markdown_table() in README.read_text()
