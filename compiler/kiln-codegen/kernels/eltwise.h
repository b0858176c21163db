/*
 * eltwise.h - the elementwise executor and row-wise kernels (softmax,
 * log-softmax, layer-norm, RMS-norm) (template, per variant).
 *
 * All of them work on [rows, cols] views with leading dimensions and run an
 * optional epilogue through L1-sized stack tiles. Rows are split across
 * threads in contiguous ranges.
 */

/* Columns per stack tile, and floats per tile (16 KiB). */
#define EW_COLS 1024
#define EW_TILE 4096

/* Splits `rows` rows of `work_per_row` work across the pool, calling fn on
 * row ranges. */
typedef void (*FN(rows_fn))(const void* job, int64_t r0, int64_t r1);
typedef struct FN(rows_par) {
  FN(rows_fn) fn;
  const void* job;
  int64_t rows, tasks;
} FN(rows_par);

static KV_ATTR void FN(rows_task)(void* data, int64_t begin, int64_t end) {
  const FN(rows_par)* d = (const FN(rows_par)*)data;
  for (int64_t t = begin; t < end; t++)
    d->fn(d->job, part_begin(d->rows, d->tasks, t), part_begin(d->rows, d->tasks, t + 1));
}

static KV_ATTR void FN(split_rows)(FN(rows_fn) fn, const void* job, int64_t rows,
                                   double work_per_row) {
  if (rows <= 0) return;
  FN(rows_par) d = {fn, job, rows, par_tasks(work_per_row * (double)rows, rows)};
  if (d.tasks <= 1)
    fn(job, 0, rows);
  else
    kiln_par_for(d.tasks, FN(rows_task), &d);
}

/* Applies `epi` to rows [r0, r1) of y in place through stack tiles; row r
 * is epilogue row row_base + r. */
static KV_ATTR void FN(epi_rows)(const epi_t* epi, float* y, int64_t ldy, int64_t r0, int64_t r1,
                                 int64_t cols, int64_t row_base) {
  if (!epi->n || cols <= 0) return;
  float t[EW_TILE] __attribute__((aligned(64)));
  int64_t cw = KMIN(cdiv(cols, VW) * VW, EW_COLS);
  int64_t rb = KMAX(1, EW_TILE / cw);
  for (int64_t r = r0; r < r1; r += rb) {
    int64_t nr = KMIN(rb, r1 - r);
    for (int64_t c = 0; c < cols; c += cw) {
      int64_t nc = KMIN(cw, cols - c);
      FN(tile_load)(y + r * ldy + c, ldy, t, cw, nr, nc);
      FN(epi_apply)(epi, t, cw, nr, nc, row_base + r, c);
      FN(tile_store)(t, cw, y + r * ldy + c, ldy, nr, nc);
    }
  }
}

/* ---- eltwise ---- */
typedef struct FN(ew_job) {
  const float* x;
  int64_t ldx;
  float* y;
  int64_t ldy, cols;
  const epi_t* epi;
} FN(ew_job);

