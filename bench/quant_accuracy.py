#!/usr/bin/env python3
"""End-to-end accuracy of weight quantization: Kiln's schemes beside ONNX Runtime's own.

For one model of the benchmark suite (default: the 4-layer BERT), on its bundled inputs
(test_data_set_0), prints each output's error against the f32 model run by ONNX Runtime:

- Kiln: `kiln compile --quantize=SCHEME` for nf4, fp8-e4m3, int8 and int4 (weight-only, the
  MatMul/Gemm weights), and int8 with `--quantize-activations=dynamic` (activations quantized
  at run time as ONNX Runtime's quantize_dynamic does), run with `kiln run`;
- ONNX Runtime: its dynamic int8 quantization (`quantize_dynamic`, int8 weights and dynamically
  quantized activations) and its 4-bit weight-only MatMulNBits (`MatMulNBitsQuantizer`, block 32
  and 128, symmetric), both made locally with onnxruntime.quantization, run by ONNX Runtime.

The f32 reference is ONNX Runtime's output on the unquantized model. Errors: relative RMS
(||q - f|| / ||f||), largest absolute error, and the count of elements where exactly one of the
two is NaN (a NaN never hides in the other figures). No timing: the benchmark suite times.

    .venv/bin/python bench/quant_accuracy.py [--model bert_4l_256] [--kiln target/release/kiln]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / ".cache" / "bench-models"
# (label, kiln compile flags)
KILN_SCHEMES = (
    ("nf4", ["--quantize=nf4"]),
    ("fp8-e4m3", ["--quantize=fp8-e4m3"]),
    ("int8", ["--quantize=int8"]),
    ("int4", ["--quantize=int4"]),
    # The default CPU (x86-64-v3: AVX2, no VNNI) makes the products' weights int7 (pmaddubsw
    # pairs are exact for them); the portable x86-64 keeps 8-bit weights.
    ("int8 + dynamic int8 activations (x86-64-v3: int7 weights)", ["--quantize=int8", "--quantize-activations=dynamic"]),
    (
        "int8 + dynamic int8 activations (x86-64: 8-bit weights)",
        ["--quantize=int8", "--quantize-activations=dynamic", "--cpu=x86-64"],
    ),
)


def read_set(folder: Path, prefix: str) -> list[np.ndarray]:
    out = []
    i = 0
    while (folder / f"{prefix}_{i}.pb").is_file():
        t = onnx.TensorProto()
        t.ParseFromString((folder / f"{prefix}_{i}.pb").read_bytes())
        out.append(numpy_helper.to_array(t))
        i += 1
    return out


def ort_run(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(s.get_inputs(), inputs)}
    return s.run(None, feed)


def errors(ref: np.ndarray, got: np.ndarray) -> tuple[float, float, int]:
    """(relative RMS, largest |got - ref|, NaN mismatches) over the elements."""
    ref = ref.astype(np.float64).ravel()
    got = got.astype(np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"shape {got.shape} against {ref.shape}")
    nan_mismatch = int(np.count_nonzero(np.isnan(ref) != np.isnan(got)))
    both = ~np.isnan(ref) & ~np.isnan(got)
    d = got[both] - ref[both]
    den = float(np.sum(ref[both] ** 2))
    rel = float(np.sqrt(np.sum(d**2) / den)) if den > 0 else float(np.sqrt(np.sum(d**2)))
    return rel, float(np.max(np.abs(d))) if d.size else 0.0, nan_mismatch


def kiln_outputs(kiln: Path, model: Path, flags: list[str], inputs: Path, tmp: Path) -> list[np.ndarray]:
    scheme = "".join(c if c.isalnum() else "_" for c in "".join(flags))
    art = tmp / f"kiln-{scheme}.so"
    subprocess.run(
        [str(kiln), "compile", str(model), *flags, "-o", str(art)],
        check=True,
        capture_output=True,
    )
    out = tmp / f"out-{scheme}"
    subprocess.run(
        [str(kiln), "run", str(art), "--input-dir", str(inputs), "--output-dir", str(out), "--output-format", "pb"],
        check=True,
        capture_output=True,
    )
    return read_set(out, "output")


def ort_quantized(model: Path, tmp: Path) -> dict[str, Path]:
    # (onnx-ir, which MatMulNBitsQuantizer needs, is pinned in scripts/requirements.txt.)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    out = {}
    p = tmp / "ort-int8-dynamic.onnx"
    quantize_dynamic(str(model), str(p), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    out["ORT int8 (dynamic)"] = p
    for block in (32, 128):
        m = onnx.load(str(model))
        q = MatMulNBitsQuantizer(m, block_size=block, is_symmetric=True)
        q.process()
        p = tmp / f"ort-int4-b{block}.onnx"
        onnx.save(q.model.model, str(p))
        out[f"ORT int4 MatMulNBits, block {block}"] = p
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bert_4l_256", help="a suite model in .cache/bench-models")
    ap.add_argument("--kiln", type=Path, default=REPO / "target" / "release" / "kiln")
    args = ap.parse_args()
    logging.disable(logging.INFO)  # ORT's quantizers log every node they skip
    folder = MODELS / args.model
    model = folder / "model.onnx"
    inputs_dir = folder / "test_data_set_0"
    if not model.is_file() or not inputs_dir.is_dir():
        print(f"quant_accuracy: {model} or its test_data_set_0 is missing (bench/models.py)", file=sys.stderr)
        return 2
    inputs = read_set(inputs_dir, "input")
    ref = ort_run(model, inputs)
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for label, flags in KILN_SCHEMES:
            got = kiln_outputs(args.kiln, model, flags, inputs_dir, tmp)
            rows.append((f"Kiln {label}", got))
        for name, path in ort_quantized(model, tmp).items():
            rows.append((name, ort_run(path, inputs)))
    print(f"# {args.model}: end-to-end error against the f32 model (ONNX Runtime {ort.__version__}), "
          f"on {inputs_dir.relative_to(REPO)}")
    print()
    print("| quantization | output | rel. RMS | max abs | max abs f32 | NaN mismatches |")
    print("|---|---|---:|---:|---:|---:|")
    status = 0
    for name, outs in rows:
        for i, (r, g) in enumerate(zip(ref, outs)):
            rel, mx, nan = errors(r, g)
            if nan:
                status = 1
            print(f"| {name} | {i} | {rel:.5f} | {mx:.5f} | {float(np.nanmax(np.abs(r))):.4f} | {nan} |")
    return status


if __name__ == "__main__":
    sys.exit(main())
