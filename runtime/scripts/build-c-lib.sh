#!/usr/bin/env bash
# Builds the shipped Kiln C runtime: OUT_DIR/lib/libkiln_runtime.{so,a} and
# OUT_DIR/include/kiln.h, both libraries stripped.
#
# Usage: runtime/scripts/build-c-lib.sh [OUT_DIR]
#        (default OUT_DIR: ${CARGO_TARGET_DIR:-target}/kiln-c)
#
# The .so is cargo's `runtime-release` cdylib (no_std, panic = "abort").
# Cargo's staticlib bundles every object of compiler_builtins (about 2 MB)
# and leaves all Rust-internal symbols global, which would clash with any
# other Rust static library in the same program. The shipped archive is
# therefore one relocatable object: the runtime's LTO object linked (ld -r)
# with only the compiler_builtins members it needs, every symbol but the
# kiln_* API made local, and unneeded symbols stripped.
# Needs binutils (ar, ld, objcopy, strip); override with AR, LD, OBJCOPY, STRIP.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$target/kiln-c}"
AR="${AR:-ar}" LD="${LD:-ld}" OBJCOPY="${OBJCOPY:-objcopy}" STRIP="${STRIP:-strip}"

"${CARGO:-cargo}" build --manifest-path "$root/Cargo.toml" -p kiln-runtime-c --profile runtime-release
built="$target/runtime-release"

mkdir -p "$out/lib" "$out/include"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$STRIP" --strip-unneeded -o "$out/lib/libkiln_runtime.so" "$built/libkiln_runtime.so"

archive="$built/libkiln_runtime.a"
member="$("$AR" t "$archive" | grep '^kiln_runtime\.' | head -n 1)"
if [[ -z "$member" ]]; then
    echo "build-c-lib: no kiln_runtime object in $archive" >&2
    exit 1
fi
(cd "$work" && "$AR" x "$archive" "$member")
"$LD" -r -o "$work/merged.o" "$work/$member" "$archive"
"$OBJCOPY" --wildcard --keep-global-symbol='kiln_*' "$work/merged.o" "$work/local.o"
"$STRIP" --strip-unneeded -o "$work/kiln_runtime.o" "$work/local.o"
rm -f "$out/lib/libkiln_runtime.a"
"$AR" rcsD "$out/lib/libkiln_runtime.a" "$work/kiln_runtime.o"

cp "$root/runtime/include/kiln.h" "$out/include/kiln.h"
ls -l "$out/lib"
