/*
 * igemm.h - exact 8-bit integer products (`quant.matmul_integer`),
 * template per variant.
 *
 * C[M, N] = sum_k (A[m, k] - za) * (B[k, n] - zb) in int32, A and B u8 or
 * i8 (flags), za scalar or per row, zb scalar or per column (of their
 * operand's type). C is stored as int32, or converted to f32 and passed
 * through an epilogue (the dequantizing scale, bias, activation...).
 *
 * Two paths, both exact (no saturating shortcuts):
 * - portable (every variant): A and B are packed into scratch as int16
 *   with their zero points subtracted ((a - za) and (b - zb) fit int16),
 *   B in panels [ceil(N/NR)][K/2][NR][2] so one 32-bit lane holds two K
 *   values of a column, and pairs are multiplied and added into int32
 *   lanes (`ig_madd`, which LLVM turns into vpmaddwd on x86, vpdpwssd
 *   with VNNI);
 * - `igemmv` (x86 VNNI: 512-bit vpdpbusd for w16r32 with AVX512-VNNI,
 *   256-bit for w8r16 with AVX-VNNI): B packed as i8 panels
 *   [ceil(N/NR)][K/4][NR][4] (u8 B flipped to i8: b' = b - 128, zb' = zb -
 *   128), A as u8 rows (i8 A flipped: a' = a + 128, za' = za + 128), and
 *   sum (a'-za')(b'-zb') = sum a'b' - zb' rowsum(a') - za' colsum(b') +
 *   K za' zb', the sums computed while packing. The Rust side calls it only
 *   for a target CPU with the instruction (the function carries the
 *   feature; every other function of the artifact is compiled for the
 *   target's own features). AArch64 with the dot product extension (w4r32)
 *   runs the same path on SDOT, which multiplies signed by signed: A is
 *   flipped to i8 there (a' = a - 128 for u8 A) instead.
 *
 * `iconv` (quant.conv_integer, NCHW) runs the same GEMM per image and group
 * with the weights as A ([M/G, K], K = C/G x kh x kw, the weight zero point
 * per row) and B the image's im2col matrix [K, OH x OW] (the input zero
 * point per tensor), gathered while B's panels are packed (padding taps
 * read the zero point, so they add 0); a 1x1 stride-1 convolution without
 * padding reads the image as B directly. C [M/G, OH x OW] is the NCHW
 * result. Its store adds the int32 bias per channel and may requantize:
 * clamp(rint(f32(acc) * scale[m]) + zp) to u8/i8 (QLinearConv, as ONNX
 * Runtime computes it in f32), so no int32 tensor is stored.
 *
 * Rows are padded to MR and K to 4 with zeros in the packed copies, so the
 * micro-kernels always run full tiles; stores clip to M x N. Work is split
 * over (row blocks x column panels) on the pool like the f32 GEMM; packing
 * is split too.
 */

#ifndef KILN_IGEMM_SHARED
#define KILN_IGEMM_SHARED
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
KINLINE int64_t ig_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
/* Makes a 128-bit vector opaque to the optimizer (no instruction; 128 bits
 * is what the baseline ISA's registers hold where the bitcode is made). */
typedef int32_t ig_v4 __attribute__((ext_vector_type(4)));
#if defined(__x86_64__)
#define IG_OPAQUE4(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define IG_OPAQUE4(v) __asm__("" : "+w"(v))
#else
#define IG_OPAQUE4(v) ((void)0)
#endif
KINLINE int32_t ig_val(const uint8_t* p, int64_t i, int is_signed) {
  return is_signed ? (int32_t)(int8_t)p[i] : (int32_t)p[i];
}
/* The im2col view of one image and group of an NCHW convolution: B[k, n]
 * with k = (c, ky, kx) over [C/G, kh, kw] and n = (oy, ox). */
typedef struct ig_conv {
  const uint8_t* x; /* the group's first channel of the image */
  int64_t h, w, kh, kw, sh, sw, dh, dw, ph, pw, ow;
  int32_t zx; /* the input zero point: what padding taps read */
} ig_conv;
#endif

typedef int16_t KCAT(ig_vs_, KV_NAME) __attribute__((ext_vector_type(2 * KV_W)));
typedef int32_t KCAT(ig_vw_, KV_NAME) __attribute__((ext_vector_type(2 * KV_W)));
typedef int16_t KCAT(ig_vsu_, KV_NAME) __attribute__((ext_vector_type(2 * KV_W), aligned(2)));
typedef int32_t KCAT(ig_viu_, KV_NAME) __attribute__((ext_vector_type(KV_W), aligned(4)));
typedef uint8_t KCAT(ig_vbu_, KV_NAME) __attribute__((ext_vector_type(KV_W), aligned(1)));
typedef int16_t KCAT(ig_vhu_, KV_NAME) __attribute__((ext_vector_type(KV_W), aligned(2)));
typedef uint32_t KCAT(ig_vu_, KV_NAME) __attribute__((ext_vector_type(KV_W)));
#define IGVS KCAT(ig_vs_, KV_NAME)
#define IGVW KCAT(ig_vw_, KV_NAME)
#define IGVSU KCAT(ig_vsu_, KV_NAME)
#define IGVIU KCAT(ig_viu_, KV_NAME)
#define IGVBU KCAT(ig_vbu_, KV_NAME)
#define IGVHU KCAT(ig_vhu_, KV_NAME)
#define IGVUI KCAT(ig_vu_, KV_NAME)

#if KV_W == 4
#define IG_EVEN 0, 2, 4, 6
#define IG_ODD 1, 3, 5, 7
#elif KV_W == 8
#define IG_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#define IG_ODD 1, 3, 5, 7, 9, 11, 13, 15
#else
#define IG_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define IG_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#endif

/* Pairs of int16 products summed into int32 lanes (pmaddwd's semantics,
 * exact for operands within +-255). */
KF VI FN(ig_madd)(IGVS a, IGVS b) {
  IGVW p = __builtin_convertvector(a, IGVW) * __builtin_convertvector(b, IGVW);
  return __builtin_shufflevector(p, p, IG_EVEN) + __builtin_shufflevector(p, p, IG_ODD);
}

