"""Weights, inputs and NumPy's expected outputs of igemm.kir (an independent reference).

argv: the .kir file to write the weights into (a copy of the template), then the input and
expected-output directories."""
import sys

import numpy as np
from onnx import numpy_helper as nh

rng = np.random.default_rng(11)
K, N, N2 = 67, 69, 5
w = rng.integers(-128, 128, (K, N)).astype(np.int8)
zb = rng.integers(-128, 128, (N,)).astype(np.int8)
bias = rng.standard_normal(N).astype(np.float32)
w2 = rng.integers(0, 256, (K, N2)).astype(np.uint8)
a = rng.integers(0, 256, (2, 7, K)).astype(np.uint8)
a[0, 0, :] = 255
wn = rng.integers(-64, 65, (K, N)).astype(np.int8)
wn[0, :] = 64
wn[1, :] = -64
za = np.array(131, np.uint8)
s = np.array(0.0123, np.float32)
c = rng.integers(-128, 128, (7, K)).astype(np.int8)
zc, zb2 = -3, 201

acc = (a.astype(np.int64) - int(za)) @ (w.astype(np.int64) - zb.astype(np.int64))
y1 = acc.astype(np.float32) * s + bias
y2 = ((c.astype(np.int64) - zc) @ (w2.astype(np.int64) - zb2)).astype(np.int32)
y3 = (c.astype(np.int64) @ w.astype(np.int64)).astype(np.int32)
zr = np.array([0, 1, 2, 128, 200, 254, 255], np.int64)
y4 = ((a.astype(np.int64) - zr[:, None]) @ w.astype(np.int64)).astype(np.int32)
y5 = ((a.astype(np.int64) - int(za)) @ wn.astype(np.int64)).astype(np.int32)

src, dst = open(sys.argv[1]).read(), sys.argv[2]
fmt = lambda x: ", ".join(str(v) for v in np.asarray(x).reshape(-1).tolist())
src = (src.replace("@W@", fmt(w)).replace("@WN@", fmt(wn)).replace("@ZB@", fmt(zb)).replace("@W2@", fmt(w2))
       .replace("@BIAS@", ", ".join(repr(float(v)) for v in bias)))
open(dst, "w").write(src)
inp, want = sys.argv[3], sys.argv[4]
for i, x in enumerate([a, za, s, c]):
    open(f"{inp}/input_{i}.pb", "wb").write(nh.from_array(x, f"x{i}").SerializeToString())
for i, y in enumerate([y1, y2, y3, y4, y5]):
    open(f"{want}/output_{i}.pb", "wb").write(nh.from_array(y, f"y{i}").SerializeToString())
