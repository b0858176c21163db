/*
 * conv.h - NHWC convolution as an implicit GEMM (template, per variant).
 *
 * Per group g: C[pixels, Cout/G] = A[pixels, KH*KW*Cin/G] . B_g, with B_g the
 * packed `conv_nhwc` weights and A never materialized: for each tile of MR
 * output pixels and each tap (ky, kx) the micro-kernel gets one row pointer
 * per pixel into the input (or into a zero row for taps in the padding) and
 * runs over a block of input channels. 1x1 convolutions are the one-tap case
 * (their rows are the input pixels themselves). Work is split across threads
 * by pixel tiles and output-channel panels (the same grid as GEMM).
 *
 * Block-quantized weights (`quant.conv`, rows of codes in window order) are
 * dequantized where they are read: before a panel's row tiles run over a
 * block of input channels, that panel block (taps x channels x NR) is
 * decoded into the task's slot of the kernel's scratch in the packed
 * layout (qgemm.h's decoders), so no f32 copy of the weight exists beyond
 * one block per task. Panels are then taken one at a time (each block is
 * reused by all row tiles).
 */

typedef struct FN(conv_job) {
  const float* x; /* at the channel offset */
  int64_t n, h, w, xs;
  const float* wt;
  float* y; /* at the channel offset */
  int64_t oh, ow, ys;
  kwin win;
  int64_t cin_g, cout_g, np_g, kg; /* per group: channels, panels, K */
  int64_t np;                      /* panels of all groups */
  int64_t cb, nc;                  /* input-channel block, column block */
  int panel_major;                 /* panels outermost, K blocks of KV_KC_FEW */
  const epi_t* epi;
  int64_t m, tm, tn;
  const void* q; /* quantized weights (a qg_job, qgemm.h), else null */
  float* qslots;  /* with q: a decoded panel block per task, qstride floats apart */
  int64_t qstride;
} FN(conv_job);

/* The panel block of quantized weights rows [row0, row0 + nrows) (zeros
 * past), codes t * cin_g + cb + c for taps t < taps and c < cbn, into
 * out[(t * cbn + c) * NR + r] (qgemm.h). */
static KV_ATTR void FN(qconv_block)(const void* q, int64_t row0, int64_t nrows, int64_t taps,
                                    int64_t cin_g, int64_t cb, int64_t cbn, float* out);
/* kiln_k_conv2d with quantized weights: sets up the codes' decoding and
 * runs conv_grid (qgemm.h). */
static KV_ATTR void FN(conv_quant)(const int64_t* args, FN(conv_job) * j);

