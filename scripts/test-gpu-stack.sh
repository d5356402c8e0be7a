#!/usr/bin/env bash
# The fast tests against the versions a GPU install gets: lidframe[gpu] pins one RAPIDS release,
# which holds pandas, pyarrow, dask and distributed back (constraints-gpu.txt, written by
# scripts/lock.py). Set up .venv-gpu-stack with the GPU lock's versions of everything the tests
# use (skipped when nothing changed, as scripts/setup.sh does), then run the tests not marked slow
# there (arguments go to pytest). cuDF, dask-cuDF, dask-cuda and CuPy themselves are not installed:
# they need a GPU to import, and the gpu tests skip without one.
set -euo pipefail
cd "$(dirname "$0")/.."
LIDFRAME_VENV=.venv-gpu-stack LIDFRAME_CONSTRAINTS=constraints-gpu.txt bash scripts/setup.sh --test
.venv-gpu-stack/bin/python -c 'import dask, distributed, pandas, pyarrow
print(f"gpu stack: pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, "
      f"dask {dask.__version__}, distributed {distributed.__version__}")'
.venv-gpu-stack/bin/python -m pytest -m "not slow" "$@"
