/*
 * dwconv.h - depthwise NHWC convolution (template, per variant).
 *
 * Channels run in vector lanes; a register block is DW_PX consecutive output
 * pixels of one output row x DW_CV channel vectors, accumulated over the
 * taps with the tap's weight vectors loaded once per block. Blocks whose
 * taps all fall inside the input take a path without bounds checks. The
 * epilogue runs on the block through a stack tile. Work is split by output
 * rows (and channel blocks when there are few rows).
 */

#define DW_PX 4
#define DW_CV 2

typedef struct FN(dw_job) {
  const float* x; /* at the channel offset */
  int64_t n, h, w, c, xs;
  const float* wt;
  float* y; /* at the channel offset */
  int64_t oh, ow, ys;
  int64_t kh, kw, sh, sw, dh, dw, pt, pl;
  const epi_t* epi;
  int64_t rows, cblocks; /* work items: (n, oy) rows x channel blocks */
} FN(dw_job);

/* One block: output pixels [ox0, ox0 + px) of row (img, oy), channels
 * [c0, c0 + nc) (nc <= DW_CV * VW). `checked`: some tap may leave the input. */
KF void FN(dw_block)(const FN(dw_job) * j, int64_t img, int64_t oy, int64_t ox0, const int px,
                     int64_t c0, int64_t nc, int checked) {
  V acc[DW_PX][DW_CV];
  const int full = nc == DW_CV * VW;
  const int nv = (int)cdiv(nc, VW);
#pragma unroll
  for (int p = 0; p < DW_PX; p++)
#pragma unroll
    for (int v = 0; v < DW_CV; v++) acc[p][v] = (V)0.0f;
  const float* xi = j->x + img * j->h * j->w * j->xs + c0;
  for (int64_t ky = 0; ky < j->kh; ky++) {
    int64_t iy = oy * j->sh - j->pt + ky * j->dh;
    if (checked && (uint64_t)iy >= (uint64_t)j->h) continue;
    for (int64_t kx = 0; kx < j->kw; kx++) {
      const float* wp = j->wt + (ky * j->kw + kx) * j->c + c0;
      V wv[DW_CV];
#pragma unroll
      for (int v = 0; v < DW_CV; v++)
        wv[v] = full ? FN(vld)(wp + v * VW)
                     : (v < nv ? FN(vld_n)(wp + v * VW, KMIN(VW, nc - v * VW)) : (V)0.0f);
#pragma unroll
      for (int p = 0; p < DW_PX; p++) {
        if (p >= px) break;
        int64_t ix = (ox0 + p) * j->sw - j->pl + kx * j->dw;
        if (checked && (uint64_t)ix >= (uint64_t)j->w) continue;
        const float* xp = xi + (iy * j->w + ix) * j->xs;
#pragma unroll
        for (int v = 0; v < DW_CV; v++) {
          V xv = full ? FN(vld)(xp + v * VW)
                      : (v < nv ? FN(vld_n)(xp + v * VW, KMIN(VW, nc - v * VW)) : (V)0.0f);
          acc[p][v] = xv * wv[v] + acc[p][v];
        }
      }
    }
  }
  float* yp = j->y + ((img * j->oh + oy) * j->ow + ox0) * j->ys + c0;
  if (full && !(j->epi && j->epi->n)) {
#pragma unroll
    for (int p = 0; p < DW_PX; p++) {
      if (p >= px) break;
#pragma unroll
      for (int v = 0; v < DW_CV; v++) FN(vst)(yp + p * j->ys + v * VW, acc[p][v]);
    }
    return;
  }
  float t[DW_PX * DW_CV * VW] __attribute__((aligned(64)));
#pragma unroll
  for (int p = 0; p < DW_PX; p++)
#pragma unroll
    for (int v = 0; v < DW_CV; v++) FN(vst)(t + (p * DW_CV + v) * VW, acc[p][v]);
  if (j->epi && j->epi->n)
    FN(epi_apply)(j->epi, t, DW_CV * VW, px, nc, (img * j->oh + oy) * j->ow + ox0, c0);
  FN(tile_store)(t, DW_CV * VW, yp, j->ys, px, nc);
}

static KV_ATTR void FN(dw_row)(const FN(dw_job) * j, int64_t row, int64_t cblk) {
  int64_t img = row / j->oh, oy = row - img * j->oh;
  int64_t c0 = cblk * DW_CV * VW, nc = KMIN(DW_CV * VW, j->c - c0);
  /* Rows whose taps stay inside the input vertically. */
  int64_t iy0 = oy * j->sh - j->pt, iy1 = iy0 + (j->kh - 1) * j->dh;
  int rows_in = iy0 >= 0 && iy1 < j->h;
  int64_t ox = 0;
  for (; ox + DW_PX <= j->ow; ox += DW_PX) {
    int64_t ix0 = ox * j->sw - j->pl, ix1 = (ox + DW_PX - 1) * j->sw - j->pl + (j->kw - 1) * j->dw;
    int inside = rows_in && ix0 >= 0 && ix1 < j->w;
    if (inside)
      FN(dw_block)(j, img, oy, ox, DW_PX, c0, nc, 0);
    else
      FN(dw_block)(j, img, oy, ox, DW_PX, c0, nc, 1);
  }
  for (; ox < j->ow; ox++) FN(dw_block)(j, img, oy, ox, 1, c0, nc, 1);
}

static KV_ATTR void FN(dw_task)(void* data, int64_t begin, int64_t end) {
  const FN(dw_job)* j = (const FN(dw_job)*)data;
  for (int64_t t = begin; t < end; t++) FN(dw_row)(j, t / j->cblocks, t % j->cblocks);
}

typedef struct FN(dw_par) {
  const FN(dw_job) * j;
  int64_t items, tasks;
} FN(dw_par);

static KV_ATTR void FN(dw_par_task)(void* data, int64_t begin, int64_t end) {
  const FN(dw_par)* d = (const FN(dw_par)*)data;
  for (int64_t t = begin; t < end; t++)
    FN(dw_task)((void*)d->j, part_begin(d->items, d->tasks, t), part_begin(d->items, d->tasks, t + 1));
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
  j.kh = slot_i(args, KILN_DWCONV_KH);
  j.kw = slot_i(args, KILN_DWCONV_KW);
  j.sh = slot_i(args, KILN_DWCONV_STRIDE_H);
  j.sw = slot_i(args, KILN_DWCONV_STRIDE_W);
  j.dh = slot_i(args, KILN_DWCONV_DIL_H);
  j.dw = slot_i(args, KILN_DWCONV_DIL_W);
  j.pt = slot_i(args, KILN_DWCONV_PAD_TOP);
  j.pl = slot_i(args, KILN_DWCONV_PAD_LEFT);
  j.epi = &epi;
  j.rows = j.n * j.oh;
  j.cblocks = cdiv(j.c, DW_CV * VW);
  if (j.rows <= 0 || j.ow <= 0 || j.c <= 0) return;
  FN(dw_par) d = {&j, j.rows * j.cblocks, 1};
  d.tasks = par_tasks(2.0 * (double)j.rows * (double)j.ow * (double)j.c * (double)(j.kh * j.kw),
                      d.items);
  if (d.tasks <= 1)
    FN(dw_task)(&j, 0, d.items);
  else
    kiln_par_for(d.tasks, FN(dw_par_task), &d);
}

#undef DW_PX
#undef DW_CV
