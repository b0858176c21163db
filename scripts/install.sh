#!/usr/bin/env bash
# Installs Kiln into a prefix: the compiler and the runtime a deployed program links.
#
# Usage: scripts/install.sh --prefix DIR
#
# Lays out
#   DIR/bin/kiln                          the compiler (release build)
#   DIR/lib/libkiln_runtime.so            the runtime, shared (stripped, no_std build)
#   DIR/lib/libkiln_runtime.a             the runtime, static (one object, only kiln_* global)
#   DIR/lib/pkgconfig/kiln-runtime.pc     pkg-config: `pkg-config --cflags --libs kiln-runtime`
#   DIR/include/kiln.h                    the runtime's C API
# `DIR/bin/kiln config --cflags --libs [--static]` prints the same flags as pkg-config.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

prefix=""
while (($#)); do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (usage: scripts/install.sh --prefix DIR)" >&2; exit 2 ;;
    esac
done
[[ -n "$prefix" ]] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

"${CARGO:-cargo}" build --manifest-path "$root/Cargo.toml" --release -p kiln
"$root/runtime/scripts/build-c-lib.sh" "$target/kiln-c"

install -d "$prefix/bin" "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/release/kiln" "$prefix/bin/kiln"
install -m 0755 "$target/kiln-c/lib/libkiln_runtime.so" "$prefix/lib/libkiln_runtime.so"
install -m 0644 "$target/kiln-c/lib/libkiln_runtime.a" "$prefix/lib/libkiln_runtime.a"
install -m 0644 "$root/runtime/include/kiln.h" "$prefix/include/kiln.h"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
cat >"$prefix/lib/pkgconfig/kiln-runtime.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: kiln-runtime
Description: Kiln's runtime: loads and runs models compiled by kiln
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lkiln_runtime
Libs.private: -lpthread -ldl -lm
PC
echo "installed kiln $version into $prefix"
