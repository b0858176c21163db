#!/usr/bin/env python3
"""The benchmark suite's models through every GPU target, on a machine without a GPU.

    .venv/bin/python scripts/gpu_models.py [--kiln target/debug/kiln] [--models a,b]
        [--targets cuda,rocm,vulkan,metal] [--no-run]

For each model of bench/models.py (generated into .cache/bench-models when missing: seeded, no
downloads), input shapes fixed from its test set, and each of the suite's rows that Kiln compiles
with quantization flags (`--quantize=nf4`, `fp8-e4m3`, dynamic int8), compiled the same way;
those of moderate size also run on lavapipe, compared with ONNX Runtime's f32 outputs within the
row's rtol, which bounds the quantization error:

- cuda: `kiln compile --target cuda:sm_80 --emit device`, twice: with the CUDA tools (`KILN_PTXAS`
  set, so libdevice beside it is linked) and without (Kiln's own math, what a machine without
  the toolkit gets); each PTX has an entry for sm_80 and no unresolved `.extern .func`, and
  `ptxas` (PyPI's nvidia-cuda-nvcc) assembles it for sm_80 and sm_90;
- rocm: `--target rocm:gfx942 --emit device`; `llvm-readobj --notes` shows a gfx942 code object
  with a kernel descriptor (SGPR/VGPR counts, LDS size) for every kernel;
- vulkan: `--emit device`; the SPIR-V passes `spirv-val --target-env vulkan1.1`; then, unless
  `--no-run`, the model compiled for `--target vulkan` runs on the machine's Vulkan device (Mesa's
  lavapipe here) and its outputs are compared with ONNX Runtime's CPU outputs on the same inputs
  (max |kiln - ort| <= rtol * max |ort|, NaN only matching NaN, as scripts/gpu_check.py does);
- metal: `--emit msl`: one `kernel void` per kernel of the SPIR-V module it is rendered from.

Prints one line per model and target and exits 1 if any check fails, 2 on a setup error (a tool
missing). scripts/test.sh runs it; scripts/gpu-check.sh is the same comparison on an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402 (the comparison and test-set helpers are shared)
import models as bench_models  # noqa: E402 (the suite's model list)

CACHE = REPO / ".cache" / "bench-models"
TARGETS = ("cuda", "rocm", "vulkan", "metal")
# Models whose naive device kernels run longer than a CI step should wait on lavapipe: compiled
# and checked for every target, but not executed (see issue 12: no shared-memory tiling yet).
NO_RUN = {"resnet50", "googlenet", "matmul_16x4096x11008", "matmul_1024", "dcgan_generator"}


class SetupError(Exception):
    pass


def tool(name: str, *candidates: Path) -> Path:
    for c in candidates:
        if c.is_file():
            return c
    found = shutil.which(name)
    if found:
        return Path(found)
    raise SetupError(f"{name} not found (scripts/setup.sh installs it)")


def ptxas() -> Path:
    env = os.environ.get("KILN_PTXAS")
    cands = [Path(env)] if env else []
    cands += sorted((REPO / ".venv" / "lib").glob("python3*/site-packages/nvidia/cu13/bin/ptxas"))
    cands.append(REPO / ".cache" / "nvcc" / "nvidia" / "cu13" / "bin" / "ptxas")
    return tool("ptxas", *cands)


def suite_models() -> list[str]:
    """The suite's models with files of their own, then the rows Kiln compiles from one of them
    with quantization flags (rows that import another model, e.g. ORT's MatMulNBits, are left
    to the suite)."""
    rows = [s.name for s in bench_models.FILE_SPECS]
    return rows + [s.name for s in bench_models.SPECS if s.base and s.kiln_flags and s.kiln_model == "fp32"]


def model_of(name: str) -> tuple[str, tuple[str, ...]]:
    """The model directory a suite row compiles and its extra `kiln compile` flags."""
    spec = bench_models.BY_NAME[name]
    return (spec.base or spec.name), spec.kiln_flags


def ensure_models(names: list[str], cache: Path) -> None:
    missing = [n for n in names if not (cache / n / "model.onnx").is_file()]
    if missing:
        print(f"gpu_models: generating {', '.join(missing)} (bench/models.py)", flush=True)
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "models.py"), "--out", str(cache), "--models", ",".join(missing)],
            check=True,
        )


def shape_args(model_dir: Path) -> list[str]:
    inputs = gpu_check.load_tensors(model_dir / "test_data_set_0", "input")
    names = gpu_check.graph_inputs(model_dir / "model.onnx")
    args = []
    for n, t in zip(names, inputs):
        args += ["--input-shape", f"{n}=" + "x".join(map(str, t.shape))]
    return args


def run(cmd: list, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)


def tail(p: subprocess.CompletedProcess) -> str:
    return (p.stderr or p.stdout).strip()[-1500:]


def compile_device(
    kiln: Path, model_dir: Path, target: str, emit: str, out: Path, env: dict | None = None,
    flags: tuple[str, ...] = (),
) -> str | None:
    c = run([kiln, "compile", model_dir / "model.onnx", "--target", target, "--emit", emit, "-o", out,
             *shape_args(model_dir), *flags], env)
    return None if c.returncode == 0 else f"kiln compile --target {target} --emit {emit}: {tail(c)}"


def cuda_env(ptxas_path: Path | None) -> dict:
    """kiln's environment with the CUDA tools (ptxas, libdevice beside it) or without any."""
    env = {k: v for k, v in os.environ.items() if k not in ("KILN_PTXAS", "KILN_LIBDEVICE", "CUDA_HOME", "CUDA_PATH")}
    if ptxas_path is not None:
        env["KILN_PTXAS"] = str(ptxas_path)
    else:
        # No ptxas on PATH either: the PTX is all the artifact gets.
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "ptxas").exists())
    return env


