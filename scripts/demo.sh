#!/usr/bin/env bash
# Set up, then identify the languages of the bundled demo clips (synthetic and real) with
# whisper-base on a local Dask cluster, offline; then score the answers against the demo's labels and write an HTML report.
# Results: demo-results/part-*.parquet (job state in demo-results/_lidframe.sqlite), demo-report.html.
# Running it again resumes the finished job: no new work, the same results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lidframe run examples/demo/manifest.csv --out demo-results --partition-rows 16 "$@"
echo
.venv/bin/lidframe eval demo-results --name demo --by source
echo
.venv/bin/lidframe report demo-results --html demo-report.html --title "lidframe demo: whisper-base on 48 espeak clips and 13 real recordings"
