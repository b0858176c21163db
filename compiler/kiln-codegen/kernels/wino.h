/*
 * wino.h - 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (template,
 * per variant; called by conv2d when the caller asks for it).
 *
 * Each 2x2 block of output pixels (a tile) is computed from the 4x4 input
 * patch under it: V = B^T d B per input channel, U = G g G^T per filter, then
 * for each of the 16 positions xi of the transformed 4x4 block one GEMM
 * M_xi[tile, o] = sum_c V_xi[tile, c] U_xi[c, o], and the outputs Y = A^T M A.
 * Sixteen products of K = Cin replace nine taps over four pixels: 2.25x
 * fewer multiplications, in the same micro-kernel as every other GEMM.
 *
 *        | 1  0 -1  0 |        | 1    0    0  |
 *  B^T = | 0  1  1  0 |    G = | 1/2  1/2  1/2|    A^T = | 1 1  1  0 |
 *        | 0 -1  1  0 |        | 1/2 -1/2  1/2|          | 0 1 -1 -1 |
 *        | 0  1  0 -1 |        | 0    0    1  |
 *
 * The weights arrive packed as `conv_nhwc` and are transformed per call into
 * scratch as 16 `gemm_b` operands (a few percent of the products' work on the
 * layers this is chosen for). Tiles are then processed in chunks of `tc`
 * (chosen by the caller, `abi::wino_chunk_tiles`, so that a chunk's
 * transformed input V and products M stay in one core's L2): one task runs a
 * chunk from input transform through its 16 products to the stored outputs,
 * so a convolution synchronizes its threads twice (after the weights, at the
 * end). Concurrent tasks use separate slots of V and M: task k of `tasks`
 * (at most WINO_SLOTS) runs the k-th run of consecutive chunks in slot k. Scratch
 * (floats, each part rounded up to 16): U 16 * np * Cin * NR, then per slot
 * V 16 * tc * CinP (CinP = Cin rounded up to VW) and M 16 * tc * np * NR;
 * slots = min(chunks, WINO_SLOTS).
 *
 * Exactness: the transforms are exact in binary (halves), so results differ
 * from the direct convolution only by rounding order (a few ulp of the
 * largest partial sums).
 */

#define WINO_SLOTS KILN_WINO_SLOTS
#define WINO_SEG 8 /* tiles per output-transform segment (stack buffer 2 x 16 x NR floats) */

typedef struct FN(wino_job) {
  const FN(conv_job) * j;
  float* u;
  float* slots; /* slot k at slots + k * slot_floats: V then M */
  int64_t cinp, ldm, tc, slot_floats, v_floats;
  int64_t th, tw, tiles, chunks;
  int64_t tasks; /* of the current phase */
  epi_row er;    /* the epilogue in epi_row's form, when er_ok */
  int er_ok;
  FN(gemm_job) g; /* a product's shape (a, b, c set per product) */
} FN(wino_job);

KF int64_t FN(wino_round)(int64_t floats) { return (floats + 15) / 16 * 16; }

/* U[xi][p][c][:] = (G g G^T)[xi] for panels of task range [b, e). */
static KV_ATTR void FN(wino_weights_task)(void* data, int64_t b, int64_t e) {
  const FN(wino_job)* w = (const FN(wino_job)*)data;
  const FN(conv_job)* j = w->j;
  const int64_t cin = j->cin_g, np = j->np;
  int64_t p0 = part_begin(np, w->tasks, b), p1 = part_begin(np, w->tasks, e);
  for (int64_t p = p0; p < p1; p++)
    for (int64_t c = 0; c < cin; c++)
      for (int vv = 0; vv < NRV; vv++) {
        V g[3][3], t[4][3];
        for (int kh = 0; kh < 3; kh++)
          for (int kw = 0; kw < 3; kw++)
            g[kh][kw] = FN(vld)(j->wt + (p * j->kg + (kh * 3 + kw) * cin + c) * NR + vv * VW);
        for (int kw = 0; kw < 3; kw++) {
          t[0][kw] = g[0][kw];
          t[1][kw] = (g[0][kw] + g[1][kw] + g[2][kw]) * 0.5f;
          t[2][kw] = (g[0][kw] - g[1][kw] + g[2][kw]) * 0.5f;
          t[3][kw] = g[2][kw];
        }
        for (int a = 0; a < 4; a++) {
          V r[4];
          r[0] = t[a][0];
          r[1] = (t[a][0] + t[a][1] + t[a][2]) * 0.5f;
          r[2] = (t[a][0] - t[a][1] + t[a][2]) * 0.5f;
          r[3] = t[a][2];
          for (int bb = 0; bb < 4; bb++)
            FN(vst)(w->u + (((a * 4 + bb) * np + p) * cin + c) * NR + vv * VW, r[bb]);
        }
      }
}

