/*
 * gemm.h - register-blocked GEMM (template, per variant).
 *
 * Structure (Goto/BLIS, with B packed and A read in place):
 *   for each K block of KC:              B block KC x NC stays in L2
 *     for each column block of NC:
 *       for each tile row of MR rows:    A rows (MR x KC) stay in L1
 *         for each NR-wide panel:        micro-kernel: MR x NR accumulators
 * The micro-kernel reads A through one pointer per row (so convolutions pass
 * an indirection: rows of the input or of a zero row) with a column stride
 * (1, or lda for transposed A), and packed B (`gemm_b`: NR floats per k).
 * Every tile shape (mr <= MR, nv <= NRV vectors) is a specialization with
 * its accumulators in registers; partial tiles, accumulation across K blocks
 * and the epilogue go through a stack tile.
 */

/* Convolution taps: A's row pointers are recomputed for each of `ntaps` taps
 * (tap t = (ky, kx) = (t / kw, t % kw)); rows outside the input read the
 * zero row. B advances by `bstep` floats per tap. */
typedef struct FN(conv_rows) {
  int64_t ntaps, kw, dh, dw, h, w, xs, coff, bstep;
  int64_t tstep; /* taps per pass: 1, or kw when a window row is one run of K (see conv.h) */
  int64_t ih0[MR], iw0[MR]; /* top-left input pixel of each output row */
  const float* img[MR];     /* the image of each output row */
} FN(conv_rows);

/* Cache lines of B per k step. */
#define PF_LINES ((NR * 4 + 63) / 64)

typedef struct FN(tile_args) {
  const float* const* a; /* MR row pointers, already at the K block (GEMM) */
  const FN(conv_rows) * conv; /* or taps (convolution) */
  int64_t acs;           /* A column stride */
  const float* b;        /* packed panel at the K block */
  int64_t kc;
  float* c;
  int64_t ldc;
  int accumulate;        /* add to C (a K block after the first) */
  const epi_t* epi;      /* last K block only; may be NULL */
  const epi_simple* es;  /* with epi: its simple form, applied in registers, or NULL */
  const epi_row* er;     /* with epi: its epi_row form (tile_finish's one pass), or NULL */
  const float* pf;       /* prefetched alongside B (laid out like b), or NULL */
  int pf_one;            /* prefetch only the first cache line of each pf row */
  int64_t r0, c0;        /* output position (epilogue operands) */
} FN(tile_args);

/* A tile whose accumulators were spilled to t[MR][NR]: add C, epilogue, store. */
static KV_ATTR __attribute__((noinline)) void FN(tile_finish)(float* t, const FN(tile_args) * x,
                                                              int64_t mr, int64_t nr) {
  if (x->er && x->epi->n) {
    /* One pass (a bias and a GELU were four over the tile). */
    FN(epi_row_store)(x->er, t, 0, x->accumulate, x->c, x->ldc, mr, nr, x->r0, x->c0);
    return;
  }
  if (x->accumulate) {
    int64_t nv = cdiv(nr, VW);
    for (int64_t i = 0; i < mr; i++)
      for (int64_t j = 0; j < nv; j++) {
        const float* cp = x->c + i * x->ldc + j * VW;
        V cv = (j + 1) * VW <= nr ? FN(vld)(cp) : FN(vld_n)(cp, nr - j * VW);
        FN(vst)(t + i * NR + j * VW, FN(vld)(t + i * NR + j * VW) + cv);
      }
  }
  if (x->epi && x->epi->n) FN(epi_apply)(x->epi, t, NR, mr, nr, x->r0, x->c0);
  FN(tile_store)(t, NR, x->c, x->ldc, mr, nr);
}

/* acc[i][j] += A(i, k) B(k, j) for one k: A(i, k) = ap[i][ka], B row k at b. */
KF void FN(kstep)(const int mr, const int nv, V acc[MR][NRV], const float* const* ap, int64_t ka,
                  const float* b) {
  V bv[NRV];
#pragma unroll
  for (int j = 0; j < NRV; j++)
    if (j < nv) bv[j] = FN(vld)(b + j * VW);
#pragma unroll
  for (int i = 0; i < MR; i++)
    if (i < mr) {
      V av = (V)ap[i][ka];
#pragma unroll
      for (int j = 0; j < NRV; j++)
        if (j < nv) acc[i][j] = av * bv[j] + acc[i][j];
    }
}

