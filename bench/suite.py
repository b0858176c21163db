#!/usr/bin/env python3
"""Kiln's benchmark suite: real models at real size, Kiln beside ONNX Runtime, in one run.

    scripts/bench.sh [--models a,b|DIR] [--threads 1,2] [--quick] [--budget S] [--out-dir D]

(scripts/bench.sh builds the release `kiln` and runtime, then runs this file.) In order:

1. Machine: CPU model and flags (lscpu), versions, date; then bench/probe.c, compiled now with
   the system C compiler at -O3 -march=native, measures the FMA peak at each thread count, the
   stream-triad and read-only stream bandwidth far above the last-level cache, and the read-only
   bandwidth at each model's own footprint (weights + inputs + outputs), since a footprint that
   fits a cache streams faster.
2. For each model (bench/models.py generates them into .cache/bench-models on first use):
   count FLOPs and bytes from the graph (bench/flops.py); compile with `kiln compile` (timed;
   artifact size); start one worker process per engine (bench/worker.py), which times opening the
   model plus a first run (Kiln: load the artifact; ORT: create the session) in a fresh process.
3. At each thread count: warm up, compare the two engines' outputs on the same inputs
   (max |kiln - ort| <= rtol * max |ort|, every value finite; a mismatch fails the model and it
   is not timed), then alternate blocks of timed runs between the engines (so both see the same
   machine load) until the time budget is spent and each has at least --min-runs runs.
4. Reports median, p10 and p90 (nearest rank), Kiln / ORT, GFLOP/s and the share of the binding
   roofline (FMA peak, or read bandwidth at the footprint for models whose compulsory traffic
   takes longer than their FLOPs at peak), compile time, artifact size, open + first run; writes
   BENCHMARKS.md and BENCHMARKS.json, and on a full run into the repository root also the README
   section between the bench markers.

Exit codes: 0 every model compiled, matched and was timed; 1 a model failed (compile error,
crash, mismatch: each reported with its error in the table); 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flops  # noqa: E402  (after the sys.path entry above)
import models  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
README = REPO / "README.md"
TOY_DIR = REPO / "testdata" / "models"
TOY_QUICK = ("cnn", "transformer")
README_BEGIN = "<!-- bench:begin -->"
README_END = "<!-- bench:end -->"
# A stream footprint that no last-level cache holds (this project's machines have up to 480 MB of L3).
DRAM_BYTES = 1536 << 20
# How long one worker reply may take before the model is reported as hung.
REPLY_TIMEOUT_S = 900


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) by the nearest-rank method: an observed value."""
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def stats(ms: list[float]) -> dict:
    s = sorted(ms)
    return {
        "runs": len(s),
        "median_ms": nearest_rank(s, 0.5),
        "p10_ms": nearest_rank(s, 0.1),
        "p90_ms": nearest_rank(s, 0.9),
        "min_ms": s[0],
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where /proc/loadavg does not exist)."""
    p = Path("/proc/loadavg")
    return [float(x) for x in p.read_text().split()[:3]] if p.exists() else []


def run_text(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


# --- the machine ------------------------------------------------------------------------------

ISA_FLAGS = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
]


def cpu_line(mc: dict) -> str:
    """The CPU as lscpu names it, with what identifies it when a hypervisor hides the name."""
    key = [f for f in ("avx2", "avx512f", "amx_tile", "asimd", "sve") if f in mc["isa_flags"]]
    ident = f"family {mc['family']} model {mc['model']}, " if mc.get("family") else ""
    guest = f", {mc['hypervisor']} guest" if mc.get("hypervisor") else ""
    return f"{mc['cpu']} ({ident}{mc['cpus']} CPUs{guest}; {' '.join(key)})"


def machine() -> dict:
    info = {}
    for line in run_text(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    flags = info.get("Flags", "").split()
    return {
        "cpu": info.get("Model name", platform.processor() or "unknown"),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "family": info.get("CPU family"),
        "model": info.get("Model"),
        "threads_per_core": info.get("Thread(s) per core"),
        "caches": {k: info[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in info},
        "hypervisor": info.get("Hypervisor vendor"),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "flags": flags,
        "kernel": platform.release(),
    }


def versions(kiln: Path) -> dict:
    import onnxruntime

    rev = run_text(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    dirty = bool(run_text(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "kiln": run_text([str(kiln), "--version"]),
        "kiln_commit": rev + ("-dirty" if dirty else ""),
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class Probe:
    """bench/probe.c, compiled for this CPU."""

    def __init__(self, tmp: Path, cc: str) -> None:
        self.exe = tmp / "probe"
        cmd = [cc, "-O3", "-march=native", "-pthread", str(HERE / "probe.c"), "-o", str(self.exe)]
        subprocess.run(cmd, check=True)
        self.compiler = run_text([cc, "--version"]).splitlines()[0]
        self._bw: dict[tuple[str, int, int], float] = {}

    def fma(self, threads: int) -> dict:
        return json.loads(run_text([str(self.exe), "fma", str(threads)]))

    def bandwidth(self, kind: str, nbytes: int, threads: int) -> float:
        """GB/s of the `triad` or `read` kernel over a footprint of nbytes (at least 64 KiB: below
        that the loop overhead, not the memory, is measured)."""
        key = (kind, max(nbytes, 64 << 10), threads)
        if key not in self._bw:
            self._bw[key] = json.loads(run_text([str(self.exe), kind, str(key[1]), str(threads)]))["gbs"]
        return self._bw[key]


def pick_cc() -> str:
    for cc in (os.environ.get("CC"), "cc", "clang-22", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise SystemExit("bench: no C compiler for bench/probe.c (set CC)")


# --- the engines ------------------------------------------------------------------------------


class Worker:
    """One engine's process (bench/worker.py)."""

    def __init__(self, engine: str, path: Path, data_dir: Path, threads: int, runtime_lib: Path, log: Path) -> None:
        cmd = [sys.executable, str(HERE / "worker.py"), engine, str(path), str(data_dir), str(threads)]
        if engine == "kiln":
            cmd += ["--runtime-lib", str(runtime_lib)]
        self.engine, self.log = engine, log
        self.stderr = log.open("w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.first = self._reply()

    def _reply(self) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            if ready:
                self.proc.wait()
            else:
                self.proc.kill()
            self.stderr.flush()
            tail = self.log.read_text().strip().splitlines()[-6:]
            why = f"exit code {self.proc.returncode}" if ready else f"no reply in {REPLY_TIMEOUT_S} s"
            raise EngineError(f"{self.engine} worker: {why}: " + " | ".join(tail))
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # reported by _reply with the worker's stderr
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op":"quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.stderr.close()


class EngineError(Exception):
    pass


def compare(kiln: list[np.ndarray], ort: list[np.ndarray], rtol: float) -> tuple[bool, float, str]:
    """(ok, max |k - o| / max |o| over all outputs, why not)."""
    if len(kiln) != len(ort):
        return False, math.inf, f"{len(kiln)} outputs, ONNX Runtime has {len(ort)}"
    worst = 0.0
    for i, (k, o) in enumerate(zip(kiln, ort, strict=True)):
        if k.shape != o.shape:
            return False, math.inf, f"output {i}: shape {k.shape}, ONNX Runtime {o.shape}"
        if not np.isfinite(o).all():
            return False, math.inf, f"output {i}: ONNX Runtime's output is not finite (a bad model)"
        if not np.isfinite(k).all():
            bad = int(np.size(k) - np.count_nonzero(np.isfinite(k)))
            return False, math.inf, f"output {i}: {bad} non-finite values"
        scale = float(np.abs(o).max()) or 1.0
        err = float(np.abs(k.astype(np.float64) - o).max()) / scale
        worst = max(worst, err)
    ok = worst <= rtol
    return ok, worst, "" if ok else f"max |kiln - ort| / max |ort| = {worst:.3g} > {rtol:g}"


@dataclasses.dataclass
class Model:
    name: str
    title: str
    dir: Path
    rtol: float
    # Variant rows (models.Spec): the suite row whose model this is, Kiln's extra compile flags,
    # and what ONNX Runtime runs ("fp32": model.onnx; "nbits4": its MatMulNBits 4-bit form;
    # "int8dyn": its quantize_dynamic int8 form).
    base: str | None = None
    kiln_flags: tuple[str, ...] = ()
    ort: str = "fp32"
    # What Kiln compiles ("fp32": model.onnx; "nbits4": the MatMulNBits model ORT runs).
    kiln_model: str = "fp32"


def spec_model(s: models.Spec, d: Path) -> Model:
    return Model(s.name, s.title, d, s.rtol, s.base, s.kiln_flags, s.ort, s.kiln_model)


# MatMulNBits blocks of the "nbits4" ONNX Runtime models (as Kiln's NF4 blocks).
NBITS_BLOCK = 64


def quantized_ops(kiln_flags: tuple[str, ...]) -> list[str]:
    """The op types Kiln's `--quantize-ops=` flag names (MatMul and Gemm without one)."""
    for f in kiln_flags:
        if f.startswith("--quantize-ops="):
            return f.split("=", 1)[1].split(",")
    return ["MatMul", "Gemm"]


def dynamic_int8_model(src: Path, out: Path, ops: list[str]) -> Path:
    """`src` quantized by ONNX Runtime's quantize_dynamic (int8 weights, activations quantized
    at run time: DynamicQuantizeLinear + MatMulInteger/ConvInteger), its nodes of types `ops`.
    Written to `out`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    return out


def matmul_nbits_model(src: Path, out: Path, block: int = NBITS_BLOCK) -> Path:
    """`src` quantized by ONNX Runtime's own MatMulNBitsQuantizer (onnxruntime.quantization; its
    default RTN, 4 bits, `block` rows per block, symmetric): every MatMul by a constant weight
    becomes com.microsoft MatMulNBits. Written to `out`. (onnx-ir, which the quantizer needs, is
    pinned in scripts/requirements.txt.)"""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=block, is_symmetric=True)
    q.process()
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(q.model.model, str(out))
    return out


def bench_model(m: Model, args, tmp: Path, probe: Probe | None, peaks: dict[int, float]) -> dict:
    r: dict = {"model": m.name, "title": m.title, "rtol": m.rtol, "status": "ok", "threads": {}}
    if m.base:
        r.update(base=m.base, kiln_flags=list(m.kiln_flags), ort_model=m.ort, kiln_model=m.kiln_model)
    onnx_path = m.dir / "model.onnx"
    try:
        counts = flops.count(onnx.load(str(onnx_path)))
        r.update(
            flops=counts.flops,
            other_ops=counts.other_ops,
            weight_bytes=counts.weight_bytes,
            io_bytes=counts.io_bytes,
            min_bytes=counts.min_bytes,
        )
    except ValueError as ex:
        # A model from outside the suite (a directory) may hold ops or shapes the counter cannot
        # count: it is still compiled, checked and timed, without GFLOP/s and roofline.
        counts = None
        r["count_error"] = str(ex)
    # Compiled twice into separate folders with one fresh kernel cache (KILN_CACHE_DIR): the
    # first compile is what a new machine sees (every kernel compiled), the second what a user
    # with a warm cache sees. The cache must not change the artifact, so the two are compared.
    cache = tmp / m.name / "kernel-cache"
    sizes, digests = [], []
    nbits_path = tmp / m.name / "ort-nbits4" / "model.onnx"
    kiln_path = onnx_path
    if m.kiln_model == "nbits4":
        kiln_path = matmul_nbits_model(onnx_path, nbits_path)
    for key in ("compile_s", "compile_warm_s"):
        so = tmp / m.name / key / "model.so"
        so.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*kiln_compile(args), *m.kiln_flags, str(kiln_path), "-o", str(so)]
        t0 = time.perf_counter()
        try:
            env = {**os.environ, "KILN_CACHE_DIR": str(cache)}
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.compile_timeout, env=env)
        except subprocess.TimeoutExpired:
            return {**r, "status": "compile_failed", "error": f"kiln compile: no result in {args.compile_timeout} s"}
        r[key] = time.perf_counter() - t0
        if p.returncode != 0:
            err = " ".join(p.stderr.strip().splitlines()[-4:]) or "(no message)"
            return {**r, "status": "compile_failed", "error": f"kiln compile exited {p.returncode}: {err}"}
        files = sorted(f for f in so.parent.iterdir() if f.is_file() and f.suffix != ".h")
        sizes.append(sum(f.stat().st_size for f in files))
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    r["artifact_bytes"] = sizes[-1]
    r["artifact_reproducible"] = digests[0] == digests[1]
    print(
        f"# {m.name}: compiled in {r['compile_s']:.1f} s (warm kernel cache {r['compile_warm_s']:.1f} s), "
        f"{r['artifact_bytes'] / 1e6:.1f} MB" + ("" if r["artifact_reproducible"] else ", NOT byte-identical"),
        file=sys.stderr,
    )

    data = m.dir / "test_data_set_0"
    ort_path = onnx_path
    if m.ort == "nbits4":
        ort_path = nbits_path if nbits_path.exists() else matmul_nbits_model(onnx_path, nbits_path)
    elif m.ort == "int8dyn":
        ort_path = dynamic_int8_model(
            onnx_path, tmp / m.name / "ort-int8dyn" / "model.onnx", quantized_ops(m.kiln_flags)
        )
    workers: dict[str, Worker] = {}
    try:
        t = args.threads[0]
        for e, path in (("kiln", so), ("ort", ort_path)):
            workers[e] = Worker(e, path, data, t, args.runtime_lib, tmp / m.name / f"{e}.log")
        r["open"] = {e: w.first for e, w in workers.items()}
        for t in args.threads:
            rt: dict = {}
            r["threads"][str(t)] = rt
            if t != args.threads[0]:
                for w in workers.values():
                    w.ask(op="threads", n=t)
            for w in workers.values():
                w.ask(op="run", max_runs=args.warmup_runs, max_s=args.warmup_s)
            outs = {}
            for e, w in workers.items():
                npz = tmp / m.name / f"{e}-{t}.npz"
                w.ask(op="save", path=str(npz))
                with np.load(npz) as z:
                    outs[e] = [z[f"arr_{i}"] for i in range(len(z.files))]
            ok, err, why = compare(outs["kiln"], outs["ort"], m.rtol)
            rt["max_rel_err"] = err if math.isfinite(err) else None  # JSON has no infinity
            if not ok:
                r.update(status="mismatch", error=f"{t} thread(s): {why}")
                print(f"# {m.name}: MISMATCH at {t} thread(s): {why}", file=sys.stderr)
                return r
            times: dict[str, list[float]] = {"kiln": [], "ort": []}
            cpu_times: dict[str, list[float]] = {"kiln": [], "ort": []}
            deadline = time.perf_counter() + args.budget
            rounds = 0
            while True:
                order = ("kiln", "ort") if rounds % 2 == 0 else ("ort", "kiln")
                for e in order:
                    left = args.max_runs - len(times[e])
                    if left > 0:
                        block = workers[e].ask(op="run", max_runs=left, max_s=args.block_s)
                        times[e] += block["ms"]
                        cpu_times[e] += block["cpu_ms"]
                rounds += 1
                enough = all(len(v) >= args.min_runs for v in times.values())
                full = all(len(v) >= args.max_runs for v in times.values())
                if full or (enough and time.perf_counter() >= deadline):
                    break
            for e, ms in times.items():
                s = stats(ms)
                s["cpu_median_ms"] = nearest_rank(sorted(cpu_times[e]), 0.5)
                if counts is not None:
                    s["gflops"] = counts.flops / (s["median_ms"] * 1e6)
                    s["gbs"] = counts.min_bytes / (s["median_ms"] * 1e6)
                rt[e] = s
            rt["ratio"] = rt["kiln"]["median_ms"] / rt["ort"]["median_ms"]
            rt["cpu_ratio"] = rt["kiln"]["cpu_median_ms"] / rt["ort"]["cpu_median_ms"]
            rt["load1"] = load_average()[0]
            if probe is not None and counts is not None and not m.kiln_flags:
                # Weights are only read: the roof is the read stream at the model's footprint.
                bw = probe.bandwidth("read", counts.min_bytes, t)
                t_fma = counts.flops / (peaks[t] * 1e9)
                t_mem = counts.min_bytes / (bw * 1e9)
                rt["roofline"] = {
                    "bound": "fma" if t_fma >= t_mem else "mem",
                    "peak_gflops": peaks[t],
                    "read_gbs": bw,
                    "roof_ms": max(t_fma, t_mem) * 1e3,
                }
                for e in ("kiln", "ort"):
                    rt[e]["pct_roof"] = 100 * rt["roofline"]["roof_ms"] / rt[e]["median_ms"]
            print(
                f"# {m.name} @{t}: kiln {rt['kiln']['median_ms']:.3f} ms, ort {rt['ort']['median_ms']:.3f} ms, "
                f"{rt['ratio']:.2f}x ({rt['kiln']['runs']}/{rt['ort']['runs']} runs)",
                file=sys.stderr,
            )
    except EngineError as ex:
        r.update(status="run_failed", error=str(ex))
        print(f"# {m.name}: FAILED: {ex}", file=sys.stderr)
    finally:
        for w in workers.values():
            w.close()
    return r


def kiln_compile(args) -> list[str]:
    """`kiln compile` with the suite's flags."""
    return [str(args.kiln), "compile", *shlex.split(args.kiln_flags)]


