#!/usr/bin/env bash
# Kiln's main job on the bundled default model: install what is missing, build
# the compiler, compile testdata/models/mlp/model.onnx into a shared library,
# run it on the bundled input and compare with ONNX Runtime's expected output.
#
# Usage: scripts/run.sh [MODEL_DIR]   (default: testdata/models/mlp)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model_dir="${1:-testdata/models/mlp}"
out="${KILN_RUN_OUT:-target/kiln-run}"

scripts/setup.sh
cargo build --release -p kiln
# The runtime a deployed program links (target/kiln-c/{lib,include}); `kiln config` and
# `kiln compile --emit=obj` find it there.
runtime/scripts/build-c-lib.sh target/kiln-c >/dev/null
kiln=target/release/kiln
mkdir -p "$out"

echo "==> kiln inspect $model_dir/model.onnx"
"$kiln" inspect "$model_dir/model.onnx"

echo "==> kiln compile $model_dir/model.onnx -o $out/model.so"
"$kiln" compile "$model_dir/model.onnx" -o "$out/model.so"

echo "==> kiln run $out/model.so --input-dir $model_dir/test_data_set_0"
rm -rf "$out/outputs"
"$kiln" run "$out/model.so" --input-dir "$model_dir/test_data_set_0" --output-dir "$out/outputs" --output-format pb

echo "==> compare with ONNX Runtime's expected outputs"
.venv/bin/python scripts/compare_outputs.py "$model_dir/test_data_set_0" "$out/outputs"

echo "==> kiln bench $out/model.so"
"$kiln" bench "$out/model.so" --runs 200
