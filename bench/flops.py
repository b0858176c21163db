"""Operation and byte counts of an ONNX graph with static shapes: the suite's one FLOP counter.

    flops.count(model) -> Counts

- `flops`: floating-point operations of the contractions, 2 per multiply-accumulate:
  MatMul 2*M*N*K (batched: times the batch), Gemm 2*M*N*K, Conv 2 * output elements *
  (Cin/group * kernel elements), ConvTranspose 2 * input elements * (Cout/group * kernel elements).
  This is the convention of GEMM benchmarks and of published model costs (torchvision's
  "GFLOPS" column counts multiply-accumulates, half of this), so GFLOP/s compare with the
  machine's FMA peak.
- `other_ops`: everything else that computes, one per element and elementary step (bias adds,
  activations, normalizations, softmax, pooling windows), reported apart because those ops run
  on other units at other rates.
- `weight_bytes`: the bytes of constants a run must read at least once (an embedding table counts
  only the rows its Gather reads); `io_bytes`: graph inputs and outputs. Their sum is the
  compulsory memory traffic of one run, the basis of the bandwidth roofline.

Invariant: an op the counter does not know raises ValueError, so a new contraction can never be
silently counted as free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

# Ops that only move, view or describe data.
MOVE = {
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Expand",
    "Flatten",
    "Gather",
    "Identity",
    "Reshape",
    "Shape",
    "Slice",
    "Split",
    "Squeeze",
    "Transpose",
    "Unsqueeze",
    "Dropout",
}
# Elementwise ops: one operation per output element.
ELEMENTWISE = {
    "Abs",
    "Add",
    "Clip",
    "Div",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Gelu",
    "Greater",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Less",
    "Log",
    "Max",
    "Min",
    "Mul",
    "Neg",
    "Not",
    "Pow",
    "PRelu",
    "Reciprocal",
    "Relu",
    "Sigmoid",
    "Sqrt",
    "Sub",
    "Tanh",
    "Where",
}
# Reductions: one operation per input element.
REDUCE = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum"}
# Steps per element: softmax is max, subtract, exp, sum, divide; a normalization is mean, subtract,
# square, mean, rsqrt, scale, shift; BatchNormalization in eval mode is a scale and a shift.
PER_ELEMENT = {"Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 7, "BatchNormalization": 2}


@dataclass
class Counts:
    flops: int = 0
    other_ops: int = 0
    weight_bytes: int = 0
    io_bytes: int = 0
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def min_bytes(self) -> int:
        return self.weight_bytes + self.io_bytes


def _numel(shape: list[int]) -> int:
    return math.prod(shape)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[list[int], int]]:
    """Every value's static shape and element type, by strict ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    out: dict[str, tuple[list[int], int]] = {}
    for t in inferred.graph.initializer:
        out[t.name] = (list(t.dims), t.data_type)
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if any(d is None for d in dims):
            raise ValueError(f"value '{vi.name}' has a dynamic shape {dims}; the counter needs static shapes")
        out[vi.name] = (dims, tt.elem_type)
    return out


def _itemsize(elem_type: int) -> int:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize


def count(model: onnx.ModelProto) -> Counts:
    shapes = _shapes(model)
    inits = {t.name for t in model.graph.initializer}
    c = Counts()

    def shape(name: str) -> list[int]:
        if name not in shapes:
            raise ValueError(f"no inferred shape for '{name}'")
        return shapes[name][0]

    gathered: set[str] = set()
    for node in model.graph.node:
        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        out = shape(node.output[0]) if node.output and node.output[0] else []
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"node '{node.name}': op {node.domain}::{op} is not counted")
        if op == "MatMul":
            a = shape(node.input[0])
            f = 2 * _numel(out) * a[-1]
        elif op == "Gemm":
            a = shape(node.input[0])
            k = a[0] if attrs.get("transA", 0) else a[1]
            f = 2 * _numel(out) * k
            if len(node.input) > 2 and node.input[2]:
                c.other_ops += _numel(out)
        elif op == "Conv":
            w = shape(node.input[1])
            f = 2 * _numel(out) * _numel(w[1:])
            if len(node.input) > 2 and node.input[2]:
                c.other_ops += _numel(out)
        elif op == "ConvTranspose":
            x, w = shape(node.input[0]), shape(node.input[1])
            f = 2 * _numel(x) * _numel(w[1:])
            if len(node.input) > 2 and node.input[2]:
                c.other_ops += _numel(out)
        else:
            f = 0
            if op in ELEMENTWISE:
                c.other_ops += _numel(out)
            elif op in REDUCE:
                c.other_ops += _numel(shape(node.input[0]))
            elif op in PER_ELEMENT:
                c.other_ops += PER_ELEMENT[op] * _numel(out)
            elif op in ("MaxPool", "AveragePool"):
                c.other_ops += _numel(out) * _numel(list(attrs["kernel_shape"]))
            elif op not in MOVE:
                raise ValueError(f"node '{node.name}': op {op} is not counted")
            if op == "Gather" and node.input[0] in inits:
                # A lookup table is read only where it is indexed.
                gathered.add(node.input[0])
                c.weight_bytes += _numel(out) * _itemsize(shapes[node.output[0]][1])
        if f:
            c.flops += f
            c.by_op[op] = c.by_op.get(op, 0) + f
    for t in model.graph.initializer:
        if t.name not in gathered:
            c.weight_bytes += _numel(list(t.dims)) * _itemsize(t.data_type)
    for vi in [*model.graph.input, *model.graph.output]:
        if vi.name not in inits:
            dims, et = shapes[vi.name]
            c.io_bytes += _numel(dims) * _itemsize(et)
    return c
