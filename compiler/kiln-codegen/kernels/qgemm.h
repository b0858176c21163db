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
 * codes from a table of the values of every byte. That scalar path serves
 * the 4-lane variants and the formats below; the 8- and 16-lane variants
 * decode 4-bit codes and 8-bit integers and OCP FP8 in registers (see
 * "Vectorized decode").
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
  int64_t n; /* columns of C */
  int kind8; /* the QG8_* kind of 8-bit codes decoded in registers, else 0 */
  int64_t panels; /* quantized convolutions: codes in panels of this many rows */
  int zero;  /* 0, read where the compiler must not know the value */
} qg_job;

/* The scale of block b of row n. */
KINLINE float qg_scale(const qg_job* j, int64_t n, int64_t b) {
  int64_t at = n * j->nblocks + b;
  if (j->scale_bits == 32) return ((const float*)j->scales)[at];
  return j->slut[((const uint8_t*)j->scales)[at]];
}
/* The weight fields of j from the eight slots from kw on (qgemm's KW ..
 * NBLOCKS, conv2d's Q_KW .. Q_NBLOCKS: codes per row, code format, scales,
 * their format, zero points, their codes per row, block, blocks per row),
 * with the value tables of the codes (lut) and of 8-bit scales (slut). */
static void qg_weight_slots(qg_job* j, const int64_t* args, int kw, float* lut, float* slut) {
  j->kw = slot_i(args, kw);
  j->bits = qg_table(slot_i(args, kw + 1), lut);
  j->lut = lut;
  j->scales = slot_p(args, kw + 2);
  const int64_t sfmt = slot_i(args, kw + 3);
  j->scale_bits = sfmt == KILN_QCODE_F32 ? 32 : qg_table(sfmt, slut);
  j->slut = slut;
  j->zp = (const uint8_t*)slot_p(args, kw + 4);
  j->zp_cols = slot_i(args, kw + 5);
  j->block = slot_i(args, kw + 6);
  j->nblocks = slot_i(args, kw + 7);
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

#if KV_W == 8 || KV_W == 16
/* ---- Vectorized decode (8- and 16-lane variants) ----
 *
 * The codes of a row are decoded in registers and already dequantized:
 * w = (v - z) * s per block (the same value as the scalar path's
 * s * (a.v - z * sum a) up to rounding). 4-bit codes (int4, uint4, NF4,
 * FP4) are looked up in a 16-entry table of the block's dequantized values
 * held in registers: VW bytes are split into their nibbles, interleaved
 * back into code order as bytes, widened and used as lane indices of a
 * variable permute (the 16-lane table: one `vpermps` zmm; 8 lanes: two
 * `vpermps` ymm halves and a blend on bit 3). The lookup is written as a
 * vector literal of lane extracts with the index vector computed before it,
 * which is the form LLVM's x86 backend turns into the permute (a loop of
 * extracts is scalarized to stack loads). 8-bit codes: integers are
 * widened and converted; E4M3FN and E5M2 are placed in the f32 bit pattern
 * (sign, exponent and mantissa shifted into place: E4M3's and E5M2's values
 * are those f32 bits times 2^120 and 2^112, subnormals included) with the
 * special codes (NaN, infinities) selected by a compare, except in the
 * GEMV's main loop, which only keeps the largest `code & special` of each
 * row and sums a row that has a special code again through the table.
 *
 * A product with one row (GEMV) multiplies as it decodes, a group of codes
 * at a time in whatever lane order the ISA decodes cheapest, with a copy
 * of a permuted to match (qg_gemv4g, qg_gemv8w; blocks that do not fit
 * their groups take qg_gemv4i and qg_gemv8); with more rows, QG_NCV columns at a time are
 * decoded into stack buffers of QG_KC values and every row of A (copied
 * QG_MB rows at a time) is multiplied with them (QG_RB rows x QG_NCV
 * columns of accumulators). */
#ifndef QG_KC
#define QG_KC 384 /* a multiple of the 64-code groups (qg_deq_groups) */
#define QG_RB 4
#define QG_MB 16
#define QG_LDP (QG_KC + 16)
#define QG_PF 16
#define QG_NB 256
#define QG_KA 4096
#endif

typedef uint8_t FN(qg_b) __attribute__((ext_vector_type(VW), aligned(1)));
typedef uint8_t FN(qg_bh) __attribute__((ext_vector_type(VW / 2), aligned(1)));
typedef int8_t FN(qg_sb) __attribute__((ext_vector_type(VW), aligned(1)));
typedef uint8_t FN(qg_b4) __attribute__((ext_vector_type(4 * VW), aligned(1)));
typedef uint32_t FN(qg_vu) __attribute__((ext_vector_type(VW)));

#if KV_W == 16
#define QG_TABS 1
#define QG_ILO(a, b) \
  __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define QG_IHI(a, b) \
  __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#define QG_IH(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)
#define QG_EVEN(a, b) \
  __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define QG_ODD(a, b) \
  __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
/* t[x] for the 16-entry table t, x in [0, 16). */
KF V FN(qg_lk)(const V* tab, VI x) {
  const V t = tab[0];
  return (V){t[x[0]], t[x[1]], t[x[2]],  t[x[3]],  t[x[4]],  t[x[5]],  t[x[6]],  t[x[7]],
             t[x[8]], t[x[9]], t[x[10]], t[x[11]], t[x[12]], t[x[13]], t[x[14]], t[x[15]]};
}
#else
#define QG_TABS 2
#define QG_ILO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define QG_IHI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#define QG_IH(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5, 2, 6, 3, 7)
#define QG_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define QG_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
/* The 16-entry table as two 8-lane halves: the half picked by bit 3. */
KF V FN(qg_lk)(const V* tab, VI x) {
  const VI l = x & 7;
  const V t0 = tab[0], t1 = tab[1];
  const V lo = (V){t0[l[0]], t0[l[1]], t0[l[2]], t0[l[3]], t0[l[4]], t0[l[5]], t0[l[6]], t0[l[7]]};
  const V hi = (V){t1[l[0]], t1[l[1]], t1[l[2]], t1[l[3]], t1[l[4]], t1[l[5]], t1[l[6]], t1[l[7]]};
  return (x & 8) != 0 ? hi : lo;
}
#endif

typedef float FN(qg_v4) __attribute__((ext_vector_type(4)));
/* The sum of v's lanes as a tree (halves added), a short dependency chain
 * where qg_rows adds up its accumulators after every chunk. */
KF float FN(qg_hsum)(V v) {
#if KV_W == 16
  typedef float v8 __attribute__((ext_vector_type(8)));
  const v8 h8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const FN(qg_v4) h4 =
      __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
#else
  const FN(qg_v4) h4 =
      __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#endif
  return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}

typedef float FN(qg_v8) __attribute__((ext_vector_type(8)));
/* The sums of the lanes of v0 .. v7 (lane i: v_i's), by halving pairs of
 * vectors together: 24 vector operations for the 8 accumulators qg_rows
 * adds up after every chunk. */
KF FN(qg_v8) FN(qg_hsum8)(V v0, V v1, V v2, V v3, V v4, V v5, V v6, V v7) {
#if KV_W == 16
#define QG_FOLD(a, b)                                                                         \
  (__builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) + \
   __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
  /* Lanes 8q .. 8q + 7: v_(2p + q) folded to 8 lanes. */
  const V w0 = QG_FOLD(v0, v1), w1 = QG_FOLD(v2, v3), w2 = QG_FOLD(v4, v5), w3 = QG_FOLD(v6, v7);
#undef QG_FOLD
#define QG_FOLD(a, b)                                                                         \
  (__builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) + \
   __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31))
  /* Lanes 4i .. 4i + 3: v_(4p + i) folded to 4 lanes. */
  const V y0 = QG_FOLD(w0, w1), y1 = QG_FOLD(w2, w3);
#undef QG_FOLD
  /* Lanes 2i, 2i + 1: v_i folded to 2 lanes. */
  const V z = __builtin_shufflevector(y0, y1, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
              __builtin_shufflevector(y0, y1, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return __builtin_shufflevector(z, z, 0, 2, 4, 6, 8, 10, 12, 14) +
         __builtin_shufflevector(z, z, 1, 3, 5, 7, 9, 11, 13, 15);
#else
#define QG_FOLD(a, b) \
  (__builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15))
  /* Lanes 4q .. 4q + 3: v_(2p + q) folded to 4 lanes. */
  const V w0 = QG_FOLD(v0, v1), w1 = QG_FOLD(v2, v3), w2 = QG_FOLD(v4, v5), w3 = QG_FOLD(v6, v7);
#undef QG_FOLD
#define QG_FOLD(a, b) \
  (__builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13) + __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15))
  /* Lanes 2i, 2i + 1: v_(4p + i) folded to 2 lanes. */
  const V y0 = QG_FOLD(w0, w1), y1 = QG_FOLD(w2, w3);
#undef QG_FOLD
  return __builtin_shufflevector(y0, y1, 0, 2, 4, 6, 8, 10, 12, 14) +
         __builtin_shufflevector(y0, y1, 1, 3, 5, 7, 9, 11, 13, 15);
#endif
}

/* The 2 * VW values of the 4-bit codes in the VW bytes at p (code 2q in the
 * low nibble of byte q), looked up in tab. */
KF void FN(qg_dec4)(const uint8_t* p, const V* tab, V* w0, V* w1) {
  const FN(qg_b) b = *(const FN(qg_b)*)p;
  const FN(qg_b) lo = b & (uint8_t)15, hi = b >> 4;
  const FN(qg_b) c0 = QG_ILO(lo, hi), c1 = QG_IHI(lo, hi);
  *w0 = FN(qg_lk)(tab, __builtin_convertvector(c0, VI));
  *w1 = FN(qg_lk)(tab, __builtin_convertvector(c1, VI));
}

/* The VW values of the 4-bit codes in the VW / 2 bytes at p. */
KF V FN(qg_dec4h)(const uint8_t* p, const V* tab) {
  const FN(qg_bh) b = *(const FN(qg_bh)*)p;
  const FN(qg_bh) lo = b & (uint8_t)15, hi = b >> 4;
  const FN(qg_b) c = QG_IH(lo, hi);
  return FN(qg_lk)(tab, __builtin_convertvector(c, VI));
}

/* Kinds of 8-bit codes decoded in registers. */
#define QG8_I8 1
#define QG8_U8 2
#define QG8_E4M3FN 3
#define QG8_E5M2 4

