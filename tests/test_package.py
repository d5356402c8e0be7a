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
