/*
 * vmath.h - vectorized f32 math (template: included once per variant by
 * variant.h with V, VI, VW, FN and KF defined).
 *
 * Every function works lane by lane on V, propagates NaN, and handles +-inf,
 * zeros, subnormals and large arguments. Polynomials come from
 * tools/fit_vmath.py (relative least squares on Chebyshev nodes). No FMA is
 * required: products and sums are written as a*b + c, which
 * -ffp-contract=fast fuses where the target has FMA; every range reduction
 * is exact without fusion (Cody-Waite constants with trailing zero bits).
 *
 * Accuracy, measured by tests/kernels.rs (vmath_accuracy) against f64
 * references over dense samples of each range, the same for every variant
 * and x86-64 level (ulp = spacing of f32 at the exact result):
 *   exp      0.95 ulp on [-104, 89] (0 below -103.97, +inf above 88.72)
 *   log      0.83 ulp, subnormals included
 *   tanh     1.27 ulp on [-12, 12]; 0.5 ulp (relative) on [-1e-3, 1e-3]
 *   sigmoid  2.34 ulp on [-90, 30] (tiny results keep relative accuracy)
 *   erf      2.61 ulp on [-1, 1], 2.11 ulp (relative) on [-1e-3, 1e-3];
 *            above |x| = 1 the absolute error is below 1.2e-7
 *   elu      1.16 ulp on [-20, 2] (expm1 near 0)
 *   gelu_erf 1.35 ulp, gelu_tanh 1.87 ulp on [-12, 12] (absolute floor 1e-7),
 *   silu     2.93 ulp on [-90, 30]
 */

/* ---- basic vector helpers ---- */
KF V FN(vld)(const float* p) { return *(const VU*)p; }
KF void FN(vst)(float* p, V v) { *(VU*)p = v; }
/* Lanes [0, n) of a mask. */
KF VM FN(vmask)(int64_t n) {
  VI idx;
#pragma unroll
  for (int i = 0; i < VW; i++) idx[i] = i;
  return __builtin_convertvector(idx < (VI)(int32_t)KMIN(n, (int64_t)VW), VM);
}
/* Loads n < VW floats (the rest 0) / stores the first n lanes: masked
 * memory operations (AVX-512 masks, AVX vmaskmov; lane by lane elsewhere),
 * which never touch memory past lane n. */
KF V FN(vld_n)(const float* p, int64_t n) {
  return __builtin_masked_load(FN(vmask)(n), p, (V)0.0f);
}
KF void FN(vst_n)(float* p, V v, int64_t n) { __builtin_masked_store(FN(vmask)(n), v, p); }
KF V FN(vsel)(VI m, V a, V b) { return m ? a : b; }
KF V FN(vabs)(V x) { return __builtin_elementwise_abs(x); }
/* max/min that return NaN when either input is NaN. */
KF V FN(vmax)(V a, V b) {
  V r = a > b ? a : b; /* b when either is NaN */
  return a != a ? a : r;
}
KF V FN(vmin)(V a, V b) {
  V r = a < b ? a : b;
  return a != a ? a : r;
}
/* a * 2^n for n in [-252, 254] without intermediate overflow. */
KF V FN(vldexp)(V a, VI n) {
  VI n1 = n >> 1, n2 = n - n1;
  V s1 = (V)((n1 + 127) << 23), s2 = (V)((n2 + 127) << 23);
  return a * s1 * s2;
}
KF V FN(vhorner)(V x, const float* c, int deg) {
  V r = (V)c[deg];
  for (int i = deg - 1; i >= 0; i--) r = r * x + c[i];
  return r;
}

/* ---- exp ---- */
KF V FN(vexp)(V x) {
  static const float q[6] = {0.5f, 0.1666666716337204f, 0.04166646674275398f,
                             0.008333372883498669f, 0.0013933581067249179f,
                             0.00019849518139380962f};
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  x = x > 88.8f ? (V)88.8f : x;     /* NaN passes both clamps */
  x = x < -110.0f ? (V)-110.0f : x;
  V t = x * 1.44269504088896341f + magic;
  V n = t - magic;
  VI ni = (VI)t - (VI)(V)magic;
  V r = x - n * 0.693359375f; /* ln2 split: n * hi is exact */
  r = r - n * -2.12194440e-4f;
  V p = (r * r) * FN(vhorner)(r, q, 5) + r + 1.0f;
  return FN(vldexp)(p, ni);
}

/* exp(x) - 1, accurate near 0 (for elu). */
KF V FN(vexpm1)(V x) {
  static const float p[6] = {0.1666666716337204f, 0.0416666641831398f, 0.008333236910402775f,
                             0.0013889007968828082f, 0.000199447080376558f,
                             2.4835962904035114e-05f};
  V small = (x * x * x) * FN(vhorner)(x, p, 5) + (x * x) * 0.5f + x;
  V big = FN(vexp)(x) - 1.0f;
  return FN(vabs)(x) < 0.5f ? small : big;
}