/* VW bytes at p as int32 lanes (sign-extended when is_signed). */
KF VI FN(ig_ld8)(const uint8_t* p, int is_signed) {
  VI x = __builtin_convertvector(*(const IGVBU*)p, VI);
  return is_signed ? (x ^ 0x80) - 0x80 : x;
}

typedef struct FN(ig_job) {
  const uint8_t* a;
  int64_t lda, a_signed;
  const uint8_t* za;
  int64_t za_rows;
  const uint8_t* b;
  int64_t ldb, b_signed;
  const uint8_t* zb;
  int64_t zb_cols;
  void* c;
  int64_t ldc, c_f32;
  int64_t m, n, k, kp, np, mp;
  int vnni, b_packed;
  /* Packed operands and sums (scratch; B may be packed already). */
  uint8_t* pb;     /* B panels */
  int32_t* colsum; /* vnni: colsum(b') per column */
  int32_t* zbv;    /* vnni: zb' per column */
  uint8_t* pa;     /* A rows, kp (vnni: bytes, portable: int16) per row */
  int32_t* zav;    /* vnni: za' per row */
  int32_t* rterm;  /* vnni: rowsum(a') - K za' per row */
  const epi_t* epi;
  epi_row er;           /* epi in epi_row's form (er_ok), applied as the tile is stored */
  int er_ok;
  const ig_conv* cv;    /* iconv: B is this im2col view (b unused) */
  const int32_t* bias;  /* iconv: int32 per row, added first */
  const float* rq_scale; /* iconv: requantize to bytes (C: u8/i8, ldc in bytes) */
  int64_t rq_per;       /* one scale per row */
  int32_t rq_zp, rq_lo, rq_hi;
  int64_t tm, tn;  /* task grid */
} FN(ig_job);

KF int32_t FN(ig_za)(const FN(ig_job) * j, int64_t i) {
  if (!j->za) return 0;
  return ig_val(j->za, j->za_rows ? i : 0, (int)j->a_signed);
}
KF int32_t FN(ig_zb)(const FN(ig_job) * j, int64_t c) {
  if (!j->zb) return 0;
  return ig_val(j->zb, j->zb_cols ? c : 0, (int)j->b_signed);
}

/* Packs panels [p0, p1) of B: VNNI, i8 [kp/4][NR][4] (b' = b - 128 for u8
 * B) with the column sums and zero points b' needs; portable, int16
 * [kp/2][NR][2] of b - zb. Either way one 32-bit lane holds `g` K values of
 * a column, `bits` bits each. */
static KV_ATTR void FN(ig_pack_b)(void* data, int64_t p0, int64_t p1) {
  const FN(ig_job)* j = (const FN(ig_job)*)data;
  const int bs = (int)j->b_signed;
  const int g = j->vnni ? 4 : 2, bits = 32 / g;
  const uint32_t mask = j->vnni ? 0xffu : 0xffffu;
  const int32_t flip = j->vnni && !bs ? 128 : 0;
  for (int64_t p = p0; p < p1; p++) {
    int64_t c0 = p * NR, nc = KMIN(NR, j->n - c0);
    int32_t* out = (int32_t*)(j->pb + p * NR * j->kp * (4 / g));
    for (int64_t v = 0; v < NRV; v++) {
      int64_t cv = c0 + v * VW;
      /* What each value loses: the zero point (portable) or the flip. */
      VI sub;
      for (int l = 0; l < VW; l++)
        sub[l] = j->vnni ? flip : (cv + l < j->n ? FN(ig_zb)(j, cv + l) : 0);
      VI sum = (VI)0;
      for (int64_t kq = 0; kq < j->kp / g; kq++) {
        IGVUI w = (IGVUI)0;
        for (int r = 0; r < g; r++) {
          int64_t kk = kq * g + r;
          VI x = (VI)0;
          if (kk < j->k) {
            const uint8_t* s = j->b + kk * j->ldb + cv;
            if (v * VW + VW <= nc) {
              x = FN(ig_ld8)(s, bs) - sub;
            } else {
              for (int l = 0; l < VW; l++)
                x[l] = v * VW + l < nc ? ig_val(s, l, bs) - sub[l] : 0;
            }
          }
          sum += x;
          w |= ((IGVUI)x & mask) << (bits * r);
        }
        *(IGVIU*)(out + kq * NR + v * VW) = (VI)w;
      }
      if (j->vnni)
        for (int l = 0; l < VW; l++) {
          int64_t c = cv + l;
          j->colsum[c] = sum[l];
          j->zbv[c] = c < j->n ? FN(ig_zb)(j, c) - flip : 0;
        }
    }
  }
}

/* ig_pack_b for iconv: B is the im2col view j->cv, gathered. Per vector of
 * VW columns the window origins are computed once; along K, (channel, ky,
 * kx) advance incrementally. A vector inside one input row is one load;
 * otherwise each column is read alone (padding taps read the zero point). */
