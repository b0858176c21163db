#!/usr/bin/env python3
"""Conformance: run the ONNX backend node tests through `kiln run`, compiled and interpreted.

    .venv/bin/python scripts/conformance.py              # run everything, print the per-op table
    .venv/bin/python scripts/conformance.py --check      # ... and fail (exit 1) on a regression
    .venv/bin/python scripts/conformance.py --bless      # rewrite the expectation lists and docs
    .venv/bin/python scripts/conformance.py --bless --allow-regressions   # ... even if tests regressed
    .venv/bin/python scripts/conformance.py --filter 'test_(relu|conv)' -j 2 --json out.json

What it does, in order:

1. Makes sure the node tests exist in the cache folder (default `.cache/onnx-node-tests`),
   regenerating them with `testdata/onnx_node_tests.py` when the folder is missing, was made by
   another onnx version or another generator, or `--regenerate` is given (about 4 s).
2. Decides from each model's types (declared and inferred, subgraphs and attributes included)
   whether the test is in scope. Kiln compiles tensor-typed inference graphs over its own
   dtypes; tests that need sequence, optional, map or sparse values, training ops
   (ai.onnx.preview.training, and BatchNormalization/Dropout in training mode) or a dtype
   outside Kiln's list are EXCLUDED, each with its
   reason, in `testdata/conformance/exclusions.txt`. Everything else counts in the denominator:
   an op Kiln lacks is "unsupported", not excluded.
3. Runs every counted test through `kiln run` three times: the compiled CPU path, the reference
   interpreter (`--interpret`) and the Vulkan path (`--target vulkan`, SPIR-V executed on the
   machine's Vulkan device: Mesa's lavapipe without a GPU), `-j` tests at a time, each with a
   timeout.
4. Compares with the suite's expected outputs like ONNX's backend test runner
   (`np.testing.assert_allclose(actual, expected, rtol, atol)` with the per-test tolerances
   from index.json; bfloat16 gets at least two ULPs of rtol as there), but stricter where the
   runner is loose: integers and bools must be equal, the output count, every dtype and every
   shape must match, NaN only matches NaN and an infinity only the same infinity.
5. Classifies each run (see `Status`; on the compiled and Vulkan paths a pass whose every output
   was a compile-time constant, so no generated code computed it, is "folded", not "passed"), prints
   a per-op table and totals, and with `--check` compares with the checked-in expectations:
   `testdata/conformance/expected-pass-{compiled,interp,vulkan}.txt` (tests that pass) and
   `testdata/conformance/known-failures.txt` (every other counted test, with its status and
   the reason).

`--bless` rewrites those files, but refuses (exit 1, naming the tests) when a test that passed
(or was folded) no longer does, unless `--allow-regressions` is given. It keeps the reason of a
known failure whose status did not change, so hand-written reasons survive; a new entry gets
Kiln's error message or the comparison's result as its reason.

Exit codes: 0 ok, 1 `--check` found a regression (or stale checked-in lists), or `--bless`
refused, 2 usage or setup error (no kiln binary, no `kiln run`, generator failed).

All assumptions about the `kiln` command line live in the "Kiln interface" section below.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, numpy_helper

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "testdata" / "onnx_node_tests.py"
DEFAULT_CACHE = REPO / ".cache" / "onnx-node-tests"
LISTS_DIR = REPO / "testdata" / "conformance"
DOCS_FILE = REPO / "docs" / "conformance.md"
README = REPO / "README.md"
README_BEGIN = "<!-- conformance:begin -->"
README_END = "<!-- conformance:end -->"
STAMP_NAME = ".conformance-stamp.json"

# The GPU path: every node test compiled for `--target vulkan` and run on the machine's Vulkan
# device (Mesa's lavapipe without a GPU; scripts/setup.sh installs it).
GPU_PATH = "vulkan"
# The default execution paths, by the short name used in files, JSON and options.
PATHS = ("compiled", "interp", GPU_PATH)
# The optional cross path: artifacts built for AArch64 and run under qemu-user, on a slice of the
# node tests and the bundled models (`--paths aarch64`, see `cross_slice` and `Cross`).
CROSS_PATH = "aarch64"
ALL_PATHS = PATHS + (CROSS_PATH,)
# Paths that run generated code, where a right answer that is a compile-time constant is "folded".
GENERATED_PATHS = ("compiled", GPU_PATH)
PATH_TITLES = {"compiled": "compiled", "interp": "interpreter", CROSS_PATH: "aarch64 (qemu)", GPU_PATH: "vulkan"}
MODELS_DIR = REPO / "testdata" / "models"
README_CROSS_BEGIN = "<!-- aarch64:begin -->"
README_CROSS_END = "<!-- aarch64:end -->"

# ---------------------------------------------------------------------------------------------
# Kiln interface: every assumption about the `kiln` command line is in this section.
# ---------------------------------------------------------------------------------------------

# `kiln`'s exit code for "the input uses a feature Kiln does not support" (cli/kiln/src/main.rs).
EXIT_UNSUPPORTED = 3


def kiln_run_argv(kiln: Path, model: Path, input_dir: Path, output_dir: Path, path: str) -> list[str]:
    """The command that runs `model` on the tensors in `input_dir` and writes its outputs as
    ONNX TensorProto files into `output_dir`; `path` picks compiled code or the interpreter.
    `-v` makes it log which outputs were computed at compile time (see `constant_outputs`)."""
    argv = [
        str(kiln),
        "-v",
        "run",
        str(model),
        "--input-dir",
        str(input_dir),
        "--output-dir",
        str(output_dir),
        "--output-format",
        "pb",
    ]
    if path == "interp":
        argv.append("--interpret")
    if path == GPU_PATH:
        argv += ["--target", "vulkan"]
    return argv


# The info line `kiln run -v` logs when outputs of the compiled model are constants after the
# graph passes (cli/kiln/src/cmd/run.rs): "... computed at compile time, not by generated code
# outputs=a, b".
CONSTANT_OUTPUTS_RE = re.compile(r"computed at compile time, not by generated code\s+outputs=(.*)$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def constant_outputs(stderr: str) -> list[str]:
    """Names of the outputs `kiln run -v` reports as computed at compile time."""
    for line in stderr.splitlines():
        m = CONSTANT_OUTPUTS_RE.search(ANSI_RE.sub("", line).rstrip())
        if m:
            return [n.strip() for n in m.group(1).split(",") if n.strip()]
    return []


def kiln_cross_compile_argv(
    kiln: Path, model: Path, obj: Path, shapes: Sequence[tuple[str, Sequence[int]]], cpu: str | None = None
) -> list[str]:
    """Compiles `model` for AArch64 (generic, or the given Arm CPU) into one relocatable object
    (descriptor `kiln_artifact`), with every input's shape fixed to the given one (dynamic extents
    take the test's shapes)."""
    target = "aarch64-linux-gnu" + (f":{cpu}" if cpu else "")
    argv = [str(kiln), "compile", str(model), f"--target={target}", "--emit=obj", "-o", str(obj)]
    for name, dims in shapes:
        argv += ["--input-shape", f"{name}={'x'.join(str(d) for d in dims)}"]
    return argv


def kiln_probe_argv(kiln: Path) -> list[str]:
    """A cheap command that succeeds only when the binary has the `run` subcommand."""
    return [str(kiln), "run", "--help"]


# Options `kiln_run_argv` uses; the probe's help text must mention each.
KILN_RUN_OPTIONS = ("--input-dir", "--output-dir", "--output-format", "--interpret")


def find_output_file(output_dir: Path, index: int, name: str, by_name: dict[str, Path]) -> Path | None:
    """The file `kiln run` wrote for graph output number `index` called `name`.

    Accepted, in this order: a .pb whose TensorProto.name is the output name (whatever the file
    is called), `output_<index>.pb` (the ONNX test-set layout), `<name>.pb`."""
    if name and name in by_name:
        return by_name[name]
    candidates = [output_dir / f"output_{index}.pb"]
    if name and "/" not in name and name not in (".", ".."):
        candidates.append(output_dir / f"{name}.pb")
    return next((c for c in candidates if c.is_file()), None)


