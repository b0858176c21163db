/*
 * Two Kiln models linked statically into one program with the static
 * runtime. Usage: two_models MLP_IN MLP_EXPECTED MLP4_IN MLP4_EXPECTED
 * (raw little-endian f32). Prints "two_models: ok" when every output is
 * within 1e-4 (relative, floor 1e-3) of its expectation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln.h"
#include "mlp.h"
#include "mlp4.h"

static float* read_f32(const char* path, size_t n) {
  float* data = malloc(n * sizeof(float));
  FILE* f = fopen(path, "rb");
  if (!data || !f || fread(data, sizeof(float), n, f) != n || fgetc(f) != EOF) {
    fprintf(stderr, "%s: cannot read %zu floats\n", path, n);
    exit(1);
  }
  fclose(f);
  return data;
}

static void run(const kiln_artifact_v1* artifact, const char* what, const char* in_path,
                const char* expected_path, int64_t* in_shape, uint32_t in_rank, size_t in_n,
                int64_t* out_shape, uint32_t out_rank, size_t out_n) {
  kiln_model* model = NULL;
  if (kiln_model_from_artifact(artifact, NULL, &model) != KILN_OK) {
    fprintf(stderr, "%s: %s\n", what, kiln_last_error());
    exit(1);
  }
  float* x = read_f32(in_path, in_n);
  float* want = read_f32(expected_path, out_n);
  float* y = calloc(out_n, sizeof(float));
  kiln_tensor in = {KILN_DTYPE_F32, in_rank, in_shape, x, in_n * sizeof(float)};
  kiln_tensor out = {KILN_DTYPE_F32, out_rank, out_shape, y, out_n * sizeof(float)};
  if (kiln_model_run(model, &in, 1, &out, 1) != KILN_OK) {
    fprintf(stderr, "%s: run: %s\n", what, kiln_last_error());
    exit(1);
  }
  for (size_t i = 0; i < out_n; ++i) {
    float err = fabsf(y[i] - want[i]) / fmaxf(fabsf(want[i]), 1e-3f);
    if (!(err <= 1e-4f)) {
      fprintf(stderr, "%s[%zu] = %g, expected %g\n", what, i, y[i], want[i]);
      exit(1);
    }
  }
  kiln_model_free(model);
  free(x);
  free(want);
  free(y);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: two_models MLP_IN MLP_EXPECTED MLP4_IN MLP4_EXPECTED\n");
    return 2;
  }
  int64_t mlp_in[] = MLP_INPUT_0_SHAPE, mlp_out[] = MLP_OUTPUT_0_SHAPE;
  int64_t mlp4_in[] = MLP4_INPUT_0_SHAPE, mlp4_out[] = MLP4_OUTPUT_0_SHAPE;
  run(mlp_artifact(), "mlp", argv[1], argv[2], mlp_in, MLP_INPUT_0_RANK, MLP_INPUT_0_NUMEL,
      mlp_out, MLP_OUTPUT_0_RANK, MLP_OUTPUT_0_NUMEL);
  run(mlp4_artifact(), "mlp4", argv[3], argv[4], mlp4_in, MLP4_INPUT_0_RANK, MLP4_INPUT_0_NUMEL,
      mlp4_out, MLP4_OUTPUT_0_RANK, MLP4_OUTPUT_0_NUMEL);
  printf("two_models: ok\n");
  return 0;
}
