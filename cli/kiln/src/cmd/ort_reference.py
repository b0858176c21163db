"""ONNX Runtime as the reference of `kiln verify --reference ort` (run by kiln, embedded in it).

Usage: python ort_reference.py SPEC.json
SPEC: {"model": PATH, "inputs": {NAME: NPY_PATH}, "out_dir": DIR}
Every node output of the model's main graph becomes a graph output; ONNX Runtime (CPU, all graph
optimizations off, so intermediate values are computed as the model states them) runs the model
and each value is saved as OUT_DIR/<i>.npy, with OUT_DIR/index.json mapping names to files.
Exit 3 when onnx or onnxruntime cannot be imported.
"""

import json
import sys
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:
    print(f"cannot import {e.name}: {e}", file=sys.stderr)
    sys.exit(3)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    model = onnx.load(spec["model"])
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    except Exception:  # shape inference is a nicety: ORT infers what it needs
        inferred = []
    typed = {v.name: v for v in inferred}
    present = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in present:
                present.add(name)
                model.graph.output.append(typed.get(name, onnx.ValueInfoProto(name=name)))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {name: np.load(path) for name, path in spec["inputs"].items()}
    names = [o.name for o in session.get_outputs()]
    out_dir = Path(spec["out_dir"])
    index = {}
    for i, (name, value) in enumerate(zip(names, session.run(names, feeds))):
        value = np.asarray(value)
        if value.dtype == object:
            continue
        np.save(out_dir / f"{i}.npy", value)
        index[name] = f"{i}.npy"
    (out_dir / "index.json").write_text(json.dumps(index))


if __name__ == "__main__":
    main()