def kiln_error_line(stderr: str) -> str:
    """The first line of `kiln: error: ...` output, without the prefix and the model path
    (the path differs per test; dropping it lets equal failures group together)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return ""
    idx = next((i for i, ln in enumerate(lines) if "error" in ln.lower() or "panicked at" in ln), 0)
    chosen = lines[idx]
    if "panicked at" in chosen:
        # The message is on the line after "thread 'main' panicked at file:line:col:".
        chosen = "panic: " + (lines[idx + 1] if idx + 1 < len(lines) else chosen)
    elif chosen.endswith(":") and idx + 1 < len(lines):
        # "...: 1 node(s) use unsupported operators:" / "invalid MLIR module:": the detail follows.
        chosen = f"{chosen} {lines[idx + 1]}"
    chosen = re.sub(r"^kiln: error: ", "", chosen)
    chosen = re.sub(r"^\S*model\.onnx:\s*", "", chosen)
    return chosen[:300]


# ---------------------------------------------------------------------------------------------
# Scope: which tests count, from the models' types.
# ---------------------------------------------------------------------------------------------

# Element types Kiln has a DType for (dialects/kiln-ir/src/dtype.rs); everything else in
# TensorProto.DataType (string, complex, float6, ...) is outside Kiln's list.
KILN_DTYPES = frozenset(
    {
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
        TensorProto.FLOAT16,
        TensorProto.BFLOAT16,
        TensorProto.FLOAT8E4M3FN,
        TensorProto.FLOAT8E5M2,
        TensorProto.INT64,
        TensorProto.INT32,
        TensorProto.INT16,
        TensorProto.INT8,
        TensorProto.INT4,
        TensorProto.UINT64,
        TensorProto.UINT32,
        TensorProto.UINT16,
        TensorProto.UINT8,
        TensorProto.UINT4,
        TensorProto.BOOL,
        TensorProto.FLOAT8E4M3FNUZ,
        TensorProto.FLOAT8E5M2FNUZ,
        TensorProto.FLOAT4E2M1,
        TensorProto.FLOAT8E8M0,
        TensorProto.INT2,
        TensorProto.UINT2,
    }
)
TRAINING_DOMAIN = "ai.onnx.preview.training"
# Integer attributes that name an element type (Cast.to, EyeLike.dtype, QuantizeLinear.output_dtype, ...).
DTYPE_ATTRIBUTES = frozenset({"to", "dtype", "output_dtype"})


def dtype_name(code: int) -> str:
    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return f"dtype#{code}"


@dataclasses.dataclass
class ModelTypes:
    """Everything type-like a model mentions."""

    kinds: set[str] = dataclasses.field(default_factory=set)  # non-tensor value kinds
    dtypes: set[int] = dataclasses.field(default_factory=set)
    ops: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (domain, op_type)
    inference_error: str | None = None  # why ONNX shape inference failed, if it did

    def add_type(self, tp: onnx.TypeProto) -> None:
        kind = tp.WhichOneof("value")
        if kind == "tensor_type":
            self._add_dtype(tp.tensor_type.elem_type)
        elif kind == "sequence_type":
            self.kinds.add("sequence")
            self.add_type(tp.sequence_type.elem_type)
        elif kind == "optional_type":
            self.kinds.add("optional")
            self.add_type(tp.optional_type.elem_type)
        elif kind == "map_type":
            self.kinds.add("map")
            self._add_dtype(tp.map_type.key_type)
            self.add_type(tp.map_type.value_type)
        elif kind == "sparse_tensor_type":
            self.kinds.add("sparse tensor")
            self._add_dtype(tp.sparse_tensor_type.elem_type)

    def _add_dtype(self, code: int) -> None:
        if code != TensorProto.UNDEFINED:
            self.dtypes.add(code)

    def add_graph(self, graph: onnx.GraphProto) -> None:
        for vi in (*graph.input, *graph.output, *graph.value_info):
            self.add_type(vi.type)
        for init in graph.initializer:
            self._add_dtype(init.data_type)
        if len(graph.sparse_initializer):
            self.kinds.add("sparse tensor")
        self.add_nodes(graph.node)

    def add_nodes(self, nodes: Iterable[onnx.NodeProto]) -> None:
        for node in nodes:
            self.ops.add((node.domain or "ai.onnx", node.op_type))
            for attr in node.attribute:
                self.add_attribute(attr)

    def add_attribute(self, attr: onnx.AttributeProto) -> None:
        A = onnx.AttributeProto
        if attr.type == A.GRAPH:
            self.add_graph(attr.g)
        elif attr.type == A.GRAPHS:
            for g in attr.graphs:
                self.add_graph(g)
        elif attr.type == A.TENSOR:
            self._add_dtype(attr.t.data_type)
        elif attr.type == A.TENSORS:
            for t in attr.tensors:
                self._add_dtype(t.data_type)
        elif attr.type in (A.SPARSE_TENSOR, A.SPARSE_TENSORS):
            self.kinds.add("sparse tensor")
        elif attr.type == A.TYPE_PROTO:
            self.add_type(attr.tp)
        elif attr.type == A.TYPE_PROTOS:
            for tp in attr.type_protos:
                self.add_type(tp)
        elif attr.type == A.STRINGS or attr.type == A.STRING:
            pass  # string *attributes* (modes, names) are fine; string *values* are not
        elif attr.type == A.INT and attr.name in DTYPE_ATTRIBUTES:
            self._add_dtype(attr.i)


def model_types(model: onnx.ModelProto) -> ModelTypes:
    """Declared types plus those ONNX shape inference derives for intermediate values."""
    types = ModelTypes()
    types.add_graph(model.graph)
    for fn in model.functions:
        types.add_nodes(fn.node)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        types.add_graph(inferred.graph)
    except Exception as e:  # noqa: BLE001 - inference is best effort; declared types still count
        types.inference_error = str(e)
    return types


def exclusion_reason(model: onnx.ModelProto) -> str | None:
    """Why a test is out of Kiln's scope, or None when it counts."""
    types = model_types(model)
    reasons = [f"{kind} type" for kind in sorted(types.kinds)]
    bad = sorted(dtype_name(d) for d in types.dtypes if d not in KILN_DTYPES)
    reasons += [f"dtype {name}" for name in bad]
    training = sorted(f"{d}::{op}" for d, op in types.ops if d == TRAINING_DOMAIN)
    reasons += [f"training op {name}" for name in training]
    reasons += [f"training-mode {op}" for op in training_mode_ops(model)]
    return "; ".join(reasons) if reasons else None


def training_mode_ops(model: onnx.ModelProto) -> list[str]:
    """Default-domain ops used in their training form: BatchNormalization with
    training_mode=1 (batch statistics, running-stat outputs) and Dropout with a
    training_mode operand that is not a constant false (random masks)."""
    consts = {t.name for t in model.graph.initializer}
    found = set()
    nodes = list(model.graph.node)
    for fn in model.functions:
        nodes += list(fn.node)
    for n in nodes:
        if n.domain not in ("", "ai.onnx"):
            continue
        if n.op_type == "BatchNormalization":
            if any(a.name == "training_mode" and a.i == 1 for a in n.attribute):
                found.add("BatchNormalization")
        elif n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]:
            init = next((t for t in model.graph.initializer if t.name == n.input[2]), None)
            if n.input[2] not in consts or init is None or onnx.numpy_helper.to_array(init).any():
                found.add("Dropout")
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Comparison.
# ---------------------------------------------------------------------------------------------


def load_tensor(path: Path) -> np.ndarray:
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _is_exact_kind(dtype: np.dtype) -> bool:
    """Integers, bools, and the ml_dtypes 2/4-bit integers (numpy kind 'V')."""
    return dtype.kind in "biu" or dtype.name in ("int4", "uint4", "int2", "uint2")


