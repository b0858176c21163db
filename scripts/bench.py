#!/usr/bin/env python3
"""Benchmark Kiln against ONNX Runtime on models in the ONNX test-set layout, in one run.

    .venv/bin/python scripts/bench.py --kiln target/release/kiln MODEL_DIR [MODEL_DIR ...] \
        [--threads 1 2] [--warmup 20] [--runs 200]

For each model (a directory with model.onnx and test_data_set_0/; a directory without model.onnx,
such as testdata/models, stands for its model subdirectories): compile it with `kiln compile`
(input shapes fixed from the test set's inputs, so dynamic models compile), time it with
`kiln bench --input-dir test_data_set_0`, time ONNX Runtime with scripts/bench_ort.py (same
thread counts, warm-up, runs and nearest-rank statistics), then print every JSON line and a table
of median latencies with the ratio kiln/ort (below 1: Kiln is faster). Exits 1 if any engine's
outputs do not match the test set's expected outputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx


def model_dirs(paths: list[Path]) -> list[Path]:
    out = []
    for d in paths:
        if (d / "model.onnx").is_file():
            out.append(d)
        elif d.is_dir():
            out.extend(sorted(s for s in d.iterdir() if (s / "model.onnx").is_file()))
    return out


def input_shapes(model_dir: Path) -> list[str]:
    """--input-shape arguments from the test set's input tensors, in graph-input order."""
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    args = []
    for i, name in enumerate(names):
        pb = model_dir / "test_data_set_0" / f"input_{i}.pb"
        if pb.is_file():
            dims = list(onnx.load_tensor(str(pb)).dims)
            args += ["--input-shape", f"{name}=" + "x".join(map(str, dims))]
    return args


def json_lines(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dirs", nargs="+", type=Path)
    ap.add_argument("--kiln", type=Path, required=True, help="the kiln binary")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    dirs = model_dirs(args.model_dirs)
    if not dirs:
        ap.error("no model directories")
    threads = [str(t) for t in args.threads]
    common = ["--warmup", str(args.warmup), "--runs", str(args.runs), "--threads", *threads]
    ort_script = Path(__file__).with_name("bench_ort.py")
    results: dict[tuple[str, int, str], dict] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        for d in dirs:
            so = Path(tmp) / f"{d.name}.so"
            t0 = time.perf_counter()
            subprocess.run(
                [str(args.kiln), "compile", str(d / "model.onnx"), "--cpu=native", "-o", str(so), *input_shapes(d)], check=True
            )
            print(f"# {d.name}: compiled in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
            lines = json_lines([str(args.kiln), "bench", str(so), "--format", "json", "--input-dir", str(d / "test_data_set_0"), *common])
            lines += json_lines([sys.executable, str(ort_script), str(d), *common])
            for r in lines:
                r["model"] = d.name
                print(json.dumps(r, separators=(",", ":")))
                results[(d.name, r["threads"], r["engine"])] = r
                ok &= r.get("outputs_match") is not False
    print()
    print(f"{'model':<14}{'threads':>8}{'kiln ms':>12}{'ort ms':>12}{'kiln/ort':>10}")
    for d in dirs:
        for t in args.threads:
            k, o = results.get((d.name, t, "kiln")), results.get((d.name, t, "ort"))
            if k and o:
                ratio = k["median_ms"] / o["median_ms"] if o["median_ms"] > 0 else float("inf")
                print(f"{d.name:<14}{t:>8}{k['median_ms']:>12.4f}{o['median_ms']:>12.4f}{ratio:>10.2f}")
    if not ok:
        print("outputs did not match the expected outputs (outputs_match=false above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
