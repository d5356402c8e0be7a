#!/usr/bin/env bash
# Set up, then identify the languages of the bundled demo clips with whisper-base on a local Dask
# cluster, offline. Results: demo-results/part-*.parquet
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lidframe run examples/demo/manifest.csv --out demo-results --partition-rows 12 "$@"
