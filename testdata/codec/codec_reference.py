#!/usr/bin/env python3
"""Expected encodings of the small float and sub-byte integer dtypes, from ONNX's reference.

    .venv/bin/python testdata/codec/codec_reference.py OUT_DIR

Writes raw little-endian arrays into OUT_DIR (read by dialects/kiln-ir/tests/codec_reference.rs
and compiler/kiln-driver/tests/codec_casts.rs):

- `inputs.f32`: every float16 value, every bfloat16 value (both widened to float32, exactly), then
  1,000,000 float32 values from a seeded generator: random bit patterns (NaN payloads,
  subnormals, huge values), values spread over the formats' ranges, the midpoints between
  neighbouring values of every format and the floats next to them, and the specials;
- `<case>.u8`: the code of every input for each case (`f8e4m3fn_sat`, `f8e4m3fn_nosat`, ...,
  `f4e2m1`, `f8e8m0_<up|down|nearest>_<sat|nosat>`, `i4`, `u4`, `i2`, `u2`), computed the way
  `onnx.reference`'s Cast does (`onnx.numpy_helper.saturate_cast` / `to_float8e8m0` /
  `ndarray.astype` on `ml_dtypes` types). The float16 and bfloat16 parts are computed from
  float16/bfloat16 arrays, not from their float32 copies. Integer casts of values outside
  (-2^31, 2^31) or non-finite are undefined in numpy: their codes are written as 0xFF and skipped;
- `decode_<dtype>.f32`: the float32 value of every code of each small float dtype (ml_dtypes);
- `casts.tsv`: one line per `<case>.u8`: the case, the Kiln dtype, `saturate` (0/1) and the
  E8M0 `round_mode` of the cast it holds (what the tests compile or interpret).
"""

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from onnx import numpy_helper

FLOATS = {
    "f8e4m3fn": ml_dtypes.float8_e4m3fn,
    "f8e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "f8e5m2": ml_dtypes.float8_e5m2,
    "f8e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
}
INTS = {"i4": ml_dtypes.int4, "u4": ml_dtypes.uint4, "i2": ml_dtypes.int2, "u2": ml_dtypes.uint2}
RANDOM = 1_000_000


def all_codes(dtype) -> np.ndarray:
    bits = 4 if dtype == ml_dtypes.float4_e2m1fn else 8
    return np.arange(1 << bits, dtype=np.uint8).view(dtype)


def random_f32(rng: np.random.Generator) -> np.ndarray:
    parts = [rng.integers(0, 2**32, RANDOM * 4 // 10, dtype=np.uint64).astype(np.uint32).view(np.float32)]
    n = RANDOM * 4 // 10
    mag = np.exp2(rng.uniform(-140, 20, n)) * rng.uniform(1, 2, n)
    parts.append((mag * rng.choice([-1.0, 1.0], n)).astype(np.float32))
    ties = []
    for dt in list(FLOATS.values()) + [ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu]:
        v = np.unique(all_codes(dt).astype(np.float64))
        v = v[np.isfinite(v)]
        mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
        vals = np.concatenate([mids, v.astype(np.float32)])
        for x in (vals, np.nextafter(vals, np.float32(np.inf)), np.nextafter(vals, np.float32(-np.inf))):
            ties.append(x)
            ties.append(-x)
    specials = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.finfo(np.float32).max, -np.finfo(np.float32).max,
         np.finfo(np.float32).tiny, 1e-45, -1e-45, 2.0**-127, 2.0**127, 2.0**128 * 0.99],
        dtype=np.float32,
    )
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF], np.uint32).view(np.float32)
    t = np.concatenate(ties + [specials, nans])
    parts.append(t)
    rest = RANDOM - sum(len(p) for p in parts)
    assert rest >= 0
    parts.append(rng.integers(-300, 300, rest).astype(np.float32) / np.float32(8))
    return np.concatenate(parts)[:RANDOM]


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    f16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    bf16 = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    f32 = random_f32(np.random.default_rng(20261203))
    parts = [f16, bf16, f32]
    np.concatenate([p.astype(np.float32) for p in parts]).tofile(out / "inputs.f32")

    def write(name, fn):
        np.concatenate([np.asarray(fn(p)).view(np.uint8).reshape(-1) for p in parts]).tofile(out / f"{name}.u8")

    with np.errstate(all="ignore"):
        for name, dt in FLOATS.items():
            write(f"{name}_sat", lambda p, dt=dt: numpy_helper.saturate_cast(p, dt))
            write(f"{name}_nosat", lambda p, dt=dt: p.astype(dt))
        write("f4e2m1", lambda p: p.astype(ml_dtypes.float4_e2m1fn))
        for mode in ("up", "down", "nearest"):
            for sat in (True, False):
                suffix = "sat" if sat else "nosat"
                write(f"f8e8m0_{mode}_{suffix}", lambda p, m=mode, s=sat: numpy_helper.to_float8e8m0(p, s, m))
        for name, dt in INTS.items():
            def cast(p, dt=dt):
                x = p.astype(np.float64)
                ok = np.isfinite(x) & (np.abs(x) < 2.0**31)
                mask = np.uint8(0xF if dt in (ml_dtypes.int4, ml_dtypes.uint4) else 0x3)
                codes = np.where(ok, x, 0).astype(dt).astype(np.int8).view(np.uint8) & mask
                return np.where(ok, codes, np.uint8(0xFF)).astype(np.uint8)
            write(name, cast)
    casts = []
    for name in FLOATS:
        casts += [(f"{name}_sat", name, 1, "up"), (f"{name}_nosat", name, 0, "up")]
    casts.append(("f4e2m1", "f4e2m1", 1, "up"))
    for mode in ("up", "down", "nearest"):
        for sat in (1, 0):
            casts.append((f"f8e8m0_{mode}_{'sat' if sat else 'nosat'}", "f8e8m0", sat, mode))
    casts += [(name, name, 1, "up") for name in INTS]
    (out / "casts.tsv").write_text("".join(f"{c}\t{d}\t{s}\t{m}\n" for c, d, s, m in casts))
    for name, dt in list(FLOATS.items()) + [("f4e2m1", ml_dtypes.float4_e2m1fn), ("f8e8m0", ml_dtypes.float8_e8m0fnu)]:
        all_codes(dt).astype(np.float32).tofile(out / f"decode_{name}.f32")


if __name__ == "__main__":
    main()