/* Sets 1 .. ch - 1 of kloop's partial sums: zeroed, or added into acc. */
KF void FN(kparts)(const int mr, const int nv, const int ch, V part[4][MR][NRV], V acc[MR][NRV],
                   const int add) {
#pragma unroll
  for (int c = 1; c < 4; c++)
#pragma unroll
    for (int i = 0; i < MR; i++)
#pragma unroll
      for (int j = 0; j < NRV; j++)
        if (c < ch && i < mr && j < nv) {
          if (add)
            acc[i][j] += part[c][i][j];
          else
            part[c][i][j] = (V)0.0f;
        }
}

/* acc[i][j] += sum_k A(i, k) B(k, j) over kc steps: A(i, k) = a[i][k*acs],
 * B row k at b + k*NR. mr and nv are constants after inlining, so acc lives
 * in registers. A one-row tile has fewer than 8 accumulators (2 vectors on
 * AVX2, 4 on AVX-512) and would wait for the FMA latency every k step
 * (latency-bound where B comes from a cache), so with `chains` (tiles that
 * do not prefetch) consecutive k steps add into 2 or 4 independent sets,
 * summed at the end. Only full-width one-row tiles: the sets multiply the
 * code of every tile shape they apply to, and the kernels are compiled per
 * artifact. Tiles that prefetch B stream it from memory, where the sets
 * measured slower (see gemm_block). */
KF void FN(kloop)(const int mr, const int nv, const int chains, V acc[MR][NRV],
                  const float* const* a, int64_t acs, const float* b, int64_t kc, const float* pf,
                  const int pf_lines) {
  /* pf: a stream to prefetch alongside B (NR floats per k step), or NULL
   * (a constant after inlining: the common specializations have no
   * prefetch instructions at all); only with one set (chains is 0). */
  const float* ap[MR];
#pragma unroll
  for (int i = 0; i < MR; i++) ap[i] = i < mr ? a[i] : a[0];
  const int ch = !chains || mr > 1 || nv < NRV ? 1 : nv >= 4 ? 2 : 4;
  V part[4][MR][NRV]; /* sets 1 .. ch - 1 (set 0 is acc) */
  FN(kparts)(mr, nv, ch, part, acc, 0);
  int64_t ka = 0, k = 0;
  for (; k + ch <= kc; k += ch) {
    FN(kstep)(mr, nv, acc, ap, ka, b);
#pragma unroll
    for (int c = 1; c < 4; c++)
      if (c < ch) FN(kstep)(mr, nv, part[c], ap, ka + c * acs, b + c * NR);
    if (pf) {
#pragma unroll
      for (int l = 0; l < pf_lines; l++) __builtin_prefetch(pf + l * 16, 0, 2);
      pf += NR;
    }
    b += ch * NR;
    ka += ch * acs;
  }
  for (; ch > 1 && k < kc; k++) { /* the last kc % ch steps */
    FN(kstep)(mr, nv, acc, ap, ka, b);
    b += NR;
    ka += acs;
  }
  FN(kparts)(mr, nv, ch, part, acc, 1);
}

/* The micro-kernel for a tile computed as mr rows x nv vectors (constants
 * after inlining; rows past the `rows` valid ones repeat row 0 and are not
 * stored), `nr` valid columns (<= nv * VW). */