/* The unscaled values of the VW 8-bit codes at p; exact = 0 leaves the
 * special FP8 codes (NaN, infinities) as finite values (for callers that
 * look for them separately). */
KF V FN(qg_dec8)(const uint8_t* p, int kind, int exact) {
  if (kind == QG8_U8) return __builtin_convertvector(*(const FN(qg_b)*)p, V);
  const VI x = __builtin_convertvector(*(const FN(qg_sb)*)p, VI);
  if (kind == QG8_I8) return __builtin_convertvector(x, V);
  const FN(qg_vu) u = (FN(qg_vu))x, mag = u & 0x7Fu;
  if (kind == QG8_E4M3FN) {
    /* sign to bit 31, exponent and mantissa to bits 26..20; 0x7F is NaN. */
    FN(qg_vu) bits = (u << 20) & 0x87F00000u;
    if (exact) bits = mag == 0x7Fu ? (FN(qg_vu))0x7FC00000u : bits;
    return (V)bits * 0x1p120f;
  }
  /* E5M2: sign to bit 31, exponent and mantissa to bits 27..21; the top
   * exponent is infinity (mantissa 0) or NaN. */
  FN(qg_vu) bits = (u << 21) & 0x8FE00000u;
  if (exact) bits = mag >= 0x7Cu ? bits | 0x7F800000u : bits;
  return (V)bits * 0x1p112f;
}

/* The bits of a special FP8 code's magnitude (NaN, infinities: code & M
 * == M), 0 for formats without. */
KF int FN(qg_special8)(int kind) {
  return kind == QG8_E4M3FN ? 0x7F : kind == QG8_E5M2 ? 0x7C : 0;
}

/* The 8-bit kind of code format fmt, 0 if it is decoded through the table. */
static int FN(qg_kind8)(int64_t fmt) {
  switch (fmt) {
    case KILN_QCODE_I8: return QG8_I8;
    case KILN_QCODE_U8: return QG8_U8;
    case KILN_QCODE_F8E4M3FN: return QG8_E4M3FN;
    case KILN_QCODE_F8E5M2: return QG8_E5M2;
    default: return 0;
  }
}

/* The zero point value of block b of row n (0 without zero points) of
 * 4- or 8-bit codes. */
KF float FN(qg_zero)(const qg_job* j, int64_t n, int64_t b) {
  if (!j->zp) return 0.0f;
  const int64_t at = n * j->zp_cols + b;
  return j->lut[j->bits == 8 ? j->zp[at] : (j->zp[at >> 1] >> ((at & 1) * 4)) & 15];
}

/* The dequantized values of codes [k0, k1) of row n into out[0, k1 - k0);
 * kind: 0 for 4-bit codes, else the QG8_* kind. */
KF void FN(qg_deq_k)(const qg_job* j, int64_t n, int64_t k0, int64_t k1, float* out, int kind) {
  const uint8_t* wrow = j->w + n * (j->kw * j->bits / 8);
  V lutv[QG_TABS];
  if (!kind)
    for (int h = 0; h < QG_TABS; h++) lutv[h] = FN(vld)(j->lut + h * VW);
  for (int64_t b = k0 / j->block; b * j->block < k1; b++) {
    const int64_t s0 = KMAX(k0, b * j->block), s1 = KMIN(k1, (b + 1) * j->block);
    const float s = qg_scale(j, n, b), z = FN(qg_zero)(j, n, b);
    int64_t i = s0;
    if (!kind) {
      V tab[QG_TABS];
      for (int h = 0; h < QG_TABS; h++) tab[h] = (lutv[h] - z) * s;
      if ((i & 1) == 0) {
        for (; i + 2 * VW <= s1; i += 2 * VW) {
          V w0, w1;
          FN(qg_dec4)(wrow + i / 2, tab, &w0, &w1);
          FN(vst)(out + (i - k0), w0);
          FN(vst)(out + (i - k0) + VW, w1);
        }
        if (i + VW <= s1) {
          FN(vst)(out + (i - k0), FN(qg_dec4h)(wrow + i / 2, tab));
          i += VW;
        }
      }
      for (; i < s1; i++) out[i - k0] = (j->lut[qg_code(wrow, 4, i)] - z) * s;
    } else {
      const float c = -z * s;
      for (; i + VW <= s1; i += VW) FN(vst)(out + (i - k0), FN(qg_dec8)(wrow + i, kind, 1) * s + c);
      for (; i < s1; i++) out[i - k0] = (j->lut[wrow[i]] - z) * s;
    }
  }
}

static KV_ATTR void FN(qg_deq)(const qg_job* j, int64_t n, int64_t k0, int64_t k1, float* out) {
  switch (j->kind8) {
    case 0: FN(qg_deq_k)(j, n, k0, k1, out, 0); break;
    case QG8_I8: FN(qg_deq_k)(j, n, k0, k1, out, QG8_I8); break;
    case QG8_U8: FN(qg_deq_k)(j, n, k0, k1, out, QG8_U8); break;
    case QG8_E4M3FN: FN(qg_deq_k)(j, n, k0, k1, out, QG8_E4M3FN); break;
    default: FN(qg_deq_k)(j, n, k0, k1, out, QG8_E5M2); break;
  }
}

/* One row of A by 4-bit codes in blocks of other sizes: the codes are
 * interleaved back into order in registers (two byte unpacks more per
 * group). */
static KV_ATTR void FN(qg_gemv4i)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  const float* a = j->a;
  V lutv[QG_TABS];
  for (int h = 0; h < QG_TABS; h++) lutv[h] = FN(vld)(j->lut + h * VW);
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* wrow = j->w + n * (j->kw / 2);
    V acc0 = (V)0.0f, acc1 = (V)0.0f;
    float tail = 0.0f;
    for (int64_t b = 0; b < j->nblocks; b++) {
      const int64_t s0 = b * j->block, s1 = KMIN(j->k, s0 + j->block);
      if (s0 >= s1) break;
      const float s = qg_scale(j, n, b), z = FN(qg_zero)(j, n, b);
      V tab[QG_TABS];
      for (int h = 0; h < QG_TABS; h++) tab[h] = (lutv[h] - z) * s;
      int64_t i = s0;
      if ((i & 1) == 0) {
        for (; i + 2 * VW <= s1; i += 2 * VW) {
          V w0, w1;
          FN(qg_dec4)(wrow + (i >> 1), tab, &w0, &w1);
          acc0 += FN(vld)(a + i) * w0;
          acc1 += FN(vld)(a + i + VW) * w1;
        }
        if (i + VW <= s1) {
          acc0 += FN(vld)(a + i) * FN(qg_dec4h)(wrow + (i >> 1), tab);
          i += VW;
        }
      }
      for (; i < s1; i++) tail += a[i] * ((j->lut[qg_code(wrow, 4, i)] - z) * s);
    }
    j->c[n] = FN(hsum)(acc0 + acc1) + tail;
  }
}

/* ---- One row of A by 4-bit codes, 64 codes (32 bytes) at a time ----
 *
 * A group of 64 codes is decoded into QG_GS vectors of VW values without
 * widening or interleaving: the order the decode produces them in is
 * whatever is cheapest for the ISA, and a (copied once per call, QG_KA
 * values at a time) is permuted into that order instead (qg_gperm: the
 * code of lane i of step s). Lanes [0, VW/2) of every step hold codes of
 * the group's first 32, lanes [VW/2, VW) of its last 32, so a group needs
 * one scale per half: blocks are multiples of 32 codes, or one block per
 * row. The unscaled code values are summed per group and scaled once:
 * s * (a.v - z * sum a), with sum a per lane computed with the copy.
 * - 8 lanes: the bytes' nibbles index four 16-byte tables of the bytes of
 *   the code values' f32 patterns (`vpshufb`: 32 lookups each, two per
 *   cycle on Zen 3, where `vpermps` is one), and byte and word unpacks
 *   put the four bytes of every value together.
 * - 16 lanes: the 16 words of the group widen to 16 lanes of four codes,
 *   looked up with one 16-entry table permute per step. When a group lies
 *   in one block (blocks of 64 codes or more, or one per row), the table
 *   itself is dequantized per group, (v - z) * s, and the four steps add
 *   into four running sums: 16 instead of 19 vector operations per group. */
#define QG_GS (64 / VW)
#define QG_GX (QG_KA / 64) /* groups per copy of a */

/* Whether 4-bit codes decode a group of 64 at a time (qg_group; the GEMV
 * qg_gemv4g and the several-row qg_gemm): one scale per half group, i.e.
 * blocks of a multiple of 32 codes or one block per row. */
KF int FN(qg_groups_ok)(const qg_job* j) {
  return j->bits == 4 && !j->kind8 && (j->block % 32 == 0 || j->block >= j->k);
}

/* The code (0 .. 63) of lane i of step s of a decoded group. */
KINLINE int FN(qg_gperm)(int s, int i) {
#if KV_W == 8
  const int q = s % 4, p = i < 4 ? 4 * q + i : 16 + 4 * q + (i - 4);
  return 2 * p + (s >= 4);
#else
  return 4 * i + s;
#endif
}

#if KV_W == 16
/* t[x & 15] for the 16-entry table t. On x86 one `vpermps`, which reads
 * only the index's low 4 bits, so shifted codes need no mask (the portable
 * lookup keeps an `and` per step: 3 of 16 vector operations per group of
 * 64 codes in qg_gemv4g). The builtin is why the 16-lane variant compiles
 * only for CPUs with AVX-512F (kernels.c). */
#if defined(__x86_64__)
KF V FN(qg_lk_lo)(V t, VI x) { return (V)__builtin_ia32_permvarsf512(t, x); }
#else
KF V FN(qg_lk_lo)(V t, VI x) { return FN(qg_lk)(&t, x & 15); }
#endif
#endif

#if KV_W == 8
typedef uint8_t FN(qg_t16) __attribute__((ext_vector_type(16)));
typedef uint16_t FN(qg_w16) __attribute__((ext_vector_type(16)));
typedef struct FN(qg_gtab) {
  FN(qg_t16) b[4]; /* byte q of the f32 pattern of value c at b[q][c] */
  /* Zero bytes the compiler cannot see are zero: the lookups are xored
   * with them, else instcombine merges the unpacks of two lookups into one
   * lookup of two tables, which the backend scalarizes. */
  FN(qg_b4) zero;
} FN(qg_gtab);
#define QG_PSHUFB(t, x)                                                                          \
  (FN(qg_b4)){t[x[0]],  t[x[1]],  t[x[2]],  t[x[3]],  t[x[4]],  t[x[5]],  t[x[6]],  t[x[7]],  \
              t[x[8]],  t[x[9]],  t[x[10]], t[x[11]], t[x[12]], t[x[13]], t[x[14]], t[x[15]], \
              t[x[16]], t[x[17]], t[x[18]], t[x[19]], t[x[20]], t[x[21]], t[x[22]], t[x[23]], \
              t[x[24]], t[x[25]], t[x[26]], t[x[27]], t[x[28]], t[x[29]], t[x[30]], t[x[31]]}