def harness_floor(args, tmp: Path) -> dict:
    """Median time of a one-element Add through each engine's harness: the floor under every row."""
    from onnx import TensorProto, helper, numpy_helper

    d = tmp / "_floor"
    (d / "test_data_set_0").mkdir(parents=True)
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_operatorsetid("", models.OPSET)])
    model.ir_version = models.IR_VERSION
    onnx.save(model, str(d / "model.onnx"))
    onnx.save_tensor(numpy_helper.from_array(np.ones(1, np.float32), "x"), str(d / "test_data_set_0" / "input_0.pb"))
    subprocess.run(
        [*kiln_compile(args), str(d / "model.onnx"), "-o", str(d / "model.so")], check=True, capture_output=True
    )
    out = {}
    for e, path in (("kiln", d / "model.so"), ("ort", d / "model.onnx")):
        w = Worker(e, path, d / "test_data_set_0", 1, args.runtime_lib, d / f"{e}.log")
        try:
            w.ask(op="run", max_runs=200, max_s=0.2)
            out[e] = stats(w.ask(op="run", max_runs=2000, max_s=0.5)["ms"])["median_ms"]
        finally:
            w.close()
    return out


# --- reports ----------------------------------------------------------------------------------


def fmt_ms(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_opt(x: float | None, scale: float = 1.0, spec: str = ".1f") -> str:
    """x / scale, or a dash where it is unknown."""
    return "–" if x is None else format(x / scale, spec)


def fmt_load(load: list[float]) -> str:
    return " ".join(f"{x:.1f}" for x in load) or "?"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def ratio_table(report: dict) -> list[str]:
    """The short table: model, then Kiln / ORT and the two medians per thread count, and at 1
    thread also the ratio of CPU times (see CPU_NOTE)."""
    threads = report["config"]["threads"]
    head = [f"{t} thread{'s' if t > 1 else ''}: Kiln ÷ ORT (Kiln / ORT ms)" for t in threads]
    if 1 in threads:
        head.append("1 thread, CPU time: Kiln ÷ ORT")
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for r in report["models"]:
        cells = []
        for t in threads:
            rt = r["threads"].get(str(t), {})
            if "ratio" in rt:
                k, o = rt["kiln"]["median_ms"], rt["ort"]["median_ms"]
                cells.append(f"{fmt_ratio(rt['ratio'])} ({fmt_ms(k)} / {fmt_ms(o)})")
            else:
                cells.append(f"**{r['status'].replace('_', ' ')}**")
        if 1 in threads:
            rt = r["threads"].get("1", {})
            cells.append(fmt_ratio(rt["cpu_ratio"]) if "cpu_ratio" in rt else "–")
        lines.append(f"| {r['title']} | " + " | ".join(cells) + " |")
    return lines


# Why the CPU-time column exists, for BENCHMARKS.md and the README.
CPU_NOTE = (
    "*CPU time* is the median CPU time of the engine's process per run; at 1 thread (ONNX Runtime then "
    "runs on the calling thread, Kiln inline) it is the run's latency without the time the OS gave other "
    "work, so its ratio is the one a busy machine disturbs least."
)


def base_ratios(report: dict) -> list[dict]:
    """For each variant row whose base row ran too: Kiln's median time of the base (f32) row over
    the variant's, and ONNX Runtime's (of the variant's ORT model) over the base's Kiln time, per
    thread count: how much faster the quantized artifact is than Kiln's f32 one."""
    by = {r["model"]: r for r in report["models"]}
    out = []
    for r in report["models"]:
        b = by.get(r.get("base") or "")
        if b is None:
            continue
        row = {"model": r["model"], "title": r["title"], "base": b["model"], "threads": {}}
        for t, rt in r["threads"].items():
            bt = b["threads"].get(t, {})
            if "kiln" in rt and "kiln" in bt:
                row["threads"][t] = {
                    "kiln_f32_ms": bt["kiln"]["median_ms"],
                    "kiln_ms": rt["kiln"]["median_ms"],
                    "ort_ms": rt["ort"]["median_ms"],
                    "speedup": bt["kiln"]["median_ms"] / rt["kiln"]["median_ms"],
                }
        out.append(row)
    return out


def base_table(report: dict) -> list[str]:
    rows = report.get("vs_base") or []
    if not rows:
        return []
    threads = report["config"]["threads"]
    head = [f"{t} thread{'s' if t > 1 else ''}: Kiln f32 ÷ Kiln (Kiln f32 / Kiln / ORT ms)" for t in threads]
    lines = [
        "## Quantized rows against Kiln's f32 artifact (above 1: the quantized artifact is faster)",
        "",
        "| model | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for row in rows:
        cells = []
        for t in threads:
            x = row["threads"].get(str(t))
            cells.append(
                f"{fmt_ratio(x['speedup'])} ({fmt_ms(x['kiln_f32_ms'])} / {fmt_ms(x['kiln_ms'])} / {fmt_ms(x['ort_ms'])})"
                if x
                else "–"
            )
        lines.append(f"| {row['title']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(report: dict) -> str:
    mc, v, cfg = report["machine"], report["versions"], report["config"]
    out = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.sh` (bench/suite.py); do not edit by hand. Kiln and ONNX Runtime in",
        "the same run on the same random inputs, each engine in its own long-lived process, blocks of",
        "runs alternating between them. Models: bench/models.py (random weights, no downloads).",
        "",
        f"- Date: {report['date']}",
        f"- Command: `{report['command']}`",
        f"- CPU: {cpu_line(mc)}, {mc['arch']}, Linux {mc['kernel']}; "
        + ", ".join(f"{k} {val}" for k, val in mc["caches"].items()),
        f"- ISA flags (lscpu): {' '.join(mc['isa_flags'])}",
        f"- Kiln {v['kiln'].removeprefix('kiln ')} (commit {v['kiln_commit']}; `{cfg['kiln_compile']}`); "
        f"ONNX Runtime {v['onnxruntime']} "
        f"(CPU provider, default graph optimizations, `intra_op_num_threads` = threads, `inter_op_num_threads` = 1); "
        f"onnx {v['onnx']}, numpy {v['numpy']}, Python {v['python']}",
        f"- Method: per model and thread count, warm-up, then at least {cfg['min_runs']} timed runs per engine and "
        f"about {cfg['budget_s']:g} s for both; median with p10–p90 (nearest rank). Load average (1, 5, 15 min) "
        f"{fmt_load(report['load']['start'])} at the start, {fmt_load(report['load']['end'])} at the end; the *load* "
        "column is the 1-minute load average after each row. Where it exceeds the CPU count, other work shared "
        "the cores and the row's medians (more so at 2 threads, whose threads wait for each other) are inflated; "
        "both engines ran in the same minutes, so the ratio is the more robust number, and p10 is closer to "
        "an idle machine.",
    ]
    if report.get("floor"):
        f = report["floor"]
        out.append(
            f"- Harness floor (a one-element Add): Kiln {f['kiln'] * 1e3:.1f} µs, ORT {f['ort'] * 1e3:.1f} µs per run."
        )
    if report.get("probe"):
        p = report["probe"]
        out.append(
            f"- Machine limits (bench/probe.c, {p['compiler']}, -O3 -march=native; rates per CPU-second of each "
            "thread, so other work on the machine does not lower them): FMA peak "
            f"({p['isa']}) "
            + ", ".join(f"{g:.0f} GFLOP/s at {t} thread{'s' if int(t) > 1 else ''}" for t, g in p["fma_gflops"].items())
            + "; beyond the caches, stream triad "
            + ", ".join(f"{b:.1f} GB/s at {t}" for t, b in p["dram_triad_gbs"].items())
            + " and read-only stream "
            + ", ".join(f"{b:.1f} GB/s at {t}" for t, b in p["dram_read_gbs"].items())
            + " thread(s)."
        )
    out += ["", "## Kiln ÷ ONNX Runtime (median latency; below 1: Kiln is faster)", "", *ratio_table(report), ""]
    if 1 in cfg["threads"]:
        out += [CPU_NOTE, ""]
    out += base_table(report)
    out += [
        "## Latency and throughput",
        "",
        "GFLOP/s counts contractions only (2 per multiply-accumulate, bench/flops.py). *Roof* is the share of the",
        "binding roofline reached: the FMA peak (bound fma), or for models whose compulsory traffic (weights +",
        "inputs + outputs, each read once) takes longer at the read-stream bandwidth measured at that same",
        "footprint than their FLOPs take at peak, that bandwidth (bound mem). Above 100% means the engine",
        "beat the probe, e.g. by keeping weights in a cache level the probe's footprint did not fit.",
        "*CPU ÷ wall* is each engine's median CPU time over its median latency: at 1 thread, below about 0.9",
        "the process waited for a CPU (other work on the machine) and the row's wall times are inflated;",
        "with more threads it also counts threads that spin or help (up to the thread count).",
        "",
        "| model | threads | Kiln ms (p10–p90) | ORT ms (p10–p90) | Kiln ÷ ORT | Kiln GFLOP/s | ORT GFLOP/s "
        "| bound | Kiln roof | ORT roof | CPU ÷ wall, Kiln / ORT | load |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["models"]:
        for t in cfg["threads"]:
            rt = r["threads"].get(str(t), {})
            if "ratio" not in rt:
                continue
            k, o, rf = rt["kiln"], rt["ort"], rt.get("roofline")
            roof = [f"{rf['bound']}", f"{k['pct_roof']:.1f}%", f"{o['pct_roof']:.1f}%"] if rf else ["", "", ""]
            out.append(
                f"| {r['title']} | {t} | {fmt_ms(k['median_ms'])} ({fmt_ms(k['p10_ms'])}–{fmt_ms(k['p90_ms'])}) "
                f"| {fmt_ms(o['median_ms'])} ({fmt_ms(o['p10_ms'])}–{fmt_ms(o['p90_ms'])}) | {fmt_ratio(rt['ratio'])} "
                f"| {fmt_opt(k.get('gflops'))} | {fmt_opt(o.get('gflops'))} | "
                + " | ".join(roof)
                + f" | {k['cpu_median_ms'] / k['median_ms']:.2f} / {o['cpu_median_ms'] / o['median_ms']:.2f}"
                + f" | {rt.get('load1', '')} |"
            )
    out += [
        "",
        "## Compile, artifact, start-up, accuracy",
        "",
        "Compile: wall time of `kiln compile` with an empty kernel cache (cold) and again with the cache the",
        'first compile filled (warm); "differ!" flags artifacts that were not byte-identical. Open + first run:',
        "in a fresh process (Python and the engine's library already loaded), Kiln's `kiln_model_load` plus one",
        "run, beside ONNX Runtime's session creation plus one run.",
        "",
        "| model | GFLOP | weights MB | Kiln compile s, cold / warm | artifact MB | Kiln open + first run, ms "
        "| ORT session + first run, ms | max error / tolerance | Kiln / ORT runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def start(r: dict, e: str) -> str:
        op = r.get("open", {})
        return f"{fmt_ms(op[e]['open_ms'])} + {fmt_ms(op[e]['first_run_ms'])}" if e in op else "–"

    for r in report["models"]:
        errs = [rt["max_rel_err"] for rt in r["threads"].values() if rt.get("max_rel_err") is not None]
        err = f"{max(errs):.1e} / {r['rtol']:g}" if errs else "–"
        runs = "; ".join(f"{rt['kiln']['runs']}/{rt['ort']['runs']}" for rt in r["threads"].values() if "kiln" in rt)
        compile_s = f"{r['compile_s']:.1f}" if "compile_s" in r else "–"
        if "compile_warm_s" in r:
            compile_s += f" / {r['compile_warm_s']:.1f}" + ("" if r.get("artifact_reproducible") else " (differ!)")
        size = f"{r['artifact_bytes'] / 1e6:.1f}" if "artifact_bytes" in r else "–"
        out.append(
            f"| {r['title']} | {fmt_opt(r.get('flops'), 1e9, '.3f')} | {fmt_opt(r.get('weight_bytes'), 1e6)} "
            f"| {compile_s} | {size} "
            f"| {start(r, 'kiln')} | {start(r, 'ort')} | {err} | {runs or '–'} |"
        )
    failed = [r for r in report["models"] if r["status"] != "ok"]
    if failed:
        out += ["", "## Failures", ""]
        out += [f"- **{r['title']}** (`{r['model']}`): {r['status'].replace('_', ' ')}: {r['error']}" for r in failed]
    return "\n".join(out) + "\n"


def update_readme(report: dict) -> None:
    text = README.read_text()
    if README_BEGIN not in text or README_END not in text:
        print(f"# README.md has no {README_BEGIN} ... {README_END} section; not updated", file=sys.stderr)
        return
    mc = report["machine"]
    body = [
        README_BEGIN,
        f"Kiln ÷ ONNX Runtime {report['versions']['onnxruntime']} median latency (below 1: Kiln is faster) on "
        f"{cpu_line(mc)}, "
        f"{report['date'][:10]}, Kiln commit {report['versions']['kiln_commit']} "
        f"(`{report['config']['kiln_compile']}`); a machine shared with other work "
        f"(load average {fmt_load(report['load']['start'][:1])} at the start, {fmt_load(report['load']['end'][:1])} "
        "at the end), so 2-thread medians are noisy; written by `scripts/bench.sh`, details in "
        "[BENCHMARKS.md](BENCHMARKS.md).",
        "",
        *ratio_table(report),
        "",
        CPU_NOTE,
        README_END,
    ]
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    README.write_text(text[:start] + "\n".join(body) + text[end:])


# --- main -------------------------------------------------------------------------------------


def resolve_models(spec: str | None, quick: bool, dir_rtol: float = 1e-4) -> list[Model]:
    if spec is None:
        specs = [s for s in models.SPECS if s.quick or not quick]
        dirs = models.ensure([s.name for s in specs])
        out = [spec_model(s, d) for s, d in zip(specs, dirs, strict=True)]
        if quick:
            # The bundled toy models cover ops the small suite models lack (BatchNorm, LayerNorm, Gather).
            out += [Model(f"toy_{n}", f"toy {n} (testdata)", TOY_DIR / n, 1e-4) for n in TOY_QUICK]
        return out
    out = []
    for item in spec.split(","):
        if item in models.BY_NAME:
            s = models.BY_NAME[item]
            out.append(spec_model(s, models.ensure([s.name])[0]))
        elif (Path(item) / "model.onnx").is_file():
            # A model in the ONNX test-set layout (e.g. testdata/models/cnn): compared at
            # --dir-rtol (1e-4 unless given).
            d = Path(item).resolve()
            out.append(Model(d.name, d.name, d, dir_rtol))
        else:
            raise SystemExit(
                f"bench: unknown model '{item}'; known: {', '.join(models.BY_NAME)}, or a directory with model.onnx"
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models", help="comma-separated suite models or model directories (default: all; bench/models.py --list)"
    )
    ap.add_argument(
        "--dir-rtol",
        type=float,
        default=1e-4,
        help="tolerance of model directories given to --models: max |kiln - ort| <= rtol * max |ort| "
        "(default: %(default)s; a dynamically quantized model needs more: one activation rounded to the "
        "other int8 code moves its outputs by ~1e-3)",
    )
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: the small models, short budgets")
    ap.add_argument(
        "--budget",
        type=float,
        help="seconds of timed runs per model and thread count, both engines (default 10, quick 2)",
    )
    ap.add_argument("--min-runs", type=int, help="timed runs per engine at least (default 5, quick 3)")
    ap.add_argument("--max-runs", type=int, default=2000, help="timed runs per engine at most (default: %(default)s)")
    ap.add_argument(
        "--out-dir",
        type=Path,
        help="where BENCHMARKS.md/.json go (default: the repository root for a full run, "
        ".cache/bench-results otherwise)",
    )
    ap.add_argument("--no-probe", action="store_true", help="skip the FMA/bandwidth probe")
    ap.add_argument("--kiln", type=Path, default=REPO / "target" / "release" / "kiln")
    ap.add_argument("--runtime-lib", type=Path, default=REPO / "target" / "release" / "libkiln_runtime.so")
    ap.add_argument(
        "--kiln-flags",
        default="--cpu=native",
        help="flags for every `kiln compile` (default: %(default)s, since ONNX Runtime picks the best ISA at run "
        "time: like for like)",
    )
    ap.add_argument("--compile-timeout", type=float, default=1800)
    ap.add_argument("--command", help="the command line to print in the report (scripts/bench.sh passes its own)")
    args = ap.parse_args()
    try:
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        ap.error("--threads takes comma-separated integers")
    if any(t < 1 for t in args.threads):
        ap.error("--threads must be >= 1")
    full = args.models is None and not args.quick
    args.budget = args.budget if args.budget is not None else (2.0 if args.quick else 10.0)
    args.min_runs = args.min_runs if args.min_runs is not None else (3 if args.quick else 5)
    args.warmup_runs, args.warmup_s, args.block_s = 10, 0.5 if args.quick else 1.0, 0.25
    out_dir = args.out_dir or (REPO if full else REPO / ".cache" / "bench-results")
    for f in (args.kiln, args.runtime_lib):
        if not f.is_file():
            ap.error(f"{f} not found (cargo build --release -p kiln -p kiln-runtime-c)")
    todo = resolve_models(args.models, args.quick, args.dir_rtol)

    load = {"start": load_average()}
    report: dict = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(args.kiln),
        "config": {
            "kiln_compile": shlex.join(["kiln", "compile", *shlex.split(args.kiln_flags)]),
            "threads": args.threads,
            "budget_s": args.budget,
            "min_runs": args.min_runs,
            "max_runs": args.max_runs,
            "warmup_runs": args.warmup_runs,
            "block_s": args.block_s,
        },
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp_name:
        tmp = Path(tmp_name)
        probe, peaks = None, {}
        if not args.no_probe:
            probe = Probe(tmp, pick_cc())
            fma = {t: probe.fma(t) for t in args.threads}
            peaks = {t: f["gflops"] for t, f in fma.items()}
            report["probe"] = {
                "compiler": probe.compiler,
                "isa": fma[args.threads[0]]["isa"],
                "fma_gflops": {str(t): g for t, g in peaks.items()},
                "fma_gflops_wall": {str(t): f["gflops_wall"] for t, f in fma.items()},
                "dram_triad_gbs": {str(t): probe.bandwidth("triad", DRAM_BYTES, t) for t in args.threads},
                "dram_read_gbs": {str(t): probe.bandwidth("read", DRAM_BYTES, t) for t in args.threads},
            }
            print(f"# probe: {report['probe']}", file=sys.stderr)
        report["floor"] = harness_floor(args, tmp)
        for m in todo:
            report["models"].append(bench_model(m, args, tmp, probe, peaks))
        if probe is not None:
            report["probe"]["gbs_by_footprint"] = [
                {"kernel": k, "bytes": b, "threads": t, "gbs": g} for (k, b, t), g in sorted(probe._bw.items())
            ]
    load["end"] = load_average()
    report["load"] = load
    report["vs_base"] = base_ratios(report)
    for row in report["vs_base"]:
        for t, x in row["threads"].items():
            print(
                f"# {row['model']} @{t}: Kiln f32 / Kiln = {x['speedup']:.2f} ({row['base']}: "
                f"{x['kiln_f32_ms']:.3f} ms -> {x['kiln_ms']:.3f} ms; ORT {x['ort_ms']:.3f} ms)",
                file=sys.stderr,
            )

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "BENCHMARKS.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (out_dir / "BENCHMARKS.md").write_text(md)
    if full and out_dir.resolve() == REPO:
        update_readme(report)
    print(md)
    print(f"# wrote {out_dir / 'BENCHMARKS.md'} and BENCHMARKS.json", file=sys.stderr)
    failed = [r["model"] for r in report["models"] if r["status"] != "ok"]
    if failed:
        print(f"# FAILED: {', '.join(failed)} (see the Failures section)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
