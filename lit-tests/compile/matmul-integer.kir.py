"""Input and NumPy's expected output of matmul-integer.kir (an independent reference)."""
import sys

import numpy as np
from onnx import numpy_helper as nh

w = np.array([0, 255, 7, 128, 3, 200, 99, 1, 254, 17, 64, 250, 5, 6, 77, 180, 2, 33, 44, 210,
              9, 90, 91, 92, 150, 151, 152, 8, 0, 255, 60, 61, 62, 240, 12, 13, 100, 101, 102],
             np.int64).reshape(13, 3)
za = np.array([-128, -1, 0, 1, 127], np.int64)
zb = np.array([0, 128, 255], np.int64)
a = np.random.default_rng(7).integers(-128, 128, (2, 5, 13)).astype(np.int8)
y = (a.astype(np.int64) - za[:, None]) @ (w - zb)
open(sys.argv[1], "wb").write(nh.from_array(a, "a").SerializeToString())
open(sys.argv[2], "wb").write(nh.from_array(y.astype(np.int32), "y").SerializeToString())
