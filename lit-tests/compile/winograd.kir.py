"""Weights, inputs and NumPy's expected outputs of winograd.kir (an independent reference:
direct convolution sums in float64).

argv: the .kir file to write the weights into (a copy of the template), then the input and
expected-output directories."""
import sys

import numpy as np
from onnx import numpy_helper as nh

rng = np.random.default_rng(23)
N, C, H, W, C1, C2 = 2, 17, 13, 11, 19, 16
x = rng.standard_normal((N, C, H, W)).astype(np.float32)
r = rng.standard_normal((N, C1, H, W)).astype(np.float32)
w1 = (rng.standard_normal((C1, C, 3, 3)) / 6).astype(np.float32)
b1 = rng.standard_normal(C1).astype(np.float32)
w2 = (rng.standard_normal((C2, C1, 3, 3)) / 6).astype(np.float32)


def conv(x, w, pads):
    """Direct 3x3 stride-1 convolution, pads (top, left, bottom, right), in float64."""
    t, l, b, rr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, rr)))
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for ky in range(3):
        for kx in range(3):
            y += np.einsum("nchw,oc->nohw", xp[:, :, ky : ky + oh, kx : kx + ow], w[:, :, ky, kx].astype(np.float64))
    return y


y1 = np.maximum(conv(x, w1, (1, 1, 1, 1)) + b1[None, :, None, None] + r, 0)
y2 = conv(y1.astype(np.float32), w2, (1, 0, 0, 0))

src, dst = open(sys.argv[1]).read(), sys.argv[2]
fmt = lambda a: ", ".join(repr(float(v)) for v in np.asarray(a).reshape(-1))
src = src.replace("@W1@", fmt(w1)).replace("@B1@", fmt(b1)).replace("@W2@", fmt(w2))
open(dst, "w").write(src)
inp, want = sys.argv[3], sys.argv[4]
for i, a in enumerate([x, r]):
    open(f"{inp}/input_{i}.pb", "wb").write(nh.from_array(a, f"x{i}").SerializeToString())
for i, y in enumerate([y1, y2]):
    open(f"{want}/output_{i}.pb", "wb").write(nh.from_array(y.astype(np.float32), f"y{i}").SerializeToString())
