/*
 * common.h - what every kernel shares, independent of the variant: reading
 * argument slots, the parallel-for interface of the parallel shim, the
 * decoded epilogue, and work splitting.
 */
#ifndef KILN_COMMON_H
#define KILN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "kiln_kernels.h"

#define KHIDDEN __attribute__((visibility("hidden")))
#define KINLINE static inline __attribute__((always_inline))
#define KNOINLINE static __attribute__((noinline))
#define KCAT2(a, b) a##b
#define KCAT(a, b) KCAT2(a, b)
#define KMIN(a, b) ((a) < (b) ? (a) : (b))
#define KMAX(a, b) ((a) > (b) ? (a) : (b))
/* Makes an integer opaque to the optimizer (no instruction): a running
 * offset advanced by a runtime stride in an unrolled loop stays one add per
 * step instead of one loop-invariant multiple of the stride per step, which
 * at 30 steps no longer fits the registers. */
#define KOPAQUE_INT(x) __asm__("" : "+r"(x))

/* The parallel shim (src/parallel/shim.c). Inside a run, kiln_par_for runs
 * body over [0, n) split across the runtime's pool; elsewhere (and nested in
 * a chunk) it calls body(data, 0, n). kiln_par_threads is the number of
 * threads a kiln_par_for would use right now (1 when it would be serial);
 * kiln_par_min_work the work (in FLOP-like units, ~1 ns per 30 units) below
 * which splitting does not pay (0 when KILN_PARALLEL_MIN_US=0). */
typedef void (*kiln_par_body)(void* data, int64_t begin, int64_t end);
KHIDDEN void kiln_par_for(int64_t n, kiln_par_body body, void* data);
KHIDDEN int64_t kiln_par_threads(void);
KHIDDEN int64_t kiln_par_min_work(void);

KINLINE int64_t slot_i(const int64_t* a, int i) { return a[i]; }
KINLINE float slot_f(const int64_t* a, int i) {
  double d;
  __builtin_memcpy(&d, &a[i], sizeof d);
  return (float)d;
}
KINLINE void* slot_p(const int64_t* a, int i) { return (void*)(intptr_t)a[i]; }

/* How many parallel tasks to split `work` into: 1 unless the run has several
 * threads and the work is above the shim's threshold; then a few tasks per
 * thread when the work allows (the pool hands tasks out dynamically, so a
 * thread that is descheduled or has slower tiles does not hold the others
 * back), at most `max_tasks` (the number of independent pieces) and
 * KILN_MAX_SLOTS. */
#define KILN_TASKS_PER_THREAD 4
KINLINE int64_t par_tasks(double work, int64_t max_tasks) {
  int64_t t = kiln_par_threads();
  if (t <= 1 || max_tasks <= 1) return 1;
  double min = (double)kiln_par_min_work();
  if (work < min) return 1;
  if (work >= 2.0 * KILN_TASKS_PER_THREAD * (double)t * min) t *= KILN_TASKS_PER_THREAD;
  t = KMIN(t, KILN_MAX_SLOTS);
  return KMIN(t, max_tasks);
}

/* Ceil division and the [begin, end) piece `i` of `n` items split into `parts`. */
KINLINE int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
KINLINE int64_t part_begin(int64_t n, int64_t parts, int64_t i) { return n * i / parts; }

/* ---- Epilogue ---- */
typedef struct epi_op {
  int32_t code, kind;
  const float* ptr;
  int64_t ld, bstride;
  float p0, p1;
} epi_op;

typedef struct epi_t {
  int32_t n;
  epi_op op[KILN_EPI_MAX_OPS];
} epi_t;

/* Decodes the epilogue block at args[at]; extra ops beyond the maximum are
 * ignored (the Rust side refuses to build them). */
static void epi_decode(const int64_t* args, int at, epi_t* e) {
  int64_t n = args[at];
  if (n < 0) n = 0;
  if (n > KILN_EPI_MAX_OPS) n = KILN_EPI_MAX_OPS;
  e->n = (int32_t)n;
  for (int i = 0; i < n; i++) {
    int b = at + 1 + i * KILN_EPI_OP_SLOTS;
    epi_op* o = &e->op[i];
    o->code = (int32_t)slot_i(args, b + KILN_EPI_OP_CODE);
    o->kind = (int32_t)slot_i(args, b + KILN_EPI_OP_KIND);
    o->ptr = (const float*)slot_p(args, b + KILN_EPI_OP_PTR);
    o->ld = slot_i(args, b + KILN_EPI_OP_LD);
    o->bstride = slot_i(args, b + KILN_EPI_OP_BATCH_STRIDE);
    o->p0 = slot_f(args, b + KILN_EPI_OP_P0);
    o->p1 = slot_f(args, b + KILN_EPI_OP_P1);
  }
}

