"""The package's public surface: explicit API, no import side effects."""

from __future__ import annotations

import subprocess
import sys

import lidframe


def test_public_api_is_explicit():
    for name in lidframe.__all__:
        assert hasattr(lidframe, name), name
    assert (
        callable(lidframe.run) and callable(lidframe.identify) and callable(lidframe.read_manifest)
    )


def test_import_has_no_heavy_or_gpu_side_effects():
    code = (
        "import copy, os, sys, dask, distributed, dask.dataframe; before = dict(os.environ);"
        "cfg = copy.deepcopy(dask.config.config);"
        "import lidframe;"
        "heavy = [m for m in ('torch', 'transformers', 'dask_cuda', 'cudf', 'av') if m in sys.modules];"
        "assert not heavy, heavy;"
        "assert dict(os.environ) == before;"
        "assert dask.config.config == cfg"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_torch_and_torchaudio_are_bounded_to_the_same_minor_release():
    """Without the constraints file, pip must still pick a torch/torchaudio pair built together
    (unbounded, it picked torch 2.15 with torchaudio 2.11: different CUDA builds, Whisper failed)."""
    import re
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    deps = {
        re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in project["project"]["dependencies"]
    }

    def bounds(req: str) -> tuple[str, str]:
        low = re.search(r">=\s*([\d.]+)", req)
        high = re.search(r"<\s*([\d.]+)", req)
        assert low and high, f"{req!r} needs a lower and an upper bound"
        return low.group(1), high.group(1)

    torch_low, torch_high = bounds(deps["torch"])
    audio_low, audio_high = bounds(deps["torchaudio"])
    assert torch_low.split(".")[:2] == audio_low.split(".")[:2]
    assert torch_high == audio_high
    major, minor = (int(x) for x in torch_low.split(".")[:2])
    assert torch_high == f"{major}.{minor + 1}", (
        "one minor release: the pair that is built together"
    )