/* The four steps of the 32 codes x (one per byte, < 16). */
KF void FN(qg_g32)(const FN(qg_gtab)* t, FN(qg_b4) x, V* out) {
  const FN(qg_t16) t0 = t->b[0], t1 = t->b[1], t2 = t->b[2], t3 = t->b[3];
  const FN(qg_b4) z = t->zero;
  const FN(qg_b4) p0 = QG_PSHUFB(t0, x) ^ z, p1 = QG_PSHUFB(t1, x) ^ z;
  const FN(qg_b4) p2 = QG_PSHUFB(t2, x) ^ z, p3 = QG_PSHUFB(t3, x) ^ z;
#define QG_UB(a, b, o)                                                                          \
  __builtin_shufflevector(a, b, o + 0, o + 32, o + 1, o + 33, o + 2, o + 34, o + 3, o + 35, o + 4, \
                          o + 36, o + 5, o + 37, o + 6, o + 38, o + 7, o + 39, o + 16, o + 48,   \
                          o + 17, o + 49, o + 18, o + 50, o + 19, o + 51, o + 20, o + 52, o + 21, \
                          o + 53, o + 22, o + 54, o + 23, o + 55)
#define QG_UW(a, b, o)                                                                            \
  (V) __builtin_shufflevector(a, b, o + 0, o + 16, o + 1, o + 17, o + 2, o + 18, o + 3, o + 19, \
                              o + 8, o + 24, o + 9, o + 25, o + 10, o + 26, o + 11, o + 27)
  const FN(qg_w16) a = (FN(qg_w16))QG_UB(p0, p1, 0), b = (FN(qg_w16))QG_UB(p0, p1, 8);
  const FN(qg_w16) c = (FN(qg_w16))QG_UB(p2, p3, 0), d = (FN(qg_w16))QG_UB(p2, p3, 8);
  out[0] = QG_UW(a, c, 0);
  out[1] = QG_UW(a, c, 4);
  out[2] = QG_UW(b, d, 0);
  out[3] = QG_UW(b, d, 4);
#undef QG_UB
#undef QG_UW
}
KF void FN(qg_gtab_init)(FN(qg_gtab)* t, const qg_job* j) {
  const float* lut = j->lut;
  t->zero = (FN(qg_b4))(uint8_t)j->zero;
  /* Vector shuffles of the table's bytes (a table built byte by byte is
   * kept as scalars and the lookups are scalarized). */
  const FN(qg_b4) lo = (FN(qg_b4))FN(vld)(lut), hi = (FN(qg_b4))FN(vld)(lut + 8);
#define QG_BQ(q)                                                                                 \
  __builtin_shufflevector(lo, hi, q, q + 4, q + 8, q + 12, q + 16, q + 20, q + 24, q + 28, q + 32, \
                          q + 36, q + 40, q + 44, q + 48, q + 52, q + 56, q + 60)
  t->b[0] = QG_BQ(0);
  t->b[1] = QG_BQ(1);
  t->b[2] = QG_BQ(2);
  t->b[3] = QG_BQ(3);
#undef QG_BQ
}
/* The QG_GS steps of the group at p. */
KF void FN(qg_group)(const FN(qg_gtab)* t, const uint8_t* p, V* out) {
  const FN(qg_b4) w = *(const FN(qg_b4)*)p;
  FN(qg_g32)(t, w & (uint8_t)15, out);
  FN(qg_g32)(t, w >> 4, out + 4);
}
#else
typedef uint16_t FN(qg_w16) __attribute__((ext_vector_type(16), aligned(1)));
typedef struct FN(qg_gtab) {
  V t;
} FN(qg_gtab);
KF void FN(qg_gtab_init)(FN(qg_gtab)* t, const qg_job* j) { t->t = FN(vld)(j->lut); }
KF void FN(qg_group)(const FN(qg_gtab)* t, const uint8_t* p, V* out) {
  const VI w = __builtin_convertvector(*(const FN(qg_w16)*)p, VI);
  out[0] = FN(qg_lk_lo)(t->t, w);
  out[1] = FN(qg_lk_lo)(t->t, w >> 4);
  out[2] = FN(qg_lk_lo)(t->t, w >> 8);
  out[3] = FN(qg_lk_lo)(t->t, w >> 12);
}
#endif

/* The scale (and zero point value) of the codes of half h of group g of
 * row n, as lanes of the half. */
KF V FN(qg_ghalf)(V lo, V hi) {
#if KV_W == 8
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 12, 13, 14, 15);
#else
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31);
#endif
}

/* The scale of block b of row n (f32 scales, or codes through slut). */
KF float FN(qg_scale_k)(const qg_job* j, int64_t n, int64_t b, int f32s) {
  const int64_t at = n * j->nblocks + b;
  return f32s ? ((const float*)j->scales)[at] : j->slut[((const uint8_t*)j->scales)[at]];
}

KF void FN(qg_gemv4g_k)(const qg_job* j, int64_t n0, int64_t n1, int split, int zp, int f32s) {
  float xt[QG_KA] __attribute__((aligned(64)));
  V xs[QG_GX];
  int32_t gb[QG_GX][2]; /* the blocks of the halves of every group */
  FN(qg_gtab) tab;
  FN(qg_gtab_init)(&tab, j);
  const int64_t row_bytes = j->kw / 2, k = j->k, block = j->block, nb = j->nblocks;
  /* Whole groups inside the packed row, up to the last code of A. */
  const int64_t ng = KMIN(j->kw / 64, (k + 63) / 64);
  for (int64_t g0 = 0; g0 < ng; g0 += QG_GX) {
    const int64_t gn = KMIN(QG_GX, ng - g0);
    for (int64_t g = 0; g < gn; g++) {
      const int64_t base = (g0 + g) * 64;
      V sum = (V)0.0f;
      for (int s = 0; s < QG_GS; s++) {
        V v;
        for (int i = 0; i < VW; i++) {
          const int64_t kk = base + FN(qg_gperm)(s, i);
          v[i] = kk < k ? j->a[kk] : 0.0f;
        }
        FN(vst)(xt + g * 64 + s * VW, v);
        sum += v;
      }
      xs[g] = sum;
      /* Codes past K (x = 0) may be past the last block. */
      gb[g][0] = (int32_t)KMIN(base / block, nb - 1);
      gb[g][1] = (int32_t)KMIN((base + 32) / block, nb - 1);
    }
    const int last = g0 + gn == ng;
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* wrow = j->w + n * row_bytes + g0 * 32;
      V tot = (V)0.0f;
#if KV_W == 16
      if (!split) {
        /* One block per group: see above. */
        V t0 = (V)0.0f, t1 = (V)0.0f, t2 = (V)0.0f, t3 = (V)0.0f;
        for (int64_t g = 0; g < gn; g++) {
          const int64_t b = gb[g][0];
          const float s = FN(qg_scale_k)(j, n, b, f32s);
          const V ts = zp ? (tab.t - (V)FN(qg_zero)(j, n, b)) * s : tab.t * s;
          const VI w = __builtin_convertvector(*(const FN(qg_w16)*)(wrow + g * 32), VI);
          const float* xg = xt + g * 64;
          t0 += FN(vld)(xg) * FN(qg_lk_lo)(ts, w);
          t1 += FN(vld)(xg + VW) * FN(qg_lk_lo)(ts, w >> 4);
          t2 += FN(vld)(xg + 2 * VW) * FN(qg_lk_lo)(ts, w >> 8);
          t3 += FN(vld)(xg + 3 * VW) * FN(qg_lk_lo)(ts, w >> 12);
        }
        tot = (t0 + t1) + (t2 + t3);
      } else
#endif
      for (int64_t g = 0; g < gn; g++) {
        V d[QG_GS];
        FN(qg_group)(&tab, wrow + g * 32, d);
        const float* xg = xt + g * 64;
        V acc0 = FN(vld)(xg) * d[0], acc1 = FN(vld)(xg + VW) * d[1];
        for (int s = 2; s < QG_GS; s += 2) {
          acc0 += FN(vld)(xg + s * VW) * d[s];
          acc1 += FN(vld)(xg + (s + 1) * VW) * d[s + 1];
        }
        V acc = acc0 + acc1;
        const int64_t b = gb[g][0];
        V sv = (V)FN(qg_scale_k)(j, n, b, f32s), zv = (V)0.0f;
        if (zp) zv = (V)FN(qg_zero)(j, n, b);
        if (split) {
          const int64_t b1 = gb[g][1];
          sv = FN(qg_ghalf)(sv, (V)FN(qg_scale_k)(j, n, b1, f32s));
          if (zp) zv = FN(qg_ghalf)(zv, (V)FN(qg_zero)(j, n, b1));
        }
        if (zp) acc -= zv * xs[g];
        tot += acc * sv;
      }
      float t = FN(hsum)(tot);
      if (last)
        for (int64_t i = ng * 64; i < k; i++) {
          const int64_t b = i / block;
          t += j->a[i] * ((j->lut[qg_code(j->w + n * row_bytes, 4, i)] - FN(qg_zero)(j, n, b)) *
                          qg_scale(j, n, b));
        }
      j->c[n] = g0 == 0 ? t : j->c[n] + t;
    }
  }
  if (ng == 0)
    for (int64_t n = n0; n < n1; n++) {
      float t = 0.0f;
      for (int64_t i = 0; i < k; i++) {
        const int64_t b = i / block;
        t += j->a[i] * ((j->lut[qg_code(j->w + n * row_bytes, 4, i)] - FN(qg_zero)(j, n, b)) *
                        qg_scale(j, n, b));
      }
      j->c[n] = t;
    }
}

static KV_ATTR void FN(qg_gemv4g)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  const int split = j->block % 64 != 0 && j->block < j->k;
  if (j->zp)
    FN(qg_gemv4g_k)(j, n0, n1, split, 1, j->scale_bits == 32);
  else if (split)
    FN(qg_gemv4g_k)(j, n0, n1, 1, 0, j->scale_bits == 32);
  else if (j->scale_bits == 32)
    FN(qg_gemv4g_k)(j, n0, n1, 0, 0, 1);
  else
    FN(qg_gemv4g_k)(j, n0, n1, 0, 0, 0);
}

