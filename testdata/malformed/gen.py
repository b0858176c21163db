#!/usr/bin/env python3
"""Generates the malformed-model suite: cases/*.onnx plus cases/cases.json.

Each case breaks exactly one rule that Kiln's ONNX loader enforces. The files
are written with SerializeToString (not onnx.save, which would validate or
rewrite external data). cases.json maps each file to the expected error kind
(InvalidInput / Unsupported / ResourceLimit) and substrings the message must
contain; the kiln-onnx test `malformed.rs` loads every case.

`inspect_lists: OP` cases break no loading rule but use operators Kiln does
not import: importing them fails as listed, while `kiln inspect` loads them and
lists OP as unsupported.

`setup: "symlink"` cases are completed by the test itself in a temp dir (it
creates `link.bin -> ../outside.bin` next to the model), so no symlink needs
to live in git.

Run: python3 gen.py (needs onnx and numpy).
"""
import json
import os
import shutil

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")
CASES = []


def model(nodes, inputs=None, outputs=None, inits=(), ir=10, opsets=(("", 21),), functions=()):
    if inputs is None:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])]
    if outputs is None:
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], functions=list(functions))
    m.ir_version = ir
    return m


def relu():
    return [helper.make_node("Relu", ["x"], ["y"], name="r")]


def add_w(w):
    """y = x + w, with initializer w."""
    return model([helper.make_node("Add", ["x", w.name], ["y"], name="add")], inits=[w])