KF void FN(tile_fixed)(const int mr, const int nv, const int prefetch, const FN(tile_args) * x,
                       int64_t rows, int64_t nr) {
  V acc[MR][NRV];
#pragma unroll
  for (int i = 0; i < MR; i++)
#pragma unroll
    for (int j = 0; j < NRV; j++) acc[i][j] = (V)0.0f;
  /* One pass for a GEMM; one per tap for a convolution (the rows move). */
  const FN(conv_rows)* cr = x->conv;
  const int64_t passes = cr ? cr->ntaps : 1;
  const int64_t tstep = cr ? cr->tstep : 1;
  /* Tap t = (ky, kx), kept as counters (a division per tap was a visible
   * share of the per-tap row setup of small-channel convolutions). */
  int64_t ky = 0, kx = 0;
  for (int64_t t = 0; t < passes; t += tstep) {
    const float* rp[MR];
    const float* const* a = x->a;
    const float* b = x->b;
    if (cr) {
      if (t) {
        kx += tstep;
        while (kx >= cr->kw) {
          kx -= cr->kw;
          ky++;
        }
      }
      int64_t oy = ky * cr->dh, ox = kx * cr->dw;
      int any = 0;
#pragma unroll
      for (int i = 0; i < MR; i++) {
        int64_t ih = cr->ih0[i] + oy, iw = cr->iw0[i] + ox;
        int ok = (uint64_t)ih < (uint64_t)cr->h && (uint64_t)iw < (uint64_t)cr->w;
        any |= ok;
        rp[i] = ok ? cr->img[i] + (ih * cr->w + iw) * cr->xs + cr->coff : kiln_zero_row;
      }
      if (!any) continue; /* the whole tile reads padding: nothing to add */
      a = rp;
      b += t * cr->bstep;
    }
    const float* pf = prefetch ? x->pf + (cr ? t * cr->bstep : 0) : 0;
    FN(kloop)(mr, nv, !prefetch, acc, a, x->acs, b, x->kc * tstep, pf, prefetch == 2 ? 1 : PF_LINES);
  }
  int epi = x->epi && x->epi->n;
  if (rows == mr && (!epi || x->es)) {
    /* All rows valid, no epilogue or a simple one: straight from registers;
     * the last vector of a narrow tile (nr < nv * VW columns) through
     * masked loads and stores. Everything the stores need is read into
     * locals first: the kernels are built without strict aliasing, so
     * fields read through x or es after a store to C would be reloaded
     * (and their tests repeated) for every vector, which cost as much as
     * the K loop of a 1x1 convolution with 16 input channels. */
    const epi_simple* es = epi ? x->es : 0;
    const int64_t tail = nr - (nv - 1) * VW; /* valid lanes of the last vector */
    float* const c = x->c;
    const int64_t ldc = x->ldc;
    const int accumulate = x->accumulate;
    const float* const bias = es && es->bias ? es->bias + x->c0 : 0;
    const float* const res = es && es->residual ? es->residual + x->r0 * es->ld + x->c0 : 0;
    const int64_t rld = es ? es->ld : 0;
    const int act = es ? es->act : 0;
    const V lo = (V)(es ? es->lo : 0.0f), hi = (V)(es ? es->hi : 0.0f);
#define TILE_LD(p) (whole ? FN(vld)(p) : FN(vld_n)(p, n))
    V bv[NRV];
#pragma unroll
    for (int j = 0; j < NRV; j++)
      if (j < nv) {
        const int whole = j < nv - 1 || tail == VW;
        const int64_t n = whole ? VW : tail;
        bv[j] = bias ? TILE_LD(bias + j * VW) : (V)0.0f;
      }
#pragma unroll
    for (int i = 0; i < MR; i++)
      if (i < mr)
#pragma unroll
        for (int j = 0; j < NRV; j++)
          if (j < nv) {
            const int whole = j < nv - 1 || tail == VW;
            const int64_t n = whole ? VW : tail;
            float* cp = c + i * ldc + j * VW;
            V v = accumulate ? acc[i][j] + TILE_LD(cp) : acc[i][j];
            if (bias) v += bv[j];
            if (res) v += TILE_LD(res + i * rld + j * VW);
            if (act == 1) v = v < 0.0f ? (V)0.0f : v;
            if (act == 2) {
              v = v < lo ? lo : v;
              v = v > hi ? hi : v;
            }
            if (whole)
              FN(vst)(cp, v);
            else
              FN(vst_n)(cp, v, n);
          }
#undef TILE_LD
    return;
  }
  float t[MR * NR] __attribute__((aligned(64)));
#pragma unroll
  for (int i = 0; i < MR; i++)
    if (i < mr)
#pragma unroll
      for (int j = 0; j < NRV; j++)
        if (j < nv) FN(vst)(t + i * NR + j * VW, acc[i][j]);
  FN(tile_finish)(t, x, rows, nr);
}

/* Dispatch to a specialization: rows are computed in groups of 1, 2, 4 or
 * MR (fewer specializations to compile; at most a few wasted rows per
 * column of tiles), vectors exactly. */
