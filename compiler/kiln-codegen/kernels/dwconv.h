/*
 * dwconv.h - depthwise NHWC convolution (template, per variant).
 *
 * Channels run in vector lanes. One output row is computed at a time:
 * for each block of DW_CV channel vectors, a 3x3 row at horizontal stride 1
 * or 2 without horizontal dilation runs in steps of DW_PX output pixels
 * that load each input pixel once for all the outputs whose windows hold it
 * (dw3x3_slide; the 9 weight vectors loaded once per row, taps fully
 * unrolled), the steps reaching past the input's border checked per input
 * column. Other 3x3 windows take an unrolled path for the interior pixels and
 * a checked one per border pixel; other kernel sizes and channel counts
 * below one vector, a checked path per pixel.
 * A bias/activation epilogue (epi_simple) is applied in registers; any other
 * epilogue runs over the finished row from a stack tile. Channel counts that
 * are not a multiple of the vector width end with one whole vector
 * overlapping the previous ones. Work is split by output rows.
 */

#ifndef DW_CV
#define DW_CV (NRV >= 3 ? 2 : 1) /* 2 x 9 weight vectors need 32 registers */
#endif
/* Output pixels per step: 8 independent accumulators, enough to cover the
 * FMA latency (4 cycles, 2 per cycle). With one channel vector (AVX2, 16
 * registers) some of the 9 weights then live on the stack and are read as
 * memory operands, which costs less than half the FMAs waiting. */
#define DW_PX (DW_CV == 1 ? 8 : 4)

typedef struct FN(dw_job) {
  const float* x; /* at the channel offset */
  int64_t n, h, w, c, xs;
  const float* wt;
  float* y; /* at the channel offset */
  int64_t oh, ow, ys;
  kwin win;
  const epi_t* epi;
  epi_simple es; /* valid when simple */
  int simple;
} FN(dw_job);

/* Bias + activation of the simple epilogue on vector v of channels [c, c + VW). */
KF V FN(dw_simple)(const FN(dw_job) * j, V v, int64_t c, int64_t nc) {
  if (j->es.bias) v += nc >= VW ? FN(vld)(j->es.bias + c) : FN(vld_n)(j->es.bias + c, nc);
  return FN(epi_act)(&j->es, v);
}

/* One output pixel (checked taps), channels [c0, c0 + nc), nc <= DW_CV * VW. */
static KV_ATTR void FN(dw_pixel)(const FN(dw_job) * jp, const float* xi, int64_t oy, int64_t ox,
                                 float* yp, int64_t c0, int64_t nc) {
  const FN(dw_job) job = *jp; /* see dw3x3_row */
  const FN(dw_job)* j = &job;
  V acc[DW_CV];
  for (int v = 0; v < DW_CV; v++) acc[v] = (V)0.0f;
  for (int64_t ky = 0; ky < j->win.kh; ky++) {
    int64_t iy = oy * j->win.sh - j->win.pt + ky * j->win.dh;
    if ((uint64_t)iy >= (uint64_t)j->h) continue;
    for (int64_t kx = 0; kx < j->win.kw; kx++) {
      int64_t ix = ox * j->win.sw - j->win.pl + kx * j->win.dw;
      if ((uint64_t)ix >= (uint64_t)j->w) continue;
      const float* xp = xi + (iy * j->w + ix) * j->xs + c0;
      const float* wp = j->wt + (ky * j->win.kw + kx) * j->c + c0;
      for (int v = 0; v < DW_CV; v++) {
        int64_t n = KMIN(VW, nc - v * VW);
        if (n == VW)
          acc[v] = FN(vld)(xp + v * VW) * FN(vld)(wp + v * VW) + acc[v];
        else if (n > 0)
          acc[v] = FN(vld_n)(xp + v * VW, n) * FN(vld_n)(wp + v * VW, n) + acc[v];
      }
    }
  }
  for (int v = 0; v < DW_CV; v++) {
    int64_t n = KMIN(VW, nc - v * VW);
    if (n <= 0) break;
    V r = j->simple ? FN(dw_simple)(j, acc[v], c0 + v * VW, n) : acc[v];
    if (n == VW)
      FN(vst)(yp + c0 + v * VW, r);
    else
      FN(vst_n)(yp + c0 + v * VW, r, n);
  }
}

/* Stores one output pixel's cv whole vectors (channels [c0, c0 + cv * VW))
 * at yp, with the in-register epilogue. */
KF void FN(dw_store)(const int cv, const FN(dw_job) * j, const V* acc, float* yp, int64_t c0) {
#pragma unroll
  for (int v = 0; v < cv; v++) {
    V r = j->simple ? FN(dw_simple)(j, acc[v], c0 + v * VW, VW) : acc[v];
    FN(vst)(yp + c0 + v * VW, r);
  }
}

