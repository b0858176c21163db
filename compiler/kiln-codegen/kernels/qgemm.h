/*
 * qgemm.h - products with block-quantized weights (`quant.matmul`),
 * dequantized where they are read (template, per variant).
 *
 * C[M, N] = A[M, K] . W'^T where W' is never materialized: for each output
 * column n, the codes of row n of W are decoded chunk by chunk (at most
 * QG_CHUNK values, never across a block) into a stack buffer of unscaled
 * values v, and each of QG_MR rows of A at a time adds s * (a.v - z * sum a)
 * per block (scale s, zero point value z). Columns are split across
 * threads. The values of the codes come from a 2^bits-entry table built
 * once per call from the code format (kiln_ir::codec's definitions:
 * integers, the NF4 code book, the small float formats), and for sub-byte
 * codes from a table of the values of every byte.
 */

#ifndef KILN_QGEMM_SHARED
#define KILN_QGEMM_SHARED
#define QG_CHUNK 256
#define QG_MR 4

KINLINE float qg_bits_f(uint32_t b) {
  float f;
  __builtin_memcpy(&f, &b, sizeof f);
  return f;
}

/* The value of code c of a small float format of `bits` bits (sign, ebits
 * exponent bits of bias `bias`, mbits mantissa bits); specials: 0 "fn" (NaN
 * is the all-ones magnitude), 1 IEEE (infinity and NaN at the top exponent),
 * 2 "fnuz" (0x80 is the only NaN), 3 none. */
static float qg_small_float(uint32_t c, int bits, int ebits, int mbits, int bias, int specials) {
  uint32_t sign = (c >> (bits - 1)) & 1u;
  uint32_t mag = c & ((1u << (bits - 1)) - 1u);
  uint32_t e = mag >> mbits, m = mag & ((1u << mbits) - 1u);
  float v;
  if (e == 0)
    v = (float)m * qg_bits_f((uint32_t)(127 + 1 - bias - mbits) << 23);
  else
    v = qg_bits_f(((e + 127u - (uint32_t)bias) << 23) | (m << (23 - mbits)));
  if (specials == 0 && mag == (1u << (bits - 1)) - 1u) v = __builtin_nanf("");
  if (specials == 1 && e == (1u << ebits) - 1u) v = m ? __builtin_nanf("") : __builtin_inff();
  if (specials == 2 && c == 0x80u) v = __builtin_nanf("");
  return sign ? -v : v;
}

/* The NF4 code book (bitsandbytes' values rounded to f32, as
 * kiln_ir::codec::NF4_CODE_BOOK_DIGITS). */
static const float qg_nf4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/* Fills lut[0 .. 2^bits) with the values of format `fmt` (KILN_QCODE_*);
 * returns the code width in bits, 0 for an unknown format. */
static int qg_table(int64_t fmt, float* lut) {
  int bits;
  switch (fmt) {
    case KILN_QCODE_I8: bits = 8; break;
    case KILN_QCODE_U8: bits = 8; break;
    case KILN_QCODE_I4: bits = 4; break;
    case KILN_QCODE_U4: bits = 4; break;
    case KILN_QCODE_I2: bits = 2; break;
    case KILN_QCODE_U2: bits = 2; break;
    case KILN_QCODE_NF4: bits = 4; break;
    case KILN_QCODE_F8E4M3FN: bits = 8; break;
    case KILN_QCODE_F8E4M3FNUZ: bits = 8; break;
    case KILN_QCODE_F8E5M2: bits = 8; break;
    case KILN_QCODE_F8E5M2FNUZ: bits = 8; break;
    case KILN_QCODE_F4E2M1: bits = 4; break;
    case KILN_QCODE_E8M0: bits = 8; break;
    default: return 0;
  }
  for (uint32_t c = 0; c < (1u << bits); c++) {
    float v;
    switch (fmt) {
      case KILN_QCODE_I8: case KILN_QCODE_I4: case KILN_QCODE_I2: {
        int32_t s = (int32_t)(c << (32 - bits)) >> (32 - bits);
        v = (float)s;
        break;
      }
      case KILN_QCODE_U8: case KILN_QCODE_U4: case KILN_QCODE_U2: v = (float)c; break;
      case KILN_QCODE_NF4: v = qg_nf4[c]; break;
      case KILN_QCODE_F8E4M3FN: v = qg_small_float(c, 8, 4, 3, 7, 0); break;
      case KILN_QCODE_F8E4M3FNUZ: v = qg_small_float(c, 8, 4, 3, 8, 2); break;
      case KILN_QCODE_F8E5M2: v = qg_small_float(c, 8, 5, 2, 15, 1); break;
      case KILN_QCODE_F8E5M2FNUZ: v = qg_small_float(c, 8, 5, 2, 16, 2); break;
      case KILN_QCODE_F4E2M1: v = qg_small_float(c, 4, 2, 1, 1, 3); break;
      default: /* E8M0: 2^(c - 127); 0 is the f32 subnormal 2^-127, 0xFF NaN */
        v = c == 0 ? qg_bits_f(0x400000u) : c == 255 ? __builtin_nanf("") : qg_bits_f(c << 23);
        break;
    }
    lut[c] = v;
  }
  return bits;
}

