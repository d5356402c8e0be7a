"""The whole job against a real S3 API server (moto, loopback): manifest, audio and results on S3."""

from __future__ import annotations

import io

import pandas as pd
import pytest

import lidframe
from lidframe.testing import TEXTS, synthesize

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_run_reads_manifest_and_audio_from_s3_and_writes_results_there(
    s3_server, s3_bucket, tmp_path
):
    fs, bucket = s3_bucket
    rows = []
    for lang, ext in (("de", "wav"), ("es", "m4a"), ("en", "opus")):
        local = tmp_path / f"{lang}.{ext}"
        synthesize(TEXTS[lang][1], lang, local)
        fs.put(str(local), f"{bucket}/corpus/clips/{lang}.{ext}")
        rows.append({"audio": f"clips/{lang}.{ext}", "label": lang})
    rows.append({"audio": "clips/absent.wav", "label": "en"})
    rows.append(
        {
            "audio": f"s3://{bucket}/corpus/clips/de.wav",
            "label": "de",
            "offset": 0.5,
            "duration": 2.0,
        }
    )
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    fs.pipe(f"{bucket}/corpus/manifest.parquet", buf.getvalue())

    summary = lidframe.run(
        f"s3://{bucket}/corpus/manifest.parquet",
        f"s3://{bucket}/results",
        workers=1,
        partition_rows=2,
        storage_options=s3_server.storage_options,
        progress=False,
        # the output is on S3, so the job database has to be named (there is no "beside it")
        db=f"sqlite:///{tmp_path}/jobs.sqlite",
    )
    assert summary.rows == 5 and summary.partitions == 3
    assert summary.status == "finished" and summary.committed == 3
    # the parts, and the folder's owner (no staging folder left once the job finished)
    assert sorted(fs.ls(f"{bucket}/results", detail=False, refresh=True)) == [
        f"{bucket}/results/_lidframe_job.json"
    ] + [f"{bucket}/results/part-0000{i}.parquet" for i in range(3)]
    df = pd.read_parquet(f"s3://{bucket}/results", storage_options=s3_server.storage_options)
    df = df.set_index(df["audio"].str.rsplit("/", n=1).str[-1] + df["offset"].fillna(0).astype(str))
    # relative paths resolved against the manifest's S3 folder
    assert df.loc["de.wav0.0", "audio"] == f"s3://{bucket}/corpus/clips/de.wav"
    assert df.loc["absent.wav0.0", "error"].startswith("not_found: ")
    ok = df[df["error"].isna()]
    assert len(ok) == 4 and ok["whisper_base_lang"].notna().all()
    assert df.loc["de.wav0.0", "whisper_base_lang"] == "de"


def test_workers_read_audio_with_their_own_storage_credentials(s3_server, s3_bucket, tmp_path):
    """The job is given no storage options: the worker processes find the S3 endpoint and their
    keys in their own environment (AWS's variables), which this process (the driver) has not, and
    every read of the audio is signed with the workers' key."""
    import os

    from tests.fixtures.clusters import start_local_cluster

    fs, bucket = s3_bucket
    rows = []
    for lang in ("de", "es", "en"):
        local = tmp_path / f"{lang}.wav"
        synthesize(TEXTS[lang][1], lang, local)
        fs.put(str(local), f"{bucket}/clips/{lang}.wav")
        rows.append({"audio": f"s3://{bucket}/clips/{lang}.wav", "label": lang})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    # the driver knows no S3 endpoint and no keys
    assert not {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID"} & set(os.environ)
    worker_env = {
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "worker-own-key",
        "AWS_SECRET_ACCESS_KEY": "worker-own-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3_server.traffic.clear()
    with start_local_cluster(1, env=worker_env) as running:
        summary = lidframe.run(
            manifest, tmp_path / "out", client=running.client, partition_rows=2, progress=False
        )
    assert summary.ok and summary.rows == 3, summary
    out = pd.read_parquet(tmp_path / "out")
    assert out["error"].isna().all(), out["error"].tolist()
    reads = [r for r in s3_server.traffic.requests if r.path.endswith(".wav")]
    assert reads and {r.access_key for r in reads} == {"worker-own-key"}, reads