def compare_tensor(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when `actual` matches `expected`, else a one-line reason."""
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype.name}, expected {expected.dtype.name}"
    if actual.shape != expected.shape:
        return f"shape {list(actual.shape)}, expected {list(expected.shape)}"
    if actual.size == 0:
        return None
    if _is_exact_kind(expected.dtype):
        a = actual.astype(np.int64) if expected.dtype.kind != "u" else actual
        e = expected.astype(np.int64) if expected.dtype.kind != "u" else expected
        bad = a != e
        if not bad.any():
            return None
        i = np.unravel_index(np.argmax(bad), bad.shape)
        return f"{int(bad.sum())}/{bad.size} elements differ; at {list(map(int, i))}: {a[i]} vs {e[i]}"
    if expected.dtype.kind == "c":
        return f"complex dtype {expected.dtype.name} is not compared"
    if expected.dtype.name == "bfloat16":
        rtol = max(rtol, 2**-6)  # two bfloat16 ULPs, as ONNX's backend test runner allows
    try:
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
    except (TypeError, ValueError):
        return f"cannot compare dtype {expected.dtype.name}"
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    a_inf, e_inf = np.isinf(a), np.isinf(e)
    finite = ~(e_nan | e_inf | a_nan | a_inf)
    with np.errstate(all="ignore"):
        err = np.abs(a - e)
        tol = atol + rtol * np.abs(e)
    bad = (a_nan != e_nan) | ((a_inf | e_inf) & (a != e)) | (finite & ~(err <= tol))
    if not bad.any():
        return None
    i = np.unravel_index(np.argmax(bad), bad.shape)
    where = (
        f"{int(bad.sum())}/{bad.size} elements differ; at {list(map(int, i))}: {float(a[i]):.7g} vs {float(e[i]):.7g}"
    )
    if (finite & bad).any():
        worst = float(np.max(np.where(finite, err, 0.0)))
        return f"{where}; max abs err {worst:.3g} (rtol {rtol:g}, atol {atol:g})"
    return where


def compare_outputs(
    actual: Sequence[np.ndarray | None], expected: Sequence[np.ndarray], rtol: float, atol: float
) -> str | None:
    """None when every output matches; `actual[i] is None` means output i was not written."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a is None:
            return f"output {i}: not written"
        reason = compare_tensor(a, e, rtol, atol)
        if reason is not None:
            return f"output {i}: {reason}"
    return None


# ---------------------------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------------------------


class Status:
    PASSED = "passed"  # ran, every output matched
    # Compiled path only: every output matched, but every output was a constant after the graph
    # passes, so no generated code computed any of them (the shape of a static input, control
    # flow unrolled over given values and folded while importing).
    FOLDED = "folded"
    FAILED = "failed"  # ran (exit 0), wrong outputs: numbers, dtype, shape or count
    UNSUPPORTED = "unsupported"  # refused with exit code 3
    CRASHED = "crashed"  # any other non-zero exit, or killed by a signal
    TIMEOUT = "timeout"  # did not finish within the per-test timeout
    ALL = (PASSED, FOLDED, FAILED, UNSUPPORTED, CRASHED, TIMEOUT)
    # Statuses of a test that produced right answers: losing one is a regression.
    GOOD = (PASSED, FOLDED)


@dataclasses.dataclass
class RunResult:
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclasses.dataclass
class NodeTest:
    name: str
    dir: Path
    op: str  # the op under test, "domain::Op" for non-default domains
    rtol: float
    atol: float
    excluded: str | None  # reason, or None when the test counts
    output_names: list[str]
    data_sets: int
    input_names: list[str] = dataclasses.field(default_factory=list)
    # "node" (an ONNX node test) or "model" (a bundled model, run on the cross path only).
    kind: str = "node"
    # Whether the cross path runs it (see `cross_slice`).
    cross: bool = False
    # The Arm CPU the cross path compiles it for (None: generic AArch64).
    cpu: str | None = None
    results: dict[str, RunResult] = dataclasses.field(default_factory=dict)


def run_once(kiln: Path, test: NodeTest, path: str, timeout: float, cross: Cross | None = None) -> RunResult:
    """Runs every data set of `test` through one path; the first non-pass decides."""
    start = time.monotonic()
    for n in range(test.data_sets):
        data_dir = test.dir / f"test_data_set_{n}"
        with tempfile.TemporaryDirectory(prefix="kiln-conformance-") as tmp:
            out_dir = Path(tmp) / "out"
            out_dir.mkdir()
            if path == CROSS_PATH:
                assert cross is not None, "the cross path needs prepare_cross()"
                result = run_cross(kiln, test, data_dir, Path(tmp), timeout - (time.monotonic() - start), cross)
                stderr = ""
            else:
                argv = kiln_run_argv(kiln, test.dir / "model.onnx", data_dir, out_dir, path)
                result, stderr = _exec(argv, Path(tmp), timeout - (time.monotonic() - start))
            if result is None:
                result = _check_outputs(test, data_dir, out_dir)
                folded = constant_outputs(stderr)
                if (
                    result.status == Status.PASSED
                    and path in GENERATED_PATHS
                    and set(test.output_names) <= set(folded)
                ):
                    result = RunResult(Status.FOLDED, f"computed at compile time: {', '.join(folded)}")
            if result.status != Status.PASSED:
                if test.data_sets > 1:
                    result.detail = f"data set {n}: {result.detail}"
                result.seconds = time.monotonic() - start
                return result
    return RunResult(Status.PASSED, "", time.monotonic() - start)


def _exec(argv: list[str], cwd: Path, timeout: float) -> tuple[RunResult | None, str]:
    """Runs one command; (None, stderr) when it exited 0, else the classified failure."""
    env = dict(os.environ)
    env.pop("KILN_LOG", None)
    env["RUST_BACKTRACE"] = "0"
    # A new session, so a timeout kills the whole process group (a linker kiln started, too).
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return RunResult(Status.TIMEOUT, f"no result within {timeout:.0f} s"), ""
    stderr = ANSI_RE.sub("", err.decode("utf-8", "replace"))
    rc = proc.returncode
    if rc == 0:
        return None, stderr
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return RunResult(Status.CRASHED, f"killed by {name}: {kiln_error_line(stderr)}".rstrip(": ")), stderr
    if rc == EXIT_UNSUPPORTED:
        return RunResult(Status.UNSUPPORTED, kiln_error_line(stderr)), stderr
    return RunResult(Status.CRASHED, f"exit {rc}: {kiln_error_line(stderr)}"), stderr


def _check_outputs(test: NodeTest, data_dir: Path, out_dir: Path) -> RunResult:
    expected = [load_tensor(data_dir / f"output_{i}.pb") for i in range(len(test.output_names))]
    by_name: dict[str, Path] = {}
    written = sorted(out_dir.glob("*.pb"))
    for f in written:
        try:
            t = TensorProto()
            t.ParseFromString(f.read_bytes())
        except Exception as e:  # noqa: BLE001 - a malformed output file is a test failure
            return RunResult(Status.FAILED, f"{f.name}: not a TensorProto: {e}")
        if t.name:
            by_name.setdefault(t.name, f)
    actual: list[np.ndarray | None] = []
    used: set[Path] = set()
    for i, name in enumerate(test.output_names):
        f = find_output_file(out_dir, i, name, by_name)
        if f is None:
            actual.append(None)
            continue
        used.add(f)
        try:
            actual.append(load_tensor(f))
        except Exception as e:  # noqa: BLE001
            return RunResult(Status.FAILED, f"output {i} ({f.name}): unreadable: {e}")
    extra = [f.name for f in written if f not in used]
    if extra:
        return RunResult(Status.FAILED, f"{len(written)} outputs written, expected {len(expected)}: {extra}")
    reason = compare_outputs(actual, expected, test.rtol, test.atol)
    return RunResult(Status.PASSED if reason is None else Status.FAILED, reason or "")


# ---------------------------------------------------------------------------------------------
# The cross path: AArch64 artifacts under qemu-user.
# ---------------------------------------------------------------------------------------------

CROSS_RUNNER_SRC = REPO / "testdata" / "cross" / "kiln_runner.c"
CROSS_SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross / libc6-dev-arm64-cross
CROSS_CLANG = ["clang-22", "--target=aarch64-linux-gnu"]
CROSS_QEMU = "qemu-aarch64"
CROSS_THREADS = 2


def default_cross_runtime() -> Path:
    """Where `cargo build -p kiln-runtime-c --profile runtime-release --target
    aarch64-unknown-linux-gnu` puts the C runtime's static library."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "aarch64-unknown-linux-gnu" / "runtime-release" / "libkiln_runtime.a"


@dataclasses.dataclass
class Cross:
    """What the cross path links and runs with (scripts/setup.sh installs the tools)."""

    runtime: Path  # libkiln_runtime.a built for AArch64
    runner: Path  # testdata/cross/kiln_runner.c compiled for AArch64


def prepare_cross(runtime: Path, work: Path) -> Cross:
    """Checks the cross tools and compiles the runner once; SetupError naming what is missing."""
    missing = [t for t in (CROSS_CLANG[0], CROSS_QEMU) if shutil.which(t) is None]
    if missing:
        raise SetupError(f"the aarch64 path needs {', '.join(missing)} (scripts/setup.sh installs them)")
    if not (CROSS_SYSROOT / "lib" / "ld-linux-aarch64.so.1").is_file():
        raise SetupError(f"no AArch64 C library under {CROSS_SYSROOT} (apt-get install libc6-dev-arm64-cross)")
    if not runtime.is_file():
        raise SetupError(
            f"no AArch64 runtime at {runtime}: build it with scripts/cross-runtime.sh (or pass --cross-runtime)"
        )
    runner = work / "kiln_runner.o"
    cmd = [*CROSS_CLANG, "-O2", "-I", str(REPO / "runtime" / "include"), "-c", str(CROSS_RUNNER_SRC), "-o", str(runner)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"compiling {rel(CROSS_RUNNER_SRC)} for AArch64 failed: {proc.stderr[:500]}")
    return Cross(runtime=runtime, runner=runner)


def _numpy_dtype(code: int) -> np.dtype | None:
    """The numpy dtype of a `kiln_dtype` code (kiln.h), for reading outputs back; None for the
    packed 4-bit types."""
    import ml_dtypes

    table = {
        1: np.float64,
        2: np.float32,
        3: np.float16,
        4: ml_dtypes.bfloat16,
        5: ml_dtypes.float8_e4m3fn,
        6: ml_dtypes.float8_e5m2,
        8: np.int64,
        9: np.int32,
        10: np.int16,
        11: np.int8,
        13: np.uint64,
        14: np.uint32,
        15: np.uint16,
        16: np.uint8,
        18: np.bool_,
    }
    return np.dtype(table[code]) if code in table else None


def run_cross(kiln: Path, test: NodeTest, data_dir: Path, tmp: Path, timeout: float, cross: Cross) -> RunResult | None:
    """Compiles `test` for AArch64, links it with the runner and the AArch64 runtime, runs it
    under qemu-user and writes its outputs as `tmp/out/output_<i>.pb`. None when that worked
    (the caller compares), else the classified failure."""
    start = time.monotonic()
    inputs = [load_tensor(data_dir / f"input_{i}.pb") for i in range(len(test.input_names))]
    obj, exe = tmp / "model.o", tmp / "run"
    shapes = [(n, a.shape) for n, a in zip(test.input_names, inputs)]
    result, _ = _exec(kiln_cross_compile_argv(kiln, test.dir / "model.onnx", obj, shapes, test.cpu), tmp, timeout)
    if result is not None:
        return result
    link = [*CROSS_CLANG, "-fuse-ld=lld", str(cross.runner), str(obj), str(cross.runtime), "-lm", "-lpthread", "-ldl"]
    result, err = _exec([*link, "-o", str(exe)], tmp, timeout - (time.monotonic() - start))
    if result is not None:
        return RunResult(Status.CRASHED if result.status != Status.TIMEOUT else result.status, f"link: {err.strip()[:300]}")
    in_dir, raw = tmp / "in", tmp / "raw"
    in_dir.mkdir()
    raw.mkdir()
    for i, a in enumerate(inputs):
        (in_dir / f"input_{i}.bin").write_bytes(np.ascontiguousarray(a).tobytes())
    run = [CROSS_QEMU, "-L", str(CROSS_SYSROOT), str(exe), str(in_dir), str(raw), str(CROSS_THREADS)]
    result, err = _exec(run, tmp, timeout - (time.monotonic() - start))
    if result is not None:
        if result.status == Status.UNSUPPORTED:  # the runner never exits 3 on purpose
            result.status = Status.CRASHED
        return result
    for i, line in enumerate((raw / "outputs.txt").read_text().splitlines()):
        name, code, rank, *dims = line.split(" ")
        dtype = _numpy_dtype(int(code))
        if dtype is None or len(dims) != int(rank):
            return RunResult(Status.FAILED, f"output {i}: cannot read back {line!r}")
        a = np.frombuffer((raw / f"output_{i}.bin").read_bytes(), dtype=dtype).reshape([int(d) for d in dims])
        (tmp / "out" / f"output_{i}.pb").write_bytes(numpy_helper.from_array(a, name).SerializeToString())
    return None


# Node tests on the cross path: the ops the kernels and the optimizer handle, with float inputs
# only (so no input needs specializing: `kiln compile` gets the test's shapes and nothing else),
# not the function-expanded variants, and a stable sample by name (crc32): half of the
# contraction, pooling, normalization and attention tests, a quarter of the elementwise ones.
CROSS_CORE_OPS = frozenset(
    "Conv ConvTranspose MatMul Gemm Softmax LogSoftmax LayerNormalization RMSNormalization "
    "BatchNormalization InstanceNormalization GroupNormalization MaxPool AveragePool "
    "GlobalAveragePool Attention Einsum LRN".split()
)
CROSS_ELEMENTWISE_OPS = frozenset(
    "Relu Sigmoid Tanh Gelu Add Sub Mul Div Exp Log Sqrt Pow Erf Transpose Concat LeakyRelu Elu "
    "HardSwish Clip Softplus Mish Swish Max Min Sum Mean Abs Neg HardSigmoid Selu Celu PRelu Where "
    "CumSum".split()
)
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


def cross_slice(name: str, entry: dict, model: onnx.ModelProto) -> bool:
    """Whether the cross path runs this node test (see above)."""
    if entry.get("expanded"):
        return False
    ops = {o.split("::")[-1] for o in entry["ops"]}
    core = bool(ops & CROSS_CORE_OPS)
    if not ops <= CROSS_CORE_OPS | CROSS_ELEMENTWISE_OPS:
        return False
    inits = {i.name for i in model.graph.initializer}
    if any(i.type.tensor_type.elem_type not in FLOAT_TYPES for i in model.graph.input if i.name not in inits):
        return False
    return zlib.crc32(name.encode()) % (2 if core else 4) == 0


def load_kernel_models(work: Path) -> list[NodeTest]:
    """Quantized models made by `testdata/cross/kernel_models.py` (ONNX Runtime's quantizers and
    outputs), compiled for an Arm CPU with the dot-product extension: the int8 (SDOT) and 4-bit
    kernels run under qemu-user."""
    sys.path.insert(0, str(REPO / "testdata" / "cross"))
    import kernel_models

    out = []
    for m in kernel_models.write(work / "kernel-models"):
        out.append(
            NodeTest(
                name=m.name,
                dir=m.dir,
                op="(kernel models)",
                rtol=m.rtol,
                atol=m.atol,
                excluded=None,
                output_names=["y"],
                data_sets=1,
                input_names=["x"],
                kind="model",
                cross=True,
                cpu=m.cpu,
            )
        )
    return out


def load_models(models_dir: Path = MODELS_DIR) -> list[NodeTest]:
    """The bundled models (`testdata/models/*/model.onnx` with ONNX Runtime's outputs in
    test_data_set_0), as tests for the cross path."""
    out = []
    for d in sorted(p for p in models_dir.iterdir() if (p / "model.onnx").is_file()):
        model = onnx.load(str(d / "model.onnx"), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        out.append(
            NodeTest(
                name=f"model_{d.name}",
                dir=d,
                op="(bundled models)",
                rtol=1e-3,
                atol=1e-5,
                excluded=None,
                output_names=[o.name for o in model.graph.output],
                data_sets=1,
                input_names=[i.name for i in model.graph.input if i.name not in inits],
                kind="model",
                cross=True,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The suite.
# ---------------------------------------------------------------------------------------------


def rel(path: Path) -> str:
    """`path` relative to the repository when it is inside it (shorter messages)."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_suite(cache: Path, regenerate: bool) -> dict:
    """The cache's index.json, regenerating the cache when it is missing or stale."""
    stamp = {"onnx_version": onnx.__version__, "generator_sha256": _file_sha256(GENERATOR)}
    stamp_file = cache / STAMP_NAME
    current = None
    if stamp_file.is_file() and (cache / "index.json").is_file():
        try:
            current = json.loads(stamp_file.read_text())
        except ValueError:
            current = None
    if regenerate or current != stamp:
        print(f"conformance: generating the ONNX node tests into {cache} ...", file=sys.stderr)
        proc = subprocess.run([sys.executable, str(GENERATOR), str(cache), "--clean"], check=False, stdout=sys.stderr)
        if proc.returncode != 0:
            raise SetupError(f"{GENERATOR} failed with exit code {proc.returncode}")
        stamp_file.write_text(json.dumps(stamp, sort_keys=True) + "\n")
    index = json.loads((cache / "index.json").read_text())
    if index.get("op_type_filter"):
        raise SetupError(f"{cache}/index.json holds only {index['op_type_filter']} tests; use --regenerate")
    return index


def vulkan_device_problem() -> str | None:
    """Why the Vulkan path cannot run here (no loader or no ICD), or None."""
    loaders = [Path(d) / "libvulkan.so.1" for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")]
    if not any(p.exists() for p in loaders):
        return "no Vulkan loader (libvulkan.so.1)"
    icd_dirs = [Path(d) for d in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d")]
    if os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES"):
        return None
    if not any(d.is_dir() and any(d.glob("*.json")) for d in icd_dirs):
        return "no Vulkan driver (ICD) in /usr/share/vulkan/icd.d"
    return None


def check_vulkan_device() -> None:
    problem = vulkan_device_problem()
    if problem:
        raise SetupError(
            f"the {GPU_PATH} path needs a Vulkan device: {problem}; install Mesa's lavapipe "
            "(scripts/setup.sh: mesa-vulkan-drivers libvulkan1) or leave it out with --paths compiled,interp"
        )


class SetupError(Exception):
    pass


def op_under_test(name: str, entry: dict, tests: dict) -> str:
    """The op a test is about: its only node's op, or for `<base>_expanded[...]` the op of
    `<base>` (the expanded graph holds the function body's ops instead)."""
    ops = entry["ops"]
    if entry.get("expanded"):
        base = re.sub(r"_expanded.*$", "", name)
        if base in tests:
            ops = tests[base]["ops"]
    label = ops[0] if len(ops) == 1 else "+".join(ops)
    return label.removeprefix("ai.onnx::")


def load_tests(cache: Path, index: dict, pattern: re.Pattern | None) -> list[NodeTest]:
    tests = index["tests"]
    out = []
    for name in sorted(tests):
        if pattern is not None and not pattern.search(name):
            continue
        entry = tests[name]
        model = onnx.load(str(cache / name / "model.onnx"), load_external_data=False)
        excluded = exclusion_reason(model)
        inits = {i.name for i in model.graph.initializer}
        out.append(
            NodeTest(
                name=name,
                dir=cache / name,
                op=op_under_test(name, entry, tests),
                rtol=float(entry.get("rtol", 1e-3)),
                atol=float(entry.get("atol", 1e-7)),
                excluded=excluded,
                output_names=[o.name for o in model.graph.output],
                data_sets=int(entry.get("data_sets", 1)),
                input_names=[i.name for i in model.graph.input if i.name not in inits],
                cross=excluded is None and cross_slice(name, entry, model),
            )
        )
    return out


def runs_on(test: NodeTest, path: str) -> bool:
    """Node tests run on the default paths; the cross path runs its slice and the bundled models."""
    if test.excluded is not None:
        return False
    return test.cross if path == CROSS_PATH else test.kind == "node"


def run_suite(
    kiln: Path, tests: list[NodeTest], paths: Sequence[str], jobs: int, timeout: float, cross: Cross | None = None
) -> float:
    """Runs every counted test on every path it belongs to; returns the wall time in seconds."""
    work = [(t, p) for t in tests for p in paths if runs_on(t, p)]
    done = 0
    lock = threading.Lock()
    start = time.monotonic()
    last_report = start

    def one(item: tuple[NodeTest, str]) -> None:
        nonlocal done, last_report
        test, path = item
        try:
            result = run_once(kiln, test, path, timeout, cross)
        except Exception as e:  # noqa: BLE001 - a runner bug must not hide the other results
            result = RunResult(Status.CRASHED, f"runner error: {type(e).__name__}: {e}")
        with lock:
            test.results[path] = result
            done += 1
            now = time.monotonic()
            if sys.stderr.isatty() or now - last_report >= 30 or done == len(work):
                last_report = now
                end = "\n" if not sys.stderr.isatty() or done == len(work) else "\r"
                print(f"conformance: {done}/{len(work)} runs, {now - start:.0f} s", end=end, file=sys.stderr)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, work))
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------------------------


def passed(test: NodeTest, path: str) -> bool:
    r = test.results.get(path)
    return r is not None and r.status == Status.PASSED


# The per-op table's result columns: passes on each path, and on the paths that run generated
# code also the folded passes (right answers that no generated code computed), in their own column.
def table_columns(paths: Sequence[str]) -> list[tuple[tuple[str, str], str]]:
    """((path, status), title) for each per-op result column."""
    cols = []
    for p in paths:
        cols.append(((p, Status.PASSED), PATH_TITLES[p]))
        if p in GENERATED_PATHS:
            cols.append(((p, Status.FOLDED), "folded" if p == "compiled" else f"{PATH_TITLES[p]} folded"))
    return cols


def op_rows(tests: list[NodeTest], paths: Sequence[str]) -> list[tuple[str, int, int, dict[tuple[str, str], int]]]:
    """(op, counted tests, excluded tests, count per (path, status) column), sorted by op."""
    rows: dict[str, list] = {}
    cols = [key for key, _ in table_columns(paths)]
    for t in tests:
        row = rows.setdefault(t.op, [0, 0, collections.Counter()])
        if t.excluded is not None:
            row[1] += 1
            continue
        row[0] += 1
        for p, status in cols:
            r = t.results.get(p)
            row[2][(p, status)] += r is not None and r.status == status
    return [(op, n, x, dict(c)) for op, (n, x, c) in sorted(rows.items(), key=lambda kv: kv[0].lower())]


def totals(tests: list[NodeTest], paths: Sequence[str]) -> dict:
    counted = [t for t in tests if t.excluded is None]
    out = {"tests": len(tests), "excluded": len(tests) - len(counted), "counted": len(counted)}
    for p in paths:
        c = collections.Counter(t.results[p].status for t in counted if p in t.results)
        out[p] = {s: c.get(s, 0) for s in Status.ALL}
        out[p]["run"] = sum(c.values())
    return out


def print_table(tests: list[NodeTest], paths: Sequence[str], file=sys.stdout) -> None:
    rows = op_rows(tests, paths)
    width = max([len("op")] + [len(r[0]) for r in rows])
    cols = table_columns(paths)
    head = f"{'op':<{width}}  {'tests':>5}  {'excl':>4}" + "".join(f"  {title:>11}" for _, title in cols)
    print(head, file=file)
    print("-" * len(head), file=file)
    for op, n, x, c in rows:
        cells = "".join(f"  {c.get(key, 0):>11}" for key, _ in cols)
        print(f"{op:<{width}}  {n:>5}  {x:>4}{cells}", file=file)


def print_totals(tests: list[NodeTest], paths: Sequence[str], elapsed: float, file=sys.stdout) -> None:
    tot = totals(tests, paths)
    print(f"\n{tot['tests']} tests: {tot['counted']} counted, {tot['excluded']} excluded", file=file)
    for p in paths:
        c = tot[p]
        pct = 100.0 * c[Status.PASSED] / c["run"] if c["run"] else 0.0
        rest = ", ".join(f"{c[s]} {s}" for s in Status.ALL[1:])
        print(f"{PATH_TITLES[p]:>11}: {c['run']} run, {c[Status.PASSED]} passed ({pct:.1f}%), {rest}", file=file)
    if GPU_PATH in paths:
        cpu = read_names(list_file("compiled")) if list_file("compiled").is_file() else set()
        ran = [t for t in tests if t.name in cpu and GPU_PATH in t.results]
        ok = sum(t.results[GPU_PATH].status == Status.PASSED for t in ran)
        pct = 100.0 * ok / len(ran) if ran else 0.0
        print(f"{PATH_TITLES[GPU_PATH]:>11}: {ok} of the {len(ran)} tests run that pass compiled for the CPU "
              f"(expected-pass-compiled.txt) pass ({pct:.1f}%)", file=file)
    print(f"wall time {elapsed:.0f} s", file=file)


def _reason_key(detail: str) -> str:
    """Groups similar failure details: numbers, node indices and quoted names are blanked."""
    # "model: 2 node(s) use unsupported operators: CastLike-23 (...): 2 node(s): #0, #3" -> the op.
    key = re.sub(r"^model: \d+ node\(s\) use unsupported operators: (\S+?)-\d+ \((.*?)\).*", r"\2: \1", detail)
    key = re.sub(r"#\d+", "#N", key)
    key = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "'…'", key)
    key = re.sub(r"(?<![A-Za-z_\d-])-?\d+(\.\d+)?(e[-+]?\d+)?", "N", key)
    return key[:160]


