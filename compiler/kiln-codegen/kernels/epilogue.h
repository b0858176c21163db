/*
 * epilogue.h - applying an epilogue program to a tile (template, per variant).
 *
 * The tile is a small row-major block t[rows][ldt] whose rows hold whole
 * vectors (ldt and the row's storage a multiple of VW, lanes past `cols`
 * ignored), element (i, j) being output element (r0 + i, c0 + j). Ops run one
 * after another over the whole tile; each op's dispatch happens once per
 * tile, its loop is over vectors. Operand reads never go past `cols`.
 */

KF V FN(epi_unary)(int32_t code, V v, float p0, float p1) {
  switch (code) {
    case KILN_EPI_RELU: return v < 0.0f ? (V)0.0f : v;
    case KILN_EPI_CLIP: v = v < p0 ? (V)p0 : v; return v > p1 ? (V)p1 : v;
    case KILN_EPI_LEAKY_RELU: return v < 0.0f ? v * p0 : v;
    case KILN_EPI_SIGMOID: return FN(vsigmoid)(v);
    case KILN_EPI_TANH: return FN(vtanh)(v);
    case KILN_EPI_GELU_ERF: return FN(vgelu_erf)(v);
    case KILN_EPI_GELU_TANH: return FN(vgelu_tanh)(v);
    case KILN_EPI_SILU: return FN(vsilu)(v);
    case KILN_EPI_HARD_SIGMOID: {
      V h = v * p0 + p1;
      h = h < 0.0f ? (V)0.0f : h;
      return h > 1.0f ? (V)1.0f : h;
    }
    case KILN_EPI_HARD_SWISH: {
      V h = v * (1.0f / 6.0f) + 0.5f;
      h = h < 0.0f ? (V)0.0f : h;
      h = h > 1.0f ? (V)1.0f : h;
      return v * h;
    }
    case KILN_EPI_ELU: return v < 0.0f ? FN(vexpm1)(v) * p0 : v;
    case KILN_EPI_EXP: return FN(vexp)(v);
    case KILN_EPI_ERF: return FN(verf)(v);
    case KILN_EPI_NEG: return -v;
    case KILN_EPI_ABS: return FN(vabs)(v);
    case KILN_EPI_SQRT: return __builtin_elementwise_sqrt(v);
    case KILN_EPI_LOG: return FN(vlog)(v);
    default: return v;
  }
}

#ifndef EPI_UNARY_CODES
/* Every unary op code: X(code) for each (one loop per op where dispatched). */
#define EPI_UNARY_CODES(X) \
  X(KILN_EPI_RELU) \
  X(KILN_EPI_CLIP) \
  X(KILN_EPI_LEAKY_RELU) \
  X(KILN_EPI_SIGMOID) \
  X(KILN_EPI_TANH) \
  X(KILN_EPI_GELU_ERF) \
  X(KILN_EPI_GELU_TANH) \
  X(KILN_EPI_SILU) \
  X(KILN_EPI_HARD_SIGMOID) \
  X(KILN_EPI_HARD_SWISH) \
  X(KILN_EPI_ELU) \
  X(KILN_EPI_EXP) \
  X(KILN_EPI_ERF) \
  X(KILN_EPI_NEG) \
  X(KILN_EPI_ABS) \
  X(KILN_EPI_SQRT) \
  X(KILN_EPI_LOG)
#endif

/* x[0 .. n) = op(x[0 .. n)) for the unary op `code`: one dispatch for the
 * vectors of a whole tile (epi_row_store). */
static KV_ATTR __attribute__((noinline)) void FN(epi_unary_vecs)(int32_t code, V* x, int64_t n,
                                                                float p0, float p1) {
  switch (code) {
#define EPI_VECS_CASE(CODE) \
  case CODE:                \
    for (int64_t i = 0; i < n; i++) x[i] = FN(epi_unary)(CODE, x[i], p0, p1); \
    break;
    EPI_UNARY_CODES(EPI_VECS_CASE)
#undef EPI_VECS_CASE
    default: break;
  }
}

