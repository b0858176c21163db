#!/usr/bin/env bash
# Builds the C runtime (kiln-runtime-c) for AArch64 Linux, for the conformance runner's cross
# path (`scripts/conformance.py --paths aarch64`): artifacts compiled with
# --target=aarch64-linux-gnu --emit=obj are linked with it and run under qemu-user.
#
#   scripts/cross-runtime.sh      # -> ${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/runtime-release/libkiln_runtime.a
#
# Needs the Rust target (rustup target add aarch64-unknown-linux-gnu) and clang-22 + lld as the
# linker of the runtime's cdylib (scripts/setup.sh installs all of it). Prints the archive's path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=clang-22
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--target=aarch64-linux-gnu -C link-arg=-fuse-ld=lld"
"${CARGO:-cargo}" build --quiet --manifest-path "$root/Cargo.toml" -p kiln-runtime-c \
    --profile runtime-release --target aarch64-unknown-linux-gnu
echo "$target_dir/aarch64-unknown-linux-gnu/runtime-release/libkiln_runtime.a"
