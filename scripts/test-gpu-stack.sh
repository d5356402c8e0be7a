#!/usr/bin/env bash
# The fast tests against the versions a GPU install gets: lidframe[gpu] pins one RAPIDS release,
# which holds pandas, pyarrow, dask and distributed back (constraints-gpu.txt, written by
# scripts/lock.py). Arguments go to pytest.
#
# .venv-gpu-stack is a thin layer over .venv (scripts/setup.sh --test makes that): it holds only
# the CPU-side distributions whose versions the GPU lock pins differently from constraints.txt
# (dask, distributed, pandas, pyarrow and what they need), installed without dependencies, and a
# .pth file that puts .venv's site-packages after its own. So the tests import the GPU lock's
# pandas and dask, and everything else (torch, the weights, the test tools) is .venv's, tested the
# same: a layer of a few hundred MB in a minute, not a second 8 GB environment. cuDF, dask-cuDF,
# dask-cuda, CuPy and the CUDA libraries are left out: they need a GPU to import, and the gpu
# tests skip without one. The layer is remade only when either lock or .venv's Python changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
BASE=.venv
LAYER=.venv-gpu-stack
site() { "$1"/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# name==version lines of the GPU lock that constraints.txt lacks or pins otherwise, GPU-only ones out
gpu_only='^(cudf|dask-cudf|dask-cuda|rapids-|librmm|rmm-|libcudf|pylibcudf|libkvikio|cupy|cuda-|nvidia-|numba|llvmlite|nvtx)'
layer_pins=$(comm -13 <(grep -E '^[A-Za-z0-9]' constraints.txt | sort) \
                      <(grep -E '^[A-Za-z0-9]' constraints-gpu.txt | sort) |
             grep -viE "$gpu_only" || true)

stamp="$LAYER/.lidframe-layer"
wanted=$(cat constraints.txt constraints-gpu.txt <("$BASE"/bin/python --version) | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  rm -rf "$LAYER"
  "$BASE"/bin/python -m venv --without-pip "$LAYER"
  target=$(site "$LAYER")
  echo "setup: $LAYER over $BASE with the GPU lock's" $(echo "$layer_pins" | tr '\n' ' ')
  # shellcheck disable=SC2086
  "$BASE"/bin/python -m pip install -q --no-deps --target "$target" $layer_pins
  # site.addsitedir also reads .venv's own .pth files (lidframe's editable install among them)
  echo "import site; site.addsitedir('$(cd "$(site "$BASE")" && pwd)')" > "$target/_lidframe_base.pth"
  echo "$wanted" > "$stamp"
fi
"$LAYER"/bin/python -c 'import dask, distributed, pandas, pyarrow, lidframe
print(f"gpu stack: pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, "
      f"dask {dask.__version__}, distributed {distributed.__version__}; lidframe from "
      f"{lidframe.__file__}")'
"$LAYER"/bin/python -m pytest -m "not slow" "$@"