/* One row of A by 8-bit codes: per block, sum a.v of the unscaled values
 * (and sum a with zero points), then add s * (a.v - z * sum a). */
KF void FN(qg_gemv8_k)(const qg_job* j, int64_t n0, int64_t n1, int kind, int zp) {
  const float* a = j->a;
  const uint8_t special = (uint8_t)FN(qg_special8)(kind);
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* wrow = j->w + n * j->kw;
    V tot = (V)0.0f;
    float tail = 0.0f;
    /* The main loop decodes FP8 without its special codes and keeps the
     * largest code & special instead; a row that has one is summed again
     * through the table. */
    FN(qg_b4) sp = (FN(qg_b4))0;
    for (int64_t b = 0; b < j->nblocks; b++) {
      const int64_t s0 = b * j->block, s1 = KMIN(j->k, s0 + j->block);
      if (s0 >= s1) break;
      const float s = qg_scale(j, n, b), z = zp ? FN(qg_zero)(j, n, b) : 0.0f;
      V acc0 = (V)0.0f, acc1 = (V)0.0f, acc2 = (V)0.0f, acc3 = (V)0.0f, sa = (V)0.0f;
      float dt = 0.0f, st = 0.0f;
      int64_t i = s0;
      for (; i + 4 * VW <= s1; i += 4 * VW) {
        const V a0 = FN(vld)(a + i), a1 = FN(vld)(a + i + VW);
        const V a2 = FN(vld)(a + i + 2 * VW), a3 = FN(vld)(a + i + 3 * VW);
        acc0 += a0 * FN(qg_dec8)(wrow + i, kind, 0);
        acc1 += a1 * FN(qg_dec8)(wrow + i + VW, kind, 0);
        acc2 += a2 * FN(qg_dec8)(wrow + i + 2 * VW, kind, 0);
        acc3 += a3 * FN(qg_dec8)(wrow + i + 3 * VW, kind, 0);
        if (special) sp = __builtin_elementwise_max(sp, *(const FN(qg_b4)*)(wrow + i) & special);
        if (zp) sa += (a0 + a1) + (a2 + a3);
      }
      acc0 += acc2;
      acc1 += acc3;
      for (; i + VW <= s1; i += VW) {
        const V a0 = FN(vld)(a + i);
        acc0 += a0 * FN(qg_dec8)(wrow + i, kind, 1);
        if (zp) sa += a0;
      }
      for (; i < s1; i++) {
        dt += a[i] * j->lut[wrow[i]];
        st += a[i];
      }
      if (zp) {
        tot += (acc0 + acc1 - z * sa) * s;
        tail += (dt - z * st) * s;
      } else {
        tot += (acc0 + acc1) * s;
        tail += dt * s;
      }
    }
    float r = FN(hsum)(tot) + tail;
    if (special && __builtin_reduce_max(sp) == special) {
      r = 0.0f;
      for (int64_t b = 0; b < j->nblocks; b++) {
        const int64_t s0 = b * j->block, s1 = KMIN(j->k, s0 + j->block);
        const float s = qg_scale(j, n, b), z = zp ? FN(qg_zero)(j, n, b) : 0.0f;
        float dt = 0.0f, st = 0.0f;
        for (int64_t i = s0; i < s1; i++) {
          dt += a[i] * j->lut[wrow[i]];
          st += a[i];
        }
        r += (dt - z * st) * s;
      }
    }
    j->c[n] = r;
  }
}

/* Calls body(j, n0, n1, kind, zp) with constant kind and zp: the 8-bit
 * GEMVs specialized per kind of code and zero points. */
#ifndef QG8_DISPATCH
#define QG8_DISPATCH(body)                                                   \
  do {                                                                       \
    switch (j->kind8 * 2 + (j->zp != 0)) {                                   \
      case QG8_I8 * 2: body(j, n0, n1, QG8_I8, 0); break;                    \
      case QG8_I8 * 2 + 1: body(j, n0, n1, QG8_I8, 1); break;                \
      case QG8_U8 * 2: body(j, n0, n1, QG8_U8, 0); break;                    \
      case QG8_U8 * 2 + 1: body(j, n0, n1, QG8_U8, 1); break;                \
      case QG8_E4M3FN * 2: body(j, n0, n1, QG8_E4M3FN, 0); break;            \
      case QG8_E4M3FN * 2 + 1: body(j, n0, n1, QG8_E4M3FN, 1); break;        \
      case QG8_E5M2 * 2: body(j, n0, n1, QG8_E5M2, 0); break;                \
      default: body(j, n0, n1, QG8_E5M2, 1); break;                          \
    }                                                                        \
  } while (0)
#endif

static KV_ATTR void FN(qg_gemv8)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  QG8_DISPATCH(FN(qg_gemv8_k));
}

/* ---- One row of A by 8-bit codes, one block per row ----
 *
 * Lane i of the group's 4 * VW code bytes, read as 32-bit lanes, holds
 * codes 4 * i .. 4 * i + 3; shifted left by 8 * (3 - o) bits, code
 * 4 * i + o is in its top byte, so step o (o = 0 .. 3) decodes VW codes with
 * at most three shifts and a mask, without widening or interleaving (on
 * AVX2 a widening byte load is a lane-crossing shuffle), from one aligned
 * load per group (loads at byte offsets 1 .. 3, one per step, cross a
 * cache line each: on a Zen 4 core they, not the arithmetic, set the pace):
 * integers by an arithmetic (i8) or logical (u8) shift and a conversion;
 * E4M3FN and E5M2 by an arithmetic shift that puts the exponent and
 * mantissa in place and copies the sign over the top exponent bits, which
 * the mask clears: the f32 of those bits is the value times 2^-120
 * (E4M3) or 2^-112 (E5M2), subnormals included. a is copied once per
 * call (QG_KA values at a time) in that order and, for FP8, times 2^60
 * (2^56), so the products need no scaling (c = s * 2^60 * sum); the copy
 * is exact and no product under- or overflows while the largest |a| is in
 * [2^-40, 2^60) (else the table path). The codes after the last whole
 * group are summed by one more group ending at code K (its codes that the
 * group before it has meet zeros in the copy of a). Special FP8 codes are
 * found as in qg_gemv8_k. */
#define QG_G8 (4 * VW)
#define QG_G8X (QG_KA / QG_G8) /* groups per copy of a */
#define QG_PF8 2048
KF V FN(qg_dec8w)(VI w, int kind) {
  switch (kind) {
    case QG8_I8: return __builtin_convertvector(w >> 24, V);
    case QG8_U8: return __builtin_convertvector((FN(qg_vu))w >> 24, V);
    case QG8_E4M3FN: return (V)((FN(qg_vu))(w >> 4) & 0x87F00000u);
    default: return (V)((FN(qg_vu))(w >> 3) & 0x8FE00000u);
  }
}
typedef int32_t FN(qg_vi1) __attribute__((ext_vector_type(VW), aligned(1)));
/* Step o (0 .. 3) of the group whose 4 * VW code bytes are w: the unscaled
 * values of codes 4 * i + o (qg_dec8w of the code shifted to the top byte). */
KF V FN(qg_step8)(VI w, int o, int kind) {
  return FN(qg_dec8w)((VI)((FN(qg_vu))w << (8 * (3 - o))), kind);
}

/* The exact sum a . w' of row n through the table (with zero point and
 * scale), for rows that hold a special code. */
KF float FN(qg_row8_exact)(const qg_job* j, int64_t n) {
  const uint8_t* wrow = j->w + n * j->kw;
  const float z = FN(qg_zero)(j, n, 0);
  float dt = 0.0f, st = 0.0f;
  for (int64_t i = 0; i < j->k; i++) {
    dt += j->a[i] * j->lut[wrow[i]];
    st += j->a[i];
  }
  return (dt - z * st) * qg_scale(j, n, 0);
}

KF void FN(qg_gemv8w_k)(const qg_job* j, int64_t n0, int64_t n1, int kind, int zp) {
  float xt[QG_KA] __attribute__((aligned(64)));
  const int fp8 = kind == QG8_E4M3FN || kind == QG8_E5M2;
  const float up = kind == QG8_E4M3FN ? 0x1p60f : kind == QG8_E5M2 ? 0x1p56f : 1.0f;
  const uint8_t special = (uint8_t)FN(qg_special8)(kind);
  const int64_t k = j->k;
  const int64_t ng = k / QG_G8, tail0 = ng * QG_G8;
  const float* a = j->a;
  float sa = 0.0f;
  if (zp)
    for (int64_t i = 0; i < k; i++) sa += a[i];
  for (int64_t g0 = 0; g0 < ng; g0 += QG_G8X - 1) {
    const int64_t gn = KMIN(QG_G8X - 1, ng - g0);
    const int first = g0 == 0, last = g0 + gn == ng;
    /* After the last group, one more group ending at code k, with a = 0
     * for the codes the groups before it have. */
    const int tailg = last && tail0 < k;
    for (int64_t g = 0; g < gn + tailg; g++)
      for (int o = 0; o < 4; o++) {
        V v;
        for (int i = 0; i < VW; i++) {
          const int64_t kk = (g < gn ? (g0 + g) * QG_G8 : k - QG_G8) + 4 * i + o;
          v[i] = kk >= tail0 || g < gn ? a[kk] * up : 0.0f;
        }
        FN(vst)(xt + g * QG_G8 + o * VW, v);
      }
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* wrow = j->w + n * j->kw;
      const uint8_t* p = wrow + g0 * QG_G8;
      V acc0 = (V)0.0f, acc1 = (V)0.0f, acc2 = (V)0.0f, acc3 = (V)0.0f;
      FN(qg_b4) sp = (FN(qg_b4))0;
      V acc4 = (V)0.0f, acc5 = (V)0.0f, acc6 = (V)0.0f, acc7 = (V)0.0f;
      /* One load per group, shifted for each step; two groups per
       * iteration: eight FMA chains. The codes QG_PF8 bytes ahead are
       * prefetched (rows follow each other in memory; the hardware
       * prefetchers alone leave the loads waiting). */
#define QG_STEP8(q, x, a0, a1, a2, a3)                                                  \
  do {                                                                                  \
    __builtin_prefetch((q) + QG_PF8, 0, 3);                                              \
    const VI w = *(const FN(qg_vi1)*)(q);                                               \
    a0 += FN(vld)(x) * FN(qg_step8)(w, 0, kind);                                        \
    a1 += FN(vld)((x) + VW) * FN(qg_step8)(w, 1, kind);                                 \
    a2 += FN(vld)((x) + 2 * VW) * FN(qg_step8)(w, 2, kind);                             \
    a3 += FN(vld)((x) + 3 * VW) * FN(qg_step8)(w, 3, kind);                             \
    if (special) sp = __builtin_elementwise_max(sp, (FN(qg_b4))w & special);            \
  } while (0)
      int64_t g = 0;
      for (; g + 2 <= gn; g += 2) {
        QG_STEP8(p + g * QG_G8, xt + g * QG_G8, acc0, acc1, acc2, acc3);
        QG_STEP8(p + (g + 1) * QG_G8, xt + (g + 1) * QG_G8, acc4, acc5, acc6, acc7);
      }
      if (g < gn) QG_STEP8(p + g * QG_G8, xt + g * QG_G8, acc0, acc1, acc2, acc3);
      if (tailg) QG_STEP8(wrow + k - QG_G8, xt + gn * QG_G8, acc4, acc5, acc6, acc7);
#undef QG_STEP8
      float t = FN(hsum)(((acc0 + acc4) + (acc1 + acc5)) + ((acc2 + acc6) + (acc3 + acc7))) * up;
      int bad = special && __builtin_reduce_max(sp) == special;
      float r = first ? t : j->c[n] + t;
      if (bad) r = __builtin_nanf("");
      if (last) {
        /* NaN: a special code, or NaN or infinity in a (summed again
         * through the table, which gives the reference's NaN or
         * infinity). */
        if (fp8 && r != r) {
          j->c[n] = FN(qg_row8_exact)(j, n);
          continue;
        }
        const float z = zp ? FN(qg_zero)(j, n, 0) : 0.0f;
        r = (r - z * sa) * qg_scale(j, n, 0);
      }
      j->c[n] = r;
    }
  }
}