static KV_ATTR void FN(tile)(int64_t rows, int64_t nr, const FN(tile_args) * x) {
  int nv = (int)cdiv(nr, VW);
  _Static_assert(MR > 4 && MR <= 8 && NRV <= 4, "tile dispatch covers these shapes");
  int mr = rows == 1 ? 1 : rows == 2 ? 2 : rows <= 4 ? 4 : MR;
  switch (mr * 8 + nv) {
#define TILE_CASE(M_, V_) \
  case M_ * 8 + V_:       \
    if (V_ <= NRV) FN(tile_fixed)(M_, V_, 0, x, rows, nr); \
    return;
#define TILE_ROW(M_) TILE_CASE(M_, 1) TILE_CASE(M_, 2) TILE_CASE(M_, 3) TILE_CASE(M_, 4)
    TILE_ROW(1) TILE_ROW(2) TILE_ROW(4) TILE_ROW(MR)
#undef TILE_ROW
#undef TILE_CASE
    default: __builtin_unreachable();
  }
}

/* Full-width tiles that also prefetch x->pf (see gemm_block); others go
 * to tile(). */
static KV_ATTR void FN(tile_pf)(int64_t rows, int64_t nr, const FN(tile_args) * x) {
  if (nr != NR || !x->pf || (x->pf_one && rows < MR)) {
    FN(tile)(rows, nr, x);
    return;
  }
  if (x->pf_one) {
    FN(tile_fixed)(MR, NRV, 2, x, rows, nr);
    return;
  }
  if (rows == 1)
    FN(tile_fixed)(1, NRV, 1, x, rows, nr);
  else if (rows == 2)
    FN(tile_fixed)(2, NRV, 1, x, rows, nr);
  else if (rows <= 4)
    FN(tile_fixed)(4, NRV, 1, x, rows, nr);
  else
    FN(tile_fixed)(MR, NRV, 1, x, rows, nr);
}

/* ---- the GEMM driver ---- */

typedef struct FN(gemm_job) {
  const float* a;
  int64_t rs, cs; /* A(i, k) = a[i*rs + k*cs] */
  const float* b; /* packed gemm_b */
  float* c;
  int64_t ldc;
  int64_t m, n, k, kc, nc;
  const epi_t* epi;
  int64_t tm, tn; /* task grid */
  int64_t batch, per_task_batches; /* batched split (tm = tn = 1) */
  int64_t a_bs, b_bs, c_bs;
  const epi_t* epi_base;
} FN(gemm_job);

/* Row pointers of the tile at row i (mr valid rows; the others repeat row
 * i), at K offset pc. */
KF void FN(gemm_rows)(const FN(gemm_job) * g, const float** rows, int64_t i, int64_t mr,
                      int64_t pc) {
  for (int r = 0; r < MR; r++) rows[r] = g->a + (i + (r < mr ? r : 0)) * g->rs + pc * g->cs;
}

/* Rows [m0, m1) x panels [p0, p1) of one GEMM.
 *
 * Few rows (at most GEMM_FEW_TILES tiles: GEMV, small batches): B is the
 * big stream and is read once, panel by panel, in K blocks small enough for
 * L1; every row tile consumes a block while it is there. More rows: Goto's
 * order, a KC x NC block of B in L2 reused by every row tile. */
