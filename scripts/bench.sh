#!/usr/bin/env bash
# Benchmarks Kiln and ONNX Runtime on the bundled models (testdata/models/*) at 1 and 2 threads,
# in the same run, and prints the JSON lines of both plus a table of median latencies and
# kiln/ort ratios. Extra arguments go to scripts/bench.py (e.g. --runs 500, --threads 1 2 4,
# or model directories instead of testdata/models).
#
# Needs the venv made by scripts/setup.sh (onnx, onnxruntime) and builds kiln in release mode.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p kiln
target="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-$root/.venv/bin/python}"
models=()
has_dir=0
for a in "$@"; do
    [[ -d "$a" ]] && has_dir=1
done
((has_dir)) || models=("$root/testdata/models")
exec "$python" "$root/scripts/bench.py" --kiln "$target/release/kiln" "${models[@]}" "$@" --threads 1 2
