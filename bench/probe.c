/*
 * probe.c - the machine's own limits, for bench/suite.py: FMA peak and memory bandwidth.
 *
 *   cc -O3 -march=native -pthread bench/probe.c -o probe
 *   probe fma THREADS            -> {"probe":"fma","isa":"avx512","threads":2,"gflops":...}
 *   probe triad BYTES THREADS    -> {"probe":"triad","bytes":...,"threads":2,"gbs":...}
 *   probe read BYTES THREADS     -> {"probe":"read","bytes":...,"threads":2,"gbs":...}
 *
 * fma: every thread runs CHAINS independent chains of full-width vector FMAs (acc = acc * m + a).
 * A core with 2 FMA ports of 4-cycle latency needs at least 8 chains in flight to keep both ports
 * busy; 12 leave a margin and still fit the 16 vector registers of AVX2 (32 with AVX-512), so the
 * loop holds every accumulator in a register. FLOPs = 2 * vector width * FMAs. The ISA is the
 * widest the compiler was allowed (-march=native): AVX-512, else AVX2+FMA, else NEON, else scalar.
 *
 * triad: a[i] = b[i] + s * c[i] over three float arrays of BYTES in all, each thread on its own
 * slice (first-touched by that thread); 3 * 4 bytes per element, STREAM's convention (no
 * write-allocate traffic). read: a sum over one array of BYTES with 8 vector accumulators, the
 * pattern of a model streaming its weights (read-only). A footprint under the caches measures
 * the caches: the suite asks for each model's own footprint and for one far above the last-level
 * cache.
 *
 * Each reports the best of TRIALS trials of about 50 ms, all threads started together behind a
 * barrier. The rates count each thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), so they are the
 * hardware's limits even on a machine shared with other work, where wall time would measure the
 * load; the wall-clock rates (slowest thread) are reported too, as "..._wall".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec;
#define WIDTH 16
#define ISA "avx512"
#define VFMA(acc, m, a) _mm512_fmadd_ps(acc, m, a)
#define VSET(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_load_ps(p)
#define VADD(a, b) _mm512_add_ps(a, b)
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec;
#define WIDTH 8
#define ISA "avx2-fma"
#define VFMA(acc, m, a) _mm256_fmadd_ps(acc, m, a)
#define VSET(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_load_ps(p)
#define VADD(a, b) _mm256_add_ps(a, b)
static float vsum(vec v) {
  float t[8];
  _mm256_storeu_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#elif defined(__aarch64__)
#include <arm_neon.h>
typedef float32x4_t vec;
#define WIDTH 4
#define ISA "neon"
#define VFMA(acc, m, a) vfmaq_f32(a, acc, m)
#define VSET(x) vdupq_n_f32(x)
#define VLOAD(p) vld1q_f32(p)
#define VADD(a, b) vaddq_f32(a, b)
static float vsum(vec v) { return vaddvq_f32(v); }
#else
#include <math.h>
typedef float vec;
#define WIDTH 1
#define ISA "scalar"
#define VFMA(acc, m, a) fmaf(acc, m, a)
#define VSET(x) (x)
#define VLOAD(p) (*(p))
#define VADD(a, b) ((a) + (b))
static float vsum(vec v) { return v; }
#endif

#define CHAINS 12
#define TRIALS 20
#define TRIAL_S 0.05

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Read through a volatile so the compiler cannot constant-fold the chains away. */
static volatile float g_m = 0.9999999f, g_a = 1e-7f;
static volatile float g_sink;

typedef struct {
  int kind; /* 0 fma, 1 triad, 2 read */
  int64_t iters;
  pthread_barrier_t* start;
  double seconds;     /* per thread: wall time from the common start */
  double cpu_seconds; /* per thread: CPU time the thread used */
  /* triad slice */
  float *a, *b, *c;
  int64_t n;
  int reps;
} job;

static void fma_loop(int64_t iters) {
  vec m = VSET(g_m), a = VSET(g_a);
  vec acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = VSET((float)i);
  /* The inner loop has a constant trip count, so -O3 unrolls it and keeps every chain in a
   * register (checked: the loop body is 12 independent vfmadd231ps on distinct registers). */
  for (int64_t it = 0; it < iters; it++)
    for (int i = 0; i < CHAINS; i++) acc[i] = VFMA(acc[i], m, a);
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += vsum(acc[i]);
  g_sink = s;
}