def check_cuda(kiln: Path, d: Path, tmp: Path, tools: dict, toolkit: bool, flags=()) -> list[str]:
    out = tmp / "cuda"
    env = cuda_env(tools["ptxas"] if toolkit else None)
    if err := compile_device(kiln, d, "cuda:sm_80", "device", out, env, flags):
        return [err]
    ptx = sorted(out.glob("*.ptx"))
    if not ptx:
        return ["no .ptx written"]
    errs = []
    for p in ptx:
        code = p.read_text()
        if ".entry" not in code or ".target sm_80" not in code:
            errs.append(f"{p.name}: no kernel for sm_80")
        if ".extern .func" in code:
            errs.append(f"{p.name}: unresolved .extern .func (libdevice not linked)")
        for sm in ("sm_80", "sm_90"):
            a = run([tools["ptxas"], f"-arch={sm}", p, "-o", p.with_suffix(f".{sm}.cubin")])
            if a.returncode != 0:
                errs.append(f"ptxas -arch={sm} {p.name}: {tail(a)}")
    return errs


def check_rocm(kiln: Path, d: Path, tmp: Path, tools: dict, flags=()) -> list[str]:
    out = tmp / "rocm"
    if err := compile_device(kiln, d, "rocm:gfx942", "device", out, flags=flags):
        return [err]
    objs = sorted(out.glob("*.hsaco"))
    if not objs:
        return ["no .hsaco written"]
    errs = []
    for h in objs:
        r = run([tools["llvm-readobj"], "--notes", "--file-headers", h])
        if r.returncode != 0:
            errs.append(f"llvm-readobj {h.name}: {tail(r)}")
            continue
        notes = r.stdout
        for want in ("EF_AMDGPU_MACH_AMDGCN_GFX942", "amdhsa.kernels"):
            if want not in notes:
                errs.append(f"{h.name}: no {want} in llvm-readobj's output")
        kernels = notes.count(".symbol:")
        if kernels == 0:
            errs.append(f"{h.name}: no kernel descriptor")
        for field in (".sgpr_count:", ".vgpr_count:", ".group_segment_fixed_size:"):
            if notes.count(field) != kernels:
                errs.append(f"{h.name}: {kernels} kernels but {notes.count(field)} {field} entries")
    return errs