/* Tile t -> image, tile row, tile column. */
KF void FN(wino_tile)(const FN(wino_job) * w, int64_t t, int64_t* img, int64_t* ty, int64_t* tx) {
  *img = t / (w->th * w->tw);
  int64_t rem = t - *img * w->th * w->tw;
  *ty = rem / w->tw;
  *tx = rem - *ty * w->tw;
}

/* V[xi][r][:] = (B^T d B)[xi] for tiles t0 + r, r < tcn. */
static KV_ATTR void FN(wino_input)(const FN(wino_job) * w, float* v, int64_t t0, int64_t tcn) {
  const FN(conv_job)* j = w->j;
  const int64_t cin = j->cin_g, xstep = w->tc * w->cinp;
  for (int64_t r = 0; r < tcn; r++) {
    int64_t img, ty, tx;
    FN(wino_tile)(w, t0 + r, &img, &ty, &tx);
    int64_t iy0 = 2 * ty - j->win.pt, ix0 = 2 * tx - j->win.pl;
    const float* src[4][4];
    for (int a = 0; a < 4; a++)
      for (int s = 0; s < 4; s++) {
        int64_t iy = iy0 + a, ix = ix0 + s;
        int ok = (uint64_t)iy < (uint64_t)j->h && (uint64_t)ix < (uint64_t)j->w;
        src[a][s] = ok ? j->x + ((img * j->h + iy) * j->w + ix) * j->xs : 0;
      }
    float* out = v + r * w->cinp;
    for (int64_t c = 0; c < cin; c += VW) {
      const int64_t n = KMIN((int64_t)VW, cin - c);
      V d[4][4], u[4][4];
      for (int a = 0; a < 4; a++)
        for (int s = 0; s < 4; s++)
          d[a][s] = !src[a][s] ? (V)0.0f
                    : n == VW  ? FN(vld)(src[a][s] + c)
                               : FN(vld_n)(src[a][s] + c, n);
      for (int s = 0; s < 4; s++) {
        u[0][s] = d[0][s] - d[2][s];
        u[1][s] = d[1][s] + d[2][s];
        u[2][s] = d[2][s] - d[1][s];
        u[3][s] = d[1][s] - d[3][s];
      }
      for (int a = 0; a < 4; a++) {
        float* o = out + (int64_t)(a * 4) * xstep + c;
        FN(vst)(o, u[a][0] - u[a][2]);
        FN(vst)(o + xstep, u[a][1] + u[a][2]);
        FN(vst)(o + 2 * xstep, u[a][2] - u[a][1]);
        FN(vst)(o + 3 * xstep, u[a][1] - u[a][3]);
      }
    }
  }
}

/* Y = A^T M A for tiles t0 + r, r < tcn, segment by segment of one tile row,
 * then the epilogue and the store. */
static KV_ATTR void FN(wino_output)(const FN(wino_job) * w, const float* m, int64_t t0,
                                    int64_t tcn) {
  const FN(conv_job)* j = w->j;
  const int64_t xstep = w->tc * w->ldm;
  float buf[2 * 2 * WINO_SEG * NR] __attribute__((aligned(64)));
  int64_t r = 0;
  while (r < tcn) {
    int64_t img, ty, tx;
    FN(wino_tile)(w, t0 + r, &img, &ty, &tx);
    int64_t seg = KMIN(KMIN((int64_t)WINO_SEG, w->tw - tx), tcn - r);
    int64_t oy = 2 * ty, ox = 2 * tx;
    int64_t npx = KMIN(2 * seg, j->ow - ox); /* valid pixels per output row */
    for (int64_t p = 0; p < j->np; p++) {
      int64_t ncols = KMIN((int64_t)NR, j->cout_g - p * NR);
      for (int64_t s = 0; s < seg; s++) {
        const float* mp = m + (r + s) * w->ldm + p * NR;
        for (int vv = 0; vv < NRV; vv++) {
          V q[4][4], s0[4], s1[4];
          for (int xi = 0; xi < 16; xi++) q[xi / 4][xi % 4] = FN(vld)(mp + xi * xstep + vv * VW);
          for (int c = 0; c < 4; c++) {
            s0[c] = q[0][c] + q[1][c] + q[2][c];
            s1[c] = q[1][c] - q[2][c] - q[3][c];
          }
          float* o0 = buf + (2 * s) * NR + vv * VW;
          float* o1 = buf + (2 * WINO_SEG + 2 * s) * NR + vv * VW;
          FN(vst)(o0, s0[0] + s0[1] + s0[2]);
          FN(vst)(o0 + NR, s0[1] - s0[2] - s0[3]);
          FN(vst)(o1, s1[0] + s1[1] + s1[2]);
          FN(vst)(o1 + NR, s1[1] - s1[2] - s1[3]);
        }
      }
      for (int row = 0; row < 2 && oy + row < j->oh; row++) {
        float* tb = buf + row * 2 * WINO_SEG * NR;
        int64_t pix = (img * j->oh + oy + row) * j->ow + ox;
        float* y = j->y + pix * j->ys + p * NR;
        if (w->er_ok) {
          /* One pass per MR pixels (epi_apply + tile_store were one per op
           * and one more: SqueezeNet's bias + ReLU, 5% of its time). */
          for (int64_t q = 0; q < npx; q += MR)
            FN(epi_row_store)(&w->er, tb + q * NR, 0, 0, y + q * j->ys, j->ys,
                              KMIN((int64_t)MR, npx - q), ncols, pix + q, p * NR);
          continue;
        }
        if (j->epi && j->epi->n) FN(epi_apply)(j->epi, tb, NR, npx, ncols, pix, p * NR);
        FN(tile_store)(tb, NR, y, j->ys, npx, ncols);
      }
    }
    r += seg;
  }
}

