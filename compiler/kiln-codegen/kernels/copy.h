/*
 * copy.h - strided copy of a 4-D box (template, per variant): concat, split
 * and transposes (channel shuffles, NCHW <-> NHWC) as one kernel.
 *
 * The caller drops unit dims and merges dims that are contiguous in both X
 * and Y, so the box is usually [rows, cols] or [rows, a, b]. Rows (D0 x D1 x
 * D2) are split across threads in contiguous ranges. Three inner loops:
 * contiguous runs (XS3 = YS3 = 1) copied with vectors; interleaves (Y dense
 * over [D2, D3] with D3 <= 4, X contiguous along D2: a channel shuffle or
 * the NCHW -> NHWC input transpose) written with a constant D3 so LLVM
 * vectorizes the interleaved stores; wider transposes (X contiguous along
 * D2, Y along D3: NCHW <-> NHWC of many channels) in 8 x 8 blocks
 * transposed in registers; anything else element by element.
 * Values are moved, never computed on, so every bit pattern (NaN payloads)
 * arrives unchanged.
 */

typedef struct FN(copy_job) {
  const float* x;
  float* y;
  int64_t d[4], xs[4], ys[4];
} FN(copy_job);

/* n contiguous floats. */
KF void FN(copy_run)(const float* x, float* y, int64_t n) {
  int64_t j = 0;
  for (; j + 4 * VW <= n; j += 4 * VW) {
    V a = FN(vld)(x + j), b = FN(vld)(x + j + VW), c = FN(vld)(x + j + 2 * VW),
      e = FN(vld)(x + j + 3 * VW);
    FN(vst)(y + j, a);
    FN(vst)(y + j + VW, b);
    FN(vst)(y + j + 2 * VW, c);
    FN(vst)(y + j + 3 * VW, e);
  }
  for (; j + VW <= n; j += VW) FN(vst)(y + j, FN(vld)(x + j));
  for (; j < n; j++) y[j] = x[j];
}

/* y[k * e + l] = x[l * xs + k] for k in [0, n), l in [0, e), e a constant. */
KF void FN(copy_interleave)(const int e, const float* x, int64_t xs, float* y, int64_t n) {
  for (int64_t k = 0; k < n; k++)
#pragma unroll
    for (int l = 0; l < e; l++) y[k * e + l] = x[l * xs + k];
}

/* Eight floats, whatever the variant's vector width (LLVM splits or
 * widens them); loads and stores unaligned. */
typedef float FN(f8) __attribute__((vector_size(32), aligned(4)));

/* y[q * ys + l] = x[l * xs + q] for q in [0, n), l in [0, e): 8 x 8 blocks
 * loaded along q, transposed by shuffles, stored along l; the edges one by
 * one. */
KF void FN(copy_transpose)(const float* x, int64_t xs, float* y, int64_t ys, int64_t n,
                           int64_t e) {
  typedef FN(f8) f8;
  int64_t q = 0;
  for (; q + 8 <= n; q += 8) {
    int64_t l = 0;
    for (; l + 8 <= e; l += 8) {
      const float* xp = x + l * xs + q;
      f8 a0 = *(const f8*)(xp), a1 = *(const f8*)(xp + xs), a2 = *(const f8*)(xp + 2 * xs),
         a3 = *(const f8*)(xp + 3 * xs), a4 = *(const f8*)(xp + 4 * xs),
         a5 = *(const f8*)(xp + 5 * xs), a6 = *(const f8*)(xp + 6 * xs),
         a7 = *(const f8*)(xp + 7 * xs);
      /* Pairs of rows interleaved, then pairs of pairs, then halves. */
      f8 b0 = __builtin_shufflevector(a0, a1, 0, 8, 1, 9, 4, 12, 5, 13);
      f8 b1 = __builtin_shufflevector(a0, a1, 2, 10, 3, 11, 6, 14, 7, 15);
      f8 b2 = __builtin_shufflevector(a2, a3, 0, 8, 1, 9, 4, 12, 5, 13);
      f8 b3 = __builtin_shufflevector(a2, a3, 2, 10, 3, 11, 6, 14, 7, 15);
      f8 b4 = __builtin_shufflevector(a4, a5, 0, 8, 1, 9, 4, 12, 5, 13);
      f8 b5 = __builtin_shufflevector(a4, a5, 2, 10, 3, 11, 6, 14, 7, 15);
      f8 b6 = __builtin_shufflevector(a6, a7, 0, 8, 1, 9, 4, 12, 5, 13);
      f8 b7 = __builtin_shufflevector(a6, a7, 2, 10, 3, 11, 6, 14, 7, 15);
      f8 c0 = __builtin_shufflevector(b0, b2, 0, 1, 8, 9, 4, 5, 12, 13);
      f8 c1 = __builtin_shufflevector(b0, b2, 2, 3, 10, 11, 6, 7, 14, 15);
      f8 c2 = __builtin_shufflevector(b1, b3, 0, 1, 8, 9, 4, 5, 12, 13);
      f8 c3 = __builtin_shufflevector(b1, b3, 2, 3, 10, 11, 6, 7, 14, 15);
      f8 c4 = __builtin_shufflevector(b4, b6, 0, 1, 8, 9, 4, 5, 12, 13);
      f8 c5 = __builtin_shufflevector(b4, b6, 2, 3, 10, 11, 6, 7, 14, 15);
      f8 c6 = __builtin_shufflevector(b5, b7, 0, 1, 8, 9, 4, 5, 12, 13);
      f8 c7 = __builtin_shufflevector(b5, b7, 2, 3, 10, 11, 6, 7, 14, 15);
      float* yp = y + q * ys + l;
      *(f8*)(yp) = __builtin_shufflevector(c0, c4, 0, 1, 2, 3, 8, 9, 10, 11);
      *(f8*)(yp + ys) = __builtin_shufflevector(c1, c5, 0, 1, 2, 3, 8, 9, 10, 11);
      *(f8*)(yp + 2 * ys) = __builtin_shufflevector(c2, c6, 0, 1, 2, 3, 8, 9, 10, 11);
      *(f8*)(yp + 3 * ys) = __builtin_shufflevector(c3, c7, 0, 1, 2, 3, 8, 9, 10, 11);
      *(f8*)(yp + 4 * ys) = __builtin_shufflevector(c0, c4, 4, 5, 6, 7, 12, 13, 14, 15);
      *(f8*)(yp + 5 * ys) = __builtin_shufflevector(c1, c5, 4, 5, 6, 7, 12, 13, 14, 15);
      *(f8*)(yp + 6 * ys) = __builtin_shufflevector(c2, c6, 4, 5, 6, 7, 12, 13, 14, 15);
      *(f8*)(yp + 7 * ys) = __builtin_shufflevector(c3, c7, 4, 5, 6, 7, 12, 13, 14, 15);
    }
    for (; l < e; l++)
      for (int qq = 0; qq < 8; qq++) y[(q + qq) * ys + l] = x[l * xs + q + qq];
  }
  for (; q < n; q++)
    for (int64_t l = 0; l < e; l++) y[q * ys + l] = x[l * xs + q];
}