/* ---- log ---- */
KF V FN(vlog)(V x) {
  static const float p[9] = {0.3333333134651184f,   -0.2500000298023224f,  0.20000715553760529f,
                             -0.16667377948760986f, 0.1424865573644638f,   -0.12434924393892288f,
                             0.11699074506759644f,  -0.11421497166156769f, 0.06862342357635498f};
  VI sub = x < 1.17549435e-38f;
  V xs = sub ? x * 8388608.0f : x; /* subnormals scaled by 2^23 */
  VI bits = (VI)xs;
  VI e = ((bits >> 23) & 0xff) - 127 - (sub & 23);
  V m = (V)((bits & 0x7fffff) | 0x3f800000); /* [1, 2) */
  VI big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = e - big; /* big is -1 where true */
  V f = m - 1.0f;
  V ef = __builtin_convertvector(e, V);
  V r = (f * f * f) * FN(vhorner)(f, p, 8) - (f * f) * 0.5f + ef * -2.12194440e-4f + f;
  r = ef * 0.693359375f + r;
  r = x == 0.0f ? (V)-__builtin_inff() : r;
  r = x < 0.0f ? (V)__builtin_nanf("") : r;
  r = x == __builtin_inff() ? x : r;
  return x != x ? x : r;
}

/* ---- tanh, sigmoid ---- */
KF V FN(vtanh)(V x) {
  static const float p[6] = {-0.3333333432674408f, 0.13333310186862946f,   -0.05396023392677307f,
                             0.021774960681796074f, -0.008359982632100582f, 0.002308041322976351f};
  V a = FN(vabs)(x);
  V x2 = x * x;
  V small = (x * x2) * FN(vhorner)(x2, p, 5) + x;
  V e = FN(vexp)(a + a);
  V big = __builtin_elementwise_copysign(1.0f - 2.0f / (e + 1.0f), x);
  return a < 0.625f ? small : big;
}

/* 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: exp never overflows and
 * tiny results keep their relative accuracy. */
KF V FN(vsigmoid)(V x) {
  V e = FN(vexp)(-FN(vabs)(x));
  V s = 1.0f / (e + 1.0f);
  return x < 0.0f ? e * s : s;
}

/* ---- erf ---- */
/* exp(x^2) * erfc(x) for x in [1, 4] (clamped). */
KF V FN(verfcx)(V a) {
  static const float r[10] = {0.3059529960155487f,    0.38228386640548706f,  -0.17239369451999664f,
                              0.043759044259786606f,  0.023265007883310318f, -0.04674098640680313f,
                              0.04458560049533844f,   -0.028835924342274666f, -0.006824824959039688f,
                              0.03206583485007286f};
  a = a < 1.0f ? (V)1.0f : a;
  a = a > 4.0f ? (V)4.0f : a;
  V u = 1.0f / a - 0.625f;
  return FN(vhorner)(u, r, 9);
}
/* erfc(a) for a >= 1 (a clamped to [1, 4] inside the polynomial only). */
KF V FN(verfc_big)(V a) { return FN(vexp)(-(a * a)) * FN(verfcx)(a); }

/* erf(x), given c = verfc_big(|x|) (vgelu_erf needs c too). */
KF V FN(verf_c)(V x, V c) {
  static const float p[7] = {1.128379225730896f,     -0.3761262893676758f,   0.11283612251281738f,
                             -0.026854809373617172f, 0.00519005348905921f,   -0.0008024353883229196f,
                             7.898209878476337e-05f};
  V a = FN(vabs)(x);
  V small = x * FN(vhorner)(x * x, p, 6);
  V big = 1.0f - c;
  big = a >= 4.0f ? (V)1.0f : big;
  big = __builtin_elementwise_copysign(big, x);
  return a < 1.0f ? small : big;
}
KF V FN(verf)(V x) { return FN(verf_c)(x, FN(verfc_big)(FN(vabs)(x))); }

/* 0.5 * x * (1 + erf(x / sqrt(2))), with 1 + erf(z) = erfc(-z) = erfc(|z|)
 * for z <= -1 so the negative tail keeps its relative accuracy. erfc(|z|)
 * is computed once, for erf and the tail (it was computed twice, the
 * exponential and the rational part each time: the GELU epilogue was 19% of
 * the int8 4-layer BERT's time on a Zen 3). */
KF V FN(vgelu_erf)(V x) {
  V z = x * 0.70710678118654752f;
  V tail = FN(verfc_big)(FN(vabs)(z));
  V e = FN(verf_c)(z, tail);
  V one_plus = z <= -1.0f ? tail : 1.0f + e;
  V r = 0.5f * x * one_plus;
  return x == -__builtin_inff() ? (V)-0.0f : r; /* the limit, not -inf * 0 */
}

/* 0.5 * x * (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) * (x + 0.044715 x^3). */
KF V FN(vgelu_tanh)(V x) {
  V u = (x * x * x * 0.044715f + x) * 0.79788456080286536f;
  V r = x * FN(vsigmoid)(u + u);
  return x == -__builtin_inff() ? (V)-0.0f : r;
}

/* x * sigmoid(x), -0 at -inf. */
KF V FN(vsilu)(V x) {
  V r = x * FN(vsigmoid)(x);
  return x == -__builtin_inff() ? (V)-0.0f : r;
}