#define GEMM_FEW_TILES 3
#define GEMM_B_FLOAT_COST 8.0
#define GEMM_PF_ONE_ROW (16.0 * 1024 * 1024)
static KV_ATTR void FN(gemm_block)(const FN(gemm_job) * g, const epi_t* epi, int64_t m0,
                                   int64_t m1, int64_t p0, int64_t p1) {
  const int64_t K = g->k;
  epi_simple es;
  epi_row er;
  int simple = epi && epi_simple_of(epi, &es), row = epi && epi_row_of(epi, &er);
  FN(tile_args) x;
  x.conv = 0;
  x.pf = 0;
  x.pf_one = 0;
  x.acs = g->cs;
  x.ldc = g->ldc;
  const float* rows[MR];
  x.a = rows;
  if (m1 - m0 <= GEMM_FEW_TILES * MR) {
    /* K blocks of 32 KiB of B panel; the first row tile of a block prefetches
     * (into L2) the block two ahead, so memory streams while the other row
     * tiles compute from L1. Measured on Sapphire Rapids: GEMV 1x11008x4096
     * from 14 to 12 ms, 16x11008x4096 from 29 to 21 ms (ONNX Runtime: 12
     * and 17 ms). A single row leaves B to the hardware prefetchers (and
     * its tiles take kloop's independent sums), except on the 16-lane
     * variant with B of GEMM_PF_ONE_ROW or more, where the Sapphire Rapids
     * gain above was measured: with no other row tile computing while B
     * streams, the prefetches, as many as the tile's loads, only compete
     * with the hardware's (on a Zen 4 they slowed the AVX-512 one-row
     * product from L3 and the AVX2 one from memory; the AVX-512 one from
     * memory was the same either way). */
    const int64_t kc = KMAX(16, 32768 / (NR * 4));
    const int pf_rows =
        m1 - m0 > 1 || (KV_W == 16 && (double)g->k * (double)g->n * 4.0 >= GEMM_PF_ONE_ROW);
    for (int64_t p = p0; p < p1; p++) {
      int64_t nr = KMIN(NR, g->n - p * NR);
      int64_t pc = 0;
      do {
        int64_t kcb = KMIN(kc, K - pc);
        x.kc = kcb;
        x.accumulate = pc > 0;
        x.epi = pc + kcb >= K ? epi : 0;
        x.es = x.epi && simple ? &es : 0;
        x.er = x.epi && row ? &er : 0;
        x.b = g->b + p * K * NR + pc * NR;
        x.c0 = p * NR;
        int64_t ahead = pc + 2 * kc < K && pf_rows ? 2 * kc : 0;
        for (int64_t i = m0; i < m1; i += MR) {
          int64_t mr = KMIN(MR, m1 - i);
          FN(gemm_rows)(g, rows, i, mr, pc);
          x.r0 = i;
          x.c = g->c + i * g->ldc + p * NR;
          x.pf = i == m0 && ahead ? x.b + ahead * NR : 0;
          FN(tile_pf)(mr, nr, &x);
        }
        x.pf = 0;
        pc += kcb;
      } while (pc < K);
    }
    return;
  }
  const int64_t kc = g->kc, ncp = KMAX(1, g->nc / NR);
  int64_t pc = 0;
  do {
    int64_t kcb = KMIN(kc, K - pc);
    x.kc = kcb;
    x.accumulate = pc > 0;
    x.epi = pc + kcb >= K ? epi : 0;
    x.es = x.epi && simple ? &es : 0;
    x.er = x.epi && row ? &er : 0;
    for (int64_t jp = p0; jp < p1; jp += ncp) {
      int64_t jpe = KMIN(jp + ncp, p1);
      for (int64_t i = m0; i < m1; i += MR) {
        int64_t mr = KMIN(MR, m1 - i);
        FN(gemm_rows)(g, rows, i, mr, pc);
        x.r0 = i;
        for (int64_t p = jp; p < jpe; p++) {
          x.b = g->b + p * K * NR + pc * NR;
          x.c = g->c + i * g->ldc + p * NR;
          x.c0 = p * NR;
          FN(tile)(mr, KMIN(NR, g->n - p * NR), &x);
        }
      }
    }
    pc += kcb;
  } while (pc < K);
}

static KV_ATTR void FN(gemm_task)(void* data, int64_t begin, int64_t end) {
  const FN(gemm_job)* g = (const FN(gemm_job)*)data;
  int64_t mt = cdiv(g->m, MR), np = cdiv(g->n, NR);
  for (int64_t t = begin; t < end; t++) {
    int64_t ti = t / g->tn, tj = t % g->tn;
    int64_t m0 = part_begin(mt, g->tm, ti) * MR, m1 = KMIN(g->m, part_begin(mt, g->tm, ti + 1) * MR);
    int64_t p0 = part_begin(np, g->tn, tj), p1 = part_begin(np, g->tn, tj + 1);
    if (m0 < m1 && p0 < p1) FN(gemm_block)(g, g->epi, m0, m1, p0, p1);
  }
}

