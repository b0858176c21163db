#!/usr/bin/env python3
"""Regenerate the ONNX backend *node* tests into a directory, in the ONNX test-set layout.

    .venv/bin/python testdata/onnx_node_tests.py [OUT_DIR] [--op-type Relu] [--clean]

For every test case from `onnx.backend.test.case.node.collect_testcases()` writes

    OUT_DIR/<test name>/model.onnx
    OUT_DIR/<test name>/test_data_set_<N>/input_<i>.pb, output_<i>.pb

and OUT_DIR/index.json, one entry per test: ops used, opset imports, tolerances, and the kinds of
the graph inputs/outputs (tensor, sequence, map, optional), so a consumer can skip what it does not
support without opening every model.

Why regenerate: the onnx wheel (1.23) ships backend/test/data/{light,pytorch-converted,
pytorch-operator,simple,real} but NOT data/node, and `backend-test-tools generate-data`
(onnx.backend.test.cmd_tools) only emits the model cases. The files written here use exactly that
tool's serialization (numpy_helper.from_array / from_list / from_dict / from_optional; TensorProto
values written as-is), the same way the node data in the onnx source tree was produced.
Checked with onnx 1.23.2 / onnxruntime 1.32.0: 1884 tests (480 "_expanded" function bodies);
of the 1855 with only tensor inputs/outputs, ORT reproduces 1566 within the case tolerances,
26 differ (fp8 casts, DFT, cubic resize, fp16 attention...) and 263 fail to load or run in ORT.

The expected outputs are ONNX's own reference values (numpy code in onnx/backend/test/case/node),
independent of both Kiln and ONNX Runtime. Output goes under the git-ignored .cache/ by default.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case import node as node_cases

DEFAULT_OUT = Path(__file__).resolve().parent.parent / ".cache" / "onnx-node-tests"


def value_kind(vi: onnx.ValueInfoProto) -> str:
    return vi.type.WhichOneof("value") or "unknown"


def serialize(value: object, vi: onnx.ValueInfoProto) -> bytes:
    """Same dispatch as onnx.backend.test.cmd_tools.generate_data."""
    kind = value_kind(vi)
    if kind == "map_type":
        return numpy_helper.from_dict(value, vi.name).SerializeToString()
    if kind == "sequence_type":
        return numpy_helper.from_list(value, vi.name).SerializeToString()
    if kind == "optional_type":
        return numpy_helper.from_optional(value, vi.name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, vi.name).SerializeToString()


def write_case(out_dir: Path, case) -> dict:
    case_dir = out_dir / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    model = case.model
    (case_dir / "model.onnx").write_bytes(model.SerializeToString())
    for n, (inputs, outputs) in enumerate(case.data_sets):
        ds = case_dir / f"test_data_set_{n}"
        ds.mkdir()
        for j, value in enumerate(inputs):
            (ds / f"input_{j}.pb").write_bytes(serialize(value, model.graph.input[j]))
        for j, value in enumerate(outputs):
            (ds / f"output_{j}.pb").write_bytes(serialize(value, model.graph.output[j]))
    return {
        "ops": sorted({(nd.domain or "ai.onnx") + "::" + nd.op_type for nd in model.graph.node}),
        "opset_imports": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "ir_version": model.ir_version,
        "rtol": case.rtol,
        "atol": case.atol,
        "data_sets": len(case.data_sets),
        "input_kinds": [value_kind(vi) for vi in model.graph.input],
        "output_kinds": [value_kind(vi) for vi in model.graph.output],
        "expanded": "_expanded" in case.name,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "out_dir", nargs="?", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)"
    )
    ap.add_argument("--op-type", help="only the tests of this op type (e.g. Relu)")
    ap.add_argument("--clean", action="store_true", help="delete OUT_DIR first")
    args = ap.parse_args()

    if args.clean and args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # ONNX's case code deliberately computes inf/nan expectations (reductions over empty axes,
    # saturating casts); silence numpy's floating-point warnings about them.
    with np.errstate(all="ignore"):
        cases = node_cases.collect_testcases(args.op_type)
    index = {"onnx_version": onnx.__version__, "op_type_filter": args.op_type, "tests": {}}
    for case in cases:
        if case.model is None or not case.data_sets:
            continue
        index["tests"][case.name] = write_case(args.out_dir, case)
    (args.out_dir / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    expanded = sum(1 for t in index["tests"].values() if t["expanded"])
    print(f"wrote {len(index['tests'])} node tests ({expanded} function-expanded) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
