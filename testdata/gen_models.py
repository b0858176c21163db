#!/usr/bin/env python3
"""Generate Kiln's small bundled ONNX test models and their reference data.

Writes, for each model NAME:

    testdata/models/NAME/model.onnx
    testdata/models/NAME/test_data_set_0/input_<i>.pb    (TensorProto, named after the graph input)
    testdata/models/NAME/test_data_set_0/output_<i>.pb   (TensorProto, named after the graph output)

plus testdata/models/MANIFEST.json (versions, ops, shapes, sizes, sha256 of every file).

Invariants:
- Deterministic: every model has its own seeded numpy Generator, so regenerating with the same
  package versions gives byte-identical files (checked by `--check`).
- Expected outputs are independent of Kiln: they come from ONNX Runtime's CPU execution provider
  with graph optimizations DISABLED, one thread, fp32. They are cross-checked against onnx's
  pure-python ReferenceEvaluator so that a bad ORT result cannot silently become a golden value.
- All models use opset 17 and IR version 8 (the pair onnx 1.12 introduced), so that older
  readers can load them too. The transformer's Gelu is therefore the exact Erf formula
  0.5 * x * (1 + erf(x / sqrt(2))) and not the opset-20 Gelu op.

Regenerate with:  .venv/bin/python testdata/gen_models.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 17
IR_VERSION = 8
MODELS_DIR = Path(__file__).resolve().parent / "models"
# Tolerances for the ORT-vs-ReferenceEvaluator cross-check, fp32 throughout.
XCHECK_RTOL = 1e-4
XCHECK_ATOL = 1e-5


def weight(rng: np.random.Generator, name: str, shape: tuple[int, ...], scale: float = 0.1) -> TensorProto:
    """A float32 initializer drawn from N(0, scale^2)."""
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def make_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_operatorsetid("", OPSET)],
        producer_name="kiln-testdata-gen_models",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


# --- models ---------------------------------------------------------------------------------


def build_mlp(rng: np.random.Generator, batch: int | str) -> onnx.ModelProto:
    """Gemm(64->128)+Relu, Gemm(128->128)+Relu, Gemm(128->10), Softmax.

    The first and last Gemm use transB=1 (PyTorch export style, B is [N, K]); the middle one uses
    transB=0 (B is [K, N]), so both layouts are exercised.
    """
    inits = [
        weight(rng, "fc1.weight", (128, 64)),
        weight(rng, "fc1.bias", (128,)),
        weight(rng, "fc2.weight", (128, 128)),
        weight(rng, "fc2.bias", (128,)),
        weight(rng, "fc3.weight", (10, 128)),
        weight(rng, "fc3.bias", (10,)),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["fc1"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
        helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["fc2"], name="fc2", transB=0),
        helper.make_node("Relu", ["fc2"], ["relu2"], name="relu2"),
        helper.make_node("Gemm", ["relu2", "fc3.weight", "fc3.bias"], ["logits"], name="fc3", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])],
        initializer=inits,
    )
    return make_model(graph)


def build_cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv-BN-Relu-MaxPool, Conv-Relu-AveragePool-GlobalAveragePool, Flatten, Gemm -> 10."""
    inits = [
        weight(rng, "conv1.weight", (8, 3, 3, 3), 0.2),
        weight(rng, "conv1.bias", (8,)),
        numpy_helper.from_array((1.0 + rng.standard_normal(8) * 0.1).astype(np.float32), "bn1.scale"),
        weight(rng, "bn1.bias", (8,)),
        weight(rng, "bn1.mean", (8,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn1.var"),
        weight(rng, "conv2.weight", (16, 8, 3, 3), 0.2),
        weight(rng, "conv2.bias", (16,)),
        weight(rng, "fc.weight", (10, 16), 0.3),
        weight(rng, "fc.bias", (10,)),
    ]
    nodes = [
        # [1,3,32,32] -> [1,8,32,32]
        helper.make_node(
            "Conv",
            ["x", "conv1.weight", "conv1.bias"],
            ["conv1"],
            name="conv1",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[1, 1],
        ),
        helper.make_node(
            "BatchNormalization",
            ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
            ["bn1"],
            name="bn1",
            epsilon=1e-5,
        ),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        # -> [1,8,16,16]
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        # -> [1,16,14,14] (no padding)
        helper.make_node(
            "Conv",
            ["pool1", "conv2.weight", "conv2.bias"],
            ["conv2"],
            name="conv2",
            kernel_shape=[3, 3],
            strides=[1, 1],
        ),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        # -> [1,16,7,7]
        helper.make_node("AveragePool", ["relu2"], ["pool2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        # -> [1,16,1,1]
        helper.make_node("GlobalAveragePool", ["pool2"], ["gap"], name="gap"),
        # -> [1,16]
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    return make_model(graph)


SEQ, VOCAB, HIDDEN, HEADS, FFN = 16, 100, 32, 2, 64
HEAD_DIM = HIDDEN // HEADS


def build_transformer(rng: np.random.Generator) -> onnx.ModelProto:
    """Pre-LN encoder block: embeddings, LN, 2-head self-attention, residual, LN, Gelu MLP, residual."""
    inits = [
        weight(rng, "tok_emb", (VOCAB, HIDDEN), 0.5),
        weight(rng, "pos_emb", (SEQ, HIDDEN), 0.5),
        numpy_helper.from_array((1.0 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32), "ln1.scale"),
        weight(rng, "ln1.bias", (HIDDEN,)),
        weight(rng, "wq", (HIDDEN, HIDDEN), 0.2),
        weight(rng, "bq", (HIDDEN,)),
        weight(rng, "wk", (HIDDEN, HIDDEN), 0.2),
        weight(rng, "bk", (HIDDEN,)),
        weight(rng, "wv", (HIDDEN, HIDDEN), 0.2),
        weight(rng, "bv", (HIDDEN,)),
        weight(rng, "wo", (HIDDEN, HIDDEN), 0.2),
        weight(rng, "bo", (HIDDEN,)),
        numpy_helper.from_array((1.0 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32), "ln2.scale"),
        weight(rng, "ln2.bias", (HIDDEN,)),
        weight(rng, "w1", (HIDDEN, FFN), 0.2),
        weight(rng, "b1", (FFN,)),
        weight(rng, "w2", (FFN, HIDDEN), 0.2),
        weight(rng, "b2", (HIDDEN,)),
        numpy_helper.from_array(np.array([1, SEQ, HEADS, HEAD_DIM], np.int64), "heads_shape"),
        numpy_helper.from_array(np.array([1, SEQ, HIDDEN], np.int64), "hidden_shape"),
        numpy_helper.from_array(np.array(math.sqrt(HEAD_DIM), np.float32), "attn_scale"),
        numpy_helper.from_array(np.array(math.sqrt(2.0), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    n = helper.make_node
    nodes = [
        # Embeddings: [1,16] int64 -> [1,16,32]; pos_emb [16,32] broadcasts over the batch.
        n("Gather", ["tok_emb", "input_ids"], ["tok"], name="tok_gather", axis=0),
        n("Add", ["tok", "pos_emb"], ["h0"], name="pos_add"),
        n("LayerNormalization", ["h0", "ln1.scale", "ln1.bias"], ["ln1"], name="ln1", axis=-1, epsilon=1e-5),
    ]
    # Q/K/V projections -> [1,16,2,16] -> heads first.
    for p in ("q", "k", "v"):
        nodes += [
            n("MatMul", ["ln1", f"w{p}"], [f"{p}_mm"], name=f"{p}_matmul"),
            n("Add", [f"{p}_mm", f"b{p}"], [f"{p}_proj"], name=f"{p}_bias"),
            n("Reshape", [f"{p}_proj", "heads_shape"], [f"{p}_split"], name=f"{p}_reshape"),
        ]
    nodes += [
        n("Transpose", ["q_split"], ["q_heads"], name="q_transpose", perm=[0, 2, 1, 3]),  # [1,2,16,16]
        n("Transpose", ["k_split"], ["k_heads_t"], name="k_transpose", perm=[0, 2, 3, 1]),  # [1,2,16(d),16(s)]
        n("Transpose", ["v_split"], ["v_heads"], name="v_transpose", perm=[0, 2, 1, 3]),
        n("MatMul", ["q_heads", "k_heads_t"], ["scores_raw"], name="qk_matmul"),  # [1,2,16,16]
        n("Div", ["scores_raw", "attn_scale"], ["scores"], name="qk_scale"),
        n("Softmax", ["scores"], ["probs"], name="attn_softmax", axis=-1),
        n("MatMul", ["probs", "v_heads"], ["ctx_heads"], name="pv_matmul"),  # [1,2,16,16]
        n("Transpose", ["ctx_heads"], ["ctx_t"], name="ctx_transpose", perm=[0, 2, 1, 3]),  # [1,16,2,16]
        n("Reshape", ["ctx_t", "hidden_shape"], ["ctx"], name="ctx_reshape"),  # [1,16,32]
        n("MatMul", ["ctx", "wo"], ["o_mm"], name="o_matmul"),
        n("Add", ["o_mm", "bo"], ["attn_out"], name="o_bias"),
        n("Add", ["h0", "attn_out"], ["h1"], name="residual1"),
        n("LayerNormalization", ["h1", "ln2.scale", "ln2.bias"], ["ln2"], name="ln2", axis=-1, epsilon=1e-5),
        n("MatMul", ["ln2", "w1"], ["ff1_mm"], name="ff1_matmul"),
        n("Add", ["ff1_mm", "b1"], ["ff1"], name="ff1_bias"),
        # Exact Gelu: 0.5 * x * (1 + erf(x / sqrt(2))).
        n("Div", ["ff1", "sqrt2"], ["gelu_div"], name="gelu_div"),
        n("Erf", ["gelu_div"], ["gelu_erf"], name="gelu_erf"),
        n("Add", ["gelu_erf", "one"], ["gelu_add"], name="gelu_add"),
        n("Mul", ["ff1", "gelu_add"], ["gelu_mul"], name="gelu_mul"),
        n("Mul", ["gelu_mul", "half"], ["gelu"], name="gelu_half"),
        n("MatMul", ["gelu", "w2"], ["ff2_mm"], name="ff2_matmul"),
        n("Add", ["ff2_mm", "b2"], ["ff2"], name="ff2_bias"),
        n("Add", ["h1", "ff2"], ["hidden_states"], name="residual2"),
    ]
    graph = helper.make_graph(
        nodes,
        "transformer",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, SEQ])],
        [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, [1, SEQ, HIDDEN])],
        initializer=inits,
    )
    return make_model(graph)


def build_all() -> dict[str, tuple[onnx.ModelProto, list[np.ndarray]]]:
    """Every bundled model with its test inputs. Each model has its own seed, so adding a model
    never changes the others."""
    out = {}

    rng = np.random.default_rng(1001)
    model = build_mlp(rng, 1)
    out["mlp"] = (model, [rng.standard_normal((1, 64)).astype(np.float32)])

    # Same weights as `mlp` (same seed, same draw order), symbolic batch, tested at batch 4.
    rng = np.random.default_rng(1001)
    model = build_mlp(rng, "batch")
    out["mlp_dynamic"] = (model, [rng.standard_normal((4, 64)).astype(np.float32)])

    rng = np.random.default_rng(1002)
    model = build_cnn(rng)
    out["cnn"] = (model, [rng.standard_normal((1, 3, 32, 32)).astype(np.float32)])

    rng = np.random.default_rng(1003)
    model = build_transformer(rng)
    out["transformer"] = (model, [rng.integers(0, VOCAB, (1, SEQ), dtype=np.int64)])
    return out


# --- reference outputs and writing ----------------------------------------------------------


def ort_outputs(model: onnx.ModelProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: arr for i, arr in zip(sess.get_inputs(), inputs, strict=True)}
    return sess.run([o.name for o in sess.get_outputs()], feeds)


def cross_check(name: str, model: onnx.ModelProto, inputs: list[np.ndarray], expected: list[np.ndarray]) -> None:
    ref = ReferenceEvaluator(model)
    feeds = {i.name: arr for i, arr in zip(model.graph.input, inputs, strict=True)}
    got = ref.run(None, feeds)
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        if not np.all(np.isfinite(e)):
            raise SystemExit(f"{name}: ORT output {i} has non-finite values")
        if e.shape != g.shape or not np.allclose(e, g, rtol=XCHECK_RTOL, atol=XCHECK_ATOL):
            diff = float(np.max(np.abs(e.astype(np.float64) - g))) if e.shape == g.shape else "shape"
            raise SystemExit(f"{name}: ORT and ReferenceEvaluator disagree on output {i} (max abs diff {diff})")


def write_model(root: Path, name: str, model: onnx.ModelProto, inputs: list[np.ndarray]) -> dict:
    outputs = ort_outputs(model, inputs)
    cross_check(name, model, inputs, outputs)
    mdir = root / name
    ddir = mdir / "test_data_set_0"
    ddir.mkdir(parents=True, exist_ok=True)
    for stale in ddir.glob("*.pb"):
        stale.unlink()
    (mdir / "model.onnx").write_bytes(model.SerializeToString())
    for i, (vi, arr) in enumerate(zip(model.graph.input, inputs, strict=True)):
        (ddir / f"input_{i}.pb").write_bytes(numpy_helper.from_array(arr, vi.name).SerializeToString())
    for i, (vi, arr) in enumerate(zip(model.graph.output, outputs, strict=True)):
        (ddir / f"output_{i}.pb").write_bytes(numpy_helper.from_array(arr, vi.name).SerializeToString())

    def dims(vi: onnx.ValueInfoProto) -> list:
        return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in vi.type.tensor_type.shape.dim]

    files = sorted(p for p in mdir.rglob("*") if p.is_file())
    return {
        "opset": OPSET,
        "ir_version": model.ir_version,
        "ops": sorted({node.op_type for node in model.graph.node}),
        "num_nodes": len(model.graph.node),
        "num_weights": int(sum(int(np.prod(t.dims)) for t in model.graph.initializer)),
        "inputs": [
            {
                "name": vi.name,
                "dtype": TensorProto.DataType.Name(vi.type.tensor_type.elem_type),
                "shape": dims(vi),
                "test_shape": list(a.shape),
            }
            for vi, a in zip(model.graph.input, inputs, strict=True)
        ],
        "outputs": [
            {
                "name": vi.name,
                "dtype": TensorProto.DataType.Name(vi.type.tensor_type.elem_type),
                "shape": dims(vi),
                "test_shape": list(a.shape),
            }
            for vi, a in zip(model.graph.output, outputs, strict=True)
        ],
        "files": {
            str(p.relative_to(mdir)): {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in files
        },
    }


def generate(root: Path) -> dict:
    manifest = {
        "generator": "testdata/gen_models.py",
        "reference": "onnxruntime CPUExecutionProvider, ORT_DISABLE_ALL, 1 thread, fp32; "
        f"cross-checked with onnx.reference.ReferenceEvaluator (rtol={XCHECK_RTOL}, atol={XCHECK_ATOL})",
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "models": {},
    }
    for name, (model, inputs) in build_all().items():
        manifest["models"][name] = write_model(root, name, model, inputs)
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="output directory (default: %(default)s)")
    ap.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and fail if any file differs from --out",
    )
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(Path(tmp))
            committed = json.loads((args.out / "MANIFEST.json").read_text())
            if fresh != committed:
                print("testdata models differ from a fresh regeneration", file=sys.stderr)
                return 1
            print("testdata models are up to date")
            return 0
    manifest = generate(args.out)
    for name, m in manifest["models"].items():
        size = sum(f["bytes"] for f in m["files"].values())
        print(f"{name}: {size} bytes, ops={','.join(m['ops'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
