#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 / Ubuntu machine (run as root, or as a user with sudo).
#
# 1. Checks the Rust toolchain (cargo) is present; Kiln does not install it.
# 2. Installs the LLVM/MLIR 22 system packages, but only if one of them is missing
#    (a `dpkg -s` check), so a ready machine never touches apt; installs cargo-fuzz if missing.
# 3. Creates the Python venv `.venv` in the repository root with the pinned packages from
#    scripts/requirements.txt; skipped when the venv already matches that file.
#
# On a ready machine the whole script takes well under a second.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo_root/scripts/requirements.txt"
venv="$repo_root/.venv"
# A stamp holding a hash of requirements.txt: written only after pip succeeded, so an interrupted
# install (or an edited requirements file) is redone on the next run.
stamp="$venv/.kiln-requirements.sha256"

apt_packages=(
    llvm-22 llvm-22-dev libmlir-22-dev mlir-22-tools libpolly-22-dev lld-22 clang-22
    libzstd-dev zlib1g-dev spirv-tools python3-venv time cmake ninja-build
    # The GPU paths: SPIR-V -> MSL, and Mesa's lavapipe (Vulkan on the CPU) with its loader.
    spirv-cross mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools
    # AArch64 artifacts run under qemu-user in the test command (conformance --paths aarch64):
    # the emulator, and the AArch64 C library, headers and crt files clang links against.
    qemu-user libc6-arm64-cross libc6-dev-arm64-cross libgcc-12-dev-arm64-cross
)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Step 1: Rust toolchain ----------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    die "cargo not found on PATH. Install Rust (https://rustup.rs: 'curl --proto =https -sSf https://sh.rustup.rs | sh') and re-run."
fi
log "cargo present: $(cargo --version)"

# --- Step 2: system packages ---------------------------------------------------------------
missing=()
for pkg in "${apt_packages[@]}"; do
    # `dpkg -s` reports "Status: install ok installed" only for a fully installed package.
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    log "system packages present (${#apt_packages[@]} checked)"
else
    log "installing missing system packages: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        sudo_cmd=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        die "not root and sudo is unavailable; install as root: apt-get install -y ${missing[*]}"
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y "${missing[@]}"
    log "system packages installed"
fi

# --- Step 2b: cargo-fuzz (the ONNX importer's fuzz target runs in the test command) -----------
cargo_fuzz_version="0.13.2"
if cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    log "cargo-fuzz $cargo_fuzz_version present"
else
    log "installing cargo-fuzz $cargo_fuzz_version"
    cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi

# --- Step 2c: the Rust standard library for AArch64 (the C runtime is cross-built for the tests) --
if command -v rustup >/dev/null 2>&1; then
    if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        log "rust target aarch64-unknown-linux-gnu present"
    else
        log "adding rust target aarch64-unknown-linux-gnu"
        rustup target add aarch64-unknown-linux-gnu
    fi
else
    log "warning: no rustup; the AArch64 conformance step needs the aarch64-unknown-linux-gnu target"
fi

# --- Step 3: Python venv -------------------------------------------------------------------
want_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -x "$venv/bin/pip" && -f "$stamp" && "$(cat "$stamp")" == "$want_hash" ]] \
    && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "python venv up to date: $venv"
else
    # A venv whose interpreter no longer runs (e.g. Python was upgraded) is rebuilt from scratch.
    if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "removing broken venv: $venv"
        rm -rf "$venv"
    fi
    if [[ ! -x "$venv/bin/pip" ]]; then
        log "creating python venv: $venv"
        python3 -m venv "$venv"
    fi
    log "installing python packages from $requirements"
    "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$requirements"
    printf '%s\n' "$want_hash" >"$stamp"
    log "python packages installed: $("$venv/bin/pip" freeze --disable-pip-version-check | tr '\n' ' ')"
fi

log "done"
