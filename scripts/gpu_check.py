#!/usr/bin/env python3
"""Kiln on an NVIDIA GPU versus ONNX Runtime, in one run (scripts/gpu-check.sh sets it up).

    python scripts/gpu_check.py --kiln target/release/kiln --sm sm_90 --out gpu-report.json \
        MODEL_DIR [MODEL_DIR ...] [--runs 50] [--warmup 5]

For each model (a folder with model.onnx and test_data_set_0/input_<i>.pb):
1. reference outputs: ONNX Runtime on the CPU (CPUExecutionProvider) on the test set's inputs;
2. `kiln compile --target cuda:<sm>` (input shapes fixed from the test set), `kiln run` on the
   GPU, outputs compared with (1): max |kiln - ort| <= rtol * max |ort| (rtol 2e-4), NaN only
   matching NaN, integers exactly;
3. latency: `kiln bench --format json` (median over --runs after --warmup) and ONNX Runtime's
   CUDA provider (`onnxruntime-gpu`) timed the same way in this process, inputs on the host for
   both (each run includes the host<->device copies).

Writes a JSON report (machine, GPU, versions, one record per model) and prints a table. Exit 1
if any model fails to compile, run or match; timing ratios never fail the run.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def load_tensors(d: Path, prefix: str) -> list[np.ndarray]:
    out = []
    i = 0
    while (p := d / f"{prefix}_{i}.pb").is_file():
        out.append(numpy_helper.to_array(onnx.load_tensor(str(p))))
        i += 1
    return out


def graph_inputs(model_path: Path) -> list[str]:
    m = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]


def nearest_rank(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[max(1, math.ceil(q * len(xs))) - 1]


def ort_session(model: Path, provider: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), so, providers=[provider])


def time_ort(sess: ort.InferenceSession, feeds: dict, warmup: int, runs: int) -> dict:
    for _ in range(warmup):
        sess.run(None, feeds)
    ms = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        sess.run(None, feeds)
        ms.append((time.perf_counter_ns() - t) / 1e6)
    return {"median_ms": nearest_rank(ms, 0.5), "p90_ms": nearest_rank(ms, 0.9), "runs": runs}


def compare(got: list[np.ndarray], want: list[np.ndarray], rtol: float) -> tuple[bool, str]:
    if len(got) != len(want):
        return False, f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, f"output {i}: {g.dtype}{list(g.shape)} vs {w.dtype}{list(w.shape)}"
        if np.issubdtype(w.dtype, np.floating):
            if not np.array_equal(np.isnan(g), np.isnan(w)):
                return False, f"output {i}: NaN positions differ"
            gf, wf = np.nan_to_num(g.astype(np.float64)), np.nan_to_num(w.astype(np.float64))
            err = float(np.max(np.abs(gf - wf))) if g.size else 0.0
            scale = float(np.max(np.abs(wf))) if w.size else 0.0
            if err > rtol * max(scale, 1e-30):
                return False, f"output {i}: max abs error {err:.3g} > {rtol} * {scale:.3g}"
        elif not np.array_equal(g, w):
            return False, f"output {i}: values differ"
    return True, "match"


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def check_model(d: Path, args, tmp: Path) -> dict:
    name = d.name
    model = d / "model.onnx"
    inputs = load_tensors(d / "test_data_set_0", "input")
    names = graph_inputs(model)
    feeds = dict(zip(names, inputs))
    rec: dict = {"model": name, "ok": False}
    want = ort_session(model, "CPUExecutionProvider").run(None, feeds)
    shapes = []
    for n, t in feeds.items():
        shapes += ["--input-shape", f"{n}=" + "x".join(map(str, t.shape))]
    so = tmp / f"{name}.so"
    t0 = time.time()
    c = run([str(args.kiln), "compile", str(model), "--target", args.target, "-o", str(so), *shapes])
    rec["compile_s"] = round(time.time() - t0, 2)
    if c.returncode != 0:
        rec["error"] = "compile: " + c.stderr[-2000:]
        return rec
    out = tmp / f"{name}.out"
    r = run([str(args.kiln), "run", str(so), "--input-dir", str(d / "test_data_set_0"), "--output-dir", str(out),
             "--output-format", "pb"])
    if r.returncode != 0:
        rec["error"] = "run: " + r.stderr[-2000:]
        return rec
    got = load_tensors(out, "output")
    ok, why = compare(got, [np.asarray(w) for w in want], args.rtol)
    rec["outputs_match"] = ok
    rec["compare"] = why
    b = run([str(args.kiln), "bench", str(so), "--input-dir", str(d / "test_data_set_0"), "--format", "json",
             "--runs", str(args.runs), "--warmup", str(args.warmup)])
    if b.returncode == 0:
        lines = [json.loads(x) for x in b.stdout.splitlines() if x.startswith("{")]
        if lines:
            rec["kiln_cuda"] = {k: lines[0].get(k) for k in ("median_ms", "p90_ms", "runs")}
    else:
        rec["kiln_bench_error"] = b.stderr[-1000:]
    try:
        sess = ort_session(model, args.ort_provider)
        if args.ort_provider not in sess.get_providers():
            raise RuntimeError(f"{args.ort_provider} is not available: {sess.get_providers()}")
        rec["ort_cuda"] = time_ort(sess, feeds, args.warmup, args.runs)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        rec["ort_cuda_error"] = str(e)[-1000:]
    if "kiln_cuda" in rec and "ort_cuda" in rec:
        rec["ratio_kiln_over_ort"] = round(rec["kiln_cuda"]["median_ms"] / rec["ort_cuda"]["median_ms"], 3)
    rec["ok"] = ok
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--kiln", type=Path, required=True)
    ap.add_argument("--sm", required=True, help="the GPU's architecture, e.g. sm_90")
    ap.add_argument("--target", help="kiln's target (default cuda:<sm>; `vulkan` checks this script on lavapipe)")
    ap.add_argument("--ort-provider", default="CUDAExecutionProvider", help="ONNX Runtime's provider to time")
    ap.add_argument("--out", type=Path, default=Path("gpu-report.json"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rtol", type=float, default=2e-4)
    ap.add_argument("--gpu", default="", help="the GPU's description (nvidia-smi)")
    args = ap.parse_args()
    args.target = args.target or f"cuda:{args.sm}"
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "gpu": args.gpu, "sm": args.sm,
                    "target": args.target, "ort_provider": args.ort_provider},
        "versions": {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()},
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="kiln-gpu-check-") as t:
        for d in args.models:
            rec = check_model(d, args, Path(t))
            report["models"].append(rec)
            print(json.dumps(rec), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'model':<22} {'match':<6} {'kiln cuda ms':>13} {'ort cuda ms':>12} {'ratio':>7}")
    for r in report["models"]:
        k = r.get("kiln_cuda", {}).get("median_ms")
        o = r.get("ort_cuda", {}).get("median_ms")
        fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else "-"  # noqa: E731
        print(f"{r['model']:<22} {str(r.get('outputs_match', False)):<6} {fmt(k):>13} {fmt(o):>12} "
              f"{r.get('ratio_kiln_over_ort', '-')!s:>7}")
        if not r["ok"]:
            print(f"  {r.get('error') or r.get('compare')}")
    print(f"report: {args.out}")
    return 0 if all(r["ok"] for r in report["models"]) else 1


if __name__ == "__main__":
    sys.exit(main())
