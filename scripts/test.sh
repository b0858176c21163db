#!/usr/bin/env bash
# Kiln's full check, as run by CI (.ci/run) and by developers before sending a change.
#
# A sequential list of steps; each prints its wall time. The first failing step stops the run
# and its exit code is the script's. Add new steps at the end with `step "<name>" <command...>`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Runs one named step and prints how long it took.
step() {
    local name="$1"
    shift
    printf '\n==> %s\n' "$name"
    local start=$SECONDS status=0
    "$@" || status=$?
    if ((status != 0)); then
        printf '==> %s: FAILED with exit code %d (%ds)\n' "$name" "$status" "$((SECONDS - start))" >&2
        exit "$status"
    fi
    printf '==> %s: ok (%ds)\n' "$name" "$((SECONDS - start))"
}

total_start=$SECONDS

# Step 1: system packages, Python venv (lit, onnx, onnxruntime, numpy); fast when already set up.
step "setup" scripts/setup.sh

# Step 2: build every crate and every test, example and benchmark target, so a crate without tests
# still has to compile. --all-targets resolves features with the dev-dependencies, as `cargo test`
# does; a plain `cargo build --workspace` resolves them without, and the test step would then
# compile the MLIR/LLVM binding stack a second time (twice the time and disk).
step "cargo build" cargo build --workspace --all-targets

# Step 3: unit and integration tests of every crate, except the differential generator, which
# runs on its own below so that its summary (how many graphs) is printed.
step "cargo test" cargo test --workspace -- --skip differential_graphs_match_the_interpreter

# Step 3b: the differential test generator (compiler/kiln-driver/tests/driver/differential.rs):
# random graphs compiled at -O0..-O3, run at 1, 2 and 4 threads with the parallel threshold at 0,
# compared with the reference interpreter, for a fixed budget (KILN_DIFFERENTIAL_SECONDS, default
# 150; longer runs: set it higher). A failing graph is kept under testdata/differential/.
# The test command starts from a fixed seed (graphs seed, seed+1, ... for the budget) so that a
# CI run's verdict depends on the change, not on the clock; exploring new seeds is
# `KILN_DIFFERENTIAL_SEED=$RANDOM scripts/test.sh` or the cargo test alone (seed from the clock).
export KILN_DIFFERENTIAL_SEED="${KILN_DIFFERENTIAL_SEED:-20261203}"
step "differential (${KILN_DIFFERENTIAL_SECONDS:-150} s)" cargo test -p kiln-driver --test driver \
    differential_graphs_match_the_interpreter -- --nocapture

# Step 4: golden lit tests (FileCheck), once the suite exists.
if [[ -f lit-tests/lit.cfg.py ]]; then
    step "lit" .venv/bin/lit -sv lit-tests
else
    printf '\n==> lit: skipped (no lit-tests/lit.cfg.py)\n'
fi

# Step 5: the ONNX node-test conformance runner: its own unit tests, then every node test through
# `kiln run` (compiled and interpreted), failing on a regression against
# testdata/conformance/expected-pass-*.txt. It uses the debug `kiln` built in step 2. Measured on
# a shared 2-core machine (3,468 runs): debug 170-275 s wall (about 140 s CPU when lightly loaded),
# release 108 s wall (130 s CPU) plus 80 s for an incremental release build of `kiln` (more from
# cold). Most of each run is MLIR/LLVM, optimized system libraries in both builds, so release
# saves less than its build costs.
step "conformance unit tests" .venv/bin/python -m unittest scripts/test_conformance.py
step "conformance" .venv/bin/python scripts/conformance.py --check --no-table \
    --kiln "${CARGO_TARGET_DIR:-target}/debug/kiln"

# Step 5b: AArch64 executed: the C runtime cross-built, artifacts for aarch64-linux-gnu run under
# qemu-user on the bundled models and a slice of the node tests, checked like the other paths
# (testdata/conformance/expected-pass-aarch64.txt). About a minute for ~130 tests.
step "cross runtime (aarch64)" scripts/cross-runtime.sh
step "conformance aarch64 (qemu)" .venv/bin/python scripts/conformance.py --check --no-table \
    --paths aarch64 --kiln "${CARGO_TARGET_DIR:-target}/debug/kiln"

# Step 6: the benchmark suite's non-timing parts (model generator against its manifest, FLOP
# counter, output comparison); a few seconds. The timings themselves are scripts/bench.sh.
step "bench suite unit tests" .venv/bin/python -m unittest bench/test_bench.py

# Step 7: fuzz the ONNX frontend (load + inspect + import + verify) and the runtime's artifact
# descriptor validation for short budgets; a crash fails the run and leaves its input in the
# crate's regression folder (see scripts/fuzz.sh).
step "fuzz (60 s)" scripts/fuzz.sh 60
step "fuzz descriptors (30 s)" scripts/fuzz.sh 30 descriptor

printf '\nall steps ok (%ds)\n' "$((SECONDS - total_start))"