/* Code i of a packed row (first code in the lowest bits). */
KINLINE uint32_t qg_code(const uint8_t* p, int bits, int64_t i) {
  if (bits == 8) return p[i];
  int64_t per = 8 / bits;
  return (uint32_t)(p[i / per] >> (bits * (int)(i % per))) & ((1u << bits) - 1u);
}

typedef struct qg_job {
  const float* a;
  int64_t lda;
  const uint8_t* w;
  int64_t kw;
  int bits;
  const float* lut;
  /* Sub-byte codes: the values of the 8 / bits codes of every byte value. */
  const float* btab;
  const void* scales;
  int scale_bits; /* 32: f32 scales; 8: codes looked up in slut */
  const float* slut;
  const uint8_t* zp;
  int64_t zp_cols;
  int64_t block, nblocks;
  float* c;
  int64_t ldc, m, k;
} qg_job;

/* The scale of block b of row n. */
KINLINE float qg_scale(const qg_job* j, int64_t n, int64_t b) {
  int64_t at = n * j->nblocks + b;
  if (j->scale_bits == 32) return ((const float*)j->scales)[at];
  return j->slut[((const uint8_t*)j->scales)[at]];
}
#endif

/* buf[0 .. len) = v(code k0 + i), the unscaled values of one row's codes.
 * Sub-byte codes starting on a byte are copied a byte at a time from the
 * byte table. */
static KV_ATTR void FN(qg_decode)(const qg_job* j, const uint8_t* wrow, int64_t k0, int64_t len,
                                  float* buf) {
  const int bits = j->bits;
  if (bits == 8) {
    const uint8_t* p = wrow + k0;
    for (int64_t i = 0; i < len; i++) buf[i] = j->lut[p[i]];
    return;
  }
  const int64_t per = 8 / bits;
  int64_t i = 0;
  if (k0 % per == 0) {
    const uint8_t* p = wrow + k0 / per;
    const int64_t whole = len / per;
    const float* bt = j->btab;
    if (bits == 4) {
      for (int64_t q = 0; q < whole; q++) {
        const float* e = bt + 2 * (int64_t)p[q];
        buf[2 * q] = e[0];
        buf[2 * q + 1] = e[1];
      }
    } else {
      for (int64_t q = 0; q < whole; q++) {
        const float* e = bt + 4 * (int64_t)p[q];
        buf[4 * q] = e[0];
        buf[4 * q + 1] = e[1];
        buf[4 * q + 2] = e[2];
        buf[4 * q + 3] = e[3];
      }
    }
    i = whole * per;
  }
  for (; i < len; i++) buf[i] = j->lut[qg_code(wrow, bits, k0 + i)];
}

/* Output columns [n0, n1): per block b of a row, with unscaled code values
 * v, scale s and zero point z, the block adds s * (sum a.v - z * sum a),
 * which is sum a * ((v - z) * s) up to rounding. */
