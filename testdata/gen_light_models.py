#!/usr/bin/env python3
"""Writes the ONNX package's "light" CNNs (onnx/backend/test/data/light: AlexNet, DenseNet-121,
Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512) with informative weights,
each with an input and ONNX Runtime's outputs, in the ONNX test-set layout:

    .venv/bin/python testdata/gen_light_models.py OUT_DIR
    OUT_DIR/<model>/model.onnx, OUT_DIR/<model>/test_data_set_0/{input,output}_<i>.pb

`compiler/kiln-driver/tests/driver.rs` (onnx_light_models_match_onnx_runtime) runs this at test
time from the project venv, then compiles and runs every model with Kiln and compares.

Why rewrite the weights: the light models ship every weight as ConstantOfShape(value=0.02), so
each layer's output channels are all equal and the final softmax is exactly uniform (1/1000):
a compiler that got a convolution's padding, stride or channel indexing wrong would still match.
Here every ConstantOfShape is replaced by seeded random values of the same shape, scaled per
consumer so activations stay O(1) through the whole network (He-normal for Conv/Gemm weights,
near-one scales and variances and small shifts for BatchNormalization); weights above
RANK1_ABOVE elements are an outer product u * v computed in the graph (a Mul of two small
initializers), which keeps the files small and still gives every output channel its own value.
The input is ONNX's own dummy data for these models (arange(n) / n, as its backend runner
makes). The input of a final Softmax is an output too (the logits), since a saturated softmax
hides errors. Deterministic: the same files on every run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
# Weights with more elements are built as an outer product in the graph.
RANK1_ABOVE = 1 << 18


def consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[str, int]]]:
    """value name -> [(op type, operand index)] of the nodes that read it."""
    out: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            out.setdefault(name, []).append((node.op_type, i))
    return out


def weight_values(rng: np.random.Generator, shape: tuple[int, ...], uses: list[tuple[str, int]]) -> np.ndarray:
    """Random values for a weight of `shape` read by `uses`."""
    op, index = uses[0] if uses else ("", 0)
    n = int(np.prod(shape)) if shape else 1
    if op in ("Conv", "Gemm") and index == 1 and len(shape) >= 2:
        fan_in = n // shape[0]
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    if op == "BatchNormalization" and index in (1, 4):  # scale, variance
        return rng.uniform(0.5, 1.5, shape)
    if op == "BatchNormalization":  # bias, mean
        return rng.normal(0.0, 0.1, shape)
    if op in ("Conv", "Gemm"):  # biases
        return rng.normal(0.0, 0.05, shape)
    # Per-channel scales and shifts (Unsqueeze -> Mul/Add), a reshaped weight, ...
    return rng.uniform(0.5, 1.5, shape)


def rewrite_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    uses = consumers(g)
    nodes = []
    for node in g.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            nodes.append(node)
            continue
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        dtype = numpy_helper.to_array(value).dtype if value is not None else np.float32
        if dtype != np.float32:
            nodes.append(node)
            continue
        shape = tuple(int(d) for d in inits[node.input[0]])
        out = node.output[0]
        w_uses = uses.get(out, [])
        if int(np.prod(shape)) > RANK1_ABOVE and len(shape) >= 2:
            # u[o] * v[rest]: each output channel its own multiple of one random filter,
            # scaled like the full weight (He-normal over the fan-in).
            fan_in = int(np.prod(shape[1:]))
            u = rng.uniform(-1.5, 1.5, (shape[0],) + (1,) * (len(shape) - 1)).astype(np.float32)
            v = rng.normal(0.0, math.sqrt(2.0 / fan_in), (1,) + shape[1:]).astype(np.float32)
            g.initializer.extend([numpy_helper.from_array(u, out + "_u"), numpy_helper.from_array(v, out + "_v")])
            nodes.append(helper.make_node("Mul", [out + "_u", out + "_v"], [out], name=out + "_rank1"))
        else:
            w = weight_values(rng, shape, w_uses).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(w, out))
    del g.node[:]
    g.node.extend(nodes)
    if model.ir_version < 4:
        # Before IR 4 every initializer must also be declared as a graph input.
        declared = {vi.name for vi in g.input}
        for t in g.initializer:
            if t.name not in declared:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    # The logits too: a saturated softmax (one class near 1, the rest near 0) would hide errors.
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {vi.name: vi for vi in (*inferred.value_info, *inferred.output)}
    outputs = {o.name for o in g.output}
    for node in g.node:
        vi = types.get(node.input[0]) if node.op_type == "Softmax" and node.output[0] in outputs else None
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            g.output.append(vi)
    return model


def dummy_input(vi: onnx.ValueInfoProto) -> np.ndarray:
    """onnx.backend.test.runner's generate_dummy_data(random=False)."""
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(sys.argv[1])
    models = sorted(LIGHT.glob("light_*.onnx"))
    if not models:
        print(f"no light models under {LIGHT}", file=sys.stderr)
        return 1
    for seed, path in enumerate(models):
        name = path.stem
        model = rewrite_weights(onnx.load(str(path)), seed)
        onnx.checker.check_model(model)
        d = out_dir / name / "test_data_set_0"
        d.mkdir(parents=True, exist_ok=True)
        (out_dir / name / "model.onnx").write_bytes(model.SerializeToString())
        inits = {t.name for t in model.graph.initializer}
        feeds = {}
        for i, vi in enumerate(x for x in model.graph.input if x.name not in inits):
            feeds[vi.name] = dummy_input(vi)
            (d / f"input_{i}.pb").write_bytes(numpy_helper.from_array(feeds[vi.name], vi.name).SerializeToString())
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the models carry unused initializers; ORT warns about each
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        results = session.run(None, feeds)
        for i, (vi, r) in enumerate(zip(model.graph.output, results)):
            (d / f"output_{i}.pb").write_bytes(numpy_helper.from_array(r, vi.name).SerializeToString())
        top = np.sort(results[0].ravel())[::-1]
        print(f"{name}: {len(feeds)} input(s), outputs {[list(r.shape) for r in results]}, top {top[:3]}, min {top[-1]:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