static KV_ATTR void FN(ig_pack_bc)(void* data, int64_t p0, int64_t p1) {
  const FN(ig_job)* j = (const FN(ig_job)*)data;
  const ig_conv* cv = j->cv;
  const int bs = (int)j->b_signed;
  const int g = j->vnni ? 4 : 2, bits = 32 / g;
  const uint32_t mask = j->vnni ? 0xffu : 0xffffu;
  const int32_t flip = j->vnni && !bs ? 128 : 0;
  const int64_t hw = cv->h * cv->w;
  const int32_t h = (int32_t)cv->h, w = (int32_t)cv->w;
  /* Stride 1 with as many output columns as input ones ("same" padding):
   * consecutive output pixels, across output rows too, read consecutive
   * input bytes for every tap (the step from (oy, ow - 1) to (oy + 1, 0) is
   * w - (ow - 1) = 1), so a vector of them is one load wherever it stays in
   * the channel's plane, whatever its lanes in the padding read. */
  const int lin = cv->sw == 1 && cv->sh == 1 && cv->ow == cv->w;
  for (int64_t p = p0; p < p1; p++) {
    int64_t c0 = p * NR, nc = KMIN(NR, j->n - c0);
    int32_t* out = (int32_t*)(j->pb + p * NR * j->kp * (4 / g));
    for (int64_t v = 0; v < NRV; v++) {
      int64_t col = c0 + v * VW, valid = KMAX(0, KMIN(VW, nc - v * VW));
      VI sub, iyb, ixb, live;
      int64_t oy = col / cv->ow, ox = col - oy * cv->ow;
      const int row = valid == VW && ox + VW <= cv->ow && cv->sw == 1;
      for (int l = 0; l < VW; l++) {
        int in = l < valid;
        sub[l] = j->vnni ? flip : (in ? FN(ig_zb)(j, col + l) : 0);
        iyb[l] = in ? (int32_t)(oy * cv->sh - cv->ph) : -(1 << 30);
        ixb[l] = in ? (int32_t)(ox * cv->sw - cv->pw) : 0;
        live[l] = in ? -1 : 0;
        if (++ox == cv->ow) {
          ox = 0;
          oy++;
        }
      }
      VI sum = (VI)0;
      int64_t ch = 0, ky = 0, kx = 0;
      for (int64_t kq = 0; kq < j->kp / g; kq++) {
        IGVUI wv = (IGVUI)0;
        for (int r = 0; r < g; r++) {
          VI x = (VI)0;
          if (kq * g + r < j->k) {
            const uint8_t* xc = cv->x + ch * hw;
            int32_t dy = (int32_t)(ky * cv->dh), dx = (int32_t)(kx * cv->dw);
            int32_t iy0 = iyb[0] + dy, ix0 = ixb[0] + dx;
            if (row && iy0 >= 0 && iy0 < h && ix0 >= 0 && ix0 + VW <= w) {
              x = FN(ig_ld8)(xc + iy0 * w + ix0, bs) - sub;
            } else {
              VI iy = iyb + dy, ix = ixb + dx;
              VI in = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w);
              const int64_t base = (int64_t)iy0 * w + ix0;
              VI raw;
              if (lin && base >= 0 && base + VW <= hw) {
                /* Lane l's tap is at base + l (see lin), inside the plane:
                 * one load, the lanes in the padding replaced. */
                const VI ld = FN(ig_ld8)(xc + base, bs);
                raw = (ld & in) | ((VI)cv->zx & ~in);
              } else {
                VI idx = iy * w + ix;
                for (int l = 0; l < VW; l++) raw[l] = in[l] ? ig_val(xc, idx[l], bs) : cv->zx;
              }
              x = (raw - sub) & live;
            }
            if (++kx == cv->kw) {
              kx = 0;
              if (++ky == cv->kh) {
                ky = 0;
                ch++;
              }
            }
          }
          sum += x;
          wv |= ((IGVUI)x & mask) << (bits * r);
        }
        *(IGVIU*)(out + kq * NR + v * VW) = (VI)wv;
      }
      if (j->vnni)
        for (int l = 0; l < VW; l++) {
          int64_t c = col + l;
          j->colsum[c] = sum[l];
          j->zbv[c] = c < j->n ? FN(ig_zb)(j, c) - flip : 0;
        }
    }
  }
}

/* Packs rows [r0, r1) of A (rows past M are zeros). */
static KV_ATTR void FN(ig_pack_a)(void* data, int64_t r0, int64_t r1) {
  const FN(ig_job)* j = (const FN(ig_job)*)data;
  const int as = (int)j->a_signed;
  const int64_t k = j->k, kv = k / VW * VW;
  for (int64_t i = r0; i < r1; i++) {
    const uint8_t* s = j->a + i * j->lda;
    if (j->vnni) {
      uint8_t* d = j->pa + i * j->kp;
#if defined(__aarch64__)
      int32_t flip = as ? 0 : -128; /* SDOT: a' signed */
#else
      int32_t flip = as ? 128 : 0; /* VPDPBUSD: a' unsigned */
#endif
      if (i >= j->m) {
        for (int64_t kk = 0; kk < j->kp; kk++) d[kk] = 0;
        j->zav[i] = 0;
        j->rterm[i] = 0;
        continue;
      }
      VI sum = (VI)0;
      int64_t kk = 0;
      for (; kk < kv; kk += VW) {
        VI x = FN(ig_ld8)(s + kk, as) + flip;
        sum += x;
        *(IGVBU*)(d + kk) = __builtin_convertvector(x, IGVBU);
      }
      int32_t rs = 0;
      for (int l = 0; l < VW; l++) rs += sum[l];
      for (; kk < k; kk++) {
        int32_t x = ig_val(s, kk, as) + flip;
        rs += x;
        d[kk] = (uint8_t)x;
      }
      for (; kk < j->kp; kk++) d[kk] = 0;
      int32_t za = FN(ig_za)(j, i) + flip;
      j->zav[i] = za;
      j->rterm[i] = rs - (int32_t)k * za;
    } else {
      int16_t* d = (int16_t*)j->pa + i * j->kp;
      if (i >= j->m) {
        for (int64_t kk = 0; kk < j->kp; kk++) d[kk] = 0;
        continue;
      }
      int32_t za = FN(ig_za)(j, i);
      int64_t kk = 0;
      for (; kk < kv; kk += VW) {
        VI x = FN(ig_ld8)(s + kk, as) - za;
        *(IGVHU*)(d + kk) = __builtin_convertvector(x, IGVHU);
      }
      for (; kk < k; kk++) d[kk] = (int16_t)(ig_val(s, kk, as) - za);
      for (; kk < j->kp; kk++) d[kk] = 0;
    }
  }
}

/* Stores clamp(rint(f32(acc) * sc) + zp) into n <= VW bytes at d. */
KF void FN(ig_requant)(VI acc, float sc, int32_t zp, int32_t qlo, int32_t qhi, uint8_t* d,
                       int64_t n) {
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to even */
  const float lo = (float)(qlo - zp), hi = (float)(qhi - zp);
  V f = __builtin_convertvector(acc, V) * sc;
  f = f < lo ? (V)lo : f;
  f = f > hi ? (V)hi : f;
  f = (f + magic) - magic;
  VI q = __builtin_convertvector(f, VI) + zp;
  if (n == VW) {
    *(IGVBU*)d = __builtin_convertvector(q, IGVBU);
  } else {
    for (int64_t l = 0; l < n; l++) d[l] = (uint8_t)q[l];
  }
}

