#!/usr/bin/env bash
# GPU check: reports the NVIDIA GPU(s) of this machine, if any, and assembles the PTX files given
# as arguments with ptxas for the first GPU's architecture.
#
# Usage: scripts/gpu-check.sh [FILE.ptx ...]
#
# Without a GPU (or without a working driver) it prints "no GPU" and exits 0, so it is safe
# to call from any CI machine. With a GPU, a PTX file that ptxas rejects makes it exit 1.
# Later steps (running a kernel through the runtime) go at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'gpu-check: %s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
    log "no GPU: nvidia-smi not found; skipping GPU checks"
    exit 0
fi
# nvidia-smi exists but fails when there is no device or the driver is not loaded.
if ! gpu_info="$(nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap \
    --format=csv,noheader 2>&1)"; then
    log "no GPU: nvidia-smi failed: ${gpu_info}"
    exit 0
fi
if [[ -z "$gpu_info" ]]; then
    log "no GPU: nvidia-smi lists no devices"
    exit 0
fi

log "GPU(s) found (index, name, driver, memory, compute capability):"
printf '  %s\n' "$gpu_info"

# ptxas may be installed without being on PATH.
ptxas="$(command -v ptxas || true)"
if [[ -z "$ptxas" && -x /usr/local/cuda/bin/ptxas ]]; then
    ptxas=/usr/local/cuda/bin/ptxas
fi
if [[ -z "$ptxas" ]]; then
    log "ptxas not found (CUDA toolkit absent): PTX cannot be assembled here"
    exit 0
fi
log "ptxas: $("$ptxas" --version | tail -n 1)"

# compute_cap "9.0" -> "sm_90" (first GPU).
cap="$(head -n 1 <<<"$gpu_info" | awk -F', ' '{print $5}')"
sm="sm_${cap/./}"
for ptx in "$@"; do
    if "$ptxas" -arch="$sm" -o /dev/null "$ptx"; then
        log "ptxas -arch=$sm $ptx: ok"
    else
        log "ptxas -arch=$sm $ptx: FAILED"
        exit 1
    fi
done
log "done"