def print_reasons(tests: list[NodeTest], paths: Sequence[str], top: int, file=sys.stdout) -> None:
    if top <= 0:
        return
    for p in paths:
        counter: collections.Counter = collections.Counter()
        for t in tests:
            r = t.results.get(p)
            if r is not None and r.status != Status.PASSED:
                counter[(r.status, _reason_key(r.detail))] += 1
        if not counter:
            continue
        print(f"\nmost common {PATH_TITLES[p]} non-passes:", file=file)
        for (status, key), n in counter.most_common(top):
            print(f"  {n:>5}  {status:<11} {key}", file=file)


def results_json(tests: list[NodeTest], paths: Sequence[str], kiln: Path, elapsed: float) -> dict:
    return {
        "onnx_version": onnx.__version__,
        "kiln": str(kiln),
        "paths": list(paths),
        "wall_seconds": round(elapsed, 2),
        "totals": totals(tests, paths),
        "tests": {
            t.name: {
                "op": t.op,
                "excluded": t.excluded,
                **{
                    p: dataclasses.asdict(t.results[p]) | {"seconds": round(t.results[p].seconds, 3)}
                    for p in paths
                    if p in t.results
                },
            }
            for t in tests
        },
    }


def markdown_report(tests: list[NodeTest], paths: Sequence[str]) -> str:
    """The conformance section: totals and the per-op table, without timestamps (stable diffs)."""
    tot = totals(tests, paths)
    lines = [
        (
            f"ONNX backend node tests (onnx {onnx.__version__}) through `kiln run`, "
            "generated by `scripts/conformance.py --bless`."
        ),
        "",
        (
            f"{tot['tests']} tests: {tot['counted']} counted, {tot['excluded']} excluded "
            "(sequence/optional/map/string types, training ops, dtypes outside Kiln's list; "
            "reasons in `testdata/conformance/exclusions.txt`)."
        ),
        "",
        (
            "\"folded\": right answers computed at compile time, every output a constant after the "
            "graph passes, so no generated code ran (compiled and Vulkan paths; not counted as passed). "
            "Every test that does not pass is listed with its reason in "
            "`testdata/conformance/known-failures.txt`."
        ),
        "",
        "| path | passed | folded | failed | unsupported | crashed | timeout |",
        "|------|-------:|-------:|-------:|------------:|--------:|--------:|",
    ]
    for p in paths:
        c = tot[p]
        pct = 100.0 * c[Status.PASSED] / tot["counted"] if tot["counted"] else 0.0
        lines.append(
            f"| {PATH_TITLES[p]} | {c[Status.PASSED]} ({pct:.1f}%) | {c[Status.FOLDED]} | {c[Status.FAILED]} | "
            f"{c[Status.UNSUPPORTED]} | {c[Status.CRASHED]} | {c[Status.TIMEOUT]} |"
        )
    if GPU_PATH in paths and "compiled" in paths:
        cpu = [t for t in tests if passed(t, "compiled") and GPU_PATH in t.results]
        ok = sum(passed(t, GPU_PATH) for t in cpu)
        pct = 100.0 * ok / len(cpu) if cpu else 0.0
        lines += [
            "",
            (
                f"Vulkan (`kiln run --target vulkan`, SPIR-V run on Mesa's lavapipe): {ok} of the {len(cpu)} "
                f"tests that pass compiled for the CPU pass ({pct:.1f}%); the others are listed in "
                "`known-failures.txt` with their reasons."
            ),
        ]
    cols = table_columns(paths)
    lines += [
        "",
        "<details><summary>Per op: counted tests, and how many pass on each path</summary>",
        "",
        "| op | tests | excluded | " + " | ".join(title for _, title in cols) + " |",
        "|----|------:|---------:|" + "|".join("------:" for _ in cols) + "|",
    ]
    for op, n, x, c in op_rows(tests, paths):
        lines.append(f"| {op} | {n} | {x} | " + " | ".join(str(c.get(key, 0)) for key, _ in cols) + " |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


# Written above the generated report in docs/conformance.md (not into the README).
DOCS_PREAMBLE = """\
How to read and rerun these numbers:

- `scripts/test.sh` runs `scripts/conformance.py --check` after the cargo tests, with the debug
  `kiln` that `cargo build --workspace` just built: it fails when a test listed in
  `testdata/conformance/expected-pass-{compiled,interp,vulkan}.txt` stops passing, or when a test that
  does not pass no longer fails the way `testdata/conformance/known-failures.txt` records (every
  counted test that does not pass is there, with its status and the reason). After a change that
  makes tests pass, `scripts/conformance.py --bless` rewrites those lists, this page and the
  README table; it refuses when a test that passed no longer does, unless `--allow-regressions`
  is given. Reasons in `known-failures.txt` are kept while a test's status stays the same, so
  write them by hand where Kiln's message is not the explanation.
- "folded" (compiled and Vulkan paths): the answers were right, but every output was a constant after the
  graph passes, so no generated code computed them (`kiln run -v` logs such outputs). These are
  not counted as passed; `--check` treats a test in `expected-pass-compiled.txt` (or
  `-vulkan.txt`) that becomes folded as a regression, so those columns only count runs of
  generated code.
  Specialized inputs (below) are folded only where their values are needed at compile time:
  `fold-constants` leaves the data path they feed (a Range's values, a ConstantOfShape's fill)
  to generated code.
- Each test runs `kiln run model.onnx --input-dir test_data_set_N --output-format pb`, once
  compiled, once with `--interpret` and once with `--target vulkan` (the model compiled to
  SPIR-V compute kernels and a host part that launches them, run through the Vulkan loader on
  the machine's device: Mesa's lavapipe, a CPU implementation of Vulkan, where there is no GPU;
  `scripts/setup.sh` installs it). On the compiled path the temporary artifact is
  specialized to the test's inputs: inputs whose values decide shapes (Reshape's shape, reduction
  axes, Slice's starts, TopK's k, ...: the ops' `static_operands`) are compiled in as constants,
  and dynamic input extents take the given shapes. A deployed artifact (`kiln compile`) keeps
  them as inputs unless `--freeze-input NAME=PATH` is given.
- Control flow (`If`, `Loop`, `Scan`) is expanded while importing. Where a trip count, a
  condition or a compile-time operand depends on graph inputs (`test_loop11`'s trip count,
  `test_if`'s condition, the Range `_expanded` tests' limits), `kiln run` imports again with the
  given values of exactly those inputs compiled in, on both paths; `kiln compile` asks for them
  by name (`--freeze-input`).
- `--paths aarch64` (in `scripts/test.sh` after `scripts/cross-runtime.sh`): each test of a slice
  (`cross_slice`: contraction, pooling, normalization, attention and elementwise node tests with
  float inputs, sampled by name) and each bundled model is compiled with `kiln compile
  --target=aarch64-linux-gnu --emit=obj` (every input's shape given), linked with the C runtime
  cross-built for AArch64 and `testdata/cross/kiln_runner.c`, run under qemu-user at 2 threads,
  and compared like the other paths (`expected-pass-aarch64.txt`); its results are the README's
  AArch64 paragraph. The `kernel_*` tests (`testdata/cross/kernel_models.py`: MLPs quantized by
  ONNX Runtime's `quantize_dynamic` and `MatMulNBitsQuantizer`, batch 1 and 5, with ONNX
  Runtime's outputs) are compiled for `aarch64-linux-gnu:cortex-a55`, which has the dot-product
  extension, so the int8 kernels run on SDOT and the 4-bit ones on NEON.
- "unsupported" is `kiln` exiting with code 3 (an op, dtype or case Kiln refuses on purpose);
  "crashed" is any other failure exit (1 internal, 2 invalid input, 4 resource) or a signal;
  "failed" ran but gave wrong outputs.

"""


def write_docs(tests: list[NodeTest], paths: Sequence[str]) -> None:
    body = markdown_report(tests, paths)
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text("# Conformance\n\n" + DOCS_PREAMBLE + body)
    print(f"conformance: wrote {rel(DOCS_FILE)}", file=sys.stderr)
    if README.is_file():
        text = README.read_text()
        b, e = text.find(README_BEGIN), text.find(README_END)
        if 0 <= b < e:
            text = text[: b + len(README_BEGIN)] + "\n" + body + text[e:]
            README.write_text(text)
            print(f"conformance: updated the conformance section of {README.name}", file=sys.stderr)


def cross_report(tests: list[NodeTest]) -> str:
    """The README's AArch64 paragraph: how the cross path runs, what it ran, what did not pass."""
    ran = [t for t in tests if CROSS_PATH in t.results]
    lines = [
        (
            f"AArch64: artifacts built with `--target=aarch64-linux-gnu --emit=obj`, linked with the C runtime "
            f"built for AArch64 and `testdata/cross/kiln_runner.c`, run under qemu-user ({CROSS_THREADS} threads) "
            "and compared with the same expected outputs as on x86-64 (`scripts/conformance.py --paths aarch64`, "
            "in `scripts/test.sh`). The slice: the bundled models and the node tests of contractions, pools, "
            "normalizations, attention and elementwise ops with float inputs (`cross_slice`)."
        ),
        "",
        "| tests | run | passed | failed | unsupported | crashed | timeout |",
        "|-------|----:|-------:|-------:|------------:|--------:|--------:|",
    ]
    for kind, title in (("model", "bundled models"), ("node", "node tests (slice)")):
        c = collections.Counter(t.results[CROSS_PATH].status for t in ran if t.kind == kind)
        lines.append(
            f"| {title} | {sum(c.values())} | {c[Status.PASSED]} | {c[Status.FAILED]} | "
            f"{c[Status.UNSUPPORTED]} | {c[Status.CRASHED]} | {c[Status.TIMEOUT]} |"
        )
    bad = [t for t in ran if t.results[CROSS_PATH].status != Status.PASSED]
    if bad:
        lines += ["", "Not passing (reasons in `testdata/conformance/known-failures.txt`): "
                  + ", ".join(f"`{t.name}` ({t.results[CROSS_PATH].status})" for t in bad) + "."]
    return "\n".join(lines) + "\n"


def write_cross_docs(tests: list[NodeTest]) -> None:
    if not README.is_file():
        return
    text = README.read_text()
    b, e = text.find(README_CROSS_BEGIN), text.find(README_CROSS_END)
    if 0 <= b < e:
        text = text[: b + len(README_CROSS_BEGIN)] + "\n" + cross_report(tests) + text[e:]
        README.write_text(text)
        print(f"conformance: updated the AArch64 paragraph of {README.name}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Expectation lists.
# ---------------------------------------------------------------------------------------------


def list_file(path: str) -> Path:
    return LISTS_DIR / f"expected-pass-{path}.txt"


EXCLUSIONS_FILE = LISTS_DIR / "exclusions.txt"


def read_names(file: Path) -> set[str]:
    if not file.is_file():
        return set()
    return {ln.split("\t")[0].strip() for ln in file.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


def write_pass_list(file: Path, path: str, names: Iterable[str]) -> None:
    header = (
        f"# ONNX node tests that pass on Kiln's {PATH_TITLES[path]} path (`kiln run"
        f"{' --interpret' if path == 'interp' else ''}`).\n"
        "# `scripts/conformance.py --check` fails when one of them stops passing;\n"
        "# `scripts/conformance.py --bless` rewrites this file from a run. One test per line, sorted.\n"
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(header + "".join(f"{n}\n" for n in sorted(names)))


def exclusions_text(tests: list[NodeTest]) -> str:
    header = (
        f"# ONNX node tests (onnx {onnx.__version__}) outside Kiln's scope, with the reason: Kiln runs\n"
        "# tensor-typed inference graphs over its own dtypes. Generated from the models' types by\n"
        "# `scripts/conformance.py --bless`; `--check` fails when this file is out of date.\n"
        "# test<TAB>reason\n"
    )
    return header + "".join(f"{t.name}\t{t.excluded}\n" for t in sorted(tests, key=lambda t: t.name) if t.excluded)


def known_failures_file() -> Path:
    return LISTS_DIR / "known-failures.txt"


@dataclasses.dataclass(frozen=True)
class Known:
    """A checked-in known failure: the status it has and why."""

    status: str
    reason: str


def read_known(file: Path) -> dict[tuple[str, str], Known]:
    """(test, path) -> Known, from `test<TAB>path<TAB>status<TAB>reason` lines."""
    out: dict[tuple[str, str], Known] = {}
    if not file.is_file():
        return out
    for ln in file.read_text().splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        parts = ln.split("\t", 3)
        if len(parts) != 4 or parts[1] not in ALL_PATHS or parts[2] not in Status.ALL or parts[2] == Status.PASSED:
            raise SetupError(f"{rel(file)}: malformed line (want test<TAB>path<TAB>status<TAB>reason): {ln!r}")
        out[(parts[0], parts[1])] = Known(parts[2], parts[3])
    return out


def known_text(entries: dict[tuple[str, str], Known]) -> str:
    header = (
        "# Counted ONNX node tests that do not pass on a path, with the status they have and why.\n"
        "# `scripts/conformance.py --check` fails when a test's status differs from this file (or from\n"
        "# expected-pass-*.txt); `--bless` rewrites it, keeping the reason of every entry whose status\n"
        "# did not change, so edit reasons by hand: a new entry's reason is Kiln's message or the\n"
        "# comparison's result. \"folded\" = right answers computed at compile time (no generated code).\n"
        "# test<TAB>path<TAB>status<TAB>reason\n"
    )
    lines = [f"{t}\t{p}\t{k.status}\t{k.reason}\n" for (t, p), k in sorted(entries.items())]
    return header + "".join(lines)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip() or "(no message)"


def auto_reason(result: RunResult) -> str:
    """The reason a new known failure gets: what the run said."""
    return _one_line(result.detail)


@dataclasses.dataclass
class Comparison:
    """How a run compares with the checked-in expectations."""

    regressions: list[str] = dataclasses.field(default_factory=list)  # lost a right answer
    changed: list[str] = dataclasses.field(default_factory=list)  # another way of not passing
    unlisted: list[str] = dataclasses.field(default_factory=list)  # not passing, not listed
    improved: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, test)
    stale: list[str] = dataclasses.field(default_factory=list)  # entries naming no counted test


def compare_expectations(
    tests: list[NodeTest], paths: Sequence[str], full_run: bool, pattern: re.Pattern | None
) -> Comparison:
    cmp = Comparison()
    by_name = {t.name: t for t in tests}
    known = read_known(known_failures_file())
    for p in paths:
        title = PATH_TITLES[p]
        listed = read_names(list_file(p))
        for t in tests:
            if t.excluded is not None or p not in t.results:
                continue
            r = t.results[p]
            cur = r.status
            if t.name in listed:
                expected = Status.PASSED
            elif (t.name, p) in known:
                expected = known[(t.name, p)].status
            else:
                expected = None
            if cur == expected:
                continue
            line = f"{t.name}: {cur}: {r.detail}" if r.detail else f"{t.name}: {cur}"
            if expected in Status.GOOD and (cur not in Status.GOOD or expected == Status.PASSED):
                cmp.regressions.append(f"REGRESSION ({title}): {line} (was {expected})")
            elif cur in Status.GOOD:
                cmp.improved.append((p, t.name))
            elif expected is None:
                cmp.unlisted.append(f"NOT LISTED ({title}): {line}")
            else:
                cmp.changed.append(f"CHANGED ({title}): {line} (was {expected})")
        if full_run:
            for n in sorted(listed):
                t = by_name.get(n)
                if t is None or t.excluded is not None:
                    why = "no such test in the suite" if t is None else f"excluded: {t.excluded}"
                    cmp.regressions.append(f"REGRESSION ({title}): {n}: {why}")
                elif p not in t.results:
                    cmp.stale.append(f"STALE ({title}): {n} is listed but not run on this path")
    if full_run:
        for (n, p), k in sorted(known.items()):
            t = by_name.get(n)
            if p in paths and (t is None or not runs_on(t, p)):
                cmp.stale.append(f"STALE ({PATH_TITLES[p]}): {n} ({k.status}) names no test run on this path")
    return cmp


def check(tests: list[NodeTest], paths: Sequence[str], full_run: bool, pattern: re.Pattern | None) -> int:
    """Compares with the checked-in lists; 1 on a regression, a changed failure or a stale list."""
    status = 0
    for p in paths:
        if not list_file(p).is_file():
            print(f"conformance: {rel(list_file(p))} is missing; run --bless", file=sys.stderr)
            status = 1
    cmp = compare_expectations(tests, paths, full_run, pattern)
    for line in cmp.regressions + cmp.changed + cmp.unlisted + cmp.stale:
        print(line, file=sys.stderr)
    if cmp.regressions or cmp.changed or cmp.unlisted or cmp.stale:
        status = 1
    for p in paths:
        new = sorted(n for q, n in cmp.improved if q == p)
        if new:
            print(f"\nnewly passing on the {PATH_TITLES[p]} path ({len(new)}); add them with --bless:", file=sys.stderr)
            for n in new:
                print(f"  {n}", file=sys.stderr)
    if full_run:
        want = exclusions_text([t for t in tests if t.kind == "node"])
        have = EXCLUSIONS_FILE.read_text() if EXCLUSIONS_FILE.is_file() else ""
        if want != have:
            print(
                f"conformance: {rel(EXCLUSIONS_FILE)} is out of date with the models; run --bless",
                file=sys.stderr,
            )
            status = 1
    if status == 0:
        print("\nconformance --check: ok, no regressions", file=sys.stderr)
    return status


def bless(
    tests: list[NodeTest],
    paths: Sequence[str],
    full_run: bool,
    pattern: re.Pattern | None,
    allow_regressions: bool = False,
) -> int:
    """Rewrites the expectation files from this run; refuses (1) on a regression unless allowed."""
    cmp = compare_expectations(tests, paths, full_run, pattern)
    if cmp.regressions:
        for line in cmp.regressions:
            print(line, file=sys.stderr)
        if not allow_regressions:
            print(
                f"conformance: --bless REFUSED: {len(cmp.regressions)} test(s) no longer give right answers "
                "(listed above); fix them, or pass --allow-regressions to record the loss",
                file=sys.stderr,
            )
            return 1
        print(f"conformance: !!! recording {len(cmp.regressions)} regression(s) (--allow-regressions) !!!", file=sys.stderr)
    ran = {(t.name, p): t.results[p] for t in tests if t.excluded is None for p in paths if p in t.results}
    for p in paths:
        old = read_names(list_file(p))
        keep = {n for n in old if pattern is not None and not pattern.search(n)}
        new = keep | {t.name for t in tests if passed(t, p)}
        removed, added = sorted(old - new), sorted(new - old)
        for n in removed:
            print(f"REMOVED from {list_file(p).name}: {n}", file=sys.stderr)
        print(f"conformance: {list_file(p).name}: {len(new)} tests (+{len(added)} -{len(removed)})", file=sys.stderr)
        write_pass_list(list_file(p), p, new)
    known = read_known(known_failures_file())
    names = {t.name for t in tests}
    entries: dict[tuple[str, str], Known] = {}
    for (n, p), k in known.items():
        # Kept: other paths, and tests outside the filter (all of them on a full run are in `ran`).
        outside = p not in paths or (pattern is not None and not pattern.search(n))
        if outside and (not full_run or p not in paths or n in names):
            entries[(n, p)] = k
    for (n, p), r in ran.items():
        if r.status == Status.PASSED:
            continue
        old_entry = known.get((n, p))
        reason = old_entry.reason if old_entry is not None and old_entry.status == r.status else auto_reason(r)
        entries[(n, p)] = Known(r.status, reason)
    known_failures_file().parent.mkdir(parents=True, exist_ok=True)
    known_failures_file().write_text(known_text(entries))
    print(f"conformance: {known_failures_file().name}: {len(entries)} entries", file=sys.stderr)
    if full_run:
        EXCLUSIONS_FILE.parent.mkdir(parents=True, exist_ok=True)
        EXCLUSIONS_FILE.write_text(exclusions_text([t for t in tests if t.kind == "node"]))
        if set(paths) == set(PATHS):
            write_docs(tests, paths)
        if CROSS_PATH in paths:
            write_cross_docs(tests)
    return 0


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------


def default_kiln() -> Path:
    if os.environ.get("KILN"):
        return Path(os.environ["KILN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "debug" / "kiln"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a test in the expectation lists stops passing")
    mode.add_argument("--bless", action="store_true", help="rewrite the expectation lists, exclusions and docs")
    ap.add_argument(
        "--allow-regressions",
        action="store_true",
        help="let --bless drop tests that no longer pass (it refuses otherwise)",
    )
    ap.add_argument(
        "--kiln", type=Path, default=None, help="the kiln binary (default: $KILN, else <target>/debug/kiln)"
    )
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="node test folder (default: %(default)s)")
    ap.add_argument("--regenerate", action="store_true", help="regenerate the node tests even if the cache is fresh")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2, help="parallel runs (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per test and path (default: %(default)s)")
    ap.add_argument("--filter", metavar="REGEX", help="only tests whose name matches (re.search)")
    ap.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of {','.join(ALL_PATHS)} (default: {','.join(PATHS)}); "
        f"{CROSS_PATH} runs AArch64 artifacts under qemu-user on a slice of the tests and the bundled models",
    )
    ap.add_argument(
        "--cross-runtime",
        type=Path,
        default=None,
        help="libkiln_runtime.a built for AArch64 (default: the runtime-release build under target/)",
    )
    ap.add_argument("--json", metavar="FILE", help="write per-test results as JSON to FILE ('-' for stdout)")
    ap.add_argument("--no-table", action="store_true", help="do not print the per-op table")
    ap.add_argument("--reasons", type=int, default=12, help="how many failure groups to list per path")
    args = ap.parse_args(argv)
    if args.allow_regressions and not args.bless:
        ap.error("--allow-regressions only goes with --bless")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    bad = [p for p in args.paths if p not in ALL_PATHS]
    if bad or not args.paths:
        ap.error(f"--paths takes a subset of {','.join(ALL_PATHS)}, got {bad or 'nothing'}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kiln = (args.kiln or default_kiln()).resolve()
    pattern = re.compile(args.filter) if args.filter else None
    try:
        if not kiln.is_file():
            raise SetupError(f"no kiln binary at {kiln} (build it with `cargo build -p kiln`, or pass --kiln)")
        probe = subprocess.run(kiln_probe_argv(kiln), check=False, capture_output=True)
        if probe.returncode != 0:
            raise SetupError(f"{kiln} has no working `run` subcommand: {probe.stderr.decode(errors='replace')[:300]}")
        missing = [o for o in KILN_RUN_OPTIONS if o not in probe.stdout.decode(errors="replace")]
        if missing:
            raise SetupError(f"`{kiln} run --help` does not list {', '.join(missing)}; is it an old build?")
        if GPU_PATH in args.paths:
            check_vulkan_device()
        index = ensure_suite(args.cache, args.regenerate)
        cross = None
        if CROSS_PATH in args.paths:
            work = tempfile.TemporaryDirectory(prefix="kiln-cross-")
            cross = prepare_cross((args.cross_runtime or default_cross_runtime()).resolve(), Path(work.name))
    except SetupError as e:
        print(f"conformance: error: {e}", file=sys.stderr)
        return 2
    tests = load_tests(args.cache, index, pattern)
    if cross is not None:
        tests += [t for t in load_models() if pattern is None or pattern.search(t.name)]
        tests += [t for t in load_kernel_models(Path(work.name)) if pattern is None or pattern.search(t.name)]
    if not tests:
        print(f"conformance: error: no test matches {args.filter!r}", file=sys.stderr)
        return 2
    counted = sum(t.excluded is None for t in tests)
    print(
        f"conformance: {len(tests)} tests ({counted} counted) x {len(args.paths)} paths, -j {args.jobs}, kiln {kiln}",
        file=sys.stderr,
    )
    elapsed = run_suite(kiln, tests, args.paths, args.jobs, args.timeout, cross)

    out = sys.stdout
    if args.json == "-":
        out = sys.stderr  # keep stdout for the JSON
        json.dump(results_json(tests, args.paths, kiln, elapsed), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    elif args.json:
        Path(args.json).write_text(
            json.dumps(results_json(tests, args.paths, kiln, elapsed), indent=1, sort_keys=True) + "\n"
        )
    if not args.no_table:
        print_table(tests, args.paths, file=out)
    print_reasons(tests, args.paths, args.reasons, file=out)
    print_totals(tests, args.paths, elapsed, file=out)

    full_run = pattern is None
    try:
        if args.bless:
            return bless(tests, args.paths, full_run, pattern, args.allow_regressions)
        if args.check:
            return check(tests, args.paths, full_run, pattern)
    except SetupError as e:
        print(f"conformance: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
