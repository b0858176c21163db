"""Smoke tests of the benchmark suite's parts that are not timing: the model generator (determinism,
the committed manifest), the FLOP counter (hand-counted graphs and published model costs) and the
output comparison. A few seconds; part of scripts/test.sh.

    .venv/bin/python -m unittest bench/test_bench.py
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flops  # (after the sys.path entry above)
import models
import quant_accuracy
import suite

F32 = np.float32


def graph_model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, n) for n, a in inits],
    )
    return helper.make_model(g, opset_imports=[helper.make_operatorsetid("", 17)])


class FlopCounter(unittest.TestCase):
    def test_batched_matmul(self):
        m = graph_model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", [2, 3, 5]), ("b", [5, 7])], ["y"])
        c = flops.count(m)
        self.assertEqual(c.flops, 2 * 2 * 3 * 7 * 5)
        self.assertEqual(c.io_bytes, 4 * (30 + 35 + 42))

    def test_gemm_trans_a_and_bias(self):
        w = np.zeros((11, 13), F32)  # B is [K, N] = [11, 13]
        m = graph_model(
            [helper.make_node("Gemm", ["a", "w", "b"], ["y"], transA=1)],
            [("a", [11, 3])],  # A^T is [M, K] = [3, 11]
            ["y"],
            [("w", w), ("b", np.zeros(13, F32))],
        )
        c = flops.count(m)
        self.assertEqual(c.flops, 2 * 3 * 13 * 11)
        self.assertEqual(c.other_ops, 3 * 13)
        self.assertEqual(c.weight_bytes, 4 * (11 * 13 + 13))

    def test_grouped_strided_conv(self):
        # [1, 4, 9, 9] * [6, 2, 3, 3], group 2, stride 2, pad 1 -> [1, 6, 5, 5]
        m = graph_model(
            [
                helper.make_node(
                    "Conv", ["x", "w"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]
                )
            ],
            [("x", [1, 4, 9, 9])],
            ["y"],
            [("w", np.zeros((6, 2, 3, 3), F32))],
        )
        self.assertEqual(flops.count(m).flops, 2 * (6 * 5 * 5) * (2 * 3 * 3))

    def test_conv_transpose(self):
        # Every input element meets Cout/group * k*k weights: [1, 3, 4, 4] * [3, 5, 2, 2]
        m = graph_model(
            [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])],
            [("x", [1, 3, 4, 4])],
            ["y"],
            [("w", np.zeros((3, 5, 2, 2), F32))],
        )
        self.assertEqual(flops.count(m).flops, 2 * (3 * 4 * 4) * (5 * 2 * 2))

    def test_gathered_table_counts_only_read_rows(self):
        m = graph_model(
            [helper.make_node("Gather", ["table", "ids"], ["y"])],
            [],
            ["y"],
            [("table", np.zeros((1000, 8), F32))],
        )
        m.graph.input.append(helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3]))
        c = flops.count(m)
        self.assertEqual(c.flops, 0)
        self.assertEqual(c.weight_bytes, 3 * 8 * 4)

    def test_unknown_op_is_an_error(self):
        m = graph_model(
            [helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")], [("a", [2, 3]), ("b", [3, 4])], ["y"]
        )
        with self.assertRaisesRegex(ValueError, "Einsum is not counted"):
            flops.count(m)

    def test_published_model_costs(self):
        # torchvision's model tables list multiply-accumulates ("GFLOPS") of its ImageNet models;
        # the counter's FLOPs are twice that. GoogLeNet is left out: its third branch is a 5x5
        # here (the paper) and a 3x3 in torchvision.
        published_gmacs = {"resnet50": 4.09, "mobilenet_v2": 0.30, "squeezenet1_1": 0.35, "shufflenet_v2": 0.14}
        for name, gmacs in published_gmacs.items():
            with self.subTest(name):
                model, _ = models.build(models.BY_NAME[name])
                self.assertEqual(round(flops.count(model).flops / 2e9, 2), gmacs)

    def test_bert_layer_by_hand(self):
        model, _ = models.build(models.BY_NAME["bert_base_layer"])
        s, h, f, heads = 128, 768, 3072, 12
        macs = 4 * s * h * h + 2 * s * h * f + 2 * heads * s * s * (h // heads)
        self.assertEqual(flops.count(model).flops, 2 * macs)


class Generator(unittest.TestCase):
    def test_matches_manifest(self):
        # The manifest was written by an earlier run, so matching it also shows the generator is
        # deterministic. Models over 30 MB are left to `bench/models.py --check` (about 10 s).
        manifest = json.loads(models.MANIFEST.read_text())
        self.assertEqual(sorted(manifest["models"]), sorted(s.name for s in models.FILE_SPECS))
        small = [n for n, m in manifest["models"].items() if sum(f["bytes"] for f in m["files"].values()) < 30e6]
        self.assertGreaterEqual(len(small), 6)
        with tempfile.TemporaryDirectory() as d:
            for name in small:
                with self.subTest(name):
                    self.assertEqual(models.write(models.BY_NAME[name], Path(d)), manifest["models"][name])

    def test_models_are_checked_onnx_at_opset_17(self):
        for name in ("mlp_b1", "bert_4l_256", "shufflenet_v2"):
            with self.subTest(name):
                model, inputs = models.build(models.BY_NAME[name])
                self.assertEqual([o.version for o in model.opset_import], [17])
                self.assertEqual(len(inputs), len(model.graph.input))
                onnx.checker.check_model(model, full_check=True)

    def test_cache_detects_a_changed_file(self):
        manifest = json.loads(models.MANIFEST.read_text())
        with tempfile.TemporaryDirectory() as d:
            models.write(models.BY_NAME["mlp_b1"], Path(d))
            self.assertTrue(models.cached("mlp_b1", Path(d), manifest))
            p = Path(d) / "mlp_b1" / "test_data_set_0" / "input_0.pb"
            data = bytearray(p.read_bytes())
            data[-1] ^= 1
            p.write_bytes(bytes(data))
            self.assertFalse(models.cached("mlp_b1", Path(d), manifest))


class Variants(unittest.TestCase):
    def test_variant_rows_use_their_base_model(self):
        for s in models.SPECS:
            if s.base is None:
                continue
            with self.subTest(s.name):
                # Timed on the base row's files (models.ensure maps the name), so no manifest entry.
                base = models.BY_NAME[s.base]
                self.assertIn(base, models.FILE_SPECS)
                self.assertEqual(s.seed, base.seed)
                # A variant differs from its base by Kiln's flags or by the model Kiln compiles.
                self.assertTrue(s.kiln_flags or s.kiln_model != "fp32")
                self.assertIn(s.ort, ("fp32", "nbits4", "int8dyn"))
                self.assertIn(s.kiln_model, ("fp32", "nbits4"))

    def test_ort_quantizes_the_op_types_kiln_does(self):
        # ORT's quantize_dynamic model of an int8dyn row quantizes what Kiln's --quantize-ops
        # names (MatMul and Gemm without the flag), so both engines run the same recipe.
        self.assertEqual(suite.quantized_ops(("--quantize=int8",)), ["MatMul", "Gemm"])
        rows = {s.name: s for s in models.SPECS if s.ort == "int8dyn"}
        self.assertEqual(suite.quantized_ops(rows["resnet50_int8dyn"].kiln_flags), ["Conv", "Gemm"])
        self.assertEqual(suite.quantized_ops(rows["bert_4l_256_int8dyn"].kiln_flags), ["MatMul", "Gemm"])

    def test_matmul_nbits_model_matches_f32(self):
        # ORT's MatMulNBits form of a small MatMul (K not a multiple of the block): the same
        # outputs as the f32 model up to 4-bit quantization error, a wrong packing is far off.
        import onnxruntime as ort

        rng = np.random.default_rng(3)
        k, n = 100, 24
        w = (rng.standard_normal((k, n)) / math.sqrt(k)).astype(F32)
        m = graph_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [5, k])], ["y"], [("w", w)])
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "f32.onnx"
            onnx.save(m, str(src))
            q = suite.matmul_nbits_model(src, Path(d) / "q" / "model.onnx", block=32)
            qm = onnx.load(str(q))
            self.assertEqual([x.op_type for x in qm.graph.node], ["MatMulNBits"])
            x = rng.standard_normal((5, k)).astype(F32)
            want = x @ w
            got = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        rel = np.sqrt(((got - want) ** 2).mean() / (want**2).mean())
        self.assertLess(rel, 0.15)
        self.assertGreater(rel, 0.0)

    def test_base_ratios(self):
        def row(name, ms, base=None):
            r = {"model": name, "title": name, "threads": {"1": {"kiln": {"median_ms": ms}, "ort": {"median_ms": 2.0}}}}
            if base:
                r["base"] = base
            return r

        report = {"models": [row("f", 4.0), row("q", 1.0, base="f"), row("lone", 1.0, base="absent")]}
        rows = suite.base_ratios(report)
        self.assertEqual([r["model"] for r in rows], ["q"])
        self.assertEqual(rows[0]["threads"]["1"]["speedup"], 4.0)


class Compare(unittest.TestCase):
    def test_within_tolerance(self):
        o = np.array([1.0, -4.0, 2.0], F32)
        ok, err, _ = suite.compare([o + F32(1e-5)], [o], 1e-5)
        self.assertTrue(ok)
        self.assertAlmostEqual(err, 1e-5 / 4, delta=1e-7)

    def test_beyond_tolerance(self):
        o = np.array([1.0, -4.0, 2.0], F32)
        ok, err, why = suite.compare([o + F32(1e-3)], [o], 1e-4)
        self.assertFalse(ok)
        self.assertIn("> 0.0001", why)

    def test_nan_and_inf_fail(self):
        o = np.ones(4, F32)
        for bad in (np.nan, np.inf):
            k = o.copy()
            k[2] = bad
            ok, err, why = suite.compare([k], [o], 1.0)
            self.assertFalse(ok)
            self.assertTrue(math.isinf(err))
            self.assertIn("non-finite", why)

    def test_shape_and_count(self):
        self.assertFalse(suite.compare([np.ones((2, 3), F32)], [np.ones((3, 2), F32)], 1.0)[0])
        self.assertFalse(suite.compare([np.ones(3, F32)], [np.ones(3, F32)] * 2, 1.0)[0])

    def test_nearest_rank(self):
        v = [float(i) for i in range(1, 11)]
        self.assertEqual(suite.nearest_rank(v, 0.5), 5.0)
        self.assertEqual(suite.nearest_rank(v, 0.9), 9.0)
        self.assertEqual(suite.nearest_rank(v, 0.1), 1.0)
        self.assertEqual(suite.nearest_rank([3.0], 0.9), 3.0)



class ModelDirectories(unittest.TestCase):
    def test_a_directory_takes_the_given_tolerance(self):
        with tempfile.TemporaryDirectory() as t:
            (Path(t) / "model.onnx").write_bytes(b"")
            (m,) = suite.resolve_models(t, False)
            self.assertEqual(m.rtol, 1e-4)
            (m,) = suite.resolve_models(t, False, 5e-3)
            self.assertEqual(m.rtol, 5e-3)


class QuantAccuracy(unittest.TestCase):
    def test_errors_are_relative_rms_and_largest(self):
        ref = np.array([3.0, -4.0, 0.0], F32)
        got = np.array([3.0, -4.5, 0.5], F32)
        rel, mx, nan = quant_accuracy.errors(ref, got)
        self.assertAlmostEqual(rel, math.sqrt(0.5 / 25.0))
        self.assertEqual(mx, 0.5)
        self.assertEqual(nan, 0)

    def test_nan_on_one_side_is_counted_never_hidden(self):
        ref = np.array([1.0, np.nan, 2.0, np.nan], F32)
        got = np.array([np.nan, 1.0, 2.0, np.nan], F32)
        rel, mx, nan = quant_accuracy.errors(ref, got)
        self.assertEqual(nan, 2)
        self.assertEqual((rel, mx), (0.0, 0.0))
        with self.assertRaises(ValueError):
            quant_accuracy.errors(ref, got[:2])

if __name__ == "__main__":
    unittest.main()
