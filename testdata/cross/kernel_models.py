#!/usr/bin/env python3
"""Quantized models for the conformance suite's AArch64 path (`scripts/conformance.py --paths
aarch64`): they run Kiln's int8 and 4-bit kernels compiled for an Arm CPU with the dot-product
extension (SDOT), under qemu-user, against ONNX Runtime.

Each model is a two-layer MLP (K = 67 and 131: not multiples of a vector, a 4-lane dot product or
a 32-value block) at batch 1 (the GEMV kernels) and batch 5 (the GEMM kernels), quantized by
ONNX Runtime's own tools, made locally:
- int8: `quantize_dynamic` (DynamicQuantizeLinear, MatMulInteger with int8 weights);
- nbits: `MatMulNBitsQuantizer` (com.microsoft MatMulNBits, 4-bit, block 32, symmetric).
Expected outputs are ONNX Runtime's (CPU provider, one thread) on the quantized model; the
tolerance covers activation rounding (one int8 step moves an output by ~1e-3 of the range).

    .venv/bin/python testdata/cross/kernel_models.py OUT_DIR   # writes OUT_DIR/<name>/...
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# The Arm CPU the models are compiled for: Armv8.2 with dotprod (SDOT/UDOT), which qemu-user's
# default CPU ("max") executes.
CPU = "cortex-a55"
K1, N1, N2 = 67, 131, 10


@dataclasses.dataclass
class KernelModel:
    name: str
    dir: Path
    cpu: str
    rtol: float
    atol: float


def mlp(rng: np.random.Generator) -> onnx.ModelProto:
    w1 = (rng.standard_normal((K1, N1)) * 0.2).astype(np.float32)
    b1 = (rng.standard_normal(N1) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((N1, N2)) * 0.2).astype(np.float32)
    b2 = (rng.standard_normal(N2) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", K1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N2])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 17)])
    m.ir_version = 8
    return m


def quantize(model: onnx.ModelProto, scheme: str, tmp: Path) -> onnx.ModelProto:
    # (onnx-ir, which MatMulNBitsQuantizer needs, is pinned in scripts/requirements.txt.)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger().setLevel(logging.ERROR)
    if scheme == "int8":
        src, dst = tmp / "f32.onnx", tmp / "int8.onnx"
        onnx.save(model, str(src))
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        return onnx.load(str(dst))
    q = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True)
    q.process()
    return q.model.model


def write(root: Path) -> list[KernelModel]:
    """Writes every model with one test-set folder under `root`; returns them."""
    out = []
    with tempfile.TemporaryDirectory(prefix="kiln-kernel-models-") as t:
        tmp = Path(t)
        for scheme in ("int8", "nbits"):
            model = quantize(mlp(np.random.default_rng(2026)), scheme, tmp)
            for batch in (1, 5):
                name = f"{scheme}_b{batch}"
                d = root / name
                (d / "test_data_set_0").mkdir(parents=True, exist_ok=True)
                onnx.save(model, str(d / "model.onnx"))
                x = np.random.default_rng(batch).standard_normal((batch, K1)).astype(np.float32)
                so = ort.SessionOptions()
                so.intra_op_num_threads = 1
                sess = ort.InferenceSession(str(d / "model.onnx"), so, providers=["CPUExecutionProvider"])
                (y,) = sess.run(None, {"x": x})
                for kind, arr, n in (("input", x, "x"), ("output", y, "y")):
                    t_ = numpy_helper.from_array(arr, n)
                    (d / "test_data_set_0" / f"{kind}_0.pb").write_bytes(t_.SerializeToString())
                # int8: activation rounding may differ by one code; 4-bit: the same weights.
                atol = (5e-3 if scheme == "int8" else 1e-4) * float(np.abs(y).max())
                out.append(KernelModel(f"kernel_{name}", d, CPU, 1e-3, atol))
    return out


if __name__ == "__main__":
    for m in write(Path(sys.argv[1])):
        print(m)