static KV_ATTR void FN(qg_cols)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  float buf[QG_CHUNK] __attribute__((aligned(64)));
  const int64_t row_bytes = j->kw * j->bits / 8;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* wrow = j->w + n * row_bytes;
    for (int64_t m0 = 0; m0 < j->m; m0 += QG_MR) {
      const int64_t mr = KMIN(QG_MR, j->m - m0);
      float total[QG_MR];
      for (int r = 0; r < QG_MR; r++) total[r] = 0.0f;
      for (int64_t k0 = 0; k0 < j->k;) {
        const int64_t b = k0 / j->block;
        const int64_t end = KMIN(KMIN(j->k, (b + 1) * j->block), k0 + QG_CHUNK);
        const int64_t len = end - k0;
        const float s = qg_scale(j, n, b);
        const float z = j->zp ? j->lut[qg_code(j->zp, j->bits, n * j->zp_cols + b)] : 0.0f;
        FN(qg_decode)(j, wrow, k0, len, buf);
        const int64_t nf = len / VW;
        for (int64_t r = 0; r < mr; r++) {
          const float* arow = j->a + (m0 + r) * j->lda + k0;
          V d = (V)0.0f, sa = (V)0.0f;
          for (int64_t v = 0; v < nf; v++) {
            V av = FN(vld)(arow + v * VW);
            d += av * FN(vld)(buf + v * VW);
            sa += av;
          }
          float dt = FN(hsum)(d), st = FN(hsum)(sa);
          for (int64_t i = nf * VW; i < len; i++) {
            dt += arow[i] * buf[i];
            st += arow[i];
          }
          total[r] += s * (z != 0.0f ? dt - z * st : dt);
        }
        k0 = end;
      }
      for (int64_t r = 0; r < mr; r++) j->c[(m0 + r) * j->ldc + n] = total[r];
    }
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_qgemm)(const int64_t* args) {
  float lut[256], slut[256];
  qg_job j;
  j.a = (const float*)slot_p(args, KILN_QGEMM_A);
  j.lda = slot_i(args, KILN_QGEMM_LDA);
  j.w = (const uint8_t*)slot_p(args, KILN_QGEMM_W);
  j.kw = slot_i(args, KILN_QGEMM_KW);
  j.bits = qg_table(slot_i(args, KILN_QGEMM_CODE), lut);
  j.lut = lut;
  float btab[1024];
  if (j.bits == 4 || j.bits == 2) {
    const int per = 8 / j.bits;
    for (int by = 0; by < 256; by++)
      for (int e = 0; e < per; e++) btab[by * per + e] = lut[(by >> (j.bits * e)) & ((1 << j.bits) - 1)];
  }
  j.btab = btab;
  j.scales = slot_p(args, KILN_QGEMM_SCALES);
  int64_t sfmt = slot_i(args, KILN_QGEMM_SCALE_CODE);
  j.scale_bits = sfmt == KILN_QCODE_F32 ? 32 : qg_table(sfmt, slut);
  j.slut = slut;
  j.zp = (const uint8_t*)slot_p(args, KILN_QGEMM_ZP);
  j.zp_cols = slot_i(args, KILN_QGEMM_ZP_COLS);
  j.block = slot_i(args, KILN_QGEMM_BLOCK);
  j.nblocks = slot_i(args, KILN_QGEMM_NBLOCKS);
  j.c = (float*)slot_p(args, KILN_QGEMM_C);
  j.ldc = slot_i(args, KILN_QGEMM_LDC);
  j.m = slot_i(args, KILN_QGEMM_M);
  j.k = slot_i(args, KILN_QGEMM_K);
  int64_t n = slot_i(args, KILN_QGEMM_N);
  if (j.bits == 0 || j.scale_bits == 0 || j.block <= 0 || j.m <= 0 || n <= 0) return;
  FN(split_rows)(FN(qg_cols), &j, n, (double)j.m * (double)j.k * 2.0 + (double)j.k * 4.0);
}