/* Stores a tile t[rows][NR] (f32, or int32 converted when from_int) to C
 * (rows [r0, r0 + rows), columns [c0, c0 + nc), at c with leading dimension
 * ldc) through an epilogue of epi_row's form, in one pass: each vector gets
 * C added (acc_c: a K block after the first), then the ops in order; an
 * activation other than ReLU is one call for the whole tile (independent
 * vectors for the out-of-order core to overlap: GELU's polynomials are long
 * dependency chains). */
KF void FN(epi_row_store)(const epi_row* er, const void* t, int from_int, int acc_c, float* c,
                          int64_t ldc, int64_t rows, int64_t nc, int64_t r0, int64_t c0) {
  const int64_t nv = cdiv(nc, VW), tail = nc - (nv - 1) * VW;
  V x[MR * NRV];
  for (int64_t r = 0; r < rows; r++) {
    const float* res = er->res ? er->res + (r0 + r) * er->ld + c0 : 0;
#define ER_LD(p) (v < nv - 1 || tail == VW ? FN(vld)(p) : FN(vld_n)(p, tail))
#pragma unroll
    for (int v = 0; v < NRV; v++)
      if (v < nv) {
        const int64_t cc = v * VW;
        V y = from_int ? __builtin_convertvector(*(const VI*)((const int32_t*)t + r * NR + cc), V)
                       : *(const V*)((const float*)t + r * NR + cc);
        if (acc_c) y = y + ER_LD(c + r * ldc + cc);
        if (er->smul_on) y = y * er->smul;
        if (er->mul) y = y * ER_LD(er->mul + c0 + cc);
        if (er->add) y = y + ER_LD(er->add + c0 + cc);
        if (res) y = y + ER_LD(res + cc);
        if (er->act == KILN_EPI_RELU) y = y < 0.0f ? (V)0.0f : y;
        x[r * nv + v] = y;
      }
#undef ER_LD
  }
  if (er->act && er->act != KILN_EPI_RELU) FN(epi_unary_vecs)(er->act, x, rows * nv, er->p0, er->p1);
  for (int64_t r = 0; r < rows; r++)
#pragma unroll
    for (int v = 0; v < NRV; v++)
      if (v < nv) {
        if (v < nv - 1 || tail == VW)
          FN(vst)(c + r * ldc + v * VW, x[r * nv + v]);
        else
          FN(vst_n)(c + r * ldc + v * VW, x[r * nv + v], tail);
      }
}

/* The activation of a simple epilogue (see epi_simple_of). */
KF V FN(epi_act)(const epi_simple* s, V v) {
  if (s->act == 1) return v < 0.0f ? (V)0.0f : v;
  if (s->act == 2) {
    v = v < s->lo ? (V)s->lo : v;
    return v > s->hi ? (V)s->hi : v;
  }
  return v;
}

/* One loop per (op, operand shape): the switch is outside the loops. */
#define EPI_BIN_CASES(LOOP)                 \
  case KILN_EPI_ADD: LOOP(v + x) break;     \
  case KILN_EPI_SUB: LOOP(v - x) break;     \
  case KILN_EPI_RSUB: LOOP(x - v) break;    \
  case KILN_EPI_MUL: LOOP(v * x) break;     \
  case KILN_EPI_DIV: LOOP(v / x) break;     \
  case KILN_EPI_RDIV: LOOP(x / v) break;    \
  case KILN_EPI_MAX: LOOP(FN(vmax)(v, x)) break; \
  case KILN_EPI_MIN: LOOP(FN(vmin)(v, x)) break;

/* Operand constant along a row: s (set per row by SETUP). */
#define EPI_LOOP_BCAST(EXPR)                                     \
  for (int64_t i = 0; i < rows; i++) {                           \
    float* tr = t + i * ldt;                                     \
    V x = (V)(kind == KILN_OPND_IMM      ? o->p0                 \
              : kind == KILN_OPND_SCALAR ? o->ptr[0]             \
                                         : o->ptr[r0 + i]);      \
    for (int64_t j = 0; j < nv; j++) {                           \
      V v = FN(vld)(tr + j * VW);                                 \
      FN(vst)(tr + j * VW, EXPR);                                 \
    }                                                            \
  }
