"""Tests of scripts/conformance.py: the comparison rules, the scope decision, and the runner's
classification and expectation lists (against a fake `kiln` whose behaviour each test picks).

    .venv/bin/python -m unittest scripts/test_conformance.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance  # (after the sys.path entry above)

F32 = np.float32


class CompareTensorTest(unittest.TestCase):
    def ok(self, actual, expected, rtol=1e-3, atol=1e-7):
        self.assertIsNone(conformance.compare_tensor(np.asarray(actual), np.asarray(expected), rtol, atol))

    def bad(self, actual, expected, needle, rtol=1e-3, atol=1e-7):
        reason = conformance.compare_tensor(np.asarray(actual), np.asarray(expected), rtol, atol)
        self.assertIsNotNone(reason)
        self.assertIn(needle, reason)

    def test_nan_matches_only_nan(self):
        self.ok(F32([np.nan, 1.0]), F32([np.nan, 1.0]))
        self.bad(F32([0.0, 1.0]), F32([np.nan, 1.0]), "1/2 elements differ")
        self.bad(F32([np.nan, 1.0]), F32([0.0, 1.0]), "1/2 elements differ")
        # A NaN is not "close" to an infinity either.
        self.bad(F32([np.nan]), F32([np.inf]), "differ")

    def test_infinities_match_only_the_same_infinity(self):
        self.ok(F32([np.inf, -np.inf]), F32([np.inf, -np.inf]))
        self.bad(F32([-np.inf]), F32([np.inf]), "differ")
        self.bad(F32([3.0e38]), F32([np.inf]), "differ")
        self.bad(F32([np.inf]), F32([3.0e38]), "differ")

    def test_tolerance_is_atol_plus_rtol_times_expected(self):
        # |a - e| <= atol + rtol * |e|, as np.testing.assert_allclose.
        self.ok(F32([100.09]), F32([100.0]), rtol=1e-3, atol=0.0)
        self.bad(F32([100.11]), F32([100.0]), "max abs err", rtol=1e-3, atol=0.0)
        self.ok(F32([1e-8]), F32([0.0]), rtol=1e-3, atol=1e-7)
        self.bad(F32([1e-6]), F32([0.0]), "differ", rtol=1e-3, atol=1e-7)
        # rtol scales with the *expected* value, not the actual one.
        self.bad(F32([0.0]), F32([1e-3]), "differ", rtol=1.0 - 1e-6, atol=0.0)

    def test_bfloat16_gets_two_ulps(self):
        bf = ml_dtypes.bfloat16
        one = np.array([1.0], dtype=bf)
        next_up = np.array([1.0078125], dtype=bf)  # 1 + 2**-7, one bf16 ULP above 1
        self.ok(next_up, one)
        self.bad(np.array([1.03125], dtype=bf), one, "differ")

    def test_dtype_mismatch_fails_even_with_equal_values(self):
        self.bad(np.array([1.0], np.float64), F32([1.0]), "dtype float64, expected float32")
        self.bad(np.array([1], np.int32), np.array([1], np.int64), "dtype int32, expected int64")
        self.bad(np.array([True]), np.array([1], np.uint8), "dtype bool, expected uint8")

    def test_shape_mismatch_fails_without_broadcasting(self):
        self.bad(F32([[1.0, 1.0]]), F32([1.0, 1.0]), "shape [1, 2], expected [2]")
        self.bad(F32(np.zeros((2, 0))), F32(np.zeros((0, 2))), "shape")
        self.ok(F32(np.zeros((2, 0))), F32(np.zeros((2, 0))))

    def test_integers_and_bools_are_exact(self):
        # assert_allclose would accept 100001 for 100000 with rtol 1e-3; we do not.
        self.bad(np.array([100001], np.int64), np.array([100000], np.int64), "1/1 elements differ")
        self.ok(np.array([2**63 - 1], np.int64), np.array([2**63 - 1], np.int64))
        self.bad(np.array([2**64 - 1], np.uint64), np.array([2**64 - 2], np.uint64), "differ")
        self.bad(np.array([True, False]), np.array([True, True]), "1/2 elements differ")
        self.ok(np.array([-8, 7], ml_dtypes.int4), np.array([-8, 7], ml_dtypes.int4))
        self.bad(np.array([-8, 6], ml_dtypes.int4), np.array([-8, 7], ml_dtypes.int4), "differ")

    def test_float8_compared_by_value(self):
        f8 = ml_dtypes.float8_e4m3fn
        self.ok(np.array([448.0, np.nan], f8), np.array([448.0, np.nan], f8))
        self.bad(np.array([416.0], f8), np.array([448.0], f8), "differ")

    def test_compare_outputs_count_and_missing(self):
        one = [F32([1.0])]
        self.assertIn("2 outputs, expected 1", conformance.compare_outputs(one * 2, one, 1e-3, 1e-7))
        self.assertIn("output 0: not written", conformance.compare_outputs([None], one, 1e-3, 1e-7))
        self.assertIn("output 1:", conformance.compare_outputs([one[0], F32([2.0])], one * 2, 1e-3, 1e-7))
        self.assertIsNone(conformance.compare_outputs(one, one, 1e-3, 1e-7))


def tensor_model(inputs, outputs, nodes, opset=21, extra_opsets=(), value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, value_info=list(value_info))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets)


class ExclusionTest(unittest.TestCase):
    def test_plain_tensor_graph_counts(self):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        m = tensor_model([x], [y], [helper.make_node("Relu", ["x"], ["y"])])
        self.assertIsNone(conformance.exclusion_reason(m))

    def test_string_io_is_excluded(self):
        x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
        y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
        m = tensor_model([x], [y], [helper.make_node("Identity", ["x"], ["y"])])
        self.assertEqual(conformance.exclusion_reason(m), "dtype STRING")

    def test_cast_to_unsupported_dtype_inside_is_excluded(self):
        # Tensor I/O in Kiln dtypes, but an intermediate complex value (no Kiln dtype): found
        # through Cast.to.
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        nodes = [
            helper.make_node("Cast", ["x"], ["t"], to=TensorProto.COMPLEX64),
            helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
        ]
        self.assertEqual(conformance.exclusion_reason(tensor_model([x], [y], nodes)), "dtype COMPLEX64")

    def test_sequence_output_is_excluded(self):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
        m = tensor_model([x], [seq], [helper.make_node("SequenceConstruct", ["x"], ["s"])])
        self.assertEqual(conformance.exclusion_reason(m), "sequence type")

    def test_sequence_only_inside_is_excluded(self):
        # Tensor in, tensor out, a sequence in between: shape inference finds it.
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        nodes = [
            helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
            helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0),
        ]
        self.assertEqual(conformance.exclusion_reason(tensor_model([x], [y], nodes)), "sequence type")

    def test_training_op_is_excluded(self):
        r = helper.make_tensor_value_info("r", TensorProto.FLOAT, [])
        t = helper.make_tensor_value_info("t", TensorProto.INT64, [])
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        g = helper.make_tensor_value_info("g", TensorProto.FLOAT, [2])
        h = helper.make_tensor_value_info("h", TensorProto.FLOAT, [2])
        xo = helper.make_tensor_value_info("xo", TensorProto.FLOAT, [2])
        ho = helper.make_tensor_value_info("ho", TensorProto.FLOAT, [2])
        node = helper.make_node("Adagrad", ["r", "t", "x", "g", "h"], ["xo", "ho"], domain="ai.onnx.preview.training")
        m = tensor_model([r, t, x, g, h], [xo, ho], [node], extra_opsets=[("ai.onnx.preview.training", 1)])
        self.assertEqual(conformance.exclusion_reason(m), "training op ai.onnx.preview.training::Adagrad")

    def test_subgraph_types_are_seen(self):
        c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        branch_out = helper.make_tensor_value_info("b", TensorProto.COMPLEX64, [1])
        then = helper.make_graph(
            [helper.make_node("Constant", [], ["b"], value=helper.make_tensor("v", TensorProto.COMPLEX64, [1], [1j]))],
            "then",
            [],
            [branch_out],
        )
        node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)
        self.assertEqual(conformance.exclusion_reason(tensor_model([c], [y], [node])), "dtype COMPLEX64")


class CrossPathTest(unittest.TestCase):
    def model(self, op, elem_type=TensorProto.FLOAT):
        x = helper.make_tensor_value_info("x", elem_type, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        return tensor_model([x], [y], [helper.make_node(op, ["x"], ["y"])])

    def test_slice_takes_float_inputs_of_listed_ops_and_samples_by_name(self):
        entry = {"ops": ["ai.onnx::Relu"], "expanded": False}
        chosen = [n for n in (f"test_relu_{i}" for i in range(200)) if conformance.cross_slice(n, entry, self.model("Relu"))]
        # A quarter of the elementwise tests, stable by name.
        self.assertTrue(30 < len(chosen) < 70, len(chosen))
        name = chosen[0]
        self.assertTrue(conformance.cross_slice(name, entry, self.model("Relu")))
        # Not when an input is an integer (it might need specializing), the op is not listed, or
        # the test is a function-expanded variant.
        self.assertFalse(conformance.cross_slice(name, entry, self.model("Relu", TensorProto.INT64)))
        self.assertFalse(conformance.cross_slice(name, {"ops": ["ai.onnx::Resize"], "expanded": False}, self.model("Relu")))
        self.assertFalse(conformance.cross_slice(name, {**entry, "expanded": True}, self.model("Relu")))
        core = {"ops": ["ai.onnx::Conv"], "expanded": False}
        n_core = sum(conformance.cross_slice(f"test_conv_{i}", core, self.model("Relu")) for i in range(200))
        self.assertTrue(70 < n_core < 130, n_core)

    def test_dtype_codes_read_back_as_kiln_h_defines_them(self):
        self.assertEqual(conformance._numpy_dtype(2), np.dtype(np.float32))
        self.assertEqual(conformance._numpy_dtype(4), np.dtype(ml_dtypes.bfloat16))
        self.assertEqual(conformance._numpy_dtype(18), np.dtype(np.bool_))
        self.assertIsNone(conformance._numpy_dtype(7))  # packed nf4
        self.assertIsNone(conformance._numpy_dtype(99))

    def test_compile_command_fixes_every_input_shape(self):
        argv = conformance.kiln_cross_compile_argv(Path("k"), Path("m.onnx"), Path("m.o"), [("x", (1, 3)), ("s", ())])
        self.assertIn("--target=aarch64-linux-gnu", argv)
        self.assertEqual(argv[argv.index("-o") + 1], "m.o")
        self.assertEqual([a for a in argv if "=" in a and not a.startswith("--")], ["x=1x3", "s="])
        argv = conformance.kiln_cross_compile_argv(Path("k"), Path("m.onnx"), Path("m.o"), [], "cortex-a55")
        self.assertIn("--target=aarch64-linux-gnu:cortex-a55", argv)

    def test_report_counts_models_and_node_tests_apart(self):
        def t(name, kind, status):
            nt = conformance.NodeTest(name, Path("."), "Relu", 1e-3, 1e-7, None, ["y"], 1, kind=kind, cross=True)
            nt.results[conformance.CROSS_PATH] = conformance.RunResult(status)
            return nt

        text = conformance.cross_report([t("model_a", "model", "passed"), t("test_b", "node", "failed")])
        self.assertIn("| bundled models | 1 | 1 | 0 | 0 | 0 | 0 |", text)
        self.assertIn("| node tests (slice) | 1 | 0 | 1 | 0 | 0 | 0 |", text)
        self.assertIn("`test_b` (failed)", text)


# A stand-in for `kiln run`: what it does depends on the test folder's name.
FAKE_KILN = textwrap.dedent(
    """\
    #!{python}
    import os, shutil, signal, sys, time
    from pathlib import Path
    import numpy as np
    from onnx import TensorProto, numpy_helper

    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    if args[:2] == ["run", "--help"]:
        print("--input-dir --output-dir --output-format --interpret")
        sys.exit(0)
    assert args[0] == "run" and args[args.index("--output-format") + 1] == "pb", args
    model = Path(args[1])
    inp = Path(args[args.index("--input-dir") + 1])
    out = Path(args[args.index("--output-dir") + 1])
    interp = "--interpret" in args
    kind = model.parent.name.split("_")[1]
    if kind == "unsup":
        print(f"kiln: error: {{model}}: model: 1 node(s) use unsupported operators:", file=sys.stderr)
        sys.exit(3)
    if kind == "crash":
        print("kiln: error: internal error: boom", file=sys.stderr)
        sys.exit(1)
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "hang":
        time.sleep(60)
    if kind == "interpwrong" and not interp or kind == "wrong":
        t = TensorProto()
        t.ParseFromString((inp.parent / "test_data_set_0" / "output_0.pb").read_bytes())
        a = numpy_helper.to_array(t) + 1
        (out / "output_0.pb").write_bytes(numpy_helper.from_array(a, t.name).SerializeToString())
        sys.exit(0)
    if kind == "folded" and not interp:
        # What `kiln run -v` logs (with colours, as on a terminal) when outputs were folded.
        if verbose:
            print("\x1b[32m INFO\x1b[0m kiln::cmd::run: computed at compile time, not by generated code "
                  "\x1b[3moutputs\x1b[0m=y", file=sys.stderr)
    if kind == "dtype":
        t = TensorProto()
        t.ParseFromString((inp / "output_0.pb").read_bytes())
        a = numpy_helper.to_array(t).astype(np.float64)
        (out / "output_0.pb").write_bytes(numpy_helper.from_array(a, t.name).SerializeToString())
        sys.exit(0)
    for f in inp.glob("output_*.pb"):
        shutil.copy(f, out / f.name)
    """
)

KINDS = ["pass", "unsup", "crash", "segv", "hang", "wrong", "interpwrong", "dtype", "strings", "folded"]


def write_suite(root: Path) -> None:
    """A miniature node-test cache: one Relu test per fake-kiln behaviour, plus one excluded."""
    tests = {}
    for kind in KINDS:
        name = f"test_{kind}"
        d = root / name / "test_data_set_0"
        d.mkdir(parents=True)
        if kind == "strings":
            x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
            y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
            node = helper.make_node("Identity", ["x"], ["y"])
            xs = np.array([b"a", b"b"], dtype=object)
            ys = xs
        else:
            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
            node = helper.make_node("Relu", ["x"], ["y"])
            xs = F32([-1.0, 0.5, np.nan])
            ys = F32([0.0, 0.5, np.nan])
        m = tensor_model([x], [y], [node])
        (root / name / "model.onnx").write_bytes(m.SerializeToString())
        (d / "input_0.pb").write_bytes(numpy_helper.from_array(xs, "x").SerializeToString())
        (d / "output_0.pb").write_bytes(numpy_helper.from_array(ys, "y").SerializeToString())
        tests[name] = {
            "ops": ["ai.onnx::Identity" if kind == "strings" else "ai.onnx::Relu"],
            "rtol": 1e-3,
            "atol": 1e-7,
            "data_sets": 1,
            "expanded": False,
        }
    (root / "index.json").write_text(
        json.dumps({"onnx_version": onnx.__version__, "op_type_filter": None, "tests": tests})
    )
    stamp = {"onnx_version": onnx.__version__, "generator_sha256": conformance._file_sha256(conformance.GENERATOR)}
    (root / conformance.STAMP_NAME).write_text(json.dumps(stamp, sort_keys=True) + "\n")


class RunnerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="conformance-test-")
        root = Path(cls.tmp.name)
        cls.cache = root / "cache"
        write_suite(cls.cache)
        cls.kiln = root / "kiln"
        cls.kiln.write_text(FAKE_KILN.format(python=sys.executable))
        cls.kiln.chmod(cls.kiln.stat().st_mode | stat.S_IXUSR)
        cls.lists = root / "lists"
        cls.docs = root / "docs" / "conformance.md"
        cls.readme = root / "README.md"
        # One full run shared by the tests below (the hang test costs its timeout once).
        cls.json_file = root / "results.json"
        code, cls.stdout, cls.stderr = cls.main("--json", str(cls.json_file))
        assert code == 0, cls.stderr
        cls.results = json.loads(cls.json_file.read_text())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def main(cls, *args):
        patches = {
            "LISTS_DIR": cls.lists,
            "EXCLUSIONS_FILE": cls.lists / "exclusions.txt",
            "DOCS_FILE": cls.docs,
            "README": cls.readme,
            # The fake kiln runs `--target vulkan` like the CPU; no Vulkan device is needed.
            "vulkan_device_problem": lambda: None,
        }
        saved = {k: getattr(conformance, k) for k in patches}
        out, err = io.StringIO(), io.StringIO()
        try:
            for k, v in patches.items():
                setattr(conformance, k, v)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = conformance.main(
                    ["--kiln", str(cls.kiln), "--cache", str(cls.cache), "--timeout", "2", "-j", "4", *args]
                )
        finally:
            for k, v in saved.items():
                setattr(conformance, k, v)
        return code, out.getvalue(), err.getvalue()

    def status(self, test, path):
        return self.results["tests"][test][path]["status"]

    def test_classification(self):
        expect = {
            "pass": ("passed", "passed"),
            "unsup": ("unsupported", "unsupported"),
            "crash": ("crashed", "crashed"),
            "segv": ("crashed", "crashed"),
            "hang": ("timeout", "timeout"),
            "wrong": ("failed", "failed"),
            "interpwrong": ("failed", "passed"),
            "dtype": ("failed", "failed"),
            "folded": ("folded", "passed"),
        }
        for kind, (compiled, interp) in expect.items():
            with self.subTest(kind=kind):
                self.assertEqual(self.status(f"test_{kind}", "compiled"), compiled)
                self.assertEqual(self.status(f"test_{kind}", "interp"), interp)
        t = self.results["tests"]
        self.assertIn("SIGSEGV", t["test_segv"]["compiled"]["detail"])
        self.assertIn("exit 1: internal error: boom", t["test_crash"]["compiled"]["detail"])
        self.assertIn("unsupported operators", t["test_unsup"]["compiled"]["detail"])
        self.assertIn("dtype float64, expected float32", t["test_dtype"]["compiled"]["detail"])

    def test_excluded_tests_are_not_run_or_counted(self):
        self.assertEqual(self.results["tests"]["test_strings"]["excluded"], "dtype STRING")
        self.assertNotIn("compiled", self.results["tests"]["test_strings"])
        totals = self.results["totals"]
        self.assertEqual((totals["tests"], totals["excluded"], totals["counted"]), (10, 1, 9))
        self.assertEqual(totals["compiled"]["passed"], 1)
        self.assertEqual(totals["compiled"]["folded"], 1)
        self.assertEqual(totals["interp"]["passed"], 3)
        self.assertEqual(totals["interp"]["folded"], 0)
        self.assertEqual(totals["compiled"]["crashed"], 2)

    def test_constant_outputs_line(self):
        line = "\x1b[32m INFO\x1b[0m kiln::cmd::run: computed at compile time, not by generated code outputs=a, b c"
        self.assertEqual(conformance.constant_outputs("other\n" + line + "\n"), ["a", "b c"])
        self.assertEqual(conformance.constant_outputs("INFO kiln::cmd::run: wrote file=x\n"), [])

    def test_table(self):
        # Columns: tests, excluded, compiled (generated code), folded, interpreter, vulkan, its folded.
        row = next(ln for ln in self.stdout.splitlines() if ln.startswith("Relu"))
        self.assertEqual(row.split(), ["Relu", "9", "0", "1", "1", "3", "1", "1"])
        self.assertIn("Identity", self.stdout)

    def known(self):
        return conformance.read_known(self.lists / "known-failures.txt")

    def test_bless_then_check(self):
        for f in self.lists.glob("*.txt"):
            f.unlink()
        code, _, err = self.main("--bless", "--filter", "test_(pass|interpwrong|strings|folded|unsup)")
        self.assertEqual(code, 0, err)
        self.assertEqual(conformance.read_names(self.lists / "expected-pass-compiled.txt"), {"test_pass"})
        self.assertEqual(
            conformance.read_names(self.lists / "expected-pass-interp.txt"),
            {"test_pass", "test_interpwrong", "test_folded"},
        )
        # Every non-pass is recorded with its status and a reason from the run.
        known = self.known()
        self.assertEqual(known[("test_folded", "compiled")].status, "folded")
        # The Vulkan path runs generated code too: its constant answers are folded, not passed.
        self.assertEqual(conformance.read_names(self.lists / "expected-pass-vulkan.txt"), {"test_pass"})
        self.assertEqual(known[("test_folded", "vulkan")].status, "folded")
        self.assertIn("computed at compile time: y", known[("test_folded", "compiled")].reason)
        self.assertEqual(known[("test_interpwrong", "compiled")].status, "failed")
        self.assertEqual(known[("test_unsup", "interp")].status, "unsupported")
        self.assertIn("unsupported operators", known[("test_unsup", "interp")].reason)
        self.assertNotIn(("test_pass", "compiled"), known)
        code, _, err = self.main("--check", "--filter", "test_(pass|interpwrong|folded|unsup)")
        self.assertEqual(code, 0, err)

        # A hand-written reason survives a re-bless while the status stays the same.
        text = (self.lists / "known-failures.txt").read_text()
        text = text.replace(known[("test_unsup", "compiled")].reason, "random ops: no fixed answer")
        (self.lists / "known-failures.txt").write_text(text)
        code, _, err = self.main("--bless", "--filter", "test_(pass|interpwrong|folded|unsup)")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.known()[("test_unsup", "compiled")].reason, "random ops: no fixed answer")

        # A listed test that stops passing is a regression; a new pass is only reported.
        (self.lists / "expected-pass-compiled.txt").write_text("test_pass\ntest_wrong\n")
        (self.lists / "expected-pass-interp.txt").write_text("test_pass\ntest_folded\n")
        code, _, err = self.main("--check", "--filter", "test_(pass|wrong|interpwrong|folded)")
        self.assertEqual(code, 1, err)
        self.assertIn("REGRESSION (compiled): test_wrong: failed: output 0:", err)
        self.assertIn("newly passing on the interpreter path (1)", err)
        self.assertIn("test_interpwrong", err)

        # A compiled pass that becomes folded is a regression too: no generated code ran.
        (self.lists / "expected-pass-compiled.txt").write_text("test_pass\ntest_folded\n")
        code, _, err = self.main("--check", "--filter", "test_(pass|folded)", "--paths", "compiled")
        self.assertEqual(code, 1, err)
        self.assertIn("REGRESSION (compiled): test_folded: folded: computed at compile time: y (was passed)", err)

        # A known failure that now fails differently, or a non-pass nobody listed, fails --check.
        (self.lists / "known-failures.txt").write_text("test_crash\tcompiled\tunsupported\tmade up\n")
        code, _, err = self.main("--check", "--filter", "test_(crash|wrong)", "--paths", "compiled")
        self.assertEqual(code, 1, err)
        self.assertIn("CHANGED (compiled): test_crash: crashed: exit 1: internal error: boom (was unsupported)", err)
        self.assertIn("NOT LISTED (compiled): test_wrong: failed", err)

        # --bless refuses to drop a regressed test: exit 1, the test named, nothing written.
        (self.lists / "expected-pass-compiled.txt").write_text("test_other\ntest_pass\ntest_wrong\n")
        before = {f.name: f.read_text() for f in self.lists.glob("*.txt")}
        code, _, err = self.main("--bless", "--filter", "test_(pass|wrong)", "--paths", "compiled")
        self.assertEqual(code, 1, err)
        self.assertIn("REGRESSION (compiled): test_wrong: failed", err)
        self.assertIn("--bless REFUSED: 1 test(s)", err)
        self.assertEqual({f.name: f.read_text() for f in self.lists.glob("*.txt")}, before)

        # ... unless told to, and then it says loudly what it removes and keeps entries outside the filter.
        code, _, err = self.main("--bless", "--allow-regressions", "--filter", "test_(pass|wrong)", "--paths", "compiled")
        self.assertEqual(code, 0, err)
        self.assertIn("REMOVED from expected-pass-compiled.txt: test_wrong", err)
        self.assertEqual(conformance.read_names(self.lists / "expected-pass-compiled.txt"), {"test_other", "test_pass"})
        self.assertEqual(self.known()[("test_wrong", "compiled")].status, "failed")
        self.assertEqual(self.known()[("test_crash", "compiled")].reason, "made up")

    def test_allow_regressions_needs_bless(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            conformance.parse_args(["--allow-regressions"])

    def test_full_bless_writes_exclusions_docs_and_readme_then_check_passes(self):
        for f in self.lists.glob("*.txt"):
            f.unlink()
        self.readme.write_text("# Kiln\n<!-- conformance:begin -->\nold\n<!-- conformance:end -->\ntail\n")
        code, _, err = self.main("--bless")
        self.assertEqual(code, 0, err)
        exclusions = (self.lists / "exclusions.txt").read_text()
        self.assertIn("test_strings\tdtype STRING\n", exclusions)
        readme = self.readme.read_text()
        self.assertNotIn("\nold\n", readme)
        self.assertTrue(readme.endswith("<!-- conformance:end -->\ntail\n"))
        self.assertIn("| Relu | 9 | 0 | 1 | 1 | 3 |", readme)
        self.assertIn("| compiled | 1 (11.1%) | 1 | 3 | 1 | 2 | 1 |", readme)
        docs = self.docs.read_text()
        self.assertIn("| Relu | 9 | 0 | 1 | 1 | 3 |", docs)
        # The explanation goes into the docs page only, above the report.
        self.assertLess(docs.index("--freeze-input"), docs.index("| Relu |"))
        self.assertNotIn("--freeze-input", readme)
        code, _, err = self.main("--check")
        self.assertEqual(code, 0, err)
        # A stale exclusion list fails --check.
        (self.lists / "exclusions.txt").write_text(exclusions + "test_pass\tmade up\n")
        code, _, err = self.main("--check")
        self.assertEqual(code, 1)
        self.assertIn("exclusions.txt is out of date", err)
        (self.lists / "exclusions.txt").write_text(exclusions)
        # So does a known failure naming no counted test.
        known = (self.lists / "known-failures.txt").read_text()
        (self.lists / "known-failures.txt").write_text(known + "test_gone\tcompiled\tfailed\tmade up\n")
        code, _, err = self.main("--check")
        self.assertEqual(code, 1)
        self.assertIn("STALE (compiled): test_gone (failed) names no test run on this path", err)
        # A full bless drops it.
        code, _, err = self.main("--bless")
        self.assertEqual(code, 0, err)
        self.assertNotIn(("test_gone", "compiled"), self.known())

    def test_missing_kiln_is_a_setup_error(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = conformance.main(["--kiln", os.devnull + "-nope", "--cache", str(self.cache)])
        self.assertEqual(code, 2)
        self.assertIn("no kiln binary", err.getvalue())

    def test_vulkan_path_without_a_device_is_a_setup_error(self):
        saved = conformance.vulkan_device_problem
        conformance.vulkan_device_problem = lambda: "no Vulkan loader (libvulkan.so.1)"
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                code = conformance.main(["--kiln", str(self.kiln), "--cache", str(self.cache)])
            self.assertEqual(code, 2)
            self.assertIn("the vulkan path needs a Vulkan device: no Vulkan loader", err.getvalue())
            # Leaving the path out runs the CPU paths only.
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                code = conformance.main(
                    ["--kiln", str(self.kiln), "--cache", str(self.cache), "--paths", "compiled,interp",
                     "--filter", "test_pass", "--no-table"]
                )
            self.assertEqual(code, 0)
        finally:
            conformance.vulkan_device_problem = saved

    def test_kiln_without_run_options_is_a_setup_error(self):
        # An old build that exits 0 for anything must not count as "ran, wrote nothing".
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = conformance.main(["--kiln", "/bin/true", "--cache", str(self.cache)])
        self.assertEqual(code, 2)
        self.assertIn("does not list --input-dir", err.getvalue())


if __name__ == "__main__":
    unittest.main()