def ext_tensor(name, location, offset=None, length=None, dims=(2, 2)):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def case(file, kind, contains, data=None, setup=None, inspect_lists=None):
    path = os.path.join(OUT, file)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.SerializeToString())
    entry = {"file": file, "kind": kind, "contains": [file] + contains}
    if setup:
        entry["setup"] = setup
    if inspect_lists:
        entry["inspect_lists"] = inspect_lists
    CASES.append(entry)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    # A 16-byte weights file (a 2x2 float tensor) for the external-data cases.
    with open(os.path.join(OUT, "weights.bin"), "wb") as f:
        f.write(np.arange(4, dtype="<f4").tobytes())
    # A directory used as an external-data location.
    os.makedirs(os.path.join(OUT, "a_directory"))
    with open(os.path.join(OUT, "a_directory", "README.txt"), "w") as f:
        f.write("A directory named as external data location by ext_not_regular.onnx.\n")

    # Versions and domains.
    case("bad_ir_version.onnx", "Unsupported", ["IR version 2"], model(relu(), ir=2))
    case("too_new_ir_version.onnx", "Unsupported", ["IR version 15"], model(relu(), ir=15))
    case("bad_opset.onnx", "Unsupported", ["opset version 0"], model(relu(), opsets=(("", 0),)))
    case("too_new_opset.onnx", "Unsupported", ["opset version 29"], model(relu(), opsets=(("", 29),)))
    case("no_default_opset.onnx", "InvalidInput", ["no opset"], model(relu(), opsets=(("com.example", 1),)))
    case(
        "unknown_domain.onnx",
        "Unsupported",
        ["'com.example'", "node 'custom' (MyOp)"],
        model([helper.make_node("MyOp", ["x"], ["y"], name="custom", domain="com.example")],
              opsets=(("", 21), ("com.example", 1))),
        inspect_lists="com.example:MyOp",
    )
    case(
        "training_domain.onnx",
        "Unsupported",
        ["'ai.onnx.preview.training'", "node 'adagrad' (Adagrad)"],
        model([helper.make_node("Adagrad", ["x"], ["y"], name="adagrad", domain="ai.onnx.preview.training")],
              opsets=(("", 21), ("ai.onnx.preview.training", 1))),
        inspect_lists="ai.onnx.preview.training:Adagrad",
    )
    case(
        "com_microsoft_domain.onnx",
        "Unsupported",
        ["com.microsoft:FusedGemm", "#0"],
        model([helper.make_node("FusedGemm", ["x", "x"], ["y"], domain="com.microsoft")],
              opsets=(("", 21), ("com.microsoft", 1))),
        inspect_lists="com.microsoft:FusedGemm",
    )

    # Tensors.
    bad_raw = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2], raw_data=b"\0" * 12)
    case("raw_data_mismatch.onnx", "InvalidInput", ["initializer 'w'", "raw_data has 12 bytes", "needs 16"], add_w(bad_raw))
    neg = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-1, 2], raw_data=b"")
    case("negative_dim.onnx", "InvalidInput", ["initializer 'w'", "negative dimension -1"], add_w(neg))
    big = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**62, 2**62], raw_data=b"")
    case("overflowing_dims.onnx", "InvalidInput", ["initializer 'w'", "overflows"], add_w(big))
    big_bytes = TensorProto(name="w", data_type=TensorProto.DOUBLE, dims=[2**62], raw_data=b"")
    case("overflowing_bytes.onnx", "InvalidInput", ["initializer 'w'", "overflows"], add_w(big_bytes))
    few = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2], float_data=[1.0, 2.0, 3.0])
    case("typed_count_mismatch.onnx", "InvalidInput", ["initializer 'w'", "float_data has 3 values"], add_w(few))
    strings = helper.make_tensor("w", TensorProto.STRING, [1], [b"hi"])
    case("string_tensor.onnx", "Unsupported", ["initializer 'w'", "STRING"], add_w(strings))
    bad_code = TensorProto(name="w", data_type=99, dims=[1], raw_data=b"\0")
    case("bad_dtype_code.onnx", "InvalidInput", ["initializer 'w'", "code 99"], add_w(bad_code))

    # External data.
    case("ext_absolute.onnx", "InvalidInput", ["initializer 'w'", "absolute path"],
         add_w(ext_tensor("w", "/etc/passwd")))
    case("ext_dotdot.onnx", "InvalidInput", ["initializer 'w'", "'..' component"],
         add_w(ext_tensor("w", "../cases/weights.bin")))
    case("ext_dotdot_inner.onnx", "InvalidInput", ["initializer 'w'", "'..' component"],
         add_w(ext_tensor("w", "a_directory/../weights.bin")))
    case("ext_symlink.onnx", "InvalidInput", ["initializer 'w'", "symlink"],
         add_w(ext_tensor("w", "link.bin")), setup="symlink")
    case("ext_offset_out_of_range.onnx", "InvalidInput", ["initializer 'w'", "offset 1000 is past the end"],
         add_w(ext_tensor("w", "weights.bin", offset=1000)))
    case("ext_range_out_of_range.onnx", "InvalidInput", ["initializer 'w'", "outside 'weights.bin'"],
         add_w(ext_tensor("w", "weights.bin", offset=8, length=16)))
    case("ext_length_mismatch.onnx", "InvalidInput", ["initializer 'w'", "length 8 does not match the 16 bytes"],
         add_w(ext_tensor("w", "weights.bin", length=8)))
    case("ext_not_regular.onnx", "InvalidInput", ["initializer 'w'", "not a regular file"],
         add_w(ext_tensor("w", "a_directory")))
    case("ext_missing_file.onnx", "InvalidInput", ["initializer 'w'", "no_such.bin"],
         add_w(ext_tensor("w", "no_such.bin")))
    case("ext_bad_offset.onnx", "InvalidInput", ["initializer 'w'", "'offset' is not a non-negative integer"],
         add_w(ext_tensor("w", "weights.bin", offset=-4)))

    # Graph structure.
    case("undefined_value.onnx", "InvalidInput", ["node 'add' (Add)", "undefined value 'ghost'"],
         model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]))
    case("undefined_output.onnx", "InvalidInput", ["graph output 'y'", "undefined value"],
         model([helper.make_node("Relu", ["x"], ["z"], name="r")]))
    case(
        "duplicate_name.onnx",
        "InvalidInput",
        ["node #1 (Neg)", "duplicate value name 'y'", "node 'first' (Relu)"],
        model([helper.make_node("Relu", ["x"], ["y"], name="first"), helper.make_node("Neg", ["x"], ["y"])]),
    )
    w = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), name="w")
    case(
        "duplicate_initializer_node.onnx",
        "InvalidInput",
        ["node 'makew' (Relu)", "duplicate value name 'w'", "initializer"],
        model([helper.make_node("Relu", ["x"], ["w"], name="makew"), helper.make_node("Add", ["x", "w"], ["y"])],
              inits=[w]),
    )
    case(
        "cycle.onnx",
        "InvalidInput",
        ["cycle", "'a'", "'b'"],
        model([
            helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
            helper.make_node("Relu", ["a"], ["b"], name="n2"),
            helper.make_node("Relu", ["a"], ["y"], name="n3"),
        ]),
    )
    case(
        "self_cycle.onnx",
        "InvalidInput",
        ["node 'loop' (Add)", "cycle", "'y'"],
        model([helper.make_node("Add", ["x", "y"], ["y"], name="loop")]),
    )
    case("missing_type.onnx", "InvalidInput", ["graph input 'x'", "missing type"],
         model(relu(), inputs=[helper.make_value_info("x", helper.TypeProto())]))
    case("missing_output_type.onnx", "InvalidInput", ["graph output 'y'", "missing type"],
         model(relu(), outputs=[helper.make_value_info("y", helper.TypeProto())]))

    # Bytes that are not a ModelProto.
    good = add_w(numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8)[:2, :2].copy(), name="w"))
    data = good.SerializeToString()
    case("truncated.onnx", "InvalidInput", ["not a valid ONNX protobuf"], data[: len(data) - 20])
    case("garbage.onnx", "InvalidInput", ["not a valid ONNX protobuf"], b"\xff\xff\xff\xff this is not onnx")
    case("empty.onnx", "InvalidInput", ["no IR version"], b"")

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