/* Task k: the k-th of `tasks` runs of chunks, in slot k, each chunk from
 * input to output. */
static KV_ATTR void FN(wino_chunk_task)(void* data, int64_t b, int64_t e) {
  const FN(wino_job)* w = (const FN(wino_job)*)data;
  const int64_t np = w->j->np;
  for (int64_t k = b; k < e; k++) {
    float* v = w->slots + k * w->slot_floats;
    float* m = v + w->v_floats;
    int64_t c0 = part_begin(w->chunks, w->tasks, k), c1 = part_begin(w->chunks, w->tasks, k + 1);
    for (int64_t c = c0; c < c1; c++) {
      int64_t t0 = c * w->tc, tcn = KMIN(w->tc, w->tiles - t0);
      FN(wino_input)(w, v, t0, tcn);
      FN(gemm_job) g = w->g;
      g.m = tcn;
      for (int xi = 0; xi < 16; xi++) {
        g.a = v + xi * w->tc * w->cinp;
        g.b = w->u + xi * np * w->j->cin_g * NR;
        g.c = m + xi * w->tc * w->ldm;
        FN(gemm_block)(&g, 0, 0, tcn, 0, np);
      }
      FN(wino_output)(w, m, t0, tcn);
    }
  }
}

/* Runs the convolution of `j` (3x3, stride 1, dilation 1, one group) by
 * F(2x2, 3x3) in chunks of `tc` tiles, with `scratch` as laid out above. */
static KV_ATTR void FN(conv_wino)(const FN(conv_job) * j, int64_t tc, float* scratch) {
  FN(wino_job) w;
  const int64_t cin = j->cin_g, np = j->np;
  w.j = j;
  w.th = cdiv(j->oh, 2);
  w.tw = cdiv(j->ow, 2);
  w.tiles = j->n * w.th * w.tw;
  w.tc = tc;
  w.chunks = cdiv(w.tiles, tc);
  w.cinp = cdiv(cin, VW) * VW;
  w.ldm = np * NR;
  w.u = scratch;
  w.er_ok = j->epi && j->epi->n && epi_row_of(j->epi, &w.er);
  w.v_floats = FN(wino_round)(16 * tc * w.cinp);
  w.slot_floats = w.v_floats + FN(wino_round)(16 * tc * w.ldm);
  w.slots = w.u + FN(wino_round)(16 * np * cin * NR);
  /* 1. The weights. */
  w.tasks = par_tasks(16.0 * 12.0 * (double)np * (double)cin * (double)NR, np);
  if (w.tasks <= 1) {
    w.tasks = 1;
    FN(wino_weights_task)(&w, 0, 1);
  } else {
    kiln_par_for(w.tasks, FN(wino_weights_task), &w);
  }
  /* 2. The chunks. */
  w.g.rs = w.cinp;
  w.g.cs = 1;
  w.g.ldc = w.ldm;
  w.g.n = j->cout_g;
  w.g.k = cin;
  w.g.kc = KV_KC;
  w.g.nc = KV_NC;
  w.g.epi = 0;
  double work = 32.0 * (double)w.tiles * (double)w.ldm * (double)cin;
  w.tasks = par_tasks(work, KMIN(w.chunks, (int64_t)WINO_SLOTS));
  if (w.tasks <= 1) {
    w.tasks = 1;
    FN(wino_chunk_task)(&w, 0, 1);
  } else {
    kiln_par_for(w.tasks, FN(wino_chunk_task), &w);
  }
}
