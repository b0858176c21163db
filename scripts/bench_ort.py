#!/usr/bin/env python3
"""Benchmark ONNX Runtime (CPU) on models in the ONNX test-set layout; the baseline for Kiln's bench.

    .venv/bin/python scripts/bench_ort.py MODEL_DIR [MODEL_DIR ...] \
        [--threads 1 2] [--warmup 20] [--runs 200] [--opt-level all]

Each MODEL_DIR holds model.onnx and test_data_set_0/input_<i>.pb; a directory without model.onnx
(e.g. testdata/models) stands for all its subdirectories that have one. For each model and thread count it
prints one JSON line on stdout, e.g.

    {"engine":"ort","model":"mlp","threads":1,"median_ms":0.012,"p90_ms":0.015,...}

Method (keep Kiln's bench identical so the numbers compare):
- intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution, CPU EP only;
- graph optimizations at --opt-level (default "all": ORT at its best, the fair baseline);
- inputs are the test_data_set_0 tensors, bound once; `--warmup` untimed runs, then `--runs` runs
  each timed alone with time.perf_counter_ns; median and p90 use the nearest-rank method;
- before timing, the outputs of one run are compared with test_data_set_0/output_<i>.pb (if present)
  and the result is reported as "outputs_match", so a misconfigured model is never benchmarked
  silently.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) by the nearest-rank method: an actually observed value."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def load_tensors(data_dir: Path, prefix: str) -> list[np.ndarray]:
    out = []
    i = 0
    while (p := data_dir / f"{prefix}_{i}.pb").is_file():
        out.append(numpy_helper.to_array(onnx.load_tensor(str(p))))
        i += 1
    return out


def bench(model_dir: Path, threads: int, warmup: int, runs: int, opt_level: str) -> dict:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    data_dir = model_dir / "test_data_set_0"
    inputs = load_tensors(data_dir, "input")
    sess_inputs = sess.get_inputs()
    if len(inputs) != len(sess_inputs):
        raise SystemExit(f"{model_dir}: model has {len(sess_inputs)} inputs, {data_dir} has {len(inputs)}")
    feeds = {i.name: a for i, a in zip(sess_inputs, inputs, strict=True)}
    output_names = [o.name for o in sess.get_outputs()]

    expected = load_tensors(data_dir, "output")
    outputs_match = None
    if expected:
        got = sess.run(output_names, feeds)
        outputs_match = len(got) == len(expected) and all(
            g.shape == e.shape and np.allclose(g, e, rtol=1e-3, atol=1e-4) for g, e in zip(got, expected, strict=False)
        )

    for _ in range(warmup):
        sess.run(output_names, feeds)
    times_ms = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(output_names, feeds)
        times_ms.append((time.perf_counter_ns() - t0) / 1e6)
    times_ms.sort()
    return {
        "engine": "ort",
        "model": model_dir.name,
        "threads": threads,
        "median_ms": round(nearest_rank(times_ms, 0.5), 6),
        "p90_ms": round(nearest_rank(times_ms, 0.9), 6),
        "min_ms": round(times_ms[0], 6),
        "mean_ms": round(sum(times_ms) / len(times_ms), 6),
        "runs": runs,
        "warmup": warmup,
        "opt_level": opt_level,
        "outputs_match": outputs_match,
        "ort_version": ort.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dirs", nargs="+", type=Path, help="directories with model.onnx + test_data_set_0/")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts (default: 1 2)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed runs first (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=200, help="timed runs (default: %(default)s)")
    ap.add_argument(
        "--opt-level",
        choices=sorted(OPT_LEVELS),
        default="all",
        help="ORT graph optimization level (default: %(default)s)",
    )
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0 or any(t < 1 for t in args.threads):
        ap.error("--runs and --threads must be >= 1, --warmup >= 0")
    # A directory without model.onnx stands for its model subdirectories (e.g. testdata/models).
    model_dirs = []
    for d in args.model_dirs:
        if (d / "model.onnx").is_file():
            model_dirs.append(d)
        elif d.is_dir() and (subs := sorted(s for s in d.iterdir() if (s / "model.onnx").is_file())):
            model_dirs.extend(subs)
        else:
            ap.error(f"{d}: no model.onnx in it or in its subdirectories")
    for d in model_dirs:
        for t in args.threads:
            print(json.dumps(bench(d, t, args.warmup, args.runs, args.opt_level), separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