/* Stores tile t[MR][NR] (int32 bits, or f32 after the epilogue) at rows
 * [i0, i0 + rows), columns [c0, c0 + nc). */
KF void FN(ig_store)(const FN(ig_job) * j, int32_t* t, int64_t i0, int64_t rows, int64_t c0,
                     int64_t nc) {
  float* tf = (float*)t;
  if (j->bias)
    for (int64_t r = 0; r < rows; r++)
      for (int v = 0; v < NRV; v++) *(VI*)(t + r * NR + v * VW) += j->bias[i0 + r];
  if (j->rq_scale) {
    for (int64_t r = 0; r < rows; r++) {
      float sc = j->rq_scale[j->rq_per ? i0 + r : 0];
      uint8_t* d = (uint8_t*)j->c + (i0 + r) * j->ldc + c0;
      for (int64_t cc = 0; cc < nc; cc += VW)
        FN(ig_requant)(*(VI*)(t + r * NR + cc), sc, j->rq_zp, j->rq_lo, j->rq_hi, d + cc,
                       KMIN(VW, nc - cc));
    }
    return;
  }
  if (j->c_f32 && j->er_ok) {
    /* One pass from the int32 tile to C (through epi_apply, every op was a
     * pass over the tile, then a copy to C: with a GELU, that was 19% of the
     * dynamic int8 4-layer BERT on a Zen 3, a quarter of it the passes'
     * loops). */
    FN(epi_row_store)(&j->er, t, 1, 0, (float*)j->c + i0 * j->ldc + c0, j->ldc, rows, nc, i0, c0);
    return;
  }
  if (j->c_f32) {
    for (int64_t r = 0; r < rows; r++)
      for (int v = 0; v < NRV; v++) {
        VI x = *(VI*)(t + r * NR + v * VW);
        *(V*)(tf + r * NR + v * VW) = __builtin_convertvector(x, V);
      }
    if (j->epi && j->epi->n) FN(epi_apply)(j->epi, tf, NR, rows, nc, i0, c0);
  }
  FN(tile_store)(tf, NR, (float*)j->c + i0 * j->ldc + c0, j->ldc, rows, nc);
}