/* Whole GEMMs of a batch range (when batches outnumber threads). */
static KV_ATTR void FN(gemm_batch_task)(void* data, int64_t begin, int64_t end) {
  const FN(gemm_job)* g0 = (const FN(gemm_job)*)data;
  for (int64_t t = begin; t < end; t++) {
    int64_t b0 = part_begin(g0->batch, g0->per_task_batches, t);
    int64_t b1 = part_begin(g0->batch, g0->per_task_batches, t + 1);
    for (int64_t bi = b0; bi < b1; bi++) {
      FN(gemm_job) g = *g0;
      epi_t e;
      epi_for_batch(g0->epi_base, bi, &e);
      g.a += bi * g0->a_bs;
      g.b += bi * g0->b_bs;
      g.c += bi * g0->c_bs;
      FN(gemm_block)(&g, &e, 0, g.m, 0, cdiv(g.n, NR));
    }
  }
}

/* Chooses the task grid tm x tn (at most `tasks` tasks) with the most useful
 * parallelism: tasks times their balance, preferring column splits (each
 * thread then streams its own part of B). With row_slack > 0 the grid with
 * the most row parts among those within row_slack of the best is taken
 * instead: convolutions split their output pixels like the kernels before
 * and after them, so each thread reads rows its own core wrote (the pool
 * gives thread i the i-th range of tasks, task t being row part t / tn). */
static void FN(gemm_grid)(int64_t m, int64_t n, int64_t tasks, double row_slack, int64_t* tm,
                          int64_t* tn) {
  int64_t mt = cdiv(m, MR), np = cdiv(n, NR);
  double best = -1;
  *tm = *tn = 1;
  for (int pass = 0; pass < (row_slack > 0 ? 2 : 1); pass++) {
    double floor = best * (1.0 - row_slack) - 1e-9;
    for (int64_t a = 1; a <= KMIN(tasks, mt); a++) {
      int64_t b = KMIN(np, tasks / a); /* a row parts, b column parts */
      double e = (double)mt / (double)(a * cdiv(mt, a)) * (double)np / (double)(b * cdiv(np, b));
      double score = (double)(a * b) * e;
      if (pass == 1) {
        if (score >= floor) { /* a grows: the last one within the slack wins */
          *tm = a;
          *tn = b;
        }
      } else if (score > best + 1e-9 || (score > best - 1e-9 && b > *tn)) {
        best = score;
        *tm = a;
        *tn = b;
      }
    }
  }
}

/* Packs panels [p0, p1) of a runtime B (row-major, or transposed) as gemm_b. */
typedef struct FN(pack_job) {
  const float* b;
  int64_t ldb, trans, k, n;
  float* out;
} FN(pack_job);

static KV_ATTR void FN(pack_b_task)(void* data, int64_t p0, int64_t p1) {
  const FN(pack_job)* j = (const FN(pack_job)*)data;
  for (int64_t p = p0; p < p1; p++) {
    float* o = j->out + p * j->k * NR;
    int64_t c0 = p * NR, nc = KMIN(NR, j->n - c0);
    if (!j->trans) {
      for (int64_t kk = 0; kk < j->k; kk++) {
        const float* s = j->b + kk * j->ldb + c0;
        float* d = o + kk * NR;
        if (nc == NR) {
          for (int v = 0; v < NRV; v++) FN(vst)(d + v * VW, FN(vld)(s + v * VW));
        } else {
          for (int64_t c = 0; c < NR; c++) d[c] = c < nc ? s[c] : 0.0f;
        }
      }
    } else {
      for (int64_t c = 0; c < NR; c++) {
        const float* s = j->b + (c0 + c) * j->ldb;
        if (c < nc)
          for (int64_t kk = 0; kk < j->k; kk++) o[kk * NR + c] = s[kk];
        else
          for (int64_t kk = 0; kk < j->k; kk++) o[kk * NR + c] = 0.0f;
      }
    }
  }
}

static KV_ATTR void FN(pack_b)(const float* b, int64_t ldb, int64_t trans, int64_t k, int64_t n,
                               float* out) {
  FN(pack_job) j = {b, ldb, trans, k, n, out};
  int64_t np = cdiv(n, NR);
  int64_t t = par_tasks(2.0 * (double)k * (double)n, np);
  if (t <= 1)
    FN(pack_b_task)(&j, 0, np);
  else
    kiln_par_for(np, FN(pack_b_task), &j);
}

