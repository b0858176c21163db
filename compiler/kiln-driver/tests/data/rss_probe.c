/*
 * Runs a Kiln artifact many times on zero inputs and reports how much the
 * process's resident memory grew, to catch temporaries that compiled code
 * allocates and never frees.
 *
 *   rss_probe ARTIFACT.so WARMUP RUNS
 *
 * Prints "rss_growth_kib=N" on success, N being the growth of the resident
 * set between the end of the warm-up (allocator caches settle during it)
 * and the end of the measured runs. Exits 1 with a message on any runtime
 * error.
 * Built and run by compiler/kiln-driver/tests/driver.rs.
 */
#include "kiln.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static kiln_tensor* make_tensors(kiln_model* model, uint32_t n, int outputs) {
  kiln_tensor* t = calloc(n ? n : 1, sizeof(kiln_tensor));
  for (uint32_t i = 0; i < n; ++i) {
    kiln_tensor_info info;
    kiln_status s = outputs ? kiln_model_output(model, i, &info) : kiln_model_input(model, i, &info);
    if (s != KILN_OK) {
      fprintf(stderr, "tensor info %u: %s\n", i, kiln_last_error());
      exit(1);
    }
    size_t bytes = (info.byte_size + 63) / 64 * 64;
    void* data = aligned_alloc(64, bytes ? bytes : 64);
    memset(data, 0, bytes ? bytes : 64);
    t[i] = (kiln_tensor){info.dtype, info.rank, info.shape, data, info.byte_size};
  }
  return t;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: rss_probe ARTIFACT.so WARMUP RUNS\n");
    return 2;
  }
  long warmup = atol(argv[2]), runs = atol(argv[3]);
  kiln_model* model = NULL;
  if (kiln_model_load(argv[1], &model) != KILN_OK) {
    fprintf(stderr, "load: %s\n", kiln_last_error());
    return 1;
  }
  kiln_model_set_num_threads(model, 1);
  uint32_t ni = kiln_model_num_inputs(model), no = kiln_model_num_outputs(model);
  kiln_tensor* in = make_tensors(model, ni, 0);
  kiln_tensor* out = make_tensors(model, no, 1);
  long before = 0;
  for (long r = 0; r < warmup + runs; ++r) {
    if (r == warmup) before = rss_kib();
    if (kiln_model_run(model, in, ni, out, no) != KILN_OK) {
      fprintf(stderr, "run %ld: %s\n", r, kiln_last_error());
      return 1;
    }
  }
  long after = rss_kib();
  if (before < 0 || after < 0) {
    fprintf(stderr, "cannot read /proc/self/statm\n");
    return 1;
  }
  printf("rss_growth_kib=%ld\n", after - before);
  kiln_model_free(model);
  return 0;
}
