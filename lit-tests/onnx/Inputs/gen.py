#!/usr/bin/env python3
"""Regenerate the ONNX inputs of lit-tests/onnx (run with the project venv):

    .venv/bin/python lit-tests/onnx/Inputs/gen.py

unsupported.onnx: a small valid model whose graph mixes supported operators
(Relu, Add) with ones Kiln does not import (Bernoulli twice, Unique once, one of
the Bernoulli nodes unnamed), so that `kiln inspect` must list all of them at once
and `kiln import` must refuse naming them.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def main() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    d = helper.make_tensor_value_info("d", TensorProto.FLOAT, [])
    m = helper.make_tensor_value_info("m", TensorProto.FLOAT, [4, 4])
    bias = numpy_helper.from_array(np.arange(4, dtype=np.float32), "bias")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Bernoulli", ["r"], ["c1"], name="bern_a"),
        helper.make_node("Bernoulli", ["c1"], ["c2"]),
        helper.make_node("Add", ["c2", "bias"], ["y"], name="add"),
        helper.make_node("Unique", ["m"], ["d"], name="unique"),
    ]
    graph = helper.make_graph(nodes, "mixed", [x, m], [y, d], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, HERE / "unsupported.onnx")


if __name__ == "__main__":
    main()
