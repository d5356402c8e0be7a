"""Workers for GPUs: threads per worker, decoder processes per GPU, models loaded once per process.

The CPU tests run real clusters and real jobs with a test model family; the ``gpu`` tests start
dask-cuda's ``LocalCUDACluster`` through :func:`lidframe.cluster.connect` and skip themselves
without CUDA or without dask-cuda.
"""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

import lidframe
from lidframe.cluster import GPU_THREADS, connect, cuda_cluster_options, gpu_decode_threads
from lidframe.errors import ConfigError
from lidframe.models.registry import load_count
from tests.fixtures.models import loudness_manifest, register_loudness

pytestmark = pytest.mark.timeout(300)


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("dask_cuda") is not None


needs_gpu = pytest.mark.skipif(not _on_gpu(), reason="needs CUDA and dask-cuda")


def _pool_sizes() -> list[int]:
    from lidframe.audio._pool import _pools

    return sorted(_pools)


def test_decode_threads_are_the_cores_per_gpu_less_the_one_that_drives_it():
    assert gpu_decode_threads(gpus=1, cores=16) == 15  # the lent H200 machine
    assert gpu_decode_threads(gpus=8, cores=96) == 11
    assert gpu_decode_threads(gpus=4, cores=4) == 1  # never none
    assert gpu_decode_threads(gpus=0, cores=4) == 3  # no GPU counts as one


def test_gpu_cluster_options_start_workers_of_two_threads_without_device_spilling():
    """The options ``connect`` gives ``LocalCUDACluster``, less the dask-cuda one, start a real
    ``LocalCluster``: one worker per GPU, two threads each, loopback, the given environment."""
    from distributed import Client, LocalCluster

    options = cuda_cluster_options(1, None, GPU_THREADS, {"LIDFRAME_MARK": "x"}, "127.0.0.1:0")
    assert options.pop("device_memory_limit") == 0  # dask-cuda's spilling off: nothing to spill
    assert not any(key.startswith("rmm") for key in options)  # PyTorch's allocator, no RMM pool
    with LocalCluster(processes=True, **options) as cluster, Client(cluster) as client:
        assert list(client.nthreads().values()) == [2]
        assert all(w.startswith("tcp://127.0.0.1:") for w in client.nthreads())
        assert list(client.run(lambda: __import__("os").environ["LIDFRAME_MARK"]).values()) == ["x"]
    assert cuda_cluster_options(4, 2, 3, {}, "127.0.0.1:0")["n_workers"] == 2


def test_gpu_threads_must_be_positive():
    with (
        pytest.raises(ConfigError, match="gpu_threads must be a positive integer, got 0"),
        connect(workers=1, gpu_threads=0),
    ):
        pass


def test_decode_threads_reach_the_workers_and_two_threads_share_one_model(tmp_path, local_cluster):
    """A worker of two threads runs two partitions at once on one loaded model; decoder processes
    are 4 on a CPU worker unless ``decode_threads`` says otherwise."""
    register_loudness()
    manifest = loudness_manifest(tmp_path, 12)
    running = local_cluster(1, threads_per_worker=2)
    common = {
        "scheduler": running.address,
        "partition_rows": 2,
        "progress": False,
        "db": False,
        "speech": lidframe.SpeechConfig(vad=False),  # the clips are noise of two loudnesses
    }
    first = lidframe.run(manifest, tmp_path / "a", ["loudness:x"], **common)
    assert first.ok
    assert list(running.client.run(_pool_sizes).values()) == [[4]]  # the CPU default, unchanged
    second = lidframe.run(manifest, tmp_path / "b", ["loudness:x"], decode_threads=3, **common)
    assert second.ok
    assert list(running.client.run(_pool_sizes).values()) == [[3, 4]]
    (loads,) = running.client.run(load_count).values()
    assert loads == {"loudness:x@cpu/float32": 1}  # 12 partitions on two threads, one load
    df = pd.read_parquet(tmp_path / "b").sort_values("id")
    assert df["loudness_x_lang"].tolist() == ["de", "en"] * 6
    with pytest.raises(ConfigError, match="decode_threads must be positive, got 0"):
        lidframe.run(manifest, tmp_path / "c", ["loudness:x"], decode_threads=0, **common)


@pytest.mark.gpu
@needs_gpu
def test_local_cuda_cluster_one_worker_per_gpu_each_model_once_on_its_gpu(tmp_path):
    import torch

    gpus = torch.cuda.device_count()
    register_loudness()
    manifest = loudness_manifest(tmp_path, 12)
    with connect(gpu=True) as client:
        nthreads = client.nthreads()
        assert list(nthreads.values()) == [GPU_THREADS] * gpus
        summary = lidframe.run(
            manifest,
            tmp_path / "out",
            ["loudness:x"],
            scheduler=client.scheduler.address,
            partition_rows=2,
            progress=False,
            db=False,
            speech=lidframe.SpeechConfig(vad=False),
        )
        assert summary.ok
        loads = client.run(load_count)
        assert all(v == {"loudness:x@cuda/float32": 1} for v in loads.values() if v)
        sizes = client.run(_pool_sizes)
        assert {tuple(v) for v in sizes.values() if v} == {(gpu_decode_threads(),)}
        devices = client.run(lambda: __import__("os").environ["CUDA_VISIBLE_DEVICES"])
        assert len({v.split(",")[0] for v in devices.values()}) == gpus  # one GPU each


@pytest.mark.gpu
@needs_gpu
def test_whisper_base_runs_on_gpu_workers(tmp_path):
    from lidframe.testing import synthesize

    rows = []
    for i, (lang, text) in enumerate([("en", "Good morning, how are you today?")] * 4):
        path = tmp_path / f"s{i}.wav"
        synthesize(text, lang, path)
        rows.append({"id": f"s{i}", "audio": str(path)})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    summary = lidframe.run(
        tmp_path / "m.csv", tmp_path / "out", ["whisper-base"], progress=False, db=False
    )
    assert summary.ok
    assert pd.read_parquet(tmp_path / "out")["whisper_base_lang"].tolist() == ["en"] * 4
