#!/usr/bin/env python3
"""One engine in its own long-lived process, driven by bench/suite.py over stdin/stdout.

    worker.py kiln ARTIFACT.so INPUT_DIR THREADS --runtime-lib libkiln_runtime.so
    worker.py ort MODEL.onnx INPUT_DIR THREADS

At start the worker reads the inputs (untimed), then opens the model and runs it once, timing
both: Kiln's kiln_model_load (dlopen of the artifact, its weights mapped) plus a first run, or
ONNX Runtime's InferenceSession creation (graph optimizations, weight pre-packing) plus a first
run. It prints {"open_ms":..,"first_run_ms":..} and then answers one JSON command per line:

    {"op":"threads","n":2}                 Kiln: kiln_model_set_num_threads; ORT: a new session
    {"op":"run","max_runs":N,"max_s":S}    timed runs until N runs or S seconds (at least one);
                                           answers {"ms":[...],"cpu_ms":[...]}: each run's wall
                                           time, and the CPU time of the whole process during it
    {"op":"save","path":P}                 writes the last run's outputs to P (.npz, graph order)
    {"op":"quit"}

Each engine lives in its own process so neither's threads (ONNX Runtime's spin-waiting pool,
Kiln's pool) run while the other is timed; the suite alternates short blocks of runs between the
two so that both see the same machine load. Both engines are called with zero per-run Python
work beyond one foreign call: Kiln through ctypes on kiln.h's kiln_model_run with the tensor
descriptors built once, ORT through run_with_iobinding with inputs and outputs bound once.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

# kiln.h dtype codes of the numpy types the suite's models use.
KILN_DTYPES = {np.dtype(np.float32): 2, np.dtype(np.float64): 1, np.dtype(np.int64): 8, np.dtype(np.int32): 9}
NP_DTYPES = {v: k for k, v in KILN_DTYPES.items()}


class KilnTensor(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_uint32),
        ("rank", ctypes.c_uint32),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("data", ctypes.c_void_p),
        ("byte_size", ctypes.c_uint64),
    ]


class KilnTensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_uint32),
        ("rank", ctypes.c_uint32),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("byte_size", ctypes.c_uint64),
    ]


class Kiln:
    """An artifact loaded through the C runtime (kiln.h)."""

    def __init__(self, runtime_lib: str) -> None:
        lib = ctypes.CDLL(runtime_lib)
        lib.kiln_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.kiln_model_run.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(KilnTensor),
            ctypes.c_uint32,
            ctypes.POINTER(KilnTensor),
            ctypes.c_uint32,
        ]
        lib.kiln_model_set_num_threads.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.kiln_model_num_inputs.argtypes = [ctypes.c_void_p]
        lib.kiln_model_num_outputs.argtypes = [ctypes.c_void_p]
        lib.kiln_model_input.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(KilnTensorInfo)]
        lib.kiln_model_output.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(KilnTensorInfo)]
        lib.kiln_last_error.restype = ctypes.c_char_p
        self.lib = lib
        self.model = ctypes.c_void_p()

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.lib.kiln_last_error().decode()}")

    def open(self, artifact: str, threads: int, inputs: list[np.ndarray]) -> None:
        self.check(self.lib.kiln_model_load(artifact.encode(), ctypes.byref(self.model)), "kiln_model_load")
        self.set_threads(threads)
        n_in = self.lib.kiln_model_num_inputs(self.model)
        if n_in != len(inputs):
            raise RuntimeError(f"artifact has {n_in} inputs, the test set {len(inputs)}")
        self.inputs = [np.ascontiguousarray(a) for a in inputs]
        self.outputs = []
        for i in range(self.lib.kiln_model_num_outputs(self.model)):
            info = KilnTensorInfo()
            self.check(self.lib.kiln_model_output(self.model, i, ctypes.byref(info)), "kiln_model_output")
            shape = [info.shape[d] for d in range(info.rank)]
            self.outputs.append(np.empty(shape, NP_DTYPES[info.dtype]))
        self._keep = []  # shape arrays referenced by the descriptors

        def descs(arrays: list[np.ndarray]) -> ctypes.Array:
            out = (KilnTensor * len(arrays))()
            for t, a in zip(out, arrays, strict=True):
                shape = (ctypes.c_int64 * a.ndim)(*a.shape)
                self._keep.append(shape)
                t.dtype, t.rank, t.shape = KILN_DTYPES[a.dtype], a.ndim, shape
                t.data, t.byte_size = a.ctypes.data, a.nbytes
            return out

        self.in_desc, self.out_desc = descs(self.inputs), descs(self.outputs)
        self.n_in, self.n_out = len(self.inputs), len(self.outputs)

    def set_threads(self, n: int) -> None:
        self.check(self.lib.kiln_model_set_num_threads(self.model, n), "kiln_model_set_num_threads")

    def run(self) -> None:
        status = self.lib.kiln_model_run(self.model, self.in_desc, self.n_in, self.out_desc, self.n_out)
        if status != 0:
            self.check(status, "kiln_model_run")


class Ort:
    """An ONNX Runtime CPU session with its default graph optimizations (ORT_ENABLE_ALL)."""

    def open(self, path: str, threads: int, inputs: list[np.ndarray]) -> None:
        import onnxruntime as ort

        self.ort, self.path, self.inputs = ort, path, inputs
        self.set_threads(threads)

    def set_threads(self, n: int) -> None:
        ort = self.ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.binding = self.sess.io_binding()
        for i, a in zip(self.sess.get_inputs(), self.inputs, strict=True):
            self.binding.bind_cpu_input(i.name, a)
        self.outputs = []
        # Every suite model's outputs are float32; another type fails loudly in bind_output.
        for o in self.sess.get_outputs():
            arr = np.empty(o.shape, np.float32)
            self.binding.bind_output(o.name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
            self.outputs.append(arr)

    def run(self) -> None:
        self.sess.run_with_iobinding(self.binding)


def read_inputs(data_dir: Path) -> list[np.ndarray]:
    out, i = [], 0
    while (p := data_dir / f"input_{i}.pb").is_file():
        out.append(numpy_helper.to_array(onnx.load_tensor(str(p))))
        i += 1
    return out


def main() -> int:
    engine, path, data_dir, threads = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    inputs = read_inputs(data_dir)
    e = Kiln(sys.argv[sys.argv.index("--runtime-lib") + 1]) if engine == "kiln" else Ort()
    t0 = time.perf_counter_ns()
    e.open(path, threads, inputs)
    t1 = time.perf_counter_ns()
    e.run()
    t2 = time.perf_counter_ns()
    print(json.dumps({"open_ms": (t1 - t0) / 1e6, "first_run_ms": (t2 - t1) / 1e6}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "threads":
            e.set_threads(int(cmd["n"]))
            reply: dict = {"ok": True}
        elif op == "run":
            times, cpu_times = [], []
            clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
            stop = clock() + int(cmd["max_s"] * 1e9)
            for _ in range(int(cmd["max_runs"])):
                c = cpu_clock()  # outside the wall-clock window: a system call, not free
                t = clock()
                e.run()
                end = clock()
                cpu_times.append((cpu_clock() - c) / 1e6)
                times.append((end - t) / 1e6)
                if end >= stop:
                    break
            reply = {"ms": times, "cpu_ms": cpu_times}
        elif op == "save":
            np.savez(cmd["path"], *e.outputs)
            reply = {"ok": True}
        elif op == "quit":
            return 0
        else:
            raise SystemExit(f"worker: unknown op {op}")
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
