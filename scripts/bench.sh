#!/usr/bin/env bash
# Kiln's benchmark suite: real models at real size (ResNet-50, MobileNetV2, SqueezeNet 1.1,
# ShuffleNet v2, Inception v1, a BERT-base layer, a 4-layer BERT, an MLP, GEMV and GEMM shapes)
# with random weights, generated locally by bench/models.py; each compiled with the release `kiln`,
# checked against ONNX Runtime and timed beside it at 1 and 2 threads in the same run, next to the
# machine's measured FMA peak and memory bandwidth. Writes BENCHMARKS.md and BENCHMARKS.json (to
# the repository root on a full run, else to .cache/bench-results/) and on a full run the README's
# bench section. Details and options: bench/suite.py.
#
#   scripts/bench.sh                          # the full suite (about 15-25 minutes on 2 cores)
#   scripts/bench.sh --quick                  # a smoke run: small models, short budgets
#   scripts/bench.sh --models resnet50,gemv_4096 --threads 1,2,4
#   scripts/bench.sh --models testdata/models/cnn   # any model directory in the test-set layout
#
# Needs the venv made by scripts/setup.sh (onnx, onnxruntime, numpy) and a C compiler (cc or
# clang-22) for the probe. Exit code 1 when a model fails to compile, run or match ONNX Runtime.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p kiln -p kiln-runtime-c
target="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-$root/.venv/bin/python}"
exec "$python" "$root/bench/suite.py" --kiln "$target/release/kiln" \
    --runtime-lib "$target/release/libkiln_runtime.so" --command "scripts/bench.sh${*:+ $*}" "$@"