static void triad(float* restrict a, const float* restrict b, const float* restrict c, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

/* A pure-read stream: the sum of n floats (n a multiple of 8 * WIDTH) with 8 accumulators. */
static float read_sum(const float* x, int64_t n) {
  vec acc[8];
  for (int k = 0; k < 8; k++) acc[k] = VSET(0.0f);
  for (int64_t i = 0; i < n; i += 8 * WIDTH)
    for (int k = 0; k < 8; k++) acc[k] = VADD(acc[k], VLOAD(x + i + k * WIDTH));
  float s = 0;
  for (int k = 0; k < 8; k++) s += vsum(acc[k]);
  return s;
}

static void* worker(void* p) {
  job* j = p;
  if (j->kind != 0) { /* first touch by the thread that will stream the slice */
    for (int64_t i = 0; i < j->n; i++) {
      j->a[i] = 0.0f;
      j->b[i] = 1.0f;
      j->c[i] = 2.0f;
    }
  }
  pthread_barrier_wait(j->start);
  double t0 = now(), c0 = cpu_now();
  if (j->kind == 0) {
    fma_loop(j->iters);
  } else if (j->kind == 1) {
    for (int r = 0; r < j->reps; r++) {
      triad(j->a, j->b, j->c, j->n, 3.0f + (float)r);
      __asm__ volatile("" ::: "memory"); /* every repetition really reads and writes memory */
    }
  } else {
    float s = 0;
    for (int r = 0; r < j->reps; r++) {
      s += read_sum(j->b, j->n);
      __asm__ volatile("" ::: "memory"); /* read_sum is pure: keep it from being hoisted */
    }
    g_sink = s;
  }
  j->seconds = now() - t0;
  j->cpu_seconds = cpu_now() - c0;
  return NULL;
}

/* Runs one trial on `threads` threads (equal work each). Returns the CPU-time equivalent of the
 * whole trial, threads / sum(1 / cpu seconds of each thread): the time it would take if every
 * thread had its core to itself; *wall gets the slowest thread's wall time. */
static double trial(job* proto, int threads, double* wall) {
  pthread_t tid[256];
  job jobs[256];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  for (int t = 0; t < threads; t++) {
    jobs[t] = *proto;
    jobs[t].start = &start;
    if (proto->kind != 0) {
      jobs[t].a = proto->a + t * proto->n;
      jobs[t].b = proto->b + t * proto->n;
      jobs[t].c = proto->c + t * proto->n;
    }
    if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) {
      fprintf(stderr, "probe: pthread_create failed\n");
      exit(1);
    }
  }
  double worst = 0, rate = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    if (jobs[t].seconds > worst) worst = jobs[t].seconds;
    rate += 1.0 / (jobs[t].cpu_seconds > 1e-9 ? jobs[t].cpu_seconds : 1e-9);
  }
  pthread_barrier_destroy(&start);
  *wall = worst;
  return threads / rate;
}

/* Doubles the work until one trial takes TRIAL_S, then returns the best CPU-time equivalent of
 * TRIALS trials; *wall gets the best wall time. */
static double best_time(job* j, int threads, int64_t* work, double* wall) {
  double w;
  for (double t = trial(j, threads, &w); t < TRIAL_S; t = trial(j, threads, &w)) {
    *work *= 2;
    if (j->kind == 0) j->iters = *work; else j->reps = (int)*work;
  }
  double best = 1e30;
  *wall = 1e30;
  for (int k = 0; k < TRIALS; k++) {
    double t = trial(j, threads, &w);
    if (t < best) best = t;
    if (w < *wall) *wall = w;
  }
  return best;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: probe fma THREADS | probe triad|read BYTES THREADS\n");
    return 2;
  }
  if (strcmp(argv[1], "fma") == 0) {
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 256) return 2;
    int64_t work = 100000;
    job j = {.kind = 0, .iters = work};
    double wall;
    double best = best_time(&j, threads, &work, &wall);
    double flops = 2.0 * WIDTH * CHAINS * (double)j.iters * threads;
    printf("{\"probe\":\"fma\",\"isa\":\"%s\",\"threads\":%d,\"chains\":%d,\"gflops\":%.2f,\"gflops_wall\":%.2f}\n",
           ISA, threads, CHAINS, flops / best / 1e9, flops / wall / 1e9);
    return 0;
  }
  int kind = strcmp(argv[1], "triad") == 0 ? 1 : strcmp(argv[1], "read") == 0 ? 2 : -1;
  if (kind > 0 && argc >= 4) {
    double bytes = atof(argv[2]);
    int threads = atoi(argv[3]);
    int arrays = kind == 1 ? 3 : 1;
    if (threads < 1 || threads > 256 || bytes < 4.0 * arrays * 8 * WIDTH * threads) return 2;
    int64_t per = (int64_t)(bytes / (4.0 * arrays) / threads);
    per -= per % (8 * WIDTH);
    float *a, *b, *c;
    size_t sz = (size_t)per * (size_t)threads * sizeof(float);
    if (posix_memalign((void**)&a, 64, sz) || posix_memalign((void**)&b, 64, sz) || posix_memalign((void**)&c, 64, sz)) {
      fprintf(stderr, "probe: out of memory\n");
      return 1;
    }
    int64_t work = 1;
    job j = {.kind = kind, .a = a, .b = b, .c = c, .n = per, .reps = 1};
    double wall;
    double best = best_time(&j, threads, &work, &wall);
    double footprint = 4.0 * arrays * (double)per * threads;
    g_sink = a[per / 2];
    printf("{\"probe\":\"%s\",\"bytes\":%.0f,\"threads\":%d,\"gbs\":%.2f,\"gbs_wall\":%.2f}\n", argv[1], footprint,
           threads, footprint * j.reps / best / 1e9, footprint * j.reps / wall / 1e9);
    free(a);
    free(b);
    free(c);
    return 0;
  }
  fprintf(stderr, "probe: unknown command '%s'\n", argv[1]);
  return 2;
}