static KV_ATTR void FN(copy_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(copy_job)* j = (const FN(copy_job)*)job;
  const int64_t d2 = j->d[2], d3 = j->d[3];
  const int64_t xs2 = j->xs[2], xs3 = j->xs[3], ys2 = j->ys[2], ys3 = j->ys[3];
  const int contiguous = xs3 == 1 && ys3 == 1;
  const int interleave = !contiguous && ys3 == 1 && xs2 == 1 && ys2 == d3 && d3 >= 2 && d3 <= 4;
  const int transpose = !contiguous && !interleave && ys3 == 1 && xs2 == 1 && d3 >= 8;
  /* Row r = (i0, i1, k): a run [k, k_end) of D2 within one (i0, i1). */
  for (int64_t r = r0; r < r1;) {
    int64_t i01 = r / d2, k = r - i01 * d2;
    int64_t i0 = i01 / j->d[1], i1 = i01 - i0 * j->d[1];
    int64_t ke = KMIN(d2, k + (r1 - r));
    const float* xb = j->x + i0 * j->xs[0] + i1 * j->xs[1];
    float* yb = j->y + i0 * j->ys[0] + i1 * j->ys[1];
    if (contiguous) {
      if (xs2 == d3 && ys2 == d3)
        FN(copy_run)(xb + k * d3, yb + k * d3, (ke - k) * d3);
      else
        for (int64_t q = k; q < ke; q++) FN(copy_run)(xb + q * xs2, yb + q * ys2, d3);
    } else if (interleave) {
      const float* xp = xb + k;
      float* yp = yb + k * d3;
      if (d3 == 2)
        FN(copy_interleave)(2, xp, xs3, yp, ke - k);
      else if (d3 == 3)
        FN(copy_interleave)(3, xp, xs3, yp, ke - k);
      else
        FN(copy_interleave)(4, xp, xs3, yp, ke - k);
    } else if (transpose) {
      FN(copy_transpose)(xb + k, xs3, yb + k * ys2, ys2, ke - k, d3);
    } else {
      for (int64_t q = k; q < ke; q++)
        for (int64_t l = 0; l < d3; l++) yb[q * ys2 + l * ys3] = xb[q * xs2 + l * xs3];
    }
    r += ke - k;
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_copy)(const int64_t* args) {
  FN(copy_job) j;
  j.x = (const float*)slot_p(args, KILN_COPY_X) + slot_i(args, KILN_COPY_X_OFFSET);
  j.y = (float*)slot_p(args, KILN_COPY_Y) + slot_i(args, KILN_COPY_Y_OFFSET);
  for (int i = 0; i < 4; i++) {
    j.d[i] = slot_i(args, KILN_COPY_D0 + i);
    j.xs[i] = slot_i(args, KILN_COPY_XS0 + i);
    j.ys[i] = slot_i(args, KILN_COPY_YS0 + i);
    if (j.d[i] <= 0) return;
  }
  /* About 12 work units per float moved: a load and a store take as long as
   * about 12 FLOPs of the GEMM micro-kernel (ShuffleNet's channel splits and
   * shuffles move ~6 floats/ns on one Zen 5 core, which does 64 units/ns). */
  FN(split_rows)(FN(copy_rows), &j, j.d[0] * j.d[1] * j.d[2], 12.0 * (double)j.d[3]);
}
