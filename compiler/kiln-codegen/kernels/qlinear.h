/*
 * qlinear.h - dynamic quantization of activations (template per variant):
 * what ONNX DynamicQuantizeLinear composes into, so that the int8 product
 * (igemm.h) gets its operand without scalar loops.
 *
 * - rminmax: the max or min of all N floats of X (NaN if any is NaN, as
 *   nn.reduce_max / nn.reduce_min);
 * - quantize: per-tensor quant.quantize_linear into u8 or i8, Y[i] =
 *   clamp(roundeven(X[i] / scale) + zp) with NaN quotients as 0 (the
 *   lowering's and the interpreter's semantics); split over the pool.
 */

KF float FN(ql_hreduce)(V v, int is_min) {
  float r = v[0];
  for (int l = 1; l < VW; l++) {
    float x = v[l];
    if (x != x || r != r)
      r = r != r ? r : x;
    else
      r = is_min ? (x < r ? x : r) : (x > r ? x : r);
  }
  return r;
}

KHIDDEN KV_ATTR void FN(kiln_k_rminmax)(const int64_t* args) {
  const float* x = (const float*)slot_p(args, KILN_RMINMAX_X);
  int64_t n = slot_i(args, KILN_RMINMAX_N);
  float* y = (float*)slot_p(args, KILN_RMINMAX_Y);
  int is_min = (int)slot_i(args, KILN_RMINMAX_MIN);
  float init = is_min ? __builtin_inff() : -__builtin_inff();
  V a0 = (V)init, a1 = (V)init, a2 = (V)init, a3 = (V)init;
  int64_t i = 0;
  for (; i + 4 * VW <= n; i += 4 * VW) {
    V x0 = FN(vld)(x + i), x1 = FN(vld)(x + i + VW);
    V x2 = FN(vld)(x + i + 2 * VW), x3 = FN(vld)(x + i + 3 * VW);
    if (is_min) {
      a0 = FN(vmin)(x0, a0), a1 = FN(vmin)(x1, a1), a2 = FN(vmin)(x2, a2), a3 = FN(vmin)(x3, a3);
    } else {
      a0 = FN(vmax)(x0, a0), a1 = FN(vmax)(x1, a1), a2 = FN(vmax)(x2, a2), a3 = FN(vmax)(x3, a3);
    }
  }
  for (; i < n; i += VW) {
    V xv = i + VW <= n ? FN(vld)(x + i) : FN(vsel)(FN(vmask)(n - i) ? (VI)-1 : (VI)0,
                                                   FN(vld_n)(x + i, n - i), (V)init);
    a0 = is_min ? FN(vmin)(xv, a0) : FN(vmax)(xv, a0);
  }
  V a = is_min ? FN(vmin)(FN(vmin)(a0, a1), FN(vmin)(a2, a3))
               : FN(vmax)(FN(vmax)(a0, a1), FN(vmax)(a2, a3));
  *y = FN(ql_hreduce)(a, is_min);
}

typedef uint8_t KCAT(ql_vb_, KV_NAME) __attribute__((ext_vector_type(KV_W), aligned(1)));

typedef struct FN(ql_job) {
  const float* x;
  uint8_t* y;
  int64_t n;
  float scale, zp, lo, hi;
} FN(ql_job);

#define QL_CHUNK 4096

static KV_ATTR void FN(ql_task)(void* data, int64_t c0, int64_t c1) {
  const FN(ql_job)* j = (const FN(ql_job)*)data;
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to even */
  for (int64_t c = c0; c < c1; c++) {
    int64_t i0 = c * QL_CHUNK, i1 = KMIN(j->n, i0 + QL_CHUNK);
    for (int64_t i = i0; i < i1; i += VW) {
      int64_t left = i1 - i;
      V xv = left >= VW ? FN(vld)(j->x + i) : FN(vld_n)(j->x + i, left);
      V q = xv / j->scale;
      q = q != q ? (V)0.0f : q;
      /* Beyond +-2^22 the result saturates anyway; inside, the magic sum
       * rounds half to even exactly. */
      q = q < -4194304.0f ? (V)-4194304.0f : q;
      q = q > 4194304.0f ? (V)4194304.0f : q;
      V r = (q + magic) - magic;
      r = r + j->zp;
      r = r < j->lo ? (V)j->lo : r;
      r = r > j->hi ? (V)j->hi : r;
      VI iv = __builtin_convertvector(r, VI);
      if (left >= VW) {
        *(KCAT(ql_vb_, KV_NAME)*)(j->y + i) = __builtin_convertvector(iv, KCAT(ql_vb_, KV_NAME));
      } else {
        for (int64_t l = 0; l < left; l++) j->y[i + l] = (uint8_t)iv[l];
      }
    }
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_quantize)(const int64_t* args) {
  FN(ql_job) j;
  j.x = (const float*)slot_p(args, KILN_QUANTIZE_X);
  j.n = slot_i(args, KILN_QUANTIZE_N);
  j.y = (uint8_t*)slot_p(args, KILN_QUANTIZE_Y);
  j.scale = *(const float*)slot_p(args, KILN_QUANTIZE_SCALE);
  const uint8_t* zp = (const uint8_t*)slot_p(args, KILN_QUANTIZE_ZP);
  int is_signed = (int)slot_i(args, KILN_QUANTIZE_SIGNED);
  j.zp = zp ? (float)(is_signed ? (int32_t)(int8_t)*zp : (int32_t)*zp) : 0.0f;
  j.lo = is_signed ? -128.0f : 0.0f;
  j.hi = is_signed ? 127.0f : 255.0f;
  if (j.n <= 0) return;
  int64_t chunks = cdiv(j.n, QL_CHUNK);
  int64_t t = par_tasks(8.0 * (double)j.n, chunks);
  if (t <= 1)
    FN(ql_task)(&j, 0, chunks);
  else
    kiln_par_for(chunks, FN(ql_task), &j);
}