static KV_ATTR void FN(qg_gemv8w)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  QG8_DISPATCH(FN(qg_gemv8w_k));
}

/* Whether qg_gemv8w applies: one block per row, a group or more, and for
 * FP8 the largest |a| in [2^-40, 2^60) or a all zeros. */
static KV_ATTR int FN(qg_gemv8w_ok)(const qg_job* j) {
  if (j->block < j->k || j->k < QG_G8) return 0;
  if (j->kind8 != QG8_E4M3FN && j->kind8 != QG8_E5M2) return 1;
  float mx = 0.0f;
  for (int64_t i = 0; i < j->k; i++) {
    const float v = __builtin_fabsf(j->a[i]);
    mx = v > mx ? v : mx; /* NaN is skipped: the result is NaN either way */
  }
  return mx == 0.0f || (mx >= 0x1p-40f && mx < 0x1p60f);
}
#undef QG_PF8

/* Columns decoded at a time by the products with several rows: QG_RB x
 * QG_NCV accumulators (16 of 32 registers with 16 lanes, 8 of 16 with 8
 * or 4 lanes). */
#if KV_W == 16
#define QG_NCV 4
#else
#define QG_NCV 2
#endif
/* Rows [0, m) of the packed A chunk ap (row stride QG_LDP) times the QG_NCV
 * dequantized columns in buf (QG_KC apart), over len values; adds to (or,
 * at k0 = 0, stores) c[r * ldc + n + q] for the first nc columns. */
static KV_ATTR void FN(qg_rows)(const float* ap, int64_t m, float* c, int64_t ldc, int64_t n,
                                int nc, int64_t k0, int64_t len, const float* buf) {
  const int64_t nv = len / VW * VW;
  int64_t r = 0;
  for (; r + QG_RB <= m; r += QG_RB) {
    const float* ar = ap + r * QG_LDP;
    V acc[QG_RB][QG_NCV];
    for (int x = 0; x < QG_RB; x++)
      for (int q = 0; q < QG_NCV; q++) acc[x][q] = (V)0.0f;
    for (int64_t i = 0; i < nv; i += VW) {
      V w[QG_NCV];
      for (int q = 0; q < QG_NCV; q++) w[q] = FN(vld)(buf + q * QG_KC + i);
      for (int x = 0; x < QG_RB; x++) {
        const V av = FN(vld)(ar + x * QG_LDP + i);
        for (int q = 0; q < QG_NCV; q++) acc[x][q] += av * w[q];
      }
    }
    _Static_assert(QG_RB * QG_NCV % 8 == 0, "qg_hsum8 adds up 8 accumulators");
    float sums[QG_RB * QG_NCV];
    const V* f = &acc[0][0];
    for (int g = 0; g < QG_RB * QG_NCV; g += 8) {
      const FN(qg_v8) h = FN(qg_hsum8)(f[g], f[g + 1], f[g + 2], f[g + 3], f[g + 4], f[g + 5],
                                       f[g + 6], f[g + 7]);
      for (int e = 0; e < 8; e++) sums[g + e] = h[e];
    }
    for (int x = 0; x < QG_RB; x++)
      for (int q = 0; q < nc; q++) {
        float t = sums[x * QG_NCV + q];
        for (int64_t i = nv; i < len; i++) t += ar[x * QG_LDP + i] * buf[q * QG_KC + i];
        float* cp = c + (r + x) * ldc + n + q;
        *cp = k0 == 0 ? t : *cp + t;
      }
  }
  for (; r < m; r++) {
    const float* ar = ap + r * QG_LDP;
    V acc[QG_NCV];
    for (int q = 0; q < QG_NCV; q++) acc[q] = (V)0.0f;
    for (int64_t i = 0; i < nv; i += VW) {
      const V av = FN(vld)(ar + i);
      for (int q = 0; q < QG_NCV; q++) acc[q] += av * FN(vld)(buf + q * QG_KC + i);
    }
    for (int q = 0; q < nc; q++) {
      float t = FN(qg_hsum)(acc[q]);
      for (int64_t i = nv; i < len; i++) t += ar[i] * buf[q * QG_KC + i];
      float* cp = c + r * ldc + n + q;
      *cp = k0 == 0 ? t : *cp + t;
    }
  }
}

/* The ng groups of 64 codes from code k0 (a multiple of 64) of row n,
 * dequantized, into out in qg_gperm order (the copy of A is permuted to
 * match): per group, the table decode of qg_gemv4g and one FMA per step
 * for the scales and zero points of its halves. */
KF void FN(qg_deq_groups)(const qg_job* j, const FN(qg_gtab) * tab, int64_t n, int64_t k0,
                          int64_t ng, float* out) {
  const uint8_t* wrow = j->w + n * (j->kw / 2);
  for (int64_t g = 0; g < ng; g++) {
    const int64_t base = k0 + g * 64, b0 = base / j->block, b1 = (base + 32) / j->block;
    V d[QG_GS];
    FN(qg_group)(tab, wrow + base / 2, d);
    V sv = (V)qg_scale(j, n, b0), zv = (V)FN(qg_zero)(j, n, b0);
    if (b1 != b0) {
      sv = FN(qg_ghalf)(sv, (V)qg_scale(j, n, b1));
      zv = FN(qg_ghalf)(zv, (V)FN(qg_zero)(j, n, b1));
    }
    const V c = -zv * sv;
    for (int s = 0; s < QG_GS; s++) FN(vst)(out + g * 64 + s * VW, d[s] * sv + c);
  }
}

/* Whether 8-bit codes decode a group of QG_G8 at a time in qg_gemm (one
 * block per group). */
KF int FN(qg_groups8_ok)(const qg_job* j) {
  return j->kind8 && (j->block % QG_G8 == 0 || j->block >= j->k);
}

/* The ng groups of QG_G8 8-bit codes from code k0 (a multiple of QG_G8;
 * one block per group) of row n, dequantized, into out in the order of
 * qg_gemv8w's steps (lane i of step o: code 4 * i + o): one load per group
 * shifted per step, without widening. Special FP8 codes are found as in
 * qg_gemv8w (the largest code & M per byte); a chunk that has one is
 * decoded again through the table. */
KF void FN(qg_deq8_groups_k)(const qg_job* j, int64_t n, int64_t k0, int64_t ng, float* out,
                             int kind) {
  const uint8_t* wrow = j->w + n * j->kw;
  const uint8_t special = (uint8_t)FN(qg_special8)(kind);
  const float up = kind == QG8_E4M3FN ? 0x1p120f : kind == QG8_E5M2 ? 0x1p112f : 1.0f;
  FN(qg_b4) sp = (FN(qg_b4))0;
  for (int64_t g = 0; g < ng; g++) {
    const int64_t base = k0 + g * QG_G8, b = base / j->block;
    const float sc = qg_scale(j, n, b), z = FN(qg_zero)(j, n, b);
    const V c = (V)(-z * sc);
    const VI w = *(const FN(qg_vi1)*)(wrow + base);
    float* o = out + g * QG_G8;
    FN(vst)(o, FN(qg_step8)(w, 0, kind) * up * sc + c);
    FN(vst)(o + VW, FN(qg_step8)(w, 1, kind) * up * sc + c);
    FN(vst)(o + 2 * VW, FN(qg_step8)(w, 2, kind) * up * sc + c);
    FN(vst)(o + 3 * VW, FN(qg_step8)(w, 3, kind) * up * sc + c);
    if (special) sp = __builtin_elementwise_max(sp, (FN(qg_b4))w & special);
  }
  if (special && __builtin_reduce_max(sp) == special)
    for (int64_t g = 0; g < ng; g++) {
      const int64_t base = k0 + g * QG_G8, b = base / j->block;
      const float sc = qg_scale(j, n, b), z = FN(qg_zero)(j, n, b);
      for (int st = 0; st < 4; st++)
        for (int i = 0; i < VW; i++)
          out[g * QG_G8 + st * VW + i] = (j->lut[wrow[base + 4 * i + st]] - z) * sc;
    }
}

static KV_ATTR void FN(qg_deq8_groups)(const qg_job* j, int64_t n, int64_t k0, int64_t ng, float* out) {
  switch (j->kind8) {
    case QG8_I8: FN(qg_deq8_groups_k)(j, n, k0, ng, out, QG8_I8); break;
    case QG8_U8: FN(qg_deq8_groups_k)(j, n, k0, ng, out, QG8_U8); break;
    case QG8_E4M3FN: FN(qg_deq8_groups_k)(j, n, k0, ng, out, QG8_E4M3FN); break;
    default: FN(qg_deq8_groups_k)(j, n, k0, ng, out, QG8_E5M2); break;
  }
}