/* The epilogue of batch `b`: operand pointers advanced by their batch strides. */
static void epi_for_batch(const epi_t* e, int64_t b, epi_t* out) {
  *out = *e;
  for (int i = 0; i < e->n; i++)
    if (out->op[i].ptr) out->op[i].ptr += b * e->op[i].bstride;
}

/* Work units per element of an epilogue (transcendental ops cost more). */
static inline double epi_cost(const epi_t* e) {
  double w = 2;
  for (int i = 0; i < e->n; i++) w += e->op[i].code >= KILN_EPI_SIGMOID ? 24 : 2;
  return w;
}

/* The common ops at the end of a convolution (bias, residual, relu/clip),
 * recognized so kernels can apply them in registers. */
typedef struct epi_simple {
  const float* bias;     /* ADD ROW, or 0 */
  const float* residual; /* then ADD MAT, or 0 */
  int64_t ld;            /* of the residual */
  int act;               /* then 0 none, 1 relu, 2 clip(lo, hi) */
  float lo, hi;
} epi_simple;

/* The epilogues an int32 product (igemm) applies in one pass from its tile:
 * [mul imm|scalar]? [mul row]? [add row]? [add mat]? [unary]?
 * (dequantization by a tensor's and by column scales, a bias, a residual, an
 * activation), each op after the previous one. */
typedef struct epi_row {
  int smul_on;      /* MUL IMM or SCALAR: by smul */
  float smul;
  const float* mul; /* then MUL ROW, or 0 */
  const float* add; /* then ADD ROW, or 0 */
  const float* res; /* then ADD MAT, or 0 */
  int64_t ld;       /* of the residual */
  int32_t act;      /* then a unary KILN_EPI_* (p0, p1 its parameters), or 0 */
  float p0, p1;
} epi_row;

/* Whether `e` is of epi_row's form (fills s). */
static inline int epi_row_of(const epi_t* e, epi_row* s) {
  int i = 0;
  s->smul_on = 0;
  s->smul = 1.0f;
  s->mul = s->add = s->res = 0;
  s->ld = 0;
  s->act = 0;
  s->p0 = s->p1 = 0.0f;
  if (i < e->n && e->op[i].code == KILN_EPI_MUL &&
      (e->op[i].kind == KILN_OPND_IMM || e->op[i].kind == KILN_OPND_SCALAR)) {
    s->smul_on = 1;
    s->smul = e->op[i].kind == KILN_OPND_IMM ? e->op[i].p0 : e->op[i].ptr[0];
    i++;
  }
  if (i < e->n && e->op[i].code == KILN_EPI_MUL && e->op[i].kind == KILN_OPND_ROW)
    s->mul = e->op[i++].ptr;
  if (i < e->n && e->op[i].code == KILN_EPI_ADD && e->op[i].kind == KILN_OPND_ROW)
    s->add = e->op[i++].ptr;
  if (i < e->n && e->op[i].code == KILN_EPI_ADD && e->op[i].kind == KILN_OPND_MAT) {
    s->res = e->op[i].ptr;
    s->ld = e->op[i++].ld;
  }
  if (i < e->n && e->op[i].code >= KILN_EPI_RELU) {
    s->act = e->op[i].code;
    s->p0 = e->op[i].p0;
    s->p1 = e->op[i++].p1;
  }
  return i == e->n;
}

/* Whether `e` is exactly [add row]? [add mat]? [relu | clip]? (fills s): the
 * part of epi_row's form a tile finishes in registers. */
static inline int epi_simple_of(const epi_t* e, epi_simple* s) {
  epi_row r;
  if (!epi_row_of(e, &r) || r.smul_on || r.mul ||
      (r.act && r.act != KILN_EPI_RELU && r.act != KILN_EPI_CLIP))
    return 0;
  s->bias = r.add;
  s->residual = r.res;
  s->ld = r.ld;
  s->act = r.act == KILN_EPI_RELU ? 1 : r.act == KILN_EPI_CLIP ? 2 : 0;
  s->lo = r.act == KILN_EPI_CLIP ? r.p0 : 0.0f;
  s->hi = r.act == KILN_EPI_CLIP ? r.p1 : 0.0f;
  return 1;
}

/* A 2-D window: kernel, strides, dilations, pads (top, left, bottom, right). */
typedef struct kwin {
  int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
} kwin;

/* Reads the ten window slots starting at args[at] (KH ... PAD_RIGHT). */
static inline void window_decode(const int64_t* args, int at, kwin* w) {
  w->kh = args[at];
  w->kw = args[at + 1];
  w->sh = args[at + 2];
  w->sw = args[at + 3];
  w->dh = args[at + 4];
  w->dw = args[at + 5];
  w->pt = args[at + 6];
  w->pl = args[at + 7];
  w->pb = args[at + 8];
  w->pr = args[at + 9];
}

/* A zero row, for padding taps of convolutions (at least the largest channel
 * block a kernel reads through one pointer). */
#define KILN_ZERO_FLOATS 1024
static const float kiln_zero_row[KILN_ZERO_FLOATS] __attribute__((aligned(64)));

#endif