/* Operand varying along a row: row vector (ld 0) or matrix. */
#define EPI_LOOP_VEC(EXPR)                                           \
  for (int64_t i = 0; i < rows; i++) {                               \
    float* tr = t + i * ldt;                                         \
    const float* xr = base + i * ld;                                 \
    for (int64_t j = 0; j < nv; j++) {                               \
      V v = FN(vld)(tr + j * VW);                                     \
      V x = (j + 1) * VW <= cols ? FN(vld)(xr + j * VW)                \
                                : FN(vld_n)(xr + j * VW, cols - j * VW); \
      FN(vst)(tr + j * VW, EXPR);                                     \
    }                                                                \
  }

static KV_ATTR void FN(epi_apply)(const epi_t* e, float* t, int64_t ldt, int64_t rows,
                                  int64_t cols, int64_t r0, int64_t c0) {
  int64_t nv = cdiv(cols, VW);
  for (int k = 0; k < e->n; k++) {
    const epi_op* o = &e->op[k];
    int32_t code = o->code, kind = o->kind;
    if (code >= KILN_EPI_RELU) {
      float p0 = o->p0, p1 = o->p1;
      switch (code) {
#define EPI_UNARY_CASE(CODE)                                       \
  case CODE:                                                       \
    for (int64_t i = 0; i < rows; i++)                             \
      for (int64_t j = 0; j < nv; j++) {                           \
        float* p = t + i * ldt + j * VW;                            \
        FN(vst)(p, FN(epi_unary)(CODE, FN(vld)(p), p0, p1));      \
      }                                                            \
    break;
        EPI_UNARY_CODES(EPI_UNARY_CASE)
#undef EPI_UNARY_CASE
        default: break;
      }
    } else if (kind == KILN_OPND_ROW || kind == KILN_OPND_MAT) {
      const float* base = o->ptr + c0 + (kind == KILN_OPND_MAT ? r0 * o->ld : 0);
      int64_t ld = kind == KILN_OPND_MAT ? o->ld : 0;
      switch (code) { EPI_BIN_CASES(EPI_LOOP_VEC) default: break; }
    } else {
      switch (code) { EPI_BIN_CASES(EPI_LOOP_BCAST) default: break; }
    }
  }
}
#undef EPI_BIN_CASES
#undef EPI_LOOP_BCAST
#undef EPI_LOOP_VEC

/* Copies `cols` columns of src (row stride lds) into a tile t[rows][ldt],
 * the last vector of each row padded with zeros. */
KF void FN(tile_load)(const float* src, int64_t lds, float* t, int64_t ldt, int64_t rows,
                      int64_t cols) {
  int64_t nf = cols / VW, rem = cols - nf * VW;
  for (int64_t i = 0; i < rows; i++) {
    const float* s = src + i * lds;
    float* d = t + i * ldt;
    for (int64_t j = 0; j < nf; j++) FN(vst)(d + j * VW, FN(vld)(s + j * VW));
    if (rem) FN(vst)(d + nf * VW, FN(vld_n)(s + nf * VW, rem));
  }
}

/* Copies a tile t[rows][ldt] to dst (row stride ldd), `cols` columns. */
KF void FN(tile_store)(const float* t, int64_t ldt, float* dst, int64_t ldd, int64_t rows,
                       int64_t cols) {
  int64_t nf = cols / VW, rem = cols - nf * VW;
  for (int64_t i = 0; i < rows; i++) {
    const float* s = t + i * ldt;
    float* d = dst + i * ldd;
    for (int64_t j = 0; j < nf; j++) FN(vst)(d + j * VW, FN(vld)(s + j * VW));
    if (rem) FN(vst_n)(d + nf * VW, FN(vld)(s + nf * VW), rem);
  }
}