/* Several rows of A, QG_NB columns at a time: per chunk of QG_KC values of
 * K and block of QG_MB rows, the rows are copied to a stack buffer whose
 * row stride is not a multiple of the cache's set stride (rows of A a power
 * of two apart would evict each other from L1 between column pairs), then
 * QG_NCV columns at a time are dequantized into buf and multiplied with
 * every copied row. A missing last column repeats the previous one (its
 * sums are not stored). The column blocks are outermost so that a
 * column's codes are read in order, chunk after chunk, while the block's
 * columns stay in the TLB and its outputs in cache: with the chunks
 * outermost, every chunk swept all N columns, a page of codes (and rows of
 * C) apart, and the page walks of the prefetches and the stores to C took
 * ~15% of the FP8 MatMul 16x4096x11008 (perf, Zen 4). */
static KV_ATTR void FN(qg_gemm)(const void* job, int64_t n0, int64_t n1) {
  const qg_job* j = (const qg_job*)job;
  float buf[QG_NCV * QG_KC] __attribute__((aligned(64)));
  float ap[QG_MB * QG_LDP] __attribute__((aligned(64)));
  const int64_t row_bytes = j->kw * j->bits / 8;
  /* Whether the chunks' whole groups decode by group, and their codes
   * (a constant with 16 lanes, which the copy of A below needs to be fast). */
  const int groups = FN(qg_groups_ok)(j), by_group = groups || FN(qg_groups8_ok)(j);
  const int64_t gsz = groups ? 64 : QG_G8;
  _Static_assert(QG_KC % 64 == 0, "chunks start at a group");
  FN(qg_gtab) tab;
  FN(qg_gtab_init)(&tab, j);
  for (int64_t nb0 = n0; nb0 < n1; nb0 += QG_NB) {
    const int64_t nb1 = KMIN(n1, nb0 + QG_NB);
    for (int64_t k0 = 0; k0 < j->k; k0 += QG_KC) {
      const int64_t k1 = KMIN(j->k, k0 + QG_KC), len = k1 - k0;
      /* Whole groups, in their decode's lane order. */
      const int64_t ng = by_group ? len / gsz : 0;
      for (int64_t m0 = 0; m0 < j->m; m0 += QG_MB) {
        const int64_t mb = KMIN(QG_MB, j->m - m0);
        for (int64_t r = 0; r < mb; r++) {
          const float* src = j->a + (m0 + r) * j->lda + k0;
          float* dst = ap + r * QG_LDP;
          for (int64_t g = 0; g < ng; g++)
            for (int st = 0; st < gsz / VW; st++)
              for (int i = 0; i < VW; i++)
                dst[g * gsz + st * VW + i] = src[g * gsz + (groups ? FN(qg_gperm)(st, i) : 4 * i + st)];
          for (int64_t i = ng * gsz; i < len; i++) dst[i] = src[i];
        }
        for (int64_t n = nb0; n < nb1; n += QG_NCV) {
          const int nc = (int)KMIN(QG_NCV, nb1 - n);
          /* The codes and scales QG_PF columns ahead (past the block's
           * end: the next chunk of its first columns): rows of codes a
           * page or less apart defeat the hardware prefetchers. */
          for (int64_t q = n + QG_PF; q < n + QG_PF + nc; q++) {
            const int64_t wrap = q >= nb1, qc = wrap ? q - (nb1 - nb0) : q;
            const int64_t pk0 = wrap ? k0 + QG_KC : k0;
            if (qc >= nb1 || pk0 >= j->k) continue;
            const int64_t pk1 = KMIN(j->k, pk0 + QG_KC);
            const uint8_t* p = j->w + qc * row_bytes + (pk0 * j->bits >> 3);
            const int64_t bytes = ((pk1 - pk0) * j->bits + 7) >> 3;
            for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
            __builtin_prefetch((const uint8_t*)j->scales + (qc * j->nblocks + pk0 / j->block) * (j->scale_bits >> 3), 0, 3);
          }
          for (int q = 0; q < QG_NCV; q++) {
            const int64_t col = n + KMIN(q, nc - 1);
            if (groups)
              FN(qg_deq_groups)(j, &tab, col, k0, ng, buf + q * QG_KC);
            else if (ng)
              FN(qg_deq8_groups)(j, col, k0, ng, buf + q * QG_KC);
            if (k0 + ng * gsz < k1) FN(qg_deq)(j, col, k0 + ng * gsz, k1, buf + q * QG_KC + ng * gsz);
          }
          FN(qg_rows)(ap, mb, j->c + m0 * j->ldc, j->ldc, n, nc, k0, len, buf);
        }
      }
    }
  }
}
#undef QG_NCV
#undef QG_GS
#undef QG_GX
#undef QG_PSHUFB
#undef QG_G8
#undef QG_G8X
#undef QG_TABS
#undef QG_ILO
#undef QG_IHI
#undef QG_IH
#undef QG_EVEN
#undef QG_ODD
#endif

/* ---- One row of A by 4-bit codes packed in panels (KILN_QGEMM_PANELS) ----
 * Panel p holds 16 columns of C; per step q of 8 codes along K its 64 bytes
 * at w + (p * ceil(KW / 8) + q) * 64 hold 8 codes of each column: column i
 * in bytes 4i .. 4i + 3, code 8q + 2r in the low and 8q + 2r + 1 in the high
 * half of byte 4i + r (kiln_ir's `row_panels_k8`, block 16). The scales of
 * a panel's block b are 16 consecutive ones (`row_panels`); zero points,
 * if any, are packed like the codes (a run of 8 blocks' zero points per
 * column).
 *
 * The 16-lane loop: a vector holds one column per lane, so a lookup of 16
 * codes of one K step and one FMA with the broadcast a[k] add into 16
 * columns at once: no horizontal sums and no copy of A. Loads at byte
 * offsets 0 .. 3 put code 8q + 2r of every column in the low 4 bits of a
 * lane (all `vpermps` reads); one shift each gives the codes in the high
 * halves: per 128 codes 4 loads, 4 shifts, 8 lookups and 8 FMAs, against 13
 * vector operations per 64 codes in qg_gemv4g. Per block, the 16 columns'
 * sums are scaled at once: s * (sum a.v - z * sum a). Other variants (no 16-entry permute) run the
 * scalar loop, which any variant can run on an artifact compiled for
 * another CPU. */
#define QG_PANEL KILN_QG_PANEL
#define QG_PT 8     /* panels per tile */
#define QG_XSB 1024 /* most blocks with zero points in the 16-lane loop */

/* Code k of column n in the panels, with kq steps of 8 codes per panel. */
KF uint32_t FN(qg_pcode)(const uint8_t* w, int64_t kq, int64_t n, int64_t k) {
  const int64_t e = (((n / QG_PANEL) * kq + k / 8) * QG_PANEL + n % QG_PANEL) * 8 + k % 8;
  return (uint32_t)(w[e >> 1] >> ((e & 1) * 4)) & 15u;
}

/* The scale of block b of column n in the panels. */
KF float FN(qg_pscale)(const qg_job* j, int64_t n, int64_t b) {
  const int64_t at = ((n / QG_PANEL) * j->nblocks + b) * QG_PANEL + n % QG_PANEL;
  if (j->scale_bits == 32) return ((const float*)j->scales)[at];
  return j->slut[((const uint8_t*)j->scales)[at]];
}

/* The value of the zero point of block b of column n in the panels (0
 * without zero points). */
KF float FN(qg_pzero)(const qg_job* j, int64_t n, int64_t b) {
  if (!j->zp) return 0.0f;
  return j->lut[FN(qg_pcode)(j->zp, (j->zp_cols + 7) / 8, n, b)];
}

/* Panels [p0, p1), a column at a time. */
static KV_ATTR void FN(qg_gemvp_cols)(const void* job, int64_t p0, int64_t p1) {
  const qg_job* j = (const qg_job*)job;
  const int64_t kq = (j->kw + 7) / 8, k = j->k, block = j->block;
  for (int64_t n = p0 * QG_PANEL; n < KMIN(p1 * QG_PANEL, j->n); n++) {
    float t = 0.0f;
    for (int64_t b = 0; b * block < k; b++) {
      float acc = 0.0f;
      const float z = FN(qg_pzero)(j, n, b);
      for (int64_t i = b * block; i < KMIN((b + 1) * block, k); i++)
        acc += j->a[i] * (j->lut[FN(qg_pcode)(j->w, kq, n, i)] - z);
      t += acc * FN(qg_pscale)(j, n, b);
    }
    j->c[n] = t;
  }
}

#if KV_W == 16
typedef int32_t FN(qg_vp) __attribute__((ext_vector_type(16), aligned(1)));

/* Step q of cg panels: acc[c] += the 8 codes of each column at w + c *
 * stride times x[0 .. 8). */
KF void FN(qg_pstep)(V* acc, const int cg, const uint8_t* w, int64_t stride, const float* x,
                     V t) {
  const V x0 = (V)x[0], x1 = (V)x[1], x2 = (V)x[2], x3 = (V)x[3];
  const V x4 = (V)x[4], x5 = (V)x[5], x6 = (V)x[6], x7 = (V)x[7];
  for (int c = 0; c < cg; c++) {
    const uint8_t* wc = w + c * stride;
    const VI l0 = (VI) * (const FN(qg_vp)*)wc, l1 = (VI) * (const FN(qg_vp)*)(wc + 1);
    const VI l2 = (VI) * (const FN(qg_vp)*)(wc + 2), l3 = (VI) * (const FN(qg_vp)*)(wc + 3);
    V s0 = acc[c], s1 = FN(qg_lk_lo)(t, l0 >> 4) * x1;
    s0 += FN(qg_lk_lo)(t, l0) * x0;
    s0 += FN(qg_lk_lo)(t, l1) * x2;
    s1 += FN(qg_lk_lo)(t, l1 >> 4) * x3;
    s0 += FN(qg_lk_lo)(t, l2) * x4;
    s1 += FN(qg_lk_lo)(t, l2 >> 4) * x5;
    s0 += FN(qg_lk_lo)(t, l3) * x6;
    s1 += FN(qg_lk_lo)(t, l3 >> 4) * x7;
    acc[c] = s0 + s1;
  }
}

