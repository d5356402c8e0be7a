"""Kernel settings: built in one place, pass sizes and decoder processes settled on each worker,
each rule checked once with one wording."""

from __future__ import annotations

from typing import Any

import pytest

from lidframe.cluster import gpu_decode_threads
from lidframe.consensus import Cascade, ConsensusConfig
from lidframe.errors import ConfigError
from lidframe.job import RunConfig
from lidframe.kernel import KernelConfig
from lidframe.manifest import check_partition_rows
from lidframe.models import LidModel, ModelSpec, parse_model, register_family


def test_a_gpu_worker_sizes_passes_by_seconds_unless_the_job_says():
    from lidframe.kernel import (
        CPU_BATCH_SIZE,
        CPU_DECODE_THREADS,
        GPU_BATCH_SECONDS,
        GPU_BATCH_SIZE,
        Sizes,
    )

    def kernel(device: str, **settings: Any) -> KernelConfig:
        spec = ModelSpec(name="m", family="loudness", source="m", device=device)
        return KernelConfig(models=(spec,), **settings)

    assert kernel("cuda").sizes() == Sizes(GPU_BATCH_SIZE, GPU_BATCH_SECONDS, gpu_decode_threads())
    assert kernel("cpu").sizes() == Sizes(CPU_BATCH_SIZE, None, CPU_DECODE_THREADS)
    assert kernel("cuda", batch_size=8).sizes().batch_seconds is None
    given = kernel("cuda", batch_seconds=60.0, decode_threads=3).sizes()
    assert given == Sizes(CPU_BATCH_SIZE, 60.0, 3)
    assert kernel("cpu", batch_size=2, decode_threads=1).sizes() == Sizes(2, None, 1)


def test_batch_settings_are_checked_in_one_line():
    assert RunConfig(batch_seconds=120).batch_seconds == 120
    for bad in (
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"batch_seconds": 0},
        {"batch_seconds": "x"},
    ):
        with pytest.raises(ConfigError, match="batch_s"):
            RunConfig(**bad)


def _message(make: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        make()
    return str(caught.value)


def test_a_rule_has_one_wording_whether_a_run_or_the_kernel_checks_it():
    whisper = parse_model("whisper-base")
    same = [
        (lambda: RunConfig(models=()), lambda: KernelConfig(models=())),
        (lambda: RunConfig(batch_size=0), lambda: KernelConfig(models=(whisper,), batch_size=0)),
        (
            lambda: RunConfig(batch_seconds=-1.0),
            lambda: KernelConfig(models=(whisper,), batch_seconds=-1.0),
        ),
        (
            lambda: RunConfig(cascade=0.5),
            lambda: KernelConfig(models=(whisper,), cascade=Cascade(0.5)),
        ),
        (
            lambda: RunConfig(models=("whisper-base", " whisper-base")),
            lambda: KernelConfig(models=(whisper, whisper)),
        ),
        (lambda: RunConfig(partition_rows=0), lambda: check_partition_rows(0)),
        (lambda: RunConfig(cascade=1.5, models=("a", "b")), lambda: Cascade(1.5)),
    ]
    for run, kernel in same:
        assert _message(run) == _message(kernel)
    assert "cascade needs at least two models" in _message(lambda: RunConfig(cascade=0.5))


def test_a_run_refuses_every_bad_setting_when_it_is_made():
    for bad, words in (
        ({"max_attempts": 0}, "max_attempts"),
        ({"lease_seconds": 0.5}, "lease_seconds"),
        ({"stall_seconds": 0}, "stall_seconds"),
        ({"fidelity_clips": 0}, "clips"),
        ({"fidelity_threshold": -0.1}, "threshold"),
        ({"backend": "polars"}, "backend"),
        ({"partition_rows": True}, "partition_rows"),
    ):
        assert words in _message(lambda bad=bad: RunConfig(**bad)), bad


def test_the_kernel_is_built_in_one_place_for_identify_and_for_a_run():
    class Quiet(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en",)

        def forward(self, batch):  # type: ignore[no-untyped-def]
            raise AssertionError("not run here")

    register_family("quiet-config-test", Quiet)
    config = RunConfig(
        models=("whisper-base", "quiet-config-test:x"), cascade=0.7, consensus_policy="weighted"
    )
    kernel = config.kernel()
    assert [m.name for m in kernel.models] == ["whisper-base", "quiet-config-test:x"]
    assert kernel.cascade == Cascade(0.7)
    assert kernel.consensus == ConsensusConfig(policy="weighted")
    assert set(kernel.families) == {"quiet-config-test"}  # carried to the workers
    assert (kernel.batch_size, kernel.decode_threads) == (None, None)  # left to each worker
    alone = KernelConfig.for_models(["whisper-base", "quiet-config-test:x"], cascade=0.7)
    assert alone.consensus == ConsensusConfig()  # a cascade settles rows by the default consensus
    assert RunConfig().kernel().consensus is None  # one model: no consensus
