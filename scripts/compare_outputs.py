#!/usr/bin/env python3
"""Compares Kiln's output_N.pb files with expected ones (an ONNX test-set
folder) using ONNX's backend-test tolerances (rtol 1e-3, atol 1e-7); NaN only
matches NaN; every expected output must be there and no other. Exits 1 on any
mismatch. Usage: compare_outputs.py EXPECTED_DIR ACTUAL_DIR"""

import glob
import os
import sys

import numpy as np
from onnx import TensorProto, numpy_helper


def load(path):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def main():
    expected_dir, actual_dir = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(expected_dir, "output_*.pb")))
    if not files:
        print(f"no output_*.pb in {expected_dir}")
        return 1
    ok = True
    names = {os.path.basename(e) for e in files}
    for extra in sorted(glob.glob(os.path.join(actual_dir, "output_*.pb"))):
        if os.path.basename(extra) not in names:
            print(f"{os.path.basename(extra)}: not expected (the test set has {len(files)} outputs)")
            ok = False
    for e in files:
        a = os.path.join(actual_dir, os.path.basename(e))
        if not os.path.exists(a):
            print(f"{os.path.basename(e)}: missing from {actual_dir}")
            ok = False
            continue
        want, got = load(e), load(a)
        if want.shape != got.shape or want.dtype != got.dtype:
            print(f"{os.path.basename(e)}: {got.dtype}{list(got.shape)} vs expected {want.dtype}{list(want.shape)}")
            ok = False
            continue
        try:
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7, equal_nan=True)
            err = float(np.max(np.abs(got.astype(np.float64) - want)) if want.size else 0.0)
            print(f"{os.path.basename(e)}: ok, shape {list(want.shape)}, max abs error {err:.3g}")
        except AssertionError as ex:
            print(f"{os.path.basename(e)}: MISMATCH\n{ex}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
