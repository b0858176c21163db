/* A tiny program that runs a statically linked Kiln artifact (kiln compile
 * --emit=obj) through the C runtime (kiln.h), for running artifacts built
 * for another architecture under an emulator (qemu-aarch64).
 *
 *   kiln_runner IN_DIR OUT_DIR [THREADS]
 *
 * Reads IN_DIR/input_<i>.bin, the raw bytes of input i (native layout,
 * exactly the input's byte size), runs the model, and writes
 * OUT_DIR/output_<i>.bin plus OUT_DIR/outputs.txt, one line per output:
 * "<name> <dtype code> <rank> <dim>...". Exit status: 0 on success, 1 on
 * any error (the runtime's message on stderr). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

const kiln_artifact_v1* kiln_artifact(void);

static int fail(const char* what, kiln_status s) {
  fprintf(stderr, "kiln_runner: %s: %s: %s\n", what, kiln_status_string(s), kiln_last_error());
  return 1;
}

/* 64-byte aligned buffer of n bytes (at least 1). */
static void* buffer(uint64_t n) {
  void* p = NULL;
  if (posix_memalign(&p, 64, n ? n : 1) != 0) return NULL;
  memset(p, 0, n ? n : 1);
  return p;
}

static int read_file(const char* path, void* data, uint64_t n) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "kiln_runner: %s: %s\n", path, strerror(errno));
    return 1;
  }
  size_t got = fread(data, 1, n, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (got != n || extra) {
    fprintf(stderr, "kiln_runner: %s: expected exactly %llu bytes\n", path, (unsigned long long)n);
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: kiln_runner IN_DIR OUT_DIR [THREADS]\n");
    return 2;
  }
  kiln_model* model = NULL;
  kiln_status s = kiln_model_from_artifact(kiln_artifact(), NULL, &model);
  if (s != KILN_OK) return fail("load", s);
  if (argc > 3) {
    s = kiln_model_set_num_threads(model, (uint32_t)atoi(argv[3]));
    if (s != KILN_OK) return fail("threads", s);
  }
  uint32_t ni = kiln_model_num_inputs(model), no = kiln_model_num_outputs(model);
  kiln_tensor* in = calloc(ni + 1, sizeof *in);
  kiln_tensor* out = calloc(no + 1, sizeof *out);
  char path[4096];
  for (uint32_t i = 0; i < ni; i++) {
    kiln_tensor_info info;
    if ((s = kiln_model_input(model, i, &info)) != KILN_OK) return fail("input info", s);
    void* data = buffer(info.byte_size);
    snprintf(path, sizeof path, "%s/input_%u.bin", argv[1], i);
    if (!data || read_file(path, data, info.byte_size)) return 1;
    in[i] = (kiln_tensor){info.dtype, info.rank, info.shape, data, info.byte_size};
  }
  for (uint32_t i = 0; i < no; i++) {
    kiln_tensor_info info;
    if ((s = kiln_model_output(model, i, &info)) != KILN_OK) return fail("output info", s);
    void* data = buffer(info.byte_size);
    if (!data) return 1;
    out[i] = (kiln_tensor){info.dtype, info.rank, info.shape, data, info.byte_size};
  }
  if ((s = kiln_model_run(model, in, ni, out, no)) != KILN_OK) return fail("run", s);
  snprintf(path, sizeof path, "%s/outputs.txt", argv[2]);
  FILE* list = fopen(path, "w");
  if (!list) return 1;
  for (uint32_t i = 0; i < no; i++) {
    kiln_tensor_info info;
    kiln_model_output(model, i, &info);
    fprintf(list, "%s %u %u", info.name, info.dtype, info.rank);
    for (uint32_t d = 0; d < info.rank; d++) fprintf(list, " %lld", (long long)info.shape[d]);
    fprintf(list, "\n");
    snprintf(path, sizeof path, "%s/output_%u.bin", argv[2], i);
    FILE* f = fopen(path, "wb");
    if (!f || fwrite(out[i].data, 1, out[i].byte_size, f) != out[i].byte_size) return 1;
    fclose(f);
  }
  fclose(list);
  kiln_model_free(model);
  return 0;
}