/* DW_PX output pixels at a horizontal stride S (1 or 2, a constant) without
 * horizontal dilation: the input pixels of one input row under them are
 * consecutive, (DW_PX - 1) * S + 3 of them, so each is loaded once and feeds
 * every output whose window holds it (12 FMAs from 6 loads per row at S = 1
 * and DW_PX = 4, instead of one load per FMA). Pixels [ox, ox + DW_PX); with
 * CK (a constant) input columns outside the input are skipped (their taps are
 * zeros) and only the first np pixels are stored, so the same code covers
 * the border pixels and a row's last partial step. */
KF void FN(dw3x3_slide)(const int cv, const int S, const int CK, const FN(dw_job) * j,
                        const float* xi, int64_t boff, int rows, int64_t ox, int64_t np,
                        float* yrow, int64_t c0, V wv[9][DW_CV]) {
  const int64_t xs = j->xs, rs = j->win.dh * j->w * xs;
  const int64_t ix0 = ox * S - j->win.pl;
  const int64_t xo = boff + ix0 * xs;
  V acc[DW_PX][DW_CV];
#pragma unroll
  for (int p = 0; p < DW_PX; p++)
#pragma unroll
    for (int v = 0; v < cv; v++) acc[p][v] = (V)0.0f;
#pragma unroll
  for (int r = 0; r < 3; r++) {
    if (!(rows >> r & 1)) continue;
    /* Offsets, not pointers, until the column is known to be inside. */
    int64_t o = xo + r * rs;
#pragma unroll
    for (int k = 0; k < (DW_PX - 1) * S + 3; k++, o += xs) {
      KOPAQUE_INT(o);
      if (CK && (uint64_t)(ix0 + k) >= (uint64_t)j->w) continue;
      const float* q = xi + o;
#pragma unroll
      for (int v = 0; v < cv; v++) {
        V in = FN(vld)(q + v * VW);
#pragma unroll
        for (int p = 0; p < DW_PX; p++) {
          const int kx = k - S * p;
          if (kx >= 0 && kx < 3) acc[p][v] = in * wv[r * 3 + kx][v] + acc[p][v];
        }
      }
    }
  }
#pragma unroll
  for (int p = 0; p < DW_PX; p++)
    if (!CK || p < np) FN(dw_store)(cv, j, acc[p], yrow + (ox + p) * j->ys, c0);
}

/* A whole 3x3 row at horizontal stride S (1 or 2) without horizontal
 * dilation, channels [c0, c0 + cv * VW), over the input rows of `rows`
 * (see dw3x3_inner): steps of DW_PX pixels, checked where a step reaches
 * outside [lo, hi) (the columns whose taps all lie inside the input). At 7
 * or 14 pixels wide (MobileNetV2's last layers) that is one or two steps,
 * where pixel by pixel every FMA waited on the one before. */
KF void FN(dw3x3_slide_row)(const int cv, const int S, const FN(dw_job) * j, const float* xi,
                            int64_t iy0, int rows, int64_t lo, int64_t hi, float* yrow,
                            int64_t c0) {
  V wv[9][DW_CV];
#pragma unroll
  for (int t = 0; t < 9; t++)
#pragma unroll
    for (int v = 0; v < cv; v++) wv[t][v] = FN(vld)(j->wt + t * j->c + c0 + v * VW);
  const int64_t boff = (iy0 * j->w) * j->xs + c0;
  int64_t ox = 0;
  while (ox < j->ow) {
    if (ox >= lo && ox + DW_PX <= hi) {
      FN(dw3x3_slide)(cv, S, 0, j, xi, boff, rows, ox, DW_PX, yrow, c0, wv);
      ox += DW_PX;
    } else {
      /* Steps stay DW_PX apart from the row's start: the fewest steps,
       * the first and last checked. */
      int64_t np = KMIN(DW_PX, j->ow - ox);
      FN(dw3x3_slide)(cv, S, 1, j, xi, boff, rows, ox, np, yrow, c0, wv);
      ox += np;
    }
  }
}

/* 3x3, every tap inside the input horizontally: pixels [ox0, ox1) of the
 * row whose top input row is iy0, channels [c0, c0 + cv * VW) (cv <= DW_CV,
 * a constant). Bit r of `rows` is set when input row iy0 + r * dh lies in
 * the input; the taps of the others are zeros and skipped (the top and
 * bottom output rows under padding, a large share of a 7x7 map). */