/* Runs one (already batch-offset) GEMM on the pool. */
static KV_ATTR void FN(gemm_run)(FN(gemm_job) * g) {
  if (g->m <= 0 || g->n <= 0) return;
  int64_t mt = cdiv(g->m, MR), np = cdiv(g->n, NR);
  /* Work: the FLOPs, plus the stream of B where few rows reuse it (a GEMV
   * is bound by reading B: GEMM_B_FLOAT_COST units per float, about 32 GB/s
   * at the shim's 64 units per ns), so a batch-1 layer of a few MB splits
   * its columns across threads. */
  double work = 2.0 * (double)g->m * (double)g->n * (double)g->k;
  if (g->m <= GEMM_FEW_TILES * MR) work += GEMM_B_FLOAT_COST * (double)g->n * (double)g->k;
  int64_t tasks = par_tasks(work, mt * np);
  FN(gemm_grid)(g->m, g->n, tasks, 0.0, &g->tm, &g->tn);
  if (g->tm * g->tn <= 1)
    FN(gemm_block)(g, g->epi, 0, g->m, 0, np);
  else
    kiln_par_for(g->tm * g->tn, FN(gemm_task), g);
}

KHIDDEN KV_ATTR void FN(kiln_k_gemm)(const int64_t* args) {
  FN(gemm_job) g;
  epi_t epi, eb;
  const float* a = (const float*)slot_p(args, KILN_GEMM_A);
  int64_t lda = slot_i(args, KILN_GEMM_LDA);
  int64_t a_trans = slot_i(args, KILN_GEMM_A_TRANS);
  const float* b = (const float*)slot_p(args, KILN_GEMM_B);
  int64_t ldb = slot_i(args, KILN_GEMM_LDB);
  int64_t bfmt = slot_i(args, KILN_GEMM_B_FORMAT);
  int64_t batch = slot_i(args, KILN_GEMM_BATCH);
  float* scratch = (float*)slot_p(args, KILN_GEMM_SCRATCH);
  epi_decode(args, KILN_GEMM_EPILOGUE, &epi);
  g.rs = a_trans ? 1 : lda;
  g.cs = a_trans ? lda : 1;
  g.c = (float*)slot_p(args, KILN_GEMM_C);
  g.ldc = slot_i(args, KILN_GEMM_LDC);
  g.m = slot_i(args, KILN_GEMM_M);
  g.n = slot_i(args, KILN_GEMM_N);
  g.k = slot_i(args, KILN_GEMM_K);
  g.kc = slot_i(args, KILN_GEMM_KC);
  g.nc = slot_i(args, KILN_GEMM_NC);
  if (g.kc <= 0) g.kc = KV_KC; /* the variant's default cache blocks */
  if (g.nc <= 0) g.nc = KV_NC;
  g.a_bs = slot_i(args, KILN_GEMM_A_BATCH_STRIDE);
  g.b_bs = slot_i(args, KILN_GEMM_B_BATCH_STRIDE);
  g.c_bs = slot_i(args, KILN_GEMM_C_BATCH_STRIDE);
  g.epi_base = &epi;
  if (g.m <= 0 || g.n <= 0 || batch <= 0) return;
  int64_t np = cdiv(g.n, NR);
  if (bfmt == 0) {
    int64_t tasks = par_tasks(2.0 * (double)g.m * (double)g.n * (double)g.k * (double)batch,
                              batch * cdiv(g.m, MR) * np);
    if (batch > 1 && tasks > 1 && batch >= tasks) {
      /* Many small GEMMs: whole GEMMs per task. */
      g.a = a;
      g.b = b;
      g.batch = batch;
      g.per_task_batches = tasks;
      kiln_par_for(tasks, FN(gemm_batch_task), &g);
      return;
    }
  }
  for (int64_t bi = 0; bi < batch; bi++) {
    FN(gemm_job) gb = g;
    epi_for_batch(&epi, bi, &eb);
    gb.epi = &eb;
    gb.a = a + bi * g.a_bs;
    gb.c = g.c + bi * g.c_bs;
    if (bfmt == 0) {
      gb.b = b + bi * g.b_bs;
    } else {
      /* A runtime B: packed once per distinct B. */
      if (bi == 0 || g.b_bs != 0) FN(pack_b)(b + bi * g.b_bs, ldb, bfmt == 2, g.k, g.n, scratch);
      gb.b = scratch;
    }
    FN(gemm_run)(&gb);
  }
}