static KV_ATTR void FN(ew_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(ew_job)* j = (const FN(ew_job)*)job;
  float t[EW_TILE] __attribute__((aligned(64)));
  int64_t cw = KMIN(cdiv(j->cols, VW) * VW, EW_COLS);
  int64_t rb = KMAX(1, EW_TILE / cw);
  for (int64_t r = r0; r < r1; r += rb) {
    int64_t nr = KMIN(rb, r1 - r);
    for (int64_t c = 0; c < j->cols; c += cw) {
      int64_t nc = KMIN(cw, j->cols - c);
      FN(tile_load)(j->x + r * j->ldx + c, j->ldx, t, cw, nr, nc);
      FN(epi_apply)(j->epi, t, cw, nr, nc, r, c);
      FN(tile_store)(t, cw, j->y + r * j->ldy + c, j->ldy, nr, nc);
    }
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_eltwise)(const int64_t* args) {
  FN(ew_job) j;
  epi_t epi;
  epi_decode(args, KILN_ELTWISE_EPILOGUE, &epi);
  j.x = (const float*)slot_p(args, KILN_ELTWISE_X);
  j.ldx = slot_i(args, KILN_ELTWISE_LDX);
  j.y = (float*)slot_p(args, KILN_ELTWISE_Y);
  j.ldy = slot_i(args, KILN_ELTWISE_LDY);
  j.cols = slot_i(args, KILN_ELTWISE_COLS);
  j.epi = &epi;
  if (j.cols <= 0) return;
  FN(split_rows)(FN(ew_rows), &j, slot_i(args, KILN_ELTWISE_ROWS), (double)j.cols * epi_cost(&epi));
}

/* ---- horizontal reductions (NaN-propagating max) ---- */
KF float FN(hmax)(V v) {
  float m = v[0];
  for (int i = 1; i < VW; i++) {
    float x = v[i];
    m = x != x ? x : (x > m ? x : m);
  }
  return m;
}
KF float FN(hsum)(V v) {
  float s = 0.0f;
  for (int i = 0; i < VW; i++) s += v[i];
  return s;
}
/* Lanes >= n of v replaced by `fill`. */
KF V FN(vtail)(V v, int64_t n, float fill) {
  VI lane;
  for (int i = 0; i < VW; i++) lane[i] = i;
  return lane < (int)n ? v : (V)fill;
}

/* ---- softmax / log-softmax ---- */
typedef struct FN(sm_job) {
  const float* x;
  int64_t ldx;
  float* y;
  int64_t ldy, cols, log;
  const epi_t* epi;
} FN(sm_job);

static KV_ATTR void FN(sm_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(sm_job)* j = (const FN(sm_job)*)job;
  const int64_t n = j->cols, nf = n / VW, rem = n - nf * VW;
  for (int64_t r = r0; r < r1; r++) {
    const float* x = j->x + r * j->ldx;
    float* y = j->y + r * j->ldy;
    V m0 = (V)-__builtin_inff(), m1 = m0;
    int64_t v = 0;
    for (; v + 2 <= nf; v += 2) {
      m0 = FN(vmax)(FN(vld)(x + v * VW), m0);
      m1 = FN(vmax)(FN(vld)(x + v * VW + VW), m1);
    }
    if (v < nf) m0 = FN(vmax)(FN(vld)(x + v * VW), m0);
    if (rem) m1 = FN(vmax)(FN(vtail)(FN(vld_n)(x + nf * VW, rem), rem, -__builtin_inff()), m1);
    float mx = FN(hmax)(FN(vmax)(m0, m1));
    V s0 = (V)0.0f, s1 = s0;
    if (j->log) {
      for (v = 0; v < nf; v++) s0 += FN(vexp)(FN(vld)(x + v * VW) - mx);
      if (rem) s1 += FN(vtail)(FN(vexp)(FN(vld_n)(x + nf * VW, rem) - mx), rem, 0.0f);
      float lse = mx + FN(vlog)((V)FN(hsum)(s0 + s1))[0];
      for (v = 0; v < nf; v++) FN(vst)(y + v * VW, FN(vld)(x + v * VW) - lse);
      if (rem) FN(vst_n)(y + nf * VW, FN(vld_n)(x + nf * VW, rem) - lse, rem);
    } else {
      for (v = 0; v + 2 <= nf; v += 2) {
        V e0 = FN(vexp)(FN(vld)(x + v * VW) - mx), e1 = FN(vexp)(FN(vld)(x + v * VW + VW) - mx);
        FN(vst)(y + v * VW, e0);
        FN(vst)(y + v * VW + VW, e1);
        s0 += e0;
        s1 += e1;
      }
      if (v < nf) {
        V e0 = FN(vexp)(FN(vld)(x + v * VW) - mx);
        FN(vst)(y + v * VW, e0);
        s0 += e0;
      }
      if (rem) {
        V e = FN(vtail)(FN(vexp)(FN(vld_n)(x + nf * VW, rem) - mx), rem, 0.0f);
        FN(vst_n)(y + nf * VW, e, rem);
        s1 += e;
      }
      float inv = 1.0f / FN(hsum)(s0 + s1);
      for (v = 0; v < nf; v++) FN(vst)(y + v * VW, FN(vld)(y + v * VW) * inv);
      if (rem) FN(vst_n)(y + nf * VW, FN(vld_n)(y + nf * VW, rem) * inv, rem);
    }
  }
  FN(epi_rows)(j->epi, j->y, j->ldy, r0, r1, n, 0);
}

KHIDDEN KV_ATTR void FN(kiln_k_softmax)(const int64_t* args) {
  FN(sm_job) j;
  epi_t epi;
  epi_decode(args, KILN_SOFTMAX_EPILOGUE, &epi);
  j.x = (const float*)slot_p(args, KILN_SOFTMAX_X);
  j.ldx = slot_i(args, KILN_SOFTMAX_LDX);
  j.y = (float*)slot_p(args, KILN_SOFTMAX_Y);
  j.ldy = slot_i(args, KILN_SOFTMAX_LDY);
  j.cols = slot_i(args, KILN_SOFTMAX_COLS);
  j.log = slot_i(args, KILN_SOFTMAX_LOG);
  j.epi = &epi;
  if (j.cols <= 0) return;
  FN(split_rows)(FN(sm_rows), &j, slot_i(args, KILN_SOFTMAX_ROWS),
                 (double)j.cols * (30 + epi_cost(&epi)));
}

/* ---- layer-norm / RMS-norm ---- */
typedef struct FN(ln_job) {
  const float* x;
  int64_t ldx;
  float* y;
  int64_t ldy, cols, rms;
  const float *gamma, *beta;
  float eps;
  float *mean, *rstd;
  const epi_t* epi;
} FN(ln_job);

static KV_ATTR void FN(ln_rows)(const void* job, int64_t r0, int64_t r1) {
  const FN(ln_job)* j = (const FN(ln_job)*)job;
  const int64_t n = j->cols, nf = n / VW, rem = n - nf * VW;
  for (int64_t r = r0; r < r1; r++) {
    const float* x = j->x + r * j->ldx;
    float* y = j->y + r * j->ldy;
    float mean = 0.0f;
    if (!j->rms) {
      V s0 = (V)0.0f, s1 = s0;
      int64_t v = 0;
      for (; v + 2 <= nf; v += 2) {
        s0 += FN(vld)(x + v * VW);
        s1 += FN(vld)(x + v * VW + VW);
      }
      if (v < nf) s0 += FN(vld)(x + v * VW);
      if (rem) s1 += FN(vld_n)(x + nf * VW, rem);
      mean = FN(hsum)(s0 + s1) / (float)n;
    }
    /* Two passes: the sum of squared deviations, not E[x^2] - E[x]^2. */
    V q0 = (V)0.0f, q1 = q0;
    int64_t v = 0;
    for (; v + 2 <= nf; v += 2) {
      V d0 = FN(vld)(x + v * VW) - mean, d1 = FN(vld)(x + v * VW + VW) - mean;
      q0 = d0 * d0 + q0;
      q1 = d1 * d1 + q1;
    }
    if (v < nf) {
      V d0 = FN(vld)(x + v * VW) - mean;
      q0 = d0 * d0 + q0;
    }
    if (rem) {
      V d1 = FN(vtail)(FN(vld_n)(x + nf * VW, rem) - mean, rem, 0.0f);
      q1 = d1 * d1 + q1;
    }
    float var = FN(hsum)(q0 + q1) / (float)n;
    float rstd = 1.0f / __builtin_sqrtf(var + j->eps);
    if (j->mean) j->mean[r] = mean;
    if (j->rstd) j->rstd[r] = rstd;
    for (v = 0; v < nf; v++) {
      V t = (FN(vld)(x + v * VW) - mean) * rstd * FN(vld)(j->gamma + v * VW);
      if (j->beta) t += FN(vld)(j->beta + v * VW);
      FN(vst)(y + v * VW, t);
    }
    if (rem) {
      V t = (FN(vld_n)(x + nf * VW, rem) - mean) * rstd * FN(vld_n)(j->gamma + nf * VW, rem);
      if (j->beta) t += FN(vld_n)(j->beta + nf * VW, rem);
      FN(vst_n)(y + nf * VW, t, rem);
    }
  }
  FN(epi_rows)(j->epi, j->y, j->ldy, r0, r1, n, 0);
}

KHIDDEN KV_ATTR void FN(kiln_k_norm)(const int64_t* args) {
  FN(ln_job) j;
  epi_t epi;
  epi_decode(args, KILN_NORM_EPILOGUE, &epi);
  j.x = (const float*)slot_p(args, KILN_NORM_X);
  j.ldx = slot_i(args, KILN_NORM_LDX);
  j.y = (float*)slot_p(args, KILN_NORM_Y);
  j.ldy = slot_i(args, KILN_NORM_LDY);
  j.cols = slot_i(args, KILN_NORM_COLS);
  j.gamma = (const float*)slot_p(args, KILN_NORM_GAMMA);
  j.beta = (const float*)slot_p(args, KILN_NORM_BETA);
  j.eps = slot_f(args, KILN_NORM_EPSILON);
  j.rms = slot_i(args, KILN_NORM_RMS);
  j.mean = (float*)slot_p(args, KILN_NORM_MEAN);
  j.rstd = (float*)slot_p(args, KILN_NORM_RSTD);
  j.epi = &epi;
  if (j.cols <= 0) return;
  FN(split_rows)(FN(ln_rows), &j, slot_i(args, KILN_NORM_ROWS),
                 (double)j.cols * (8 + epi_cost(&epi)));
}

#undef EW_COLS
#undef EW_TILE