KF void FN(dw3x3_inner)(const int cv, const FN(dw_job) * j, const float* xi, int64_t iy0, int rows,
                        int64_t ox0, int64_t ox1, float* yrow, int64_t c0) {
  V wv[9][DW_CV];
#pragma unroll
  for (int t = 0; t < 9; t++)
#pragma unroll
    for (int v = 0; v < cv; v++) wv[t][v] = FN(vld)(j->wt + t * j->c + c0 + v * VW);
  const int64_t xs = j->xs, rs = j->win.dh * j->w * xs, ts = j->win.dw * xs, ps = j->win.sw * xs;
  /* Offsets, not pointers, to rows that may lie outside the input. */
  const int64_t boff = (iy0 * j->w) * xs + c0;
  int64_t ox = ox0;
  for (; ox + DW_PX <= ox1; ox += DW_PX) {
    const int64_t xo = boff + (ox * j->win.sw - j->win.pl) * xs;
    V acc[DW_PX][DW_CV];
#pragma unroll
    for (int p = 0; p < DW_PX; p++)
#pragma unroll
      for (int v = 0; v < cv; v++) acc[p][v] = (V)0.0f;
#pragma unroll
    for (int t = 0; t < 9; t++) {
      if (!(rows >> (t / 3) & 1)) continue;
      const float* tp = xi + (xo + (t / 3) * rs + (t % 3) * ts);
#pragma unroll
      for (int p = 0; p < DW_PX; p++)
#pragma unroll
        for (int v = 0; v < cv; v++)
          acc[p][v] = FN(vld)(tp + p * ps + v * VW) * wv[t][v] + acc[p][v];
    }
#pragma unroll
    for (int p = 0; p < DW_PX; p++) FN(dw_store)(cv, j, acc[p], yrow + (ox + p) * j->ys, c0);
  }
  for (; ox < ox1; ox++) {
    const int64_t xo = boff + (ox * j->win.sw - j->win.pl) * xs;
    V acc[DW_CV];
#pragma unroll
    for (int v = 0; v < cv; v++) acc[v] = (V)0.0f;
#pragma unroll
    for (int t = 0; t < 9; t++) {
      if (!(rows >> (t / 3) & 1)) continue;
#pragma unroll
      for (int v = 0; v < cv; v++)
        acc[v] = FN(vld)(xi + (xo + (t / 3) * rs + (t % 3) * ts + v * VW)) * wv[t][v] + acc[v];
    }
    FN(dw_store)(cv, j, acc, yrow + ox * j->ys, c0);
  }
}

/* 3x3 at one output pixel with taps outside the input (they read the zero
 * row), channels [c0, c0 + cv * VW). */
KF void FN(dw3x3_edge)(const int cv, const FN(dw_job) * j, const float* xi, int64_t oy, int64_t ox,
                       float* yp, int64_t c0) {
  V acc[DW_CV];
#pragma unroll
  for (int v = 0; v < cv; v++) acc[v] = (V)0.0f;
#pragma unroll
  for (int t = 0; t < 9; t++) {
    int64_t iy = oy * j->win.sh - j->win.pt + (t / 3) * j->win.dh;
    int64_t ix = ox * j->win.sw - j->win.pl + (t % 3) * j->win.dw;
    int ok = (uint64_t)iy < (uint64_t)j->h && (uint64_t)ix < (uint64_t)j->w;
    const float* tp = ok ? xi + (iy * j->w + ix) * j->xs + c0 : kiln_zero_row;
#pragma unroll
    for (int v = 0; v < cv; v++)
      acc[v] = FN(vld)(tp + v * VW) * FN(vld)(j->wt + t * j->c + c0 + v * VW) + acc[v];
  }
  FN(dw_store)(cv, j, acc, yp, c0);
}

/* A 3x3 row, channels [c0, c0 + cv * VW): edge pixels, then the interior
 * columns [lo, hi) over the input rows of `rows` (dw3x3_inner). */
KF void FN(dw3x3_row)(const int cv, const FN(dw_job) * jp, const float* xi, int64_t oy, int rows,
                      int64_t lo, int64_t hi, float* yrow, int64_t c0) {
  /* A private copy: stores to the output cannot change it, so its fields
   * stay in registers (the library is compiled without strict aliasing). */
  const FN(dw_job) job = *jp;
  const FN(dw_job)* j = &job;
  const int64_t iy0 = oy * j->win.sh - j->win.pt;
  if (j->win.dw == 1 && j->win.sw == 1) {
    FN(dw3x3_slide_row)(cv, 1, j, xi, iy0, rows, lo, hi, yrow, c0);
    return;
  }
  if (j->win.dw == 1 && j->win.sw == 2) {
    FN(dw3x3_slide_row)(cv, 2, j, xi, iy0, rows, lo, hi, yrow, c0);
    return;
  }
  for (int64_t ox = 0; ox < lo; ox++) FN(dw3x3_edge)(cv, j, xi, oy, ox, yrow + ox * j->ys, c0);
  if (hi > lo) FN(dw3x3_inner)(cv, j, xi, iy0, rows, lo, hi, yrow, c0);
  for (int64_t ox = KMAX(lo, hi); ox < j->ow; ox++)
    FN(dw3x3_edge)(cv, j, xi, oy, ox, yrow + ox * j->ys, c0);
}