/* Panels [p, p + cg). */
KF void FN(qg_gemvp_tile)(const qg_job* j, int64_t p, const int cg, const int f32s, const int zp,
                          const float* xsb) {
  const V t = FN(vld)(j->lut);
  const int64_t kq = (j->kw + 7) / 8, k = j->k, ku = (k + 7) / 8, stride = kq * 64;
  const int64_t bq = j->block >= k ? ku : j->block / 8, nb = j->nblocks;
  const int64_t zstride = (j->zp_cols + 7) / 8 * 64, npanels = (j->n + QG_PANEL - 1) / QG_PANEL;
  const uint8_t* wp = j->w + p * stride;
  V tot[QG_PT], acc[QG_PT];
  for (int c = 0; c < cg; c++) tot[c] = (V)0.0f;
  for (int64_t b = 0, q0 = 0; q0 < ku; b++, q0 += bq) {
    const int64_t q1 = KMIN(q0 + bq, ku);
    const float xs = zp ? xsb[b] : 0.0f; /* sum a over the block */
    for (int c = 0; c < cg; c++) acc[c] = (V)0.0f;
    for (int64_t q = q0; q < q1; q++) {
      if (q + 1 < ku) {
        FN(qg_pstep)(acc, cg, wp + q * 64, stride, j->a + 8 * q, t);
      } else {
        /* The last step: A past K is zero, and the loads at bytes 1 .. 3
         * would reach past the codes' end: copies of both. */
        float x[8];
        uint8_t cb[QG_PT][68];
        for (int r = 0; r < 8; r++) x[r] = 8 * q + r < k ? j->a[8 * q + r] : 0.0f;
        for (int c = 0; c < cg; c++) {
          __builtin_memcpy(cb[c], wp + c * stride + q * 64, 64);
          __builtin_memset(cb[c] + 64, 0, 4);
        }
        FN(qg_pstep)(acc, cg, cb[0], 68, x, t);
      }
    }
    for (int c = 0; c < cg; c++) {
      V sv;
      if (f32s) {
        sv = FN(vld)((const float*)j->scales + ((p + c) * nb + b) * QG_PANEL);
      } else {
        const uint8_t* sc = (const uint8_t*)j->scales + ((p + c) * nb + b) * QG_PANEL;
        for (int i = 0; i < QG_PANEL; i++) sv[i] = j->slut[sc[i]];
      }
      if (zp) {
        /* Block b's zero points of the panel's 16 columns: byte (b % 8) / 2
         * of every column's run, half b % 2. The load reaches up to 3 bytes
         * past the run: copied for the last run of the last panel. */
        const uint8_t* zr = j->zp + (p + c) * zstride + (b / 8) * 64;
        uint8_t zb[68];
        if (p + c == npanels - 1 && (b / 8 + 1) * 64 == zstride) {
          __builtin_memcpy(zb, zr, 64);
          __builtin_memset(zb + 64, 0, 4);
          zr = zb;
        }
        const VI zi = (VI) * (const FN(qg_vp)*)(zr + (b % 8) / 2) >> (4 * (int)(b & 1));
        acc[c] -= FN(qg_lk_lo)(t, zi) * xs;
      }
      tot[c] += acc[c] * sv;
    }
  }
  for (int c = 0; c < cg; c++) {
    const int64_t n0 = (p + c) * QG_PANEL;
    if (n0 + QG_PANEL <= j->n)
      FN(vst)(j->c + n0, tot[c]);
    else
      for (int64_t n = n0; n < j->n; n++) j->c[n] = tot[c][n - n0];
  }
}

KF void FN(qg_gemvp_k)(const qg_job* j, int64_t p0, int64_t p1, const int f32s, const int zp,
                       const float* xsb) {
  int64_t p = p0;
  for (; p + QG_PT <= p1; p += QG_PT) FN(qg_gemvp_tile)(j, p, QG_PT, f32s, zp, xsb);
  for (; p + 4 <= p1; p += 4) FN(qg_gemvp_tile)(j, p, 4, f32s, zp, xsb);
  for (; p < p1; p++) FN(qg_gemvp_tile)(j, p, 1, f32s, zp, xsb);
}
#endif

static KV_ATTR void FN(qg_gemvp)(const void* job, int64_t p0, int64_t p1) {
#if KV_W == 16
  const qg_job* j = (const qg_job*)job;
  /* Steps of 8 codes never cross a block. */
  if ((j->block % 8 == 0 || j->block >= j->k) && (!j->zp || j->nblocks <= QG_XSB)) {
    if (j->zp) {
      /* The sums of A over each block (for the zero points), once per call:
       * four running sums, not one chain of K dependent adds. */
      float xsb[QG_XSB];
      for (int64_t b = 0; b < j->nblocks; b++) {
        const int64_t i0 = b * j->block, i1 = KMIN(i0 + j->block, j->k);
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int64_t i = i0;
        for (; i + 4 <= i1; i += 4) {
          s0 += j->a[i];
          s1 += j->a[i + 1];
          s2 += j->a[i + 2];
          s3 += j->a[i + 3];
        }
        for (; i < i1; i++) s0 += j->a[i];
        xsb[b] = (s0 + s1) + (s2 + s3);
      }
      FN(qg_gemvp_k)(j, p0, p1, j->scale_bits == 32, 1, xsb);
    } else if (j->scale_bits == 32) {
      FN(qg_gemvp_k)(j, p0, p1, 1, 0, 0);
    } else {
      FN(qg_gemvp_k)(j, p0, p1, 0, 0, 0);
    }
    return;
  }
#endif
  FN(qg_gemvp_cols)(job, p0, p1);
}
#undef QG_PANEL
#undef QG_PT
#undef QG_XSB

KHIDDEN KV_ATTR void FN(kiln_k_qgemm)(const int64_t* args) {
  float lut[256], slut[256];
  qg_job j;
  j.a = (const float*)slot_p(args, KILN_QGEMM_A);
  j.lda = slot_i(args, KILN_QGEMM_LDA);
  j.w = (const uint8_t*)slot_p(args, KILN_QGEMM_W);
  qg_weight_slots(&j, args, KILN_QGEMM_KW, lut, slut);
  float btab[1024];
  if (j.bits == 4 || j.bits == 2) {
    const int per = 8 / j.bits;
    for (int by = 0; by < 256; by++)
      for (int e = 0; e < per; e++) btab[by * per + e] = lut[(by >> (j.bits * e)) & ((1 << j.bits) - 1)];
  }
  j.btab = btab;
  j.c = (float*)slot_p(args, KILN_QGEMM_C);
  j.ldc = slot_i(args, KILN_QGEMM_LDC);
  j.m = slot_i(args, KILN_QGEMM_M);
  j.k = slot_i(args, KILN_QGEMM_K);
  int64_t n = slot_i(args, KILN_QGEMM_N);
  j.n = n;
  if (j.bits == 0 || j.scale_bits == 0 || j.block <= 0 || j.m <= 0 || n <= 0) return;
  const double work = (double)j.m * (double)j.k * 2.0 + (double)j.k * 4.0;
  const int64_t panels = slot_i(args, KILN_QGEMM_PANELS);
  if (panels) {
    /* One row of 4-bit codes in panels of 16 (the lowering's contract). */
    if (panels != KILN_QG_PANEL || j.bits != 4 || j.m != 1) return;
    FN(split_rows)(FN(qg_gemvp), &j, (n + 15) / 16, 16.0 * work);
    return;
  }
#if KV_W == 8 || KV_W == 16
  /* Formats decoded in registers: 4-bit codes through the table, the
   * integer and OCP FP8 bytes by conversion. */
  j.zero = (int)(j.m >> 62); /* 0 */
  j.kind8 = j.bits == 8 ? FN(qg_kind8)(slot_i(args, KILN_QGEMM_CODE)) : 0;
  if (j.bits == 4 || j.kind8) {
    FN(rows_fn) fn = FN(qg_gemm);
    if (j.m == 1 && j.bits == 4)
      fn = FN(qg_groups_ok)(&j) ? FN(qg_gemv4g) : FN(qg_gemv4i);
    else if (j.m == 1)
      fn = FN(qg_gemv8w_ok)(&j) ? FN(qg_gemv8w) : FN(qg_gemv8);
    FN(split_rows)(fn, &j, n, work);
    return;
  }
#endif
  j.kind8 = 0;
  FN(split_rows)(FN(qg_cols), &j, n, work);
}

/* ---- Quantized convolution weights (conv.h) ----
 * The weight fields of a qg_job describe a `quant.conv`'s codes (rows of
 * window-ordered codes, scales, zero points); conv_block asks for one panel
 * block at a time, decoded by the same readers as the products above (the
 * 8- and 16-lane variants' qg_deq for 4-bit codes and the 8-bit kinds
 * decoded in registers, else code by code through the table). */

/* out[0, k1 - k0) = the dequantized codes [k0, k1) of row n. */
static KV_ATTR void FN(qconv_deq)(const qg_job* j, int64_t n, int64_t k0, int64_t k1, float* out) {
#if KV_W == 8 || KV_W == 16
  if (j->bits == 4 || j->kind8) {
    FN(qg_deq)(j, n, k0, k1, out);
    return;
  }
#endif
  const uint8_t* wrow = j->w + n * (j->kw * j->bits / 8);
  for (int64_t k = k0; k < k1; k++) {
    const int64_t b = k / j->block;
    float z = 0.0f;
    if (j->zp) {
      const int64_t at = n * j->zp_cols + b;
      z = j->lut[qg_code(j->zp, j->bits, at)];
    }
    out[k - k0] = (j->lut[qg_code(wrow, j->bits, k)] - z) * qg_scale(j, n, b);
  }
}

/* Codes [k0, k0 + cbn) of rows [n0, n0 + rb) (a row panel's, or part of
 * one; rows from nend on are zeros) packed in panels of 16 rows
 * (qg_gemvp's layout for 4-bit codes: steps of 8), into o[c * NR + r].
 * The 16-lane variant decodes a step of a whole row panel as qg_pstep does
 * (loads at byte offsets 0 .. 3, 8 lookups) and scales the 8 vectors by
 * the block's 16 scales (zero points: minus their values times the
 * scales); other variants, partial panels and steps not aligned to 8, code
 * by code. */