/* Pixels [m0, m1) x global panels [p0, p1) (panel p: group p / np_g). */
static KV_ATTR void FN(conv_block)(const FN(conv_job) * j, int64_t m0, int64_t m1, int64_t p0,
                                   int64_t p1, float* qb) {
  /* Panel-major (the job's choice, kiln_k_conv2d; or this task's part
   * alone has at most KV_FEW_TILES row tiles, keeping the job's K block):
   * one panel at a time, its K block reused by all tiles while it is in L2;
   * otherwise a block of NC columns, each A tile reused across its panels. */
  const int64_t ncp = j->q || j->panel_major || cdiv(m1 - m0, MR) <= KV_FEW_TILES
                          ? 1
                          : KMAX(1, j->nc / NR);
  const int64_t ohw = j->oh * j->ow;
  FN(conv_rows) cr;
  cr.ntaps = j->win.kh * j->win.kw;
  cr.kw = j->win.kw;
  cr.dh = j->win.dh;
  cr.dw = j->win.dw;
  cr.h = j->h;
  cr.w = j->w;
  cr.xs = j->xs;
  cr.bstep = j->cin_g * NR;
  epi_simple es;
  epi_row er;
  int simple = epi_simple_of(j->epi, &es), row = epi_row_of(j->epi, &er);
  /* 1x1 without padding, one group: each output pixel reads one input pixel,
   * so the tile's row pointers are computed once and it runs as a GEMM tile
   * (no per-tap bounds checks). */
  const int direct = cr.ntaps == 1 && j->np == j->np_g && !j->win.pt && !j->win.pl &&
                     !j->win.pb && !j->win.pr;
  /* ... and with stride 1 as well, output pixel i reads input pixel i. */
  const int linear = direct && j->win.sh == 1 && j->win.sw == 1;
  const float* rows[MR];
  int64_t cbeg = 0;
  do {
    int64_t cbn = KMIN(j->cb, j->cin_g - cbeg);
    FN(tile_args) x;
    x.a = direct ? rows : 0;
    x.conv = direct ? 0 : &cr;
    x.pf = 0;
    x.pf_one = 1;
    x.acs = 1;
    x.kc = cbn;
    x.ldc = j->ys;
    x.accumulate = cbeg > 0;
    x.epi = cbeg + cbn >= j->cin_g ? j->epi : 0;
    x.es = x.epi && simple ? &es : 0;
    x.er = x.epi && row ? &er : 0;
    const int merge = j->win.kw > 1 && j->win.dw == 1 && j->xs == cbn &&
                      j->win.kw * cbn <= KILN_ZERO_FLOATS;
    if (j->q) cr.bstep = cbn * NR;
    for (int64_t jp = p0; jp < p1; jp += ncp) {
      int64_t jpe = KMIN(jp + ncp, p1);
      if (j->q) {
        int64_t g = jp / j->np_g, pg = jp - g * j->np_g;
        FN(qconv_block)(j->q, g * j->cout_g + pg * NR, KMIN(NR, j->cout_g - pg * NR), cr.ntaps,
                        j->cin_g, cbeg, cbn, qb);
      }
      for (int64_t i = m0; i < m1; i += MR) {
        int64_t mr = KMIN(MR, m1 - i);
        x.r0 = i;
        if (linear) {
          /* No window arithmetic (MobileNetV2's 1x1 layers: this setup,
           * two divisions per tile, was most of conv_block's 7%). */
          for (int r = 0; r < MR; r++) rows[r] = j->x + (i + (r < mr ? r : 0)) * j->xs + cbeg;
          cr.tstep = 1;
        } else {
          /* Output pixel i -> (image, oy, ox), then the next rows by steps
           * (rows past mr repeat the first). */
          int64_t img = i / ohw, rem = i - img * ohw;
          int64_t oy = rem / j->ow, ox = rem - oy * j->ow;
          for (int r = 0; r < mr; r++) {
            if (r > 0 && ++ox == j->ow) {
              ox = 0;
              if (++oy == j->oh) {
                oy = 0;
                img++;
              }
            }
            cr.img[r] = j->x + img * j->h * j->w * j->xs;
            cr.ih0[r] = oy * j->win.sh - j->win.pt;
            cr.iw0[r] = ox * j->win.sw - j->win.pl;
          }
          for (int r = mr; r < MR; r++) {
            cr.img[r] = cr.img[0];
            cr.ih0[r] = cr.ih0[0];
            cr.iw0[r] = cr.iw0[0];
          }
          if (direct)
            for (int r = 0; r < MR; r++)
              rows[r] = cr.img[r] + (cr.ih0[r] * j->w + cr.iw0[r]) * j->xs + cbeg;
          /* A window row is one run of K (kw taps x cbn channels, adjacent in
           * the input and in the packed weights) when the block holds every
           * channel of densely stored pixels, taps are adjacent (dw = 1) and
           * no row of the tile reaches into the left or right padding. */
          cr.tstep = 1;
          if (merge) {
            int inside = 1;
            for (int r = 0; r < MR; r++)
              inside &= cr.iw0[r] >= 0 && cr.iw0[r] + j->win.kw <= j->w;
            if (inside) cr.tstep = j->win.kw;
          }
        }
        for (int64_t p = jp; p < jpe; p++) {
          int64_t g = p / j->np_g, pg = p - g * j->np_g;
          cr.coff = g * j->cin_g + cbeg;
          x.b = j->q ? qb : j->wt + p * j->kg * NR + cbeg * NR;
          x.c0 = g * j->cout_g + pg * NR;
          x.c = j->y + i * j->ys + x.c0;
          /* The first PF_LINES row tiles prefetch the block of B the loop
           * reads next (the next panel's, or the next channel block's
           * first), one cache line of each row of it per tile, while all
           * compute from L2: weights of late layers come from memory once
           * per inference, and the stream is spread over several tiles. */
          x.pf = 0;
          int64_t q = (i - m0) / MR;
          if (q < PF_LINES && !j->q) {
            if (p + 1 < (ncp == 1 ? p1 : jpe))
              x.pf = x.b + j->kg * NR + q * 16;
            else if (ncp == 1 && cbeg + cbn < j->cin_g)
              x.pf = j->wt + p0 * j->kg * NR + (cbeg + cbn) * NR + q * 16;
          }
          FN(tile_pf)(mr, KMIN(NR, j->cout_g - pg * NR), &x);
        }
      }
    }
    cbeg += cbn;
  } while (cbeg < j->cin_g);
}

static KV_ATTR void FN(conv_task)(void* data, int64_t begin, int64_t end) {
  const FN(conv_job)* j = (const FN(conv_job)*)data;
  int64_t mt = cdiv(j->m, MR);
  for (int64_t t = begin; t < end; t++) {
    int64_t ti = t / j->tn, tj = t % j->tn;
    int64_t m0 = part_begin(mt, j->tm, ti) * MR, m1 = KMIN(j->m, part_begin(mt, j->tm, ti + 1) * MR);
    int64_t p0 = part_begin(j->np, j->tn, tj), p1 = part_begin(j->np, j->tn, tj + 1);
    if (m0 < m1 && p0 < p1)
      FN(conv_block)(j, m0, m1, p0, p1, j->q ? j->qslots + t * j->qstride : 0);
  }
}

