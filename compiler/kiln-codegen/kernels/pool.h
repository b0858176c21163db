/*
 * pool.h - NHWC max/average pooling and global pooling (template, per
 * variant). Channels run in vector lanes, PL_CV vectors per register block;
 * windows are clipped to the input once per output pixel. Max pooling
 * propagates NaN. Work is split by output rows (images for global pooling,
 * with channel blocks when images are few).
 */

#define PL_CV 4

typedef struct FN(pool_job) {
  const float* x;
  int64_t n, h, w, c, xs;
  float* y;
  int64_t oh, ow, ys;
  kwin win;
  int64_t avg, include_pad;
} FN(pool_job);

/* The taps [k0, k1) of a window starting at `start` (stride `d`) that land
 * inside [lo, hi). */
static void FN(pool_clip)(int64_t start, int64_t d, int64_t k, int64_t lo, int64_t hi, int64_t* k0,
                          int64_t* k1) {
  int64_t a = 0, b = k;
  while (a < b && start + a * d < lo) a++;
  while (b > a && start + (b - 1) * d >= hi) b--;
  *k0 = a;
  *k1 = b;
}

static KV_ATTR void FN(pool_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(pool_job)* j = (const FN(pool_job)*)job;
  for (int64_t row = r0; row < r1; row++) {
    int64_t img = row / j->oh, oy = row - img * j->oh;
    int64_t sy = oy * j->win.sh - j->win.pt, y0, y1, py0, py1;
    FN(pool_clip)(sy, j->win.dh, j->win.kh, 0, j->h, &y0, &y1);
    FN(pool_clip)(sy, j->win.dh, j->win.kh, -j->win.pt, j->h + j->win.pb, &py0, &py1);
    const float* xi = j->x + img * j->h * j->w * j->xs;
    for (int64_t ox = 0; ox < j->ow; ox++) {
      int64_t sx = ox * j->win.sw - j->win.pl, x0, x1, px0, px1;
      FN(pool_clip)(sx, j->win.dw, j->win.kw, 0, j->w, &x0, &x1);
      FN(pool_clip)(sx, j->win.dw, j->win.kw, -j->win.pl, j->w + j->win.pr, &px0, &px1);
      float count = j->include_pad ? (float)((py1 - py0) * (px1 - px0))
                                   : (float)((y1 - y0) * (x1 - x0));
      float inv = 1.0f / count;
      float* yp = j->y + (row * j->ow + ox) * j->ys;
      for (int64_t c0 = 0; c0 < j->c; c0 += PL_CV * VW) {
        int64_t nc = KMIN(PL_CV * VW, j->c - c0);
        int full = nc == PL_CV * VW;
        V acc[PL_CV];
#pragma unroll
        for (int v = 0; v < PL_CV; v++) acc[v] = j->avg ? (V)0.0f : (V)-__builtin_inff();
        for (int64_t ky = y0; ky < y1; ky++) {
          const float* xr = xi + (sy + ky * j->win.dh) * j->w * j->xs + c0;
          for (int64_t kx = x0; kx < x1; kx++) {
            const float* xp = xr + (sx + kx * j->win.dw) * j->xs;
#pragma unroll
            for (int v = 0; v < PL_CV; v++) {
              V xv = full ? FN(vld)(xp + v * VW)
                          : (v * VW < nc ? FN(vld_n)(xp + v * VW, KMIN(VW, nc - v * VW)) : (V)0.0f);
              acc[v] = j->avg ? acc[v] + xv : FN(vmax)(xv, acc[v]);
            }
          }
        }
#pragma unroll
        for (int v = 0; v < PL_CV; v++) {
          V r = j->avg ? acc[v] * inv : acc[v];
          if (full)
            FN(vst)(yp + c0 + v * VW, r);
          else if (v * VW < nc)
            FN(vst_n)(yp + c0 + v * VW, r, KMIN(VW, nc - v * VW));
        }
      }
    }
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_pool2d)(const int64_t* args) {
  FN(pool_job) j;
  j.x = (const float*)slot_p(args, KILN_POOL_X);
  j.n = slot_i(args, KILN_POOL_N);
  j.h = slot_i(args, KILN_POOL_H);
  j.w = slot_i(args, KILN_POOL_W);
  j.c = slot_i(args, KILN_POOL_C);
  j.xs = slot_i(args, KILN_POOL_X_STRIDE);
  j.y = (float*)slot_p(args, KILN_POOL_Y);
  j.oh = slot_i(args, KILN_POOL_OH);
  j.ow = slot_i(args, KILN_POOL_OW);
  j.ys = slot_i(args, KILN_POOL_Y_STRIDE);
  window_decode(args, KILN_POOL_KH, &j.win);
  j.avg = slot_i(args, KILN_POOL_KIND) == 1;
  j.include_pad = slot_i(args, KILN_POOL_COUNT_INCLUDE_PAD);
  if (j.c <= 0 || j.ow <= 0) return;
  FN(split_rows)(FN(pool_rows), &j, j.n * j.oh, (double)(j.ow * j.c * j.win.kh * j.win.kw) * 2.0);
}

/* ---- global pooling ---- */
typedef struct FN(gpool_job) {
  const float* x;
  int64_t hw, c, xs;
  float* y;
  int64_t ys, avg, cblocks;
} FN(gpool_job);

static KV_ATTR void FN(gpool_items)(const void* job, int64_t i0, int64_t i1) {
  const FN(gpool_job)* j = (const FN(gpool_job)*)job;
  for (int64_t it = i0; it < i1; it++) {
    int64_t img = it / j->cblocks, c0 = (it - img * j->cblocks) * PL_CV * VW;
    int64_t nc = KMIN(PL_CV * VW, j->c - c0);
    int full = nc == PL_CV * VW;
    const float* xp = j->x + img * j->hw * j->xs + c0;
    V acc[PL_CV];
#pragma unroll
    for (int v = 0; v < PL_CV; v++) acc[v] = j->avg ? (V)0.0f : (V)-__builtin_inff();
    for (int64_t p = 0; p < j->hw; p++, xp += j->xs) {
#pragma unroll
      for (int v = 0; v < PL_CV; v++) {
        V xv = full ? FN(vld)(xp + v * VW)
                    : (v * VW < nc ? FN(vld_n)(xp + v * VW, KMIN(VW, nc - v * VW)) : (V)0.0f);
        acc[v] = j->avg ? acc[v] + xv : FN(vmax)(xv, acc[v]);
      }
    }
    float* yp = j->y + img * j->ys + c0;
    float inv = 1.0f / (float)j->hw;
#pragma unroll
    for (int v = 0; v < PL_CV; v++) {
      V r = j->avg ? acc[v] * inv : acc[v];
      if (full)
        FN(vst)(yp + v * VW, r);
      else if (v * VW < nc)
        FN(vst_n)(yp + v * VW, r, KMIN(VW, nc - v * VW));
    }
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_gpool)(const int64_t* args) {
  FN(gpool_job) j;
  j.x = (const float*)slot_p(args, KILN_GPOOL_X);
  int64_t n = slot_i(args, KILN_GPOOL_N);
  j.hw = slot_i(args, KILN_GPOOL_HW);
  j.c = slot_i(args, KILN_GPOOL_C);
  j.xs = slot_i(args, KILN_GPOOL_X_STRIDE);
  j.y = (float*)slot_p(args, KILN_GPOOL_Y);
  j.ys = slot_i(args, KILN_GPOOL_Y_STRIDE);
  j.avg = slot_i(args, KILN_GPOOL_KIND) == 1;
  j.cblocks = cdiv(j.c, PL_CV * VW);
  if (j.c <= 0) return;
  FN(split_rows)(FN(gpool_items), &j, n * j.cblocks, (double)(j.hw * PL_CV * VW) * 2.0);
}

#undef PL_CV
