"""The environment fingerprint (``lidframe.environment``): what a real process reports, how two
fingerprints differ, and which differences can change an answer.

Real processes: this one, and Python subprocesses, one of them with another soxr first on its
``PYTHONPATH`` (``tests.fixtures.environments``)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import shutil
import subprocess
import sys

import pytest

from lidframe.environment import (
    ANSWER_PACKAGES,
    Fingerprint,
    describe,
    differences,
    fingerprint,
    worker_line,
)
from lidframe.environment._collect import gpu_of, normalise

_PRINT = (
    "import json; from lidframe.environment import fingerprint; "
    "print(json.dumps(fingerprint().record()))"
)


def _fingerprint_of(env: dict[str, str] | None = None) -> Fingerprint:
    """The fingerprint a fresh Python process reports (``env``: its variables on top of ours)."""
    import os

    done = subprocess.run(
        [sys.executable, "-c", _PRINT],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    found = Fingerprint.from_record(json.loads(done.stdout.splitlines()[-1]))
    assert found is not None
    return found


def test_this_process_reports_what_it_runs():
    import soundfile
    import soxr

    found = fingerprint()
    for name in ANSWER_PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            assert normalise(name) not in found.packages
        else:
            assert found.packages[normalise(name)] == version, name
    assert found.packages["lidframe"] and found.packages["torch"]
    assert found.libraries["libsndfile"] == soundfile.__libsndfile_version__
    assert found.libraries["libsoxr"] == soxr.__libsoxr_version__
    assert found.libraries["ffmpeg"] and "libavcodec" in found.libraries["ffmpeg"]
    if shutil.which("nvidia-smi") is None:
        assert found.accelerator is None  # no GPU here: None, not a guess
    assert len(found.distributions) > 50 and found.distributions["pytest"] == pytest.__version__
    assert found.python == f"CPython {sys.version.split()[0]}"
    # importing torch is not how versions are read
    assert fingerprint() is found  # read once per process


def test_the_same_environment_gives_the_same_digest_and_another_soxr_another(other_soxr):
    ours = fingerprint()
    same = _fingerprint_of()
    assert same.digest == ours.digest and same.distributions_digest == ours.distributions_digest
    theirs = _fingerprint_of({"PYTHONPATH": other_soxr.pythonpath()})
    assert theirs.packages["soxr"] == other_soxr.version != ours.packages["soxr"]
    assert theirs.digest != ours.digest
    found = differences(theirs, ours)
    assert next(str(d) for d in found if d.changes_answers) == (
        f"soxr {other_soxr.version} != {other_soxr.installed}"
    ), found
    line = worker_line("tcp://127.0.0.1:4567", "h", found)
    assert line is not None and line.startswith(
        f"worker tcp://127.0.0.1:4567 (host h): soxr {other_soxr.version} != {other_soxr.installed}"
    )
    assert line.endswith("of the job; no partitions (--allow-mixed-environments to allow)")
    assert "\n" not in line


def test_a_record_round_trips_and_a_compact_one_keeps_the_digests():
    ours = fingerprint().with_models({"whisper_base": "sha256:" + "ab" * 32})
    back = Fingerprint.from_record(json.loads(json.dumps(ours.record())))
    assert back == ours
    compact = ours.compact()
    assert not compact.distributions
    assert compact.digest == ours.digest
    assert compact.distributions_digest == ours.distributions_digest
    assert Fingerprint.from_record(compact.record()) == compact
    # what jobs stored before environments were fingerprinted: versions and host only
    assert Fingerprint.from_record({"python": "3.11", "packages": {}, "host": "h"}) is None
    assert Fingerprint.from_record(None) is None


def _with(base: Fingerprint, **changes: object) -> Fingerprint:
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_what_cannot_change_an_answer_is_reported_not_refused():
    ours = fingerprint()
    other = dict(ours.distributions, pytest="0.1", ipython="8.0.0")
    theirs = _with(ours, distributions=other, host="elsewhere", platform="Linux-other")
    found = differences(theirs, ours)
    assert found and not any(d.changes_answers for d in found)
    assert theirs.digest == ours.digest
    assert {d.what for d in found} == {"pytest", "ipython"}  # host and platform: not even that
    line = worker_line("w", "elsewhere", found)
    assert line is not None and line.endswith("cannot change an answer, not refused")
    # without the lists (a compact fingerprint), by their digest
    (only,) = differences(theirs.compact(), ours.compact())
    assert only.what == "installed distributions" and not only.changes_answers


def test_every_field_that_can_change_an_answer_does():
    ours = fingerprint()
    gpu = {"gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54", "cuda_runtime": "12.8.90",
           "cudnn": "9.10.2.21", "cublas": "12.8.4.1"}  # fmt: skip
    cases = {
        "python": _with(ours, python="CPython 3.12.1"),
        "machine": _with(ours, machine="aarch64"),
        "numpy": _with(ours, packages={**ours.packages, "numpy": "1.26.4"}),
        "ctranslate2": _with(
            ours, packages={k: v for k, v in ours.packages.items() if k != "ctranslate2"}
        ),
        "libsndfile": _with(ours, libraries={**ours.libraries, "libsndfile": "1.0.31"}),
        "GPU": _with(ours, accelerator=gpu),
    }
    for what, theirs in cases.items():
        found = [d for d in differences(theirs, ours) if d.changes_answers]
        assert [d.what for d in found] == [what], (what, found)
        assert theirs.digest != ours.digest
    # one GPU against another: each of its fields named
    other = dict(gpu, gpu="NVIDIA A100-SXM4-80GB", cudnn="9.1.0.70")
    found = differences(_with(ours, accelerator=other), _with(ours, accelerator=gpu))
    assert [str(d) for d in found] == [
        "GPU NVIDIA A100-SXM4-80GB != NVIDIA H100 80GB HBM3",
        "cuDNN 9.1.0.70 != 9.10.2.21",
    ]
    # a job whose models all run on the CPU: the GPU is reported, not refused
    found = differences(_with(ours, accelerator=gpu), ours, accelerator=False)
    assert [(d.what, d.changes_answers) for d in found] == [("GPU", False)]


def test_weights_are_compared_where_both_sides_loaded_the_model():
    ours = fingerprint().with_models({"a": "sha256:" + "1" * 64, "b": "sha256:" + "2" * 64})
    theirs = fingerprint().with_models({"a": "sha256:" + "3" * 64, "b": None, "c": "sha256:0"})
    found = differences(theirs, ours)
    assert [str(d) for d in found] == ["weights of a sha256:333333333333 != sha256:111111111111"]
    assert found[0].changes_answers
    assert not differences(fingerprint(), ours)  # not loaded yet: nothing to compare
    assert theirs.digest == ours.digest  # weights are named apart from the digest


def test_describe_says_the_first_few_and_how_many_more():
    ours = fingerprint()
    packages = {k: "0" for k in ours.packages}
    found = [d for d in differences(_with(ours, packages=packages), ours) if d.changes_answers]
    text = describe(found, limit=2)
    assert text.endswith(f" and {len(found) - 2} more of the job") and text.count("!=") == 2
    assert describe([]) == ""
    allowed = worker_line("w", None, found, allowed=True)
    assert allowed is not None and allowed.endswith("; allowed (--allow-mixed-environments)")
    assert worker_line("w", None, []) is None


@pytest.mark.parametrize(
    ("visible", "gpu"),
    [
        (None, ("NVIDIA H100 80GB HBM3", "550.54.15")),
        ("1", ("NVIDIA A100-SXM4-40GB", "550.54.15")),
        ("GPU-5b7c", ("NVIDIA A100-SXM4-40GB", "550.54.15")),
        ("1,0", ("NVIDIA A100-SXM4-40GB", "550.54.15")),
        ("7", None),
    ],
)
def test_the_gpu_is_the_first_visible_one(visible, gpu):
    """``nvidia-smi --query-gpu=index,uuid,name,driver_version --format=csv,noheader`` as a
    two-GPU host prints it; a dask-cuda worker sees its own GPU first in
    ``CUDA_VISIBLE_DEVICES``."""
    listing = (
        "0, GPU-2f1e9a40-0c6b-4b9e-8a55-3e1f0b7a9c11, NVIDIA H100 80GB HBM3, 550.54.15\n"
        "1, GPU-5b7c0d2e-91aa-4d3f-b1c2-77e8a9f0e123, NVIDIA A100-SXM4-40GB, 550.54.15\n"
    )
    assert gpu_of(listing, visible) == gpu
    assert gpu_of("", visible) is None
