#!/usr/bin/env python3
"""Generate a large ONNX model whose float32 weights live in an external-data file.

    .venv/bin/python testdata/gen_large_external.py [OUT_DIR] [--gib 1.0] [--dim 4096]

Writes (never bundled in git; the default OUT_DIR is under the git-ignored .cache/):

    OUT_DIR/model.onnx                   graph only, every weight is data_location=EXTERNAL
    OUT_DIR/weights.bin                  raw little-endian float32 weights, each at a 4 KiB-aligned offset
    OUT_DIR/test_data_set_0/input_0.pb   x [1, dim]
    OUT_DIR/test_data_set_0/output_0.pb  y [1, dim]

The graph is a chain  y = x @ W0 @ W1 @ ... @ W(n-1)  of MatMuls with [dim, dim] weights; n is the
smallest layer count whose weights reach --gib GiB.

Invariants:
- Bounded memory: weights are produced and written one block of rows at a time (a few MiB), so
  peak RSS stays far below 2 GiB whatever --gib is.
- Cheap, deterministic weights: an integer hash of (layer, row, column) mapped to a uniform value
  in [-sqrt(3/dim), sqrt(3/dim)), which keeps activations at unit scale through the whole chain.
- The expected output is computed while writing, in float64 from the very same blocks, so it is
  independent of any ONNX runtime; `--verify-ort` additionally runs ONNX Runtime on the result.
- `location` is a bare file name next to model.onnx (no directories, no '..'), as the ONNX
  external-data rules require.
- Files are written under temporary names and renamed at the end, so an interrupted run never
  leaves a model.onnx that points at a half-written weights file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
ALIGN = 4096
WEIGHTS_FILE = "weights.bin"
ROWS_PER_BLOCK = 256
DEFAULT_OUT = Path(__file__).resolve().parent.parent / ".cache" / "large-model"


def weight_block(layer: int, row0: int, rows: int, dim: int) -> np.ndarray:
    """Rows [row0, row0+rows) of layer `layer`'s [dim, dim] weight, as float32."""
    r = np.arange(row0, row0 + rows, dtype=np.uint32)[:, None]
    c = np.arange(dim, dtype=np.uint32)[None, :]
    # A multiplicative hash (wrapping uint32 arithmetic); the top 16 bits are well mixed.
    h = (r * np.uint32(2654435761)) ^ (c * np.uint32(40503)) ^ np.uint32((layer * 0x9E3779B1) & 0xFFFFFFFF)
    h = h * np.uint32(2246822519)
    u = (h >> np.uint32(16)).astype(np.float32) * np.float32(1.0 / 65536.0) - np.float32(0.5)  # [-0.5, 0.5)
    return u * np.float32(2.0 * math.sqrt(3.0 / dim))


def generate(out_dir: Path, gib: float, dim: int) -> None:
    layer_bytes = dim * dim * 4
    layers = max(1, math.ceil(gib * (1 << 30) / layer_bytes))
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / "test_data_set_0"
    data_dir.mkdir(exist_ok=True)

    x = np.random.default_rng(7).standard_normal((1, dim)).astype(np.float32)
    y = x.astype(np.float64)

    inits = []
    nodes = []
    tmp_weights = out_dir / (WEIGHTS_FILE + ".tmp")
    start = time.monotonic()
    with open(tmp_weights, "wb") as f:
        for layer in range(layers):
            pad = (-f.tell()) % ALIGN
            f.write(b"\0" * pad)
            offset = f.tell()
            y_next = np.zeros((1, dim), np.float64)
            for row0 in range(0, dim, ROWS_PER_BLOCK):
                rows = min(ROWS_PER_BLOCK, dim - row0)
                block = weight_block(layer, row0, rows, dim)
                f.write(block.astype("<f4", copy=False).tobytes())
                y_next += y[:, row0 : row0 + rows] @ block.astype(np.float64)
            y = y_next

            t = TensorProto()
            t.name = f"w{layer}"
            t.data_type = TensorProto.FLOAT
            t.dims.extend([dim, dim])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", WEIGHTS_FILE), ("offset", str(offset)), ("length", str(layer_bytes))):
                entry = t.external_data.add()
                entry.key = key
                entry.value = value
            inits.append(t)
            src = "x" if layer == 0 else f"h{layer}"
            dst = "y" if layer == layers - 1 else f"h{layer + 1}"
            nodes.append(helper.make_node("MatMul", [src, f"w{layer}"], [dst], name=f"matmul{layer}"))
            print(f"layer {layer + 1}/{layers} written ({time.monotonic() - start:.1f}s)", file=sys.stderr)
        f.flush()
        os.fsync(f.fileno())

    graph = helper.make_graph(
        nodes,
        "large_external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_operatorsetid("", OPSET)],
        producer_name="kiln-testdata-gen_large_external",
        producer_version="1",
    )
    model.ir_version = IR_VERSION

    tmp_model = out_dir / "model.onnx.tmp"
    tmp_model.write_bytes(model.SerializeToString())
    (data_dir / "input_0.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    (data_dir / "output_0.pb").write_bytes(numpy_helper.from_array(y.astype(np.float32), "y").SerializeToString())
    os.replace(tmp_weights, out_dir / WEIGHTS_FILE)
    os.replace(tmp_model, out_dir / "model.onnx")
    # The checker resolves external data relative to the model path, and validates location/offset/length.
    onnx.checker.check_model(str(out_dir / "model.onnx"))
    total = (out_dir / WEIGHTS_FILE).stat().st_size
    print(
        f"wrote {out_dir}/model.onnx + {WEIGHTS_FILE} ({layers} x [{dim},{dim}] f32, {total / (1 << 30):.3f} GiB) "
        f"in {time.monotonic() - start:.1f}s; |y| max {np.abs(y).max():.3f}"
    )


def verify_ort(out_dir: Path) -> None:
    """Run ONNX Runtime on the generated model and compare with the float64 reference output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(out_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    data_dir = out_dir / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor(str(data_dir / "input_0.pb")))
    want = numpy_helper.to_array(onnx.load_tensor(str(data_dir / "output_0.pb")))
    (got,) = sess.run(None, {"x": x})
    err = float(np.max(np.abs(got - want)))
    if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise SystemExit(f"ORT disagrees with the float64 reference: max abs diff {err}")
    print(f"ORT {ort.__version__} agrees with the float64 reference (max abs diff {err:.2e})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "out_dir", nargs="?", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)"
    )
    ap.add_argument("--gib", type=float, default=1.0, help="minimum total weight size in GiB (default: %(default)s)")
    ap.add_argument(
        "--dim", type=int, default=4096, help="hidden size; each weight is [dim, dim] (default: %(default)s)"
    )
    ap.add_argument(
        "--verify-ort",
        action="store_true",
        help="also run ONNX Runtime on the result (needs about --gib GiB of RAM more)",
    )
    args = ap.parse_args()
    if args.gib <= 0 or args.dim <= 0:
        ap.error("--gib and --dim must be positive")
    generate(args.out_dir, args.gib, args.dim)
    if args.verify_ort:
        verify_ort(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