/* Portable micro-kernel: rows [i0, i0 + MR) x panel p. */
static KV_ATTR void FN(ig_tile_p)(const FN(ig_job) * j, int64_t i0, int64_t p) {
  const int16_t* a = (const int16_t*)j->pa + i0 * j->kp;
  const int16_t* b = (const int16_t*)(j->pb + p * NR * j->kp * 2);
  VI acc[MR][NRV];
#pragma unroll
  for (int r = 0; r < MR; r++)
#pragma unroll
    for (int v = 0; v < NRV; v++) acc[r][v] = (VI)0;
  for (int64_t kq = 0; kq < j->kp / 2; kq++) {
    IGVS bv[NRV];
#pragma unroll
    for (int v = 0; v < NRV; v++) bv[v] = *(const IGVSU*)(b + (kq * NR + v * VW) * 2);
#pragma unroll
    for (int r = 0; r < MR; r++) {
      int32_t pr;
      __builtin_memcpy(&pr, a + r * j->kp + kq * 2, 4);
      /* An empty asm hides that av is a splat: proven splats make LLVM
       * split the pairs into 32-bit multiplies instead of pmaddwd. (It
       * costs no register, unlike an XOR with zeros loaded from memory,
       * which made the 6 x 16 AVX2 tile spill accumulators.) */
      ig_v4 a4 = (ig_v4)pr;
      IG_OPAQUE4(a4);
#if KV_W == 4
      VI ap = a4;
#elif KV_W == 8
      VI ap = __builtin_shufflevector(a4, a4, 0, 1, 2, 3, 0, 1, 2, 3);
#else
      VI ap = __builtin_shufflevector(a4, a4, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
#endif
      IGVS av = (IGVS)ap;
#pragma unroll
      for (int v = 0; v < NRV; v++) acc[r][v] += FN(ig_madd)(av, bv[v]);
    }
  }
  int32_t t[MR * NR] __attribute__((aligned(64)));
#pragma unroll
  for (int r = 0; r < MR; r++)
#pragma unroll
    for (int v = 0; v < NRV; v++) *(VI*)(t + r * NR + v * VW) = acc[r][v];
  int64_t c0 = p * NR;
  FN(ig_store)(j, t, i0, KMIN(MR, j->m - i0), c0, KMIN(NR, j->n - c0));
}

/* The zero-point terms of the VNNI path, then the store. */
KF void FN(ig_finish_v)(const FN(ig_job) * j, VI acc[MR][NRV], int64_t i0, int64_t p) {
  int64_t c0 = p * NR;
  int32_t t[MR * NR] __attribute__((aligned(64)));
#pragma unroll
  for (int v = 0; v < NRV; v++) {
    VI zb = *(const IGVIU*)(j->zbv + c0 + v * VW);
    VI cs = *(const IGVIU*)(j->colsum + c0 + v * VW);
#pragma unroll
    for (int r = 0; r < MR; r++) {
      VI x = acc[r][v] - zb * j->rterm[i0 + r] - cs * j->zav[i0 + r];
      *(VI*)(t + r * NR + v * VW) = x;
    }
  }
  FN(ig_store)(j, t, i0, KMIN(MR, j->m - i0), c0, KMIN(NR, j->n - c0));
}

#if (defined(__x86_64__) && (KV_W == 16 || KV_W == 8)) || (defined(__aarch64__) && KV_W == 4)
#define IG_HAS_VNNI 1
#if defined(__aarch64__)
/* Arm SDOT (signed x signed groups of 4): A is packed as i8 instead. */
#define IGD_ATTR __attribute__((target("dotprod")))
#define IGD_DOT(acc, a, b) \
  ((VI)vdotq_s32((int32x4_t)(acc), (int8x16_t)(a), (int8x16_t)(b)))
#elif KV_W == 16
#define IGD_ATTR __attribute__((target("avx512vnni"), min_vector_width(512)))
#define IGD_DOT __builtin_ia32_vpdpbusd512
#else
#define IGD_ATTR __attribute__((target("avxvnni"), min_vector_width(256)))
#define IGD_DOT __builtin_ia32_vpdpbusd256
#endif
#define IGD_SFX v
#include "igemm_dot.h"
#else
#define IG_HAS_VNNI 0
#endif

/* x86 AVX2 without VNNI (`igemmp`): the same dot products of groups of 4
 * as pmaddubsw (u8 x i8 pairs summed into int16, saturating) then pmaddwd
 * by ones (pairs of int16 into int32). Exact only when no pair saturates:
 * every i8 B value within [-64, 64] (2 x 255 x 64 = 32640 <= 32767), which
 * the Rust side guarantees by calling it only on weights packed as
 * `int8_gemm_b_narrow` (their range is checked when they are packed). */
#if defined(__x86_64__) && KV_W == 8
#define IG_HAS_PAIRS 1
typedef short KCAT(ig_vh16_, KV_NAME) __attribute__((vector_size(32)));
static const KCAT(ig_vh16_, KV_NAME) KCAT(ig_ones16_, KV_NAME) = {1, 1, 1, 1, 1, 1, 1, 1,
                                                                  1, 1, 1, 1, 1, 1, 1, 1};
/* Written as one asm block so that the int16 ones are a memory operand:
 * held in a register they made the 6 x 16 tile (12 accumulators, 2 B
 * vectors, A, a temporary) spill an accumulator every step. */
static inline __attribute__((always_inline, target("avx2"), min_vector_width(256))) VI
FN(ig_pairs_dot)(VI acc, VI a, VI b) {
  VI t;
  __asm__("vpmaddubsw %[b], %[a], %[t]\n\t"
          "vpmaddwd %[ones], %[t], %[t]\n\t"
          "vpaddd %[t], %[acc], %[acc]"
          : [acc] "+x"(acc), [t] "=&x"(t)
          : [a] "x"(a), [b] "x"(b), [ones] "m"(KCAT(ig_ones16_, KV_NAME)));
  return acc;
}
#define IGD_ATTR __attribute__((target("avx2"), min_vector_width(256)))
#define IGD_DOT(acc, a, b) FN(ig_pairs_dot)(acc, a, b)
#define IGD_SFX p8
#include "igemm_dot.h"
#else
#define IG_HAS_PAIRS 0
#endif

/* Task `t` of the tm x tn grid: row tiles x panels, through micro-kernel
 * TILE (the portable entry never references the VNNI one, so no artifact
 * holds an instruction its CPU lacks). */
#define IG_TASK(NAME, TILE)                                                    \
  static KV_ATTR void NAME(void* data, int64_t t0, int64_t t1) {              \
    const FN(ig_job)* j = (const FN(ig_job)*)data;                            \
    int64_t mt = j->mp / MR, np = j->np;                                       \
    for (int64_t t = t0; t < t1; t++) {                                        \
      int64_t ti = t / j->tn, tj = t % j->tn;                                  \
      int64_t m0 = part_begin(mt, j->tm, ti), m1 = part_begin(mt, j->tm, ti + 1); \
      int64_t p0 = part_begin(np, j->tn, tj), p1 = part_begin(np, j->tn, tj + 1); \
      for (int64_t p = p0; p < p1; p++)                                        \
        for (int64_t i = m0; i < m1; i++) TILE(j, i * MR, p);                  \
    }                                                                          \
  }
IG_TASK(FN(ig_task_p), FN(ig_tile_p))
#if IG_HAS_VNNI
IG_TASK(FN(ig_task_v), FN(ig_tile_v))
#endif
#if IG_HAS_PAIRS
IG_TASK(FN(ig_task_p8), FN(ig_tile_p8))
#endif
#undef IG_TASK

static KV_ATTR void FN(ig_run)(FN(ig_job) * jp, uint8_t* s, kiln_par_body task,
                               kiln_par_body sums);

static KV_ATTR void FN(igemm_run)(const int64_t* args, int vnni, kiln_par_body task,
                                   kiln_par_body sums) {
  FN(ig_job) j;
  epi_t epi;
  j.a = (const uint8_t*)slot_p(args, KILN_IGEMM_A);
  j.lda = slot_i(args, KILN_IGEMM_LDA);
  j.a_signed = slot_i(args, KILN_IGEMM_A_SIGNED);
  j.za = (const uint8_t*)slot_p(args, KILN_IGEMM_ZA);
  j.za_rows = slot_i(args, KILN_IGEMM_ZA_PER_ROW);
  j.b = (const uint8_t*)slot_p(args, KILN_IGEMM_B);
  j.ldb = slot_i(args, KILN_IGEMM_LDB);
  j.b_signed = slot_i(args, KILN_IGEMM_B_SIGNED);
  j.zb = (const uint8_t*)slot_p(args, KILN_IGEMM_ZB);
  j.zb_cols = slot_i(args, KILN_IGEMM_ZB_PER_COL);
  j.c = slot_p(args, KILN_IGEMM_C);
  j.ldc = slot_i(args, KILN_IGEMM_LDC);
  j.c_f32 = slot_i(args, KILN_IGEMM_C_F32);
  j.m = slot_i(args, KILN_IGEMM_M);
  j.n = slot_i(args, KILN_IGEMM_N);
  j.k = slot_i(args, KILN_IGEMM_K);
  epi_decode(args, KILN_IGEMM_EPILOGUE, &epi);
  j.epi = &epi;
  j.er_ok = epi_row_of(&epi, &j.er);
  j.vnni = vnni; /* 1 only from an entry whose dot-product kernels exist */
  j.b_packed = (int)slot_i(args, KILN_IGEMM_B_PACKED);
  j.cv = 0;
  j.bias = 0;
  j.rq_scale = 0;
  if (j.b_packed && (!j.vnni || !sums)) return; /* packed B: igemmv only */
  FN(ig_run)(&j, (uint8_t*)slot_p(args, KILN_IGEMM_SCRATCH), task, sums);
}

/* The product of a filled job: scratch layout, packing, tiles. */
static KV_ATTR void FN(ig_run)(FN(ig_job) * jp, uint8_t* s, kiln_par_body task,
                               kiln_par_body sums) {
  FN(ig_job) j = *jp;
  if (j.m <= 0 || j.n <= 0) return;
  /* Scratch, in the order of abi.rs's IGemmArgs::scratch_bytes. */
  j.kp = ig_up(KMAX(j.k, 1), 4);
  j.np = cdiv(j.n, NR);
  j.mp = ig_up(j.m, MR);
  j.pb = s;
  s += j.b_packed ? 0 : ig_up(j.np * NR * j.kp * 2, 64);
  j.colsum = (int32_t*)s;
  s += ig_up(j.np * NR * 4, 64);
  j.zbv = (int32_t*)s;
  s += ig_up(j.np * NR * 4, 64);
  j.pa = s;
  s += ig_up(j.mp * j.kp * 2, 64);
  j.zav = (int32_t*)s;
  s += ig_up(j.mp * 4, 64);
  j.rterm = (int32_t*)s;
  int64_t mt = j.mp / MR;
  /* Packing: B panels (or, packed at compile time, their sums) then A
   * rows, split when large. */
  kiln_par_body pack_b = j.cv ? FN(ig_pack_bc) : FN(ig_pack_b);
  double pw = 4.0 * (double)j.kp * (double)(j.np * NR);
  if (j.b_packed) {
    j.pb = (uint8_t*)j.b;
    pack_b = sums;
    pw /= 16;
  }
  int64_t t = par_tasks(pw, j.np);
  if (t <= 1)
    pack_b(&j, 0, j.np);
  else
    kiln_par_for(j.np, pack_b, &j);
  t = par_tasks(4.0 * (double)j.kp * (double)j.mp, mt);
  if (t <= 1)
    FN(ig_pack_a)(&j, 0, j.mp);
  else
    kiln_par_for(j.mp, FN(ig_pack_a), &j);
  /* The product: prefer column splits (each task streams its panels). */
  double work = 2.0 * (double)j.m * (double)j.n * (double)j.k;
  int64_t tasks = par_tasks(work, mt * j.np);
  j.tn = KMIN(j.np, tasks);
  j.tm = KMAX(1, KMIN(mt, tasks / j.tn));
  if (j.tm * j.tn <= 1)
    task(&j, 0, 1);
  else
    kiln_par_for(j.tm * j.tn, task, &j);
}

KHIDDEN KV_ATTR void FN(kiln_k_igemm)(const int64_t* args) {
  FN(igemm_run)(args, 0, FN(ig_task_p), 0);
}
#if IG_HAS_VNNI
KHIDDEN KV_ATTR void FN(kiln_k_igemmv)(const int64_t* args) {
  FN(igemm_run)(args, 1, FN(ig_task_v), FN(ig_sums_v));
}
#else
KHIDDEN KV_ATTR void FN(kiln_k_igemmv)(const int64_t* args) {
  FN(igemm_run)(args, 0, FN(ig_task_p), 0);
}
#endif
/* igemmv's product on pmaddubsw pairs, for a B packed as
 * int8_gemm_b_narrow; any other B takes the portable path (packing it here
 * would flip u8 values out of the exact range). */
#if IG_HAS_PAIRS
KHIDDEN KV_ATTR void FN(kiln_k_igemmp)(const int64_t* args) {
  if (slot_i(args, KILN_IGEMM_B_PACKED))
    FN(igemm_run)(args, 1, FN(ig_task_p8), FN(ig_sums_p8));
  else
    FN(igemm_run)(args, 0, FN(ig_task_p), 0);
}
#else
KHIDDEN KV_ATTR void FN(kiln_k_igemmp)(const int64_t* args) {
  FN(igemm_run)(args, 0, FN(ig_task_p), 0);
}
#endif

/* Depthwise iconv (one input and one output channel per group): a direct
 * loop per channel plane, VW output columns at a time, instead of products
 * of one row. */
#ifndef IDW_LINE
#define IDW_LINE 4096 /* int16 elements of the depthwise line buffer (8 KiB of stack) */
#endif
typedef struct FN(idw_job) {
  ig_conv cv;
  const uint8_t *x, *w, *zw;
  int64_t x_signed, w_signed, zw_per, c, oh;
  const int32_t* bias;
  void* y;
  const float* rq;
  int64_t rq_per;
  int32_t rq_zp, rq_lo, rq_hi;
} FN(idw_job);

/* Column col of a depthwise input row (width w) minus the zero point, 0 in
 * the padding. */
KF float FN(idw_px)(const uint8_t* row, int64_t col, int64_t w, int bs, float zx) {
  if (col < 0 || col >= w) return 0.0f;
  return (bs ? (float)(int8_t)row[col] : (float)row[col]) - zx;
}

static KV_ATTR void FN(idw_task)(void* data, int64_t t0, int64_t t1) {
  const FN(idw_job)* j = (const FN(idw_job)*)data;
  const ig_conv* g = &j->cv;
  const int bs = (int)j->x_signed;
  int64_t taps = g->kh * g->kw, ow = g->ow, hw = g->h * g->w;
  for (int64_t t = t0; t < t1; t++) {
    int64_t ch = t % j->c;
    const uint8_t* xp = j->x + t * hw;
    const uint8_t* wp = j->w + ch * taps;
    int32_t zw = j->zw ? ig_val(j->zw, j->zw_per ? ch : 0, (int)j->w_signed) : 0;
    int32_t bias = j->bias ? j->bias[ch] : 0;
    float sc = j->rq ? j->rq[j->rq_per ? ch : 0] : 0.0f;
    /* Line path: per output row, the kh input rows it reads as f32 lines of
     * x - zx with the padding (and room for whole-vector reads) as zeros, so
     * the taps run without bounds checks. At a horizontal stride sw > 1 a
     * line holds its columns in sw phases (column u at (u % sw) * lp + u /
     * sw), so the VW columns one tap reads for VW outputs are contiguous too.
     * The products are f32 FMAs, exact: |x - zx| and |w - zw| are at most
     * 255, so with at most 64 taps every partial sum is an integer below
     * 2^22; the bias is added after the conversion to int32. */
    int64_t sw = g->sw;
    int64_t span = (ow - 1 + VW) * sw + (g->kw - 1) * g->dw + 1;
    int64_t lp = ig_up((span + sw - 1) / sw, VW), lw = lp * sw;
    if (g->kh <= 32 && taps <= 64 && g->kh * lw <= IDW_LINE) {
      float line[IDW_LINE] __attribute__((aligned(64)));
      float wt[64];
      int64_t koff[64]; /* tap kx's first column for output 0, in the line */
      for (int64_t k = 0; k < taps; k++) wt[k] = (float)(ig_val(wp, k, (int)j->w_signed) - zw);
      for (int64_t kx = 0; kx < g->kw; kx++) koff[kx] = (kx * g->dw) % sw * lp + (kx * g->dw) / sw;
      const float zx = (float)g->zx;
      for (int64_t oy = 0; oy < j->oh; oy++) {
        uint32_t rows = 0; /* bit ky: input row inside the image */
        for (int64_t ky = 0; ky < g->kh && ky < 32; ky++) {
          int64_t iy = oy * g->sh - g->ph + ky * g->dh;
          if (iy < 0 || iy >= g->h) continue;
          rows |= 1u << ky;
          const uint8_t* src = xp + iy * g->w;
          float* l = line + ky * lw;
          if (sw == 1) {
            /* Zeros, then the row (u - pw = its column), then zeros. */
            int64_t a = KMIN(g->pw, lw), e = KMIN(lw, g->pw + g->w), u = 0;
            for (; u < a; u++) l[u] = 0.0f;
            for (; u + VW <= e; u += VW)
              FN(vst)(l + u, __builtin_convertvector(FN(ig_ld8)(src + u - g->pw, bs), V) - zx);
            for (; u < e; u++) l[u] = (float)ig_val(src, u - g->pw, bs) - zx;
            for (; u < lw; u++) l[u] = 0.0f;
          } else {
            /* Phases; at stride 2 whole vectors in the middle: 2 VW bytes
             * split into their even and odd columns. */
            int64_t i = 0;
            if (sw == 2) {
              for (; i < lp && 2 * i < g->pw; i++)
                for (int64_t ph = 0; ph < 2; ph++)
                  l[ph * lp + i] = FN(idw_px)(src, 2 * i + ph - g->pw, g->w, bs, zx);
              for (; i + VW <= lp && 2 * (i + VW) - g->pw <= g->w; i += VW) {
                const uint8_t* s0 = src + 2 * i - g->pw;
                V a = __builtin_convertvector(FN(ig_ld8)(s0, bs), V) - zx;
                V b = __builtin_convertvector(FN(ig_ld8)(s0 + VW, bs), V) - zx;
                FN(vst)(l + i, __builtin_shufflevector(a, b, IG_EVEN));
                FN(vst)(l + lp + i, __builtin_shufflevector(a, b, IG_ODD));
              }
            }
            for (int64_t ph = 0; ph < sw; ph++)
              for (int64_t k = i; k < lp; k++)
                l[ph * lp + k] = FN(idw_px)(src, k * sw + ph - g->pw, g->w, bs, zx);
          }
        }
        for (int64_t ox = 0; ox < ow; ox += VW) {
          V acc = (V)0.0f;
          for (int64_t ky = 0; ky < g->kh; ky++) {
            if (!(rows >> ky & 1)) continue;
            const float* l = line + ky * lw + ox;
            const float* w = wt + ky * g->kw;
            if (g->kw == 3) {
              acc = FN(vld)(l + koff[0]) * w[0] + acc;
              acc = FN(vld)(l + koff[1]) * w[1] + acc;
              acc = FN(vld)(l + koff[2]) * w[2] + acc;
            } else {
              for (int64_t kx = 0; kx < g->kw; kx++) acc = FN(vld)(l + koff[kx]) * w[kx] + acc;
            }
          }
          VI iacc = __builtin_convertvector(acc, VI) + bias;
          int64_t n = KMIN(VW, ow - ox), o = (t * j->oh + oy) * ow + ox;
          if (j->rq) {
            FN(ig_requant)(iacc, sc, j->rq_zp, j->rq_lo, j->rq_hi, (uint8_t*)j->y + o, n);
          } else {
            int32_t* d = (int32_t*)j->y + o;
            for (int l = 0; l < n; l++) d[l] = iacc[l];
          }
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < j->oh; oy++)
      for (int64_t ox = 0; ox < ow; ox += VW) {
        int64_t n = KMIN(VW, ow - ox);
        VI acc = (VI)bias;
        for (int64_t ky = 0; ky < g->kh; ky++) {
          int64_t iy = oy * g->sh - g->ph + ky * g->dh;
          if (iy < 0 || iy >= g->h) continue;
          const uint8_t* row = xp + iy * g->w;
          for (int64_t kx = 0; kx < g->kw; kx++) {
            int32_t wv = ig_val(wp, ky * g->kw + kx, (int)j->w_signed) - zw;
            int64_t ix = ox * g->sw - g->pw + kx * g->dw;
            VI xv;
            if (n == VW && g->sw == 1 && ix >= 0 && ix + VW <= g->w) {
              xv = FN(ig_ld8)(row + ix, bs) - g->zx;
            } else {
              xv = (VI)0;
              for (int l = 0; l < n; l++) {
                int64_t xi = ix + l * g->sw;
                xv[l] = xi >= 0 && xi < g->w ? ig_val(row, xi, bs) - g->zx : 0;
              }
            }
            acc += xv * wv;
          }
        }
        int64_t o = (t * j->oh + oy) * ow + ox;
        if (j->rq) {
          FN(ig_requant)(acc, sc, j->rq_zp, j->rq_lo, j->rq_hi, (uint8_t*)j->y + o, n);
        } else {
          int32_t* d = (int32_t*)j->y + o;
          for (int l = 0; l < n; l++) d[l] = acc[l];
        }
      }
  }
}

/* quant.conv_integer (see the top and kiln_kernels.h's KILN_ICONV_*): one
 * product per image and group, or the depthwise loop. */
static KV_ATTR void FN(iconv_run)(const int64_t* args, int vnni, kiln_par_body task) {
  const uint8_t* x = (const uint8_t*)slot_p(args, KILN_ICONV_X);
  const uint8_t* w = (const uint8_t*)slot_p(args, KILN_ICONV_W);
  const uint8_t* zw = (const uint8_t*)slot_p(args, KILN_ICONV_ZW);
  const int32_t* bias = (const int32_t*)slot_p(args, KILN_ICONV_BIAS);
  const float* rq = (const float*)slot_p(args, KILN_ICONV_RQ_SCALE);
  const uint8_t* rq_zp = (const uint8_t*)slot_p(args, KILN_ICONV_RQ_ZP);
  uint8_t* y = (uint8_t*)slot_p(args, KILN_ICONV_Y);
  int64_t nb = slot_i(args, KILN_ICONV_N), c = slot_i(args, KILN_ICONV_C);
  int64_t m = slot_i(args, KILN_ICONV_M), groups = slot_i(args, KILN_ICONV_GROUPS);
  int64_t zw_per = slot_i(args, KILN_ICONV_ZW_PER_CH), rq_per = slot_i(args, KILN_ICONV_RQ_PER_CH);
  int64_t y_signed = slot_i(args, KILN_ICONV_Y_SIGNED);
  ig_conv cv;
  cv.h = slot_i(args, KILN_ICONV_H);
  cv.w = slot_i(args, KILN_ICONV_W_IN);
  cv.kh = slot_i(args, KILN_ICONV_KH);
  cv.kw = slot_i(args, KILN_ICONV_KW);
  cv.sh = slot_i(args, KILN_ICONV_SH);
  cv.sw = slot_i(args, KILN_ICONV_SW);
  cv.dh = slot_i(args, KILN_ICONV_DH);
  cv.dw = slot_i(args, KILN_ICONV_DW);
  cv.ph = slot_i(args, KILN_ICONV_PH);
  cv.pw = slot_i(args, KILN_ICONV_PW);
  cv.ow = slot_i(args, KILN_ICONV_OW);
  int64_t oh = slot_i(args, KILN_ICONV_OH);
  FN(ig_job) j;
  j.a_signed = slot_i(args, KILN_ICONV_W_SIGNED);
  j.b_signed = slot_i(args, KILN_ICONV_X_SIGNED);
  j.zb = (const uint8_t*)slot_p(args, KILN_ICONV_ZX);
  j.zb_cols = 0;
  cv.zx = j.zb ? ig_val(j.zb, 0, (int)j.b_signed) : 0;
  if (groups <= 0 || c % groups || m % groups) return;
  int64_t cg = c / groups, mg = m / groups, hw = cv.h * cv.w, p = oh * cv.ow;
  int plain = cv.kh == 1 && cv.kw == 1 && cv.sh == 1 && cv.sw == 1 && cv.ph == 0 && cv.pw == 0 &&
              oh == cv.h && cv.ow == cv.w;
  int64_t esize = rq ? 1 : 4;
  j.m = mg;
  j.n = p;
  j.k = cg * cv.kh * cv.kw;
  j.lda = j.k;
  j.ldb = hw;
  j.ldc = p;
  j.c_f32 = 0;
  j.epi = 0;
  j.er_ok = 0;
  j.vnni = vnni; /* 1 only from an entry whose dot-product kernels exist */
  j.b_packed = 0;
  j.za_rows = zw_per;
  j.rq_per = rq_per;
  j.rq_zp = rq_zp ? ig_val(rq_zp, 0, (int)y_signed) : 0;
  j.rq_lo = y_signed ? -128 : 0;
  j.rq_hi = y_signed ? 127 : 255;
  if (cg == 1 && mg == 1) {
    FN(idw_job) d;
    d.cv = cv;
    d.x = x;
    d.w = w;
    d.zw = zw;
    d.x_signed = j.b_signed;
    d.w_signed = j.a_signed;
    d.zw_per = zw_per;
    d.c = c;
    d.oh = oh;
    d.bias = bias;
    d.y = y;
    d.rq = rq;
    d.rq_per = rq_per;
    d.rq_zp = j.rq_zp;
    d.rq_lo = j.rq_lo;
    d.rq_hi = j.rq_hi;
    int64_t planes = nb * c;
    if (par_tasks(2.0 * (double)(planes * p * cv.kh * cv.kw), planes) <= 1)
      FN(idw_task)(&d, 0, planes);
    else
      kiln_par_for(planes, FN(idw_task), &d);
    return;
  }
  uint8_t* scratch = (uint8_t*)slot_p(args, KILN_ICONV_SCRATCH);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t g = 0; g < groups; g++) {
      const uint8_t* xg = x + (b * c + g * cg) * hw;
      cv.x = xg;
      j.a = w + g * mg * j.k;
      j.za = zw ? zw + (zw_per ? g * mg : 0) : 0;
      j.b = xg;
      j.cv = plain ? 0 : &cv;
      j.c = y + (b * m + g * mg) * p * esize;
      j.bias = bias ? bias + g * mg : 0;
      j.rq_scale = rq ? rq + (rq_per ? g * mg : 0) : 0;
      FN(ig_run)(&j, scratch, task, 0);
    }
}

KHIDDEN KV_ATTR void FN(kiln_k_iconv)(const int64_t* args) {
  FN(iconv_run)(args, 0, FN(ig_task_p));
}
#if IG_HAS_VNNI
KHIDDEN KV_ATTR void FN(kiln_k_iconvv)(const int64_t* args) {
  FN(iconv_run)(args, 1, FN(ig_task_v));
}
#else
KHIDDEN KV_ATTR void FN(kiln_k_iconvv)(const int64_t* args) {
  FN(iconv_run)(args, 0, FN(ig_task_p));
}
#endif

#undef IG_HAS_VNNI
#undef IG_HAS_PAIRS
#undef IG_EVEN
#undef IG_ODD
#undef IGVS
#undef IGVSU
#undef IGVW
#undef IGVIU
#undef IGVBU
#undef IGVHU
#undef IGVUI
