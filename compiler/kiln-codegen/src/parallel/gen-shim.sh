#!/bin/sh
# Regenerates shim.mlir from shim.c (run after editing shim.c; needs clang-22
# and mlir-translate-22). The output is target-neutral MLIR (llvm dialect):
# no triple, data layout, CPU or feature attributes, no TBAA; only the
# operations, which the compiler places inside each artifact's glue module.
# Usage: gen-shim.sh [DIR] — DIR holds shim.c and receives shim.mlir (default:
# this script's folder; the GPU glue's shim is `gen-shim.sh ../gpu`).
set -eu
here=$(cd "${1:-$(dirname "$0")}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang-22 --target=x86_64-unknown-linux-gnu -std=c11 -O2 -Wall -Wextra -Werror \
  -fPIC -fno-strict-aliasing -fno-stack-protector -fno-ident \
  -fno-asynchronous-unwind-tables -fno-unwind-tables \
  -S -emit-llvm "$here/shim.c" -o "$tmp/shim.ll"
# Drop everything that names the build machine's target.
sed -E -e '/^target (datalayout|triple)/d' \
  -e 's/ *"(target-cpu|target-features|tune-cpu)"="[^"]*"//g' \
  "$tmp/shim.ll" > "$tmp/neutral.ll"
mlir-translate-22 --import-llvm "$tmp/neutral.ll" -o "$tmp/shim.mlir"
{
  echo "// Generated from shim.c by gen-shim.sh. Do not edit."
  # Keep the operations only: line 1 opens the module, the last line closes it;
  # module flags (wchar size, PIC level) describe the C compile, not the shim.
  sed -e '1d' -e '$d' -e '/^  llvm.module_flags /d' "$tmp/shim.mlir"
} > "$here/shim.mlir"
if grep -nE 'x86|target_cpu|target_features|#tbaa|llvm.ident' "$here/shim.mlir"; then
  echo "gen-shim.sh: target-specific attributes left in shim.mlir" >&2
  exit 1
fi