static KV_ATTR void FN(qconv_run4)(const qg_job* j, int64_t n0, int64_t rb, int64_t nend,
                                   int64_t k0, int64_t cbn, float* o) {
  const int64_t kq = (j->kw + 7) / 8;
  int64_t c = 0;
#if KV_W == 16
  if (rb == KILN_QG_PANEL && n0 % KILN_QG_PANEL == 0 && k0 % 8 == 0) {
    const V tab = FN(vld)(j->lut);
    const int64_t stride = kq * 64, zstride = (j->zp_cols + 7) / 8 * 64;
    const int64_t rpanels = (j->n + KILN_QG_PANEL - 1) / KILN_QG_PANEL;
    const int64_t rp = n0 / KILN_QG_PANEL;
    for (; c + 8 <= cbn; c += 8) {
      const int64_t k = k0 + c, q = k / 8, b = k / j->block;
      const uint8_t* wp = j->w + rp * stride + q * 64;
      uint8_t cpy[68];
      if (rp == rpanels - 1 && q == kq - 1) {
        /* The loads at bytes 1 .. 3 reach past the codes' end. */
        __builtin_memcpy(cpy, wp, 64);
        __builtin_memset(cpy + 64, 0, 4);
        wp = cpy;
      }
      V sv;
      if (j->scale_bits == 32) {
        sv = FN(vld)((const float*)j->scales + (rp * j->nblocks + b) * KILN_QG_PANEL);
      } else {
        const uint8_t* sc = (const uint8_t*)j->scales + (rp * j->nblocks + b) * KILN_QG_PANEL;
        for (int i = 0; i < KILN_QG_PANEL; i++) sv[i] = j->slut[sc[i]];
      }
      V zs = (V)0.0f;
      if (j->zp) {
        const uint8_t* zr = j->zp + rp * zstride + (b / 8) * 64;
        uint8_t zb[68];
        if (rp == rpanels - 1 && (b / 8 + 1) * 64 == zstride) {
          __builtin_memcpy(zb, zr, 64);
          __builtin_memset(zb + 64, 0, 4);
          zr = zb;
        }
        const VI zi = (VI) * (const FN(qg_vp)*)(zr + (b % 8) / 2) >> (4 * (int)(b & 1));
        zs = FN(qg_lk_lo)(tab, zi) * sv;
      }
      for (int h = 0; h < 4; h++) {
        const VI l = (VI) * (const FN(qg_vp)*)(wp + h);
        FN(vst)(o + (c + 2 * h) * NR, FN(qg_lk_lo)(tab, l) * sv - zs);
        FN(vst)(o + (c + 2 * h + 1) * NR, FN(qg_lk_lo)(tab, l >> 4) * sv - zs);
      }
    }
  }
#endif
  for (; c < cbn; c++) {
    const int64_t k = k0 + c, b = k / j->block;
    for (int64_t rr = 0; rr < rb; rr++) {
      const int64_t n = n0 + rr;
      o[c * NR + rr] = n < nend ? (j->lut[FN(qg_pcode)(j->w, kq, n, k)] - FN(qg_pzero)(j, n, b)) *
                                      FN(qg_pscale)(j, n, b)
                                : 0.0f;
    }
  }
}

/* qconv_run4 for 8-bit codes, packed as `row_panels` (a K index of a row
 * panel: 16 bytes, one per row; zero points likewise): the 16-lane variant
 * decodes a whole row panel in registers as qg_dec8 does (integers, OCP
 * FP8), other variants, partial panels and formats through the table. */
static KV_ATTR void FN(qconv_run8)(const qg_job* j, int64_t n0, int64_t rb, int64_t nend,
                                   int64_t k0, int64_t cbn, float* o) {
  const int64_t P = KILN_QG_PANEL;
#if KV_W == 16
  if (rb == P && n0 % P == 0 && j->kind8) {
    const int64_t rp = n0 / P;
    int64_t bl = -1;
    V sv = (V)0.0f, zs = (V)0.0f;
    for (int64_t c = 0; c < cbn; c++) {
      const int64_t k = k0 + c, b = k / j->block;
      if (b != bl) {
        bl = b;
        if (j->scale_bits == 32) {
          sv = FN(vld)((const float*)j->scales + (rp * j->nblocks + b) * P);
        } else {
          const uint8_t* sc = (const uint8_t*)j->scales + (rp * j->nblocks + b) * P;
          for (int i = 0; i < P; i++) sv[i] = j->slut[sc[i]];
        }
        if (j->zp) zs = FN(qg_dec8)(j->zp + (rp * j->zp_cols + b) * P, j->kind8, 1) * sv;
      }
      const V v = FN(qg_dec8)(j->w + (rp * j->kw + k) * P, j->kind8, 1);
      FN(vst)(o + c * NR, v * sv - zs);
    }
    return;
  }
#endif
  for (int64_t c = 0; c < cbn; c++) {
    const int64_t k = k0 + c, b = k / j->block;
    for (int64_t rr = 0; rr < rb; rr++) {
      const int64_t n = n0 + rr;
      if (n >= nend) {
        o[c * NR + rr] = 0.0f;
        continue;
      }
      /* Row n's panel (rows of a group need not start one). */
      const int64_t np = n / P, lane = n % P;
      const float z = j->zp ? j->lut[j->zp[(np * j->zp_cols + b) * P + lane]] : 0.0f;
      const float sc = j->scale_bits == 32
                           ? ((const float*)j->scales)[(np * j->nblocks + b) * P + lane]
                           : j->slut[((const uint8_t*)j->scales)[(np * j->nblocks + b) * P + lane]];
      o[c * NR + rr] = (j->lut[j->w[(np * j->kw + k) * P + lane]] - z) * sc;
    }
  }
}

/* The panel block of qconv_block from codes packed in panels of 16 rows
 * (`pack-weights` on AVX-512): per group of 16 rows and tap, qconv_run4 or
 * qconv_run8. */
static KV_ATTR void FN(qconv_block_p)(const qg_job* j, int64_t row0, int64_t nrows,
                                      int64_t taps, int64_t cin_g, int64_t cb, int64_t cbn,
                                      float* out) {
  for (int64_t r0 = 0; r0 < NR; r0 += KILN_QG_PANEL) {
    const int64_t rb = KMIN(KILN_QG_PANEL, NR - r0);
    for (int64_t t = 0; t < taps; t++) {
      const int64_t k0 = t * cin_g + cb;
      float* o = out + t * cbn * NR + r0;
      if (r0 >= nrows) {
        for (int64_t c = 0; c < cbn; c++)
          for (int64_t rr = 0; rr < rb; rr++) o[c * NR + rr] = 0.0f;
      } else if (j->bits == 8) {
        FN(qconv_run8)(j, row0 + r0, rb, row0 + nrows, k0, cbn, o);
      } else {
        FN(qconv_run4)(j, row0 + r0, rb, row0 + nrows, k0, cbn, o);
      }
    }
  }
}

/* Rows are decoded QC_RB at a time, QC_CH codes each, into a small tile
 * that is then written out transposed: every cache line of the panel block
 * is filled by consecutive stores (a row at a time would touch each line
 * once per row). */
#define QC_RB 16
#define QC_CH 64
static KV_ATTR void FN(qconv_block)(const void* q, int64_t row0, int64_t nrows, int64_t taps,
                                    int64_t cin_g, int64_t cb, int64_t cbn, float* out) {
  const qg_job* j = (const qg_job*)q;
  if (j->panels) {
    FN(qconv_block_p)(j, row0, nrows, taps, cin_g, cb, cbn, out);
    return;
  }
  float tile[QC_RB * QC_CH] __attribute__((aligned(64)));
  for (int64_t r0 = 0; r0 < NR; r0 += QC_RB) {
    const int64_t rb = KMIN(QC_RB, NR - r0);
    for (int64_t t = 0; t < taps; t++) {
      for (int64_t c0 = 0; c0 < cbn; c0 += QC_CH) {
        const int64_t cl = KMIN(QC_CH, cbn - c0);
        const int64_t k0 = t * cin_g + cb + c0;
        for (int64_t rr = 0; rr < rb; rr++) {
          float* tr = tile + rr * QC_CH;
          if (r0 + rr < nrows)
            FN(qconv_deq)(j, row0 + r0 + rr, k0, k0 + cl, tr);
          else
            for (int64_t c = 0; c < cl; c++) tr[c] = 0.0f;
        }
        /* 8 x 8 blocks transposed in registers (copy.h): the scalar copy
         * this replaced was about a tenth of the decode's time (ResNet-50
         * NF4 on a Zen 3: the decode 25.6% -> 23.1% of perf's samples). */
        FN(copy_transpose)(tile, QC_CH, out + (t * cbn + c0) * NR + r0, NR, cl, rb);
      }
    }
  }
}
#undef QC_RB
#undef QC_CH

static KV_ATTR void FN(conv_quant)(const int64_t* args, FN(conv_job) * cj) {
  float lut[256], slut[256];
  qg_job j;
  __builtin_memset(&j, 0, sizeof j);
  j.w = (const uint8_t*)cj->wt;
  qg_weight_slots(&j, args, KILN_CONV_Q_KW, lut, slut);
  j.panels = slot_i(args, KILN_CONV_Q_PANELS);
  j.k = cj->kg;
  j.n = cj->np_g > 0 ? slot_i(args, KILN_CONV_COUT) : 0;
#if KV_W == 8 || KV_W == 16
  j.kind8 = j.bits == 8 ? FN(qg_kind8)(slot_i(args, KILN_CONV_Q_CODE)) : 0;
#endif
  if (j.bits == 0 || j.scale_bits == 0 || j.block <= 0 || j.kw < cj->kg) return;
  /* Panels: 8-bit codes, or 4-bit codes in steps of 8 that never straddle
   * a block (the lowering's contract, as qgemm's). */
  if (j.panels && (j.panels != KILN_QG_PANEL ||
                   (j.bits != 8 && (j.bits != 4 || (j.block % 8 != 0 && j.block < cj->kg)))))
    return;
  /* A decoded panel block per task in the scratch (KILN_MAX_SLOTS slots of
   * Q_BLOCK_FLOATS, 64-byte aligned): the channel block shrinks to fit. */
  const int64_t taps = KMAX(1, cj->win.kh * cj->win.kw);
  const int64_t slot = slot_i(args, KILN_CONV_Q_BLOCK_FLOATS);
  const int64_t most = slot / (taps * NR);
  cj->qslots = (float*)slot_p(args, KILN_CONV_SCRATCH);
  if (!cj->qslots || most < 1) return;
  cj->qstride = (slot + 15) / 16 * 16;
  if (cj->cb > most) cj->cb = j.panels && most >= 8 ? most / 8 * 8 : most;
  cj->q = &j;
  FN(conv_grid)(cj, slot_i(args, KILN_CONV_COUT));
}