def check_vulkan(kiln: Path, d: Path, tmp: Path, tools: dict, execute: bool, rtol: float, flags=()) -> list[str]:
    out = tmp / "vulkan"
    if err := compile_device(kiln, d, "vulkan", "device", out, flags=flags):
        return [err]
    spv = sorted(out.glob("*.spv"))
    if not spv:
        return ["no .spv written"]
    errs = []
    for s in spv:
        v = run([tools["spirv-val"], "--target-env", "vulkan1.1", s])
        if v.returncode != 0:
            errs.append(f"spirv-val {s.name}: {tail(v)}")
    if errs or not execute:
        return errs
    inputs = gpu_check.load_tensors(d / "test_data_set_0", "input")
    feeds = dict(zip(gpu_check.graph_inputs(d / "model.onnx"), inputs))
    want = gpu_check.ort_session(d / "model.onnx", "CPUExecutionProvider").run(None, feeds)
    res = tmp / "vulkan-out"
    art = tmp / "vulkan-model.so"
    c = run([kiln, "compile", d / "model.onnx", "--target", "vulkan", "-o", art, *shape_args(d), *flags])
    if c.returncode != 0:
        return [f"kiln compile --target vulkan: {tail(c)}"]
    r = run([kiln, "run", art, "--input-dir", d / "test_data_set_0", "--output-dir", res,
             "--output-format", "pb"])
    if r.returncode != 0:
        return [f"kiln run --target vulkan: {tail(r)}"]
    got = gpu_check.load_tensors(res, "output")
    ok, why = gpu_check.compare(got, [np.asarray(w) for w in want], rtol)
    return [] if ok else [f"lavapipe vs ONNX Runtime: {why}"]


def check_metal(kiln: Path, d: Path, tmp: Path, flags=()) -> list[str]:
    out = tmp / "kernels.metal"
    if err := compile_device(kiln, d, "metal", "msl", out, flags=flags):
        return [err]
    text = out.read_text()
    n = len(re.findall(r"^kernel void ", text, flags=re.M))
    return [] if n > 0 else ["no `kernel void` in the MSL"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", type=Path, default=REPO / "target" / "debug" / "kiln")
    ap.add_argument("--models", help="comma-separated suite model names (default: all of bench/models.py)")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--no-run", action="store_true", help="do not execute the Vulkan artifacts on lavapipe")
    ap.add_argument("--rtol", type=float, default=2e-4, help="least rtol (a model's suite rtol if larger)")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        ap.error(f"--targets takes a subset of {','.join(TARGETS)}, got {bad}")
    try:
        if not args.kiln.is_file():
            raise SetupError(f"no kiln binary at {args.kiln}")
        tools = {}
        if "cuda" in targets:
            tools["ptxas"] = ptxas()
        if "rocm" in targets:
            tools["llvm-readobj"] = tool("llvm-readobj-22", Path("/usr/lib/llvm-22/bin/llvm-readobj"))
        if "vulkan" in targets:
            tools["spirv-val"] = tool("spirv-val")
        names = args.models.split(",") if args.models else suite_models()
        unknown = [n for n in names if n not in suite_models()]
        if unknown:
            raise SetupError(f"not models of bench/models.py: {', '.join(unknown)}")
        ensure_models(sorted({model_of(n)[0] for n in names}), args.cache)
    except (SetupError, subprocess.CalledProcessError) as e:
        print(f"gpu_models: error: {e}", file=sys.stderr)
        return 2
    failures = 0
    for name in names:
        base, flags = model_of(name)
        d = args.cache / base
        for t in targets:
            start = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f"kiln-gpu-models-{name}-") as tmp_s:
                tmp = Path(tmp_s)
                if t == "cuda":
                    errs = check_cuda(args.kiln, d, tmp, tools, True, flags)
                    errs += [f"without the CUDA tools: {e}" for e in check_cuda(args.kiln, d, tmp / "bare", tools, False, flags)]
                    t = "cuda (with and without libdevice)"
                elif t == "rocm":
                    errs = check_rocm(args.kiln, d, tmp, tools, flags)
                elif t == "vulkan":
                    execute = not args.no_run and base not in NO_RUN
                    spec = bench_models.BY_NAME.get(name)
                    rtol = max(args.rtol, spec.rtol if spec else 0.0)
                    errs = check_vulkan(args.kiln, d, tmp, tools, execute, rtol, flags)
                    t = "vulkan (ran on lavapipe, matches ORT)" if execute and not errs else t
                else:
                    errs = check_metal(args.kiln, d, tmp, flags)
            took = time.monotonic() - start
            status = "ok" if not errs else "FAILED"
            print(f"{name:<24} {t:<40} {status} ({took:.1f} s)", flush=True)
            for e in errs:
                print(f"    {e}", flush=True)
            failures += bool(errs)
    print(f"\ngpu_models: {failures} failure(s)" if failures else "\ngpu_models: all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
