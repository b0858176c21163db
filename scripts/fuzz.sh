#!/usr/bin/env bash
# Fuzz Kiln's untrusted-input parsers with cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS] [TARGET]     # defaults: 60 s, target `import`
#
# Targets, and the crate whose fuzz/ folder has them:
#   import, load_bytes  compiler/kiln-onnx: the ONNX frontend (load + inspect + import + verify)
#   descriptor          runtime/kiln-runtime-core: artifact descriptor validation
#
# Builds <crate>/fuzz with libFuzzer and AddressSanitizer on the stable
# toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags;
# KILN_FUZZ_SANITIZER=none turns ASan off), then runs for SECONDS seconds.
# Seeds come from <crate>/fuzz/corpus/<target>/ (checked in, read-only); new
# inputs go to the git-ignored corpus-work/<target>/. Exits non-zero on a
# crash: the input is copied into the crate's regression folder
# (compiler/kiln-onnx/tests/regressions/, replayed by `cargo test -p
# kiln-onnx --test regressions`; runtime/kiln-runtime-core/tests/
# descriptor-regressions/, replayed by `cargo test -p kiln-runtime-core
# --test descriptors`): fix the bug, keep the file.
set -euo pipefail

seconds="${1:-60}"
target="${2:-import}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$target" in
    import | load_bytes)
        crate="$repo/compiler/kiln-onnx" regressions="$repo/compiler/kiln-onnx/tests/regressions" ext=onnx ;;
    descriptor)
        crate="$repo/runtime/kiln-runtime-core" ext=bin
        regressions="$repo/runtime/kiln-runtime-core/tests/descriptor-regressions" ;;
    *)
        echo "fuzz.sh: unknown target '$target' (import, load_bytes, descriptor)" >&2
        exit 2 ;;
esac
sanitizer="${KILN_FUZZ_SANITIZER:-address}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
cd "$crate"
cargo fuzz build "$target" -O --sanitizer "$sanitizer"

work="$crate/fuzz/corpus-work/$target"
seeds="$crate/fuzz/corpus/$target"
artifacts="$crate/fuzz/artifacts/$target"
mkdir -p "$work" "$artifacts" "$seeds"
before="$(find "$artifacts" -type f | wc -l)"

# cargo-fuzz prints a crashing input as a byte list on one huge line; cut
# long lines so the log stays readable (the input itself is kept below).
set +e
cargo fuzz run "$target" -O --sanitizer "$sanitizer" "$work" "$seeds" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 2>&1 | cut -c1-400
rc=${PIPESTATUS[0]}
set -e

mapfile -t crashes < <(find "$artifacts" -type f -newer "$seeds" 2>/dev/null | sort)
if [[ $rc -ne 0 ]]; then
    mkdir -p "$regressions"
    for f in "${crashes[@]}"; do
        dest="$regressions/$(basename "$f").$ext"
        cp "$f" "$dest"
        echo "fuzz.sh: kept crash input as ${dest#"$repo"/}" >&2
    done
    echo "fuzz.sh: $target failed (exit $rc); artifacts: ${artifacts#"$repo"/} (had $before before)" >&2
    exit 1
fi
echo "fuzz.sh: $target ran ${seconds}s without crashes"
