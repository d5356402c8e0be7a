"""The whole job on real worker processes with real whisper-base weights."""

from __future__ import annotations

import os

import dask
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lidframe
from lidframe.job import job_status
from lidframe.models import load_count
from lidframe.models.base import resolve_device
from lidframe.results import part_name
from lidframe.testing import TEXTS, synthesize

pytestmark = pytest.mark.slow

LANGS = ("en", "de", "es", "it", "fr", "pl")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six spoken clips, plus a missing, an empty, a non-audio and a truncated file."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for i, lang in enumerate(LANGS):
        name = f"clips/{lang}.{'wav' if i % 2 else 'opus'}"
        (root / "clips").mkdir(exist_ok=True)
        synthesize(TEXTS[lang][0], lang, root / name)
        rows.append({"audio": name, "label": lang})
    (root / "clips" / "empty.wav").write_bytes(b"")
    (root / "clips" / "notes.wav").write_text("this is not audio at all\n" * 50)
    whole = (root / "clips" / "en.opus").read_bytes()
    (root / "clips" / "cut.opus").write_bytes(whole[: len(whole) // 40])
    rows += [
        {"audio": "clips/missing.wav", "label": "en"},
        {"audio": "clips/empty.wav", "label": "en"},
        {"audio": "clips/notes.wav", "label": "en"},
        {"audio": "clips/cut.opus", "label": "en"},
    ]
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _parts(out):
    return sorted(name for name in os.listdir(out) if name.endswith(".parquet"))


def test_run_writes_one_part_per_partition_and_marks_bad_rows(corpus, tmp_path):
    out = tmp_path / "results"
    summary = lidframe.run(
        corpus, out, ["whisper-base"], workers=2, partition_rows=3, batch_size=4, progress=False
    )
    assert summary.rows == 10 and summary.partitions == 4
    # the job database and the folder's owner sit beside the parts, under names readers skip
    assert sorted(os.listdir(out)) == ["_lidframe.sqlite", "_lidframe_job.json"] + [
        part_name(i) for i in range(4)
    ]

    df = pd.read_parquet(out).sort_values("audio").reset_index(drop=True)
    assert list(df.columns) == [
        "id",
        "audio",
        "label",
        "offset",
        "duration",
        "error",
        "sample_rate",
        "audio_seconds",
        "speech_seconds",
        "code_switch",
        "models_asked",
        "whisper_base_lang",
        "whisper_base_prob",
        "whisper_base_topk",
        "whisper_base_windows",
    ]
    bad = df[df["error"].notna()]
    bad = bad.set_index(bad["audio"].str.rsplit("/", n=1).str[-1])
    assert set(bad.index) >= {"missing.wav", "empty.wav", "notes.wav"}
    assert bad.loc["missing.wav", "error"].startswith("not_found: ")
    assert bad.loc["empty.wav", "error"].startswith("empty: ")
    assert bad.loc["notes.wav", "error"].startswith("decode_failed: ")
    assert "notes.wav" in bad.loc["notes.wav", "error"]
    assert bad["whisper_base_lang"].isna().all() and bad["whisper_base_prob"].isna().all()
    assert summary.errors == len(bad)

    good = df[df["error"].isna()]
    assert len(good) >= 6
    assert good["whisper_base_lang"].notna().all()
    assert good["whisper_base_prob"].between(0, 1).all()
    for topk, lang, prob in zip(
        good["whisper_base_topk"], good["whisper_base_lang"], good["whisper_base_prob"], strict=True
    ):
        assert len(topk) == 5 and topk[0]["lang"] == lang
        assert topk[0]["prob"] == pytest.approx(prob, rel=1e-6)
        assert [t["prob"] for t in topk] == sorted((t["prob"] for t in topk), reverse=True)
    # whisper-base knows these espeak voices well: most must come out right
    speech = good[good["audio"].str.contains("|".join(f"/{lang}\\." for lang in LANGS))]
    assert (speech["whisper_base_lang"] == speech["label"]).mean() >= 0.5

    table = pq.read_table(out)
    topk_type = table.schema.field("whisper_base_topk").type
    assert pa.types.is_list(topk_type)
    assert topk_type.value_type == pa.struct([("lang", pa.string()), ("prob", pa.float32())])
    counts = duckdb.sql(f"select count(*), count(distinct id) from '{out}/*.parquet'").fetchall()[0]
    assert counts == (10, 10)
    assert "10 rows in 4 partitions" in str(summary)
    # the run's own wall clock and the job's partitions' time, each labelled; the second is the
    # figure lidframe status (and the report) gives
    timing = str(summary).split("; the job ")[1].splitlines()[0]
    assert "wall clock (all of it, cluster start included)" in str(summary)
    assert timing.endswith("from the first partition's start to the last one's finish")
    assert timing in job_status(out=out)
    # the summary names every failed row (up to five), in manifest order, each error its file
    text = str(summary)
    assert "  rows with an error:\n" in text, text
    named = text.split("  rows with an error:\n")[1]
    for row in bad.sort_values("id").itertuples():
        assert f"    {row.id}: {row.error}" in named, text
        assert os.path.basename(row.audio) in row.error


def test_another_partitioning_replaces_the_folder_only_when_told(corpus, tmp_path, capfd):
    out = tmp_path / "results"
    lidframe.run(corpus, out, workers=1, partition_rows=2, progress=False)
    assert len(_parts(out)) == 5
    first = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    capfd.readouterr()
    # another partitioning is another job: the folder is not silently taken over, the refusal
    # names what differs, and it comes before any cluster (no dashboard line, no worker)
    with pytest.raises(lidframe.ConfigError, match="holds the results of job") as refused:
        lidframe.run(corpus, out, workers=1, partition_rows=4, progress=True)
    assert "other settings (that job's vs this run's): partition_rows (2 vs 4);" in str(
        refused.value
    )
    assert "dashboard" not in capfd.readouterr().err
    assert len(_parts(out)) == 5
    lidframe.run(corpus, out, workers=1, partition_rows=4, progress=False, overwrite=True)
    assert _parts(out) == [part_name(i) for i in range(3)]
    again = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert again["id"].tolist() == first["id"].tolist()  # no row lost, none duplicated
    pd.testing.assert_series_equal(again["whisper_base_lang"], first["whisper_base_lang"])


def test_each_worker_loads_each_model_once(corpus, tmp_path, local_cluster):
    # Two different models (the packaged weights, and the same weights named by directory) on two
    # worker processes over many partitions: one load per model per worker, never one per partition.
    from lidframe.models.whisper_weights import packaged_whisper_dir

    models = ["whisper-base", f"whisper:{packaged_whisper_dir()}"]
    with local_cluster(n_workers=2) as cluster:
        ddf = lidframe.read_manifest(corpus, partition_rows=1)
        assert ddf.npartitions == 10
        out = lidframe.identify(ddf, models, batch_size=2).compute()
        loads = cluster.client.run(load_count)
    assert len(loads) == 2
    for per_worker in loads.values():
        assert all(n == 1 for n in per_worker.values()), per_worker
    assert sum(len(v) for v in loads.values()) >= 2
    names = {k.split("@")[0] for v in loads.values() for k in v}
    assert names == set(models)
    ok = out["error"].isna()
    alias = lidframe.models.column_alias(models[1])
    assert (out.loc[ok, "whisper_base_lang"] == out.loc[ok, f"{alias}_lang"]).all()


def test_identify_is_lazy_and_meta_matches(corpus):
    with dask.config.set(scheduler="synchronous"):
        ddf = lidframe.read_manifest(corpus, partition_rows=5)
        result = lidframe.identify(ddf, ["whisper-base"], top_k=3)
        assert list(result.columns)[-4:] == [
            "whisper_base_lang",
            "whisper_base_prob",
            "whisper_base_topk",
            "whisper_base_windows",
        ]
        part = result.get_partition(0).compute()
    assert dict(part.dtypes) == dict(result._meta.dtypes)
    assert part["whisper_base_topk"].dropna().map(len).eq(3).all()


def test_bad_settings_fail_before_work(corpus, tmp_path):
    with pytest.raises(lidframe.ConfigError, match="unknown model 'whisper-huge'.*whisper-base"):
        lidframe.run(corpus, tmp_path, ["whisper-huge"], progress=False)
    with pytest.raises(lidframe.ConfigError, match="batch_size"):
        lidframe.identify(lidframe.read_manifest(corpus), batch_size=0)


def test_candidate_languages_reach_every_answer_and_the_provenance(corpus, tmp_path):
    out = tmp_path / "results"
    lidframe.run(
        corpus, out, ["whisper-base"], workers=1, partition_rows=10, progress=False,
        languages="fr, DE",
    )  # fmt: skip
    df = pd.read_parquet(out)
    answered = df[df["error"].isna()]
    assert len(answered) >= 6
    assert set(answered["whisper_base_lang"]) <= {"de", "fr", "und"}
    for topk in answered["whisper_base_topk"].dropna():
        assert {t["lang"] for t in topk} <= {"de", "fr"}
        assert sum(t["prob"] for t in topk) == pytest.approx(1.0, abs=1e-5)
    assert lidframe.read_provenance(str(out))["settings"]["languages"] == ["de", "fr"]
    with pytest.raises(lidframe.ConfigError, match="--languages: unknown language code 'xx'"):
        lidframe.run(corpus, out, languages=["en", "xx"], progress=False)


def test_run_attaches_to_a_running_scheduler(corpus, tmp_path, local_cluster):
    # no client of this process is connected while the job runs: the job brings its own
    with local_cluster(n_workers=1, client=False) as cluster:
        summary = lidframe.run(
            corpus,
            tmp_path / "out",
            scheduler=cluster.address,
            partition_rows=5,
            progress=False,
        )
        with cluster.connect() as client:
            loads = client.run(load_count)
    assert summary.rows == 10
    # the default device is "auto": CUDA where the workers see a GPU, else the CPU
    device = resolve_device("auto")
    assert [v for v in loads.values()] == [{f"whisper-base@{device}/float32": 1}]
