"""Fits the polynomial coefficients used in ../vmath.h (needs numpy; prints C arrays).

Each approximation is a least-squares fit of the relative error on Chebyshev
nodes, in float64; for these degrees that is within a few percent of the
minimax error. The f32 accuracy of the evaluated functions is measured by
tests/kernels.rs against f64 references; vmath.h states the results.
Run: python3 fit_vmath.py
"""
import math

import numpy as np


def fit(target, lo, hi, basis, deg, n=4000):
    """Coefficients c[0..deg] of sum c_i * basis(x)**i ~ target(x) on [lo, hi]."""
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x = lo + (hi - lo) * (t + 1) / 2
    y = np.array([target(v) for v in x])
    b = np.array([basis(v) for v in x])
    a = np.vander(b, deg + 1, increasing=True)
    w = 1 / np.abs(y)
    c, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
    return c, np.max(np.abs((a @ c - y) * w))


def series(coeffs, x):
    return sum(c * x**i for i, c in enumerate(coeffs))


def show(name, c, err):
    body = ", ".join(f"{np.float32(v).item()!r}f" for v in c)
    print(f"/* {name}: relative fit error {err:.3g} */\n{{{body}}}\n")


H = math.log(2) / 2
FITS = [
    # exp(r) = 1 + r + r^2 q(r), |r| <= ln2/2
    ("exp q", lambda r: (math.expm1(r) - r) / (r * r) if abs(r) > 1e-3
     else series([1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720], r), -H, H, lambda r: r, 5),
    # expm1(x) = x + x^2/2 + x^3 p(x), |x| <= 0.5
    ("expm1 p", lambda x: (math.expm1(x) - x - x * x / 2) / x**3 if abs(x) > 1e-2
     else series([1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040], x), -0.5, 0.5, lambda x: x, 5),
    # log(1+f) = f - f^2/2 + f^3 p(f), f in [sqrt(1/2)-1, sqrt(2)-1]
    ("log p", lambda f: (math.log1p(f) - f + f * f / 2) / f**3 if abs(f) > 1e-2
     else series([1 / 3, -1 / 4, 1 / 5, -1 / 6, 1 / 7, -1 / 8], f),
     math.sqrt(0.5) - 1, math.sqrt(2) - 1, lambda f: f, 8),
    # tanh(x) = x + x^3 p(x^2), |x| <= 0.625
    ("tanh p", lambda x: (math.tanh(x) - x) / x**3 if x > 1e-2
     else series([-1 / 3, 0, 2 / 15, 0, -17 / 315], x), 1e-6, 0.625, lambda x: x * x, 5),
    # erf(x) = x p(x^2), |x| <= 1
    ("erf p", lambda x: math.erf(x) / x, 1e-6, 1.0, lambda x: x * x, 6),
    # erfc(x) = exp(-x^2) r(1/x - 0.625), 1 <= x <= 4
    ("erfcx r", lambda x: math.erfc(x) * math.exp(x * x), 1.0, 4.0, lambda x: 1 / x - 0.625, 9),
]

if __name__ == "__main__":
    for name, f, lo, hi, basis, deg in FITS:
        show(name, *fit(f, lo, hi, basis, deg))