static KV_ATTR void FN(dw3x3_block)(const FN(dw_job) * j, const float* xi, int64_t oy, int rows,
                                    int64_t lo, int64_t hi, float* yrow, int64_t c0) {
  FN(dw3x3_row)(DW_CV, j, xi, oy, rows, lo, hi, yrow, c0);
}

static KV_ATTR void FN(dw3x3_vec)(const FN(dw_job) * j, const float* xi, int64_t oy, int rows,
                                  int64_t lo, int64_t hi, float* yrow, int64_t c0) {
  FN(dw3x3_row)(1, j, xi, oy, rows, lo, hi, yrow, c0);
}

static KV_ATTR void FN(dw_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(dw_job)* j = (const FN(dw_job)*)job;
  const int64_t cb = DW_CV * VW;
  for (int64_t row = r0; row < r1; row++) {
    int64_t img = row / j->oh, oy = row - img * j->oh;
    const float* xi = j->x + img * j->h * j->w * j->xs;
    float* yrow = j->y + row * j->ow * j->ys;
    int64_t iy0 = oy * j->win.sh - j->win.pt;
    int is3x3 = j->win.kh == 3 && j->win.kw == 3;
    /* Output columns whose taps all lie inside the input horizontally:
     * [lo, hi), over the row's input rows inside the input (empty when
     * none is). */
    int rows = 0;
    for (int r = 0; r < 3; r++)
      rows |= ((uint64_t)(iy0 + r * j->win.dh) < (uint64_t)j->h) << r;
    int64_t lo = 0, hi = 0;
    if (is3x3 && rows) {
      lo = j->win.pl > 0 ? cdiv(j->win.pl, j->win.sw) : 0;
      int64_t last = j->w - 1 - 2 * j->win.dw + j->win.pl; /* ox*sw <= last */
      hi = last < 0 ? 0 : KMIN(j->ow, last / j->win.sw + 1);
      lo = KMIN(lo, j->ow);
      if (lo > hi) hi = lo;
    }
    int64_t c0 = 0;
    if (is3x3) {
      for (; c0 + cb <= j->c; c0 += cb) FN(dw3x3_block)(j, xi, oy, rows, lo, hi, yrow, c0);
      for (; c0 + VW <= j->c; c0 += VW) FN(dw3x3_vec)(j, xi, oy, rows, lo, hi, yrow, c0);
      /* The last partial vector: one whole vector ending at the last
       * channel, recomputing a few channels already stored (the output
       * never overlaps the input, and a general epilogue runs after the
       * row), instead of the checked per-pixel path. */
      if (c0 < j->c && j->c >= VW) {
        FN(dw3x3_vec)(j, xi, oy, rows, lo, hi, yrow, j->c - VW);
        c0 = j->c;
      }
    }
    for (; c0 < j->c; c0 += cb)
      for (int64_t ox = 0; ox < j->ow; ox++)
        FN(dw_pixel)(j, xi, oy, ox, yrow + ox * j->ys, c0, KMIN(cb, j->c - c0));
    if (!j->simple && j->epi->n) FN(epi_rows)(j->epi, yrow, j->ys, 0, j->ow, j->c, row * j->ow);
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_dwconv2d)(const int64_t* args) {
  FN(dw_job) j;
  epi_t epi;
  epi_decode(args, KILN_DWCONV_EPILOGUE, &epi);
  j.xs = slot_i(args, KILN_DWCONV_X_STRIDE);
  j.x = (const float*)slot_p(args, KILN_DWCONV_X) + slot_i(args, KILN_DWCONV_X_OFFSET);
  j.n = slot_i(args, KILN_DWCONV_N);
  j.h = slot_i(args, KILN_DWCONV_H);
  j.w = slot_i(args, KILN_DWCONV_W);
  j.c = slot_i(args, KILN_DWCONV_C);
  j.wt = (const float*)slot_p(args, KILN_DWCONV_WEIGHTS);
  j.ys = slot_i(args, KILN_DWCONV_Y_STRIDE);
  j.y = (float*)slot_p(args, KILN_DWCONV_Y) + slot_i(args, KILN_DWCONV_Y_OFFSET);
  j.oh = slot_i(args, KILN_DWCONV_OH);
  j.ow = slot_i(args, KILN_DWCONV_OW);
  window_decode(args, KILN_DWCONV_KH, &j.win);
  j.epi = &epi;
  j.simple = epi_simple_of(&epi, &j.es) && !j.es.residual;
  if (j.n * j.oh <= 0 || j.ow <= 0 || j.c <= 0) return;
  FN(split_rows)(FN(dw_rows), &j, j.n * j.oh,
                 2.0 * (double)j.ow * (double)j.c * (double)(j.win.kh * j.win.kw));
}

#undef DW_PX
#undef DW_CV