/* The direct kernel over the job's pixel x panel grid (threads). */
static KV_ATTR void FN(conv_grid)(FN(conv_job) * j, int64_t cout) {
  int64_t mt = cdiv(j->m, MR);
  int64_t tasks = par_tasks(2.0 * (double)j->m * (double)cout * (double)j->kg, mt * j->np);
  /* Quantized weights: every task decodes the panels it covers, so row
   * parts would decode the same panels once each (ResNet-50 NF4 on AVX2:
   * as slow at 2 threads as at 1); columns first, as a GEMM. */
  FN(gemm_grid)(j->m, j->np * NR, tasks, j->q ? 0.0 : 0.2, &j->tm, &j->tn);
  if (j->tm * j->tn <= 1)
    FN(conv_block)(j, 0, j->m, 0, j->np, j->qslots);
  else
    kiln_par_for(j->tm * j->tn, FN(conv_task), j);
}

/* 3x3 stride-1 convolutions by Winograd F(2x2, 3x3) (wino.h). */
static KV_ATTR void FN(conv_wino)(const FN(conv_job) * j, int64_t tc, float* scratch);

KHIDDEN KV_ATTR void FN(kiln_k_conv2d)(const int64_t* args) {
  FN(conv_job) j;
  epi_t epi;
  epi_decode(args, KILN_CONV_EPILOGUE, &epi);
  int64_t cin = slot_i(args, KILN_CONV_CIN), cout = slot_i(args, KILN_CONV_COUT);
  int64_t groups = slot_i(args, KILN_CONV_GROUPS);
  if (groups <= 0) groups = 1;
  j.xs = slot_i(args, KILN_CONV_X_STRIDE);
  j.x = (const float*)slot_p(args, KILN_CONV_X) + slot_i(args, KILN_CONV_X_OFFSET);
  j.n = slot_i(args, KILN_CONV_N);
  j.h = slot_i(args, KILN_CONV_H);
  j.w = slot_i(args, KILN_CONV_W);
  j.wt = (const float*)slot_p(args, KILN_CONV_WEIGHTS);
  j.ys = slot_i(args, KILN_CONV_Y_STRIDE);
  j.y = (float*)slot_p(args, KILN_CONV_Y) + slot_i(args, KILN_CONV_Y_OFFSET);
  j.oh = slot_i(args, KILN_CONV_OH);
  j.ow = slot_i(args, KILN_CONV_OW);
  window_decode(args, KILN_CONV_KH, &j.win);
  j.cin_g = cin / groups;
  j.cout_g = cout / groups;
  j.np_g = cdiv(j.cout_g, NR);
  j.np = groups * j.np_g;
  j.kg = j.win.kh * j.win.kw * j.cin_g;
  j.m = j.n * j.oh * j.ow;
  j.epi = &epi;
  int64_t kc = slot_i(args, KILN_CONV_KC), nc = slot_i(args, KILN_CONV_NC);
  j.nc = nc > 0 ? nc : KV_NC;
  /* Panel-major order with longer K blocks: fewer tap setups per FMA and
   * fewer passes over C, each panel's block reused from L2 by every row
   * tile. For few row tiles, and (where the variant has a longer block) for
   * windows whose K (taps x channels) runs past KV_KC at any image size: a
   * block of KV_KC split the channels of each tap into short runs (Zen 3,
   * 3x3 stride 2 to 56x56x64 and 5x5 on 56x56x16: 20% and 33% faster; 1x1
   * and windows within KV_KC: as before). */
  int64_t taps = KMAX(1, j.win.kh * j.win.kw);
  j.panel_major = cdiv(j.m, MR) <= KV_FEW_TILES ||
                  (KV_KC_FEW > KV_KC && taps > 1 && taps * j.cin_g > KV_KC);
  if (kc <= 0) kc = j.panel_major ? KV_KC_FEW : KV_KC;
  /* K blocks hold whole taps: the input channels are split into equal
   * blocks so that taps x block stays near KC (and within the zero row). */
  int64_t nblk = KMAX(cdiv(taps * j.cin_g, kc), cdiv(j.cin_g, KILN_ZERO_FLOATS));
  j.cb = KMAX(1, cdiv(j.cin_g, KMAX(1, nblk)));
  /* Panel-packed quantized codes decode whole steps of 8 channels. */
  if (slot_i(args, KILN_CONV_Q_PANELS) && j.cin_g % 8 == 0) j.cb = (j.cb + 7) / 8 * 8;
  j.q = 0;
  j.qslots = 0;
  j.qstride = 0;
  if (j.m <= 0 || j.cout_g <= 0) return;
  if (slot_i(args, KILN_CONV_Q_CODE) != KILN_QCODE_F32) {
    FN(conv_quant)(args, &j);
    return;
  }
  int64_t wino = slot_i(args, KILN_CONV_WINO_TILES);
  float* scratch = (float*)slot_p(args, KILN_CONV_SCRATCH);
  if (wino > 0 && scratch && groups == 1 && j.win.kh == 3 && j.win.kw == 3 && j.win.sh == 1 &&
      j.win.sw == 1 && j.win.dh == 1 && j.win.dw == 1 && j.oh == j.h + j.win.pt + j.win.pb - 2 &&
      j.ow == j.w + j.win.pl + j.win.pr - 2) {
    FN(conv_wino)(&j, wino, scratch);
    return;
  }
  FN(conv_grid)(&j, cout);
}

#include "wino.h"
