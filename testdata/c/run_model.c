/*
 * Runs a Kiln artifact from C and checks the C API's misuse handling.
 *
 *   run_model ARTIFACT.so INPUT.bin EXPECTED.bin
 *
 * Built by compiler/kiln-driver/tests/driver.rs with `cc` against kiln.h and
 * the generated model.h, linked with the artifact itself (for
 * kiln_artifact()) and libkiln_runtime.so. INPUT.bin and EXPECTED.bin hold
 * the raw little-endian f32 data of the model's only input and output
 * (from the ONNX test set, i.e. computed by ONNX Runtime).
 *
 * The model is opened twice: statically bound (kiln_model_from_artifact on
 * the linked kiln_artifact()) and dynamically loaded (kiln_model_load); both
 * must reproduce EXPECTED within a relative error of 1e-4 (NaN fails).
 * Prints "ok" and exits 0 when every check passed; otherwise prints each
 * failed check and exits 1.
 */
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                         \
      fprintf(stderr, "\n");                                \
      ++failures;                                           \
    }                                                       \
  } while (0)

#define EXPECT_STATUS(call, expected)                                                     \
  do {                                                                                    \
    kiln_status s_ = (call);                                                              \
    CHECK(s_ == (expected), "%s returned %d (%s), expected %d; last error: %s", #call, s_, \
          kiln_status_string(s_), (expected), kiln_last_error());                        \
    if ((expected) != KILN_OK) CHECK(kiln_last_error()[0] != '\0', "%s: empty last error", #call); \
  } while (0)

static float* read_f32(const char* path, size_t count) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  float* data = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
  size_t got = data ? fread(data, sizeof(float), count, f) : 0;
  fclose(f);
  if (got != count) {
    free(data);
    return NULL;
  }
  return data;
}

static void run_and_compare(kiln_model* model, const float* x, const float* expected, const char* how) {
  static const int64_t in_shape[] = KILN_MODEL_INPUT_0_SHAPE;
  static const int64_t out_shape[] = KILN_MODEL_OUTPUT_0_SHAPE;
  size_t out_n = KILN_MODEL_OUTPUT_0_NUMEL;
  float* y = aligned_alloc(64, (out_n * sizeof(float) + 63) / 64 * 64);
  for (size_t i = 0; i < out_n; ++i) y[i] = NAN;
  kiln_tensor in = {KILN_MODEL_INPUT_0_DTYPE, KILN_MODEL_INPUT_0_RANK, in_shape, (void*)x,
                    KILN_MODEL_INPUT_0_NUMEL * sizeof(float)};
  kiln_tensor out = {KILN_MODEL_OUTPUT_0_DTYPE, KILN_MODEL_OUTPUT_0_RANK, out_shape, y,
                     out_n * sizeof(float)};
  EXPECT_STATUS(kiln_model_run(model, &in, 1, &out, 1), KILN_OK);
  double worst = 0;
  for (size_t i = 0; i < out_n; ++i) {
    double e = expected[i], g = y[i];
    if (isnan(e) || isnan(g)) {
      worst = INFINITY;
      break;
    }
    double err = fabs(g - e) / fmax(fabs(e), 1e-2);
    if (err > worst) worst = err;
  }
  CHECK(worst <= 1e-4, "%s: max relative error %g > 1e-4", how, worst);
  free(y);
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s ARTIFACT.so INPUT.bin EXPECTED.bin\n", argv[0]);
    return 2;
  }
  _Static_assert(KILN_MODEL_NUM_INPUTS == 1 && KILN_MODEL_NUM_OUTPUTS == 1, "one input, one output");
  _Static_assert(KILN_MODEL_INPUT_0_DTYPE == KILN_DTYPE_F32, "f32 input");
  _Static_assert(KILN_MODEL_OUTPUT_0_DTYPE == KILN_DTYPE_F32, "f32 output");
  float* x = read_f32(argv[2], KILN_MODEL_INPUT_0_NUMEL);
  float* expected = read_f32(argv[3], KILN_MODEL_OUTPUT_0_NUMEL);
  if (!x || !expected) {
    fprintf(stderr, "cannot read %s or %s\n", argv[2], argv[3]);
    return 2;
  }

  /* The descriptor as compiled. */
  const kiln_artifact_v1* a = kiln_artifact();
  CHECK(a->abi_version == KILN_ABI_VERSION, "abi_version %u", a->abi_version);
  CHECK(a->num_inputs == 1 && a->num_outputs == 1, "counts %u/%u", a->num_inputs, a->num_outputs);
  CHECK(strcmp(a->inputs[0].name, KILN_MODEL_INPUT_0_NAME) == 0, "input name %s", a->inputs[0].name);
  CHECK(strcmp(a->outputs[0].name, KILN_MODEL_OUTPUT_0_NAME) == 0, "output name %s", a->outputs[0].name);
  CHECK(strncmp(a->producer, "kiln ", 5) == 0, "producer %s", a->producer);
  CHECK(a->weights == NULL || ((uintptr_t)a->weights % 64) == 0, "weights not 64-byte aligned");

  /* Statically bound. */
  kiln_model* model = NULL;
  EXPECT_STATUS(kiln_model_from_artifact(a, NULL, &model), KILN_OK);
  if (model) {
    CHECK(strcmp(kiln_model_name(model), KILN_MODEL_NAME) == 0, "model name %s", kiln_model_name(model));
    run_and_compare(model, x, expected, "from_artifact");
  }

  /* Dynamically loaded. */
  kiln_model* loaded = NULL;
  EXPECT_STATUS(kiln_model_load(argv[1], &loaded), KILN_OK);
  if (loaded) {
    kiln_tensor_info info;
    EXPECT_STATUS(kiln_model_input(loaded, 0, &info), KILN_OK);
    CHECK(info.byte_size == KILN_MODEL_INPUT_0_NUMEL * sizeof(float), "input byte size %llu",
          (unsigned long long)info.byte_size);
    EXPECT_STATUS(kiln_model_set_num_threads(loaded, 2), KILN_OK);
    run_and_compare(loaded, x, expected, "load");
  }

  /* Misuse: every call fails cleanly with the documented status. */
  if (model) {
    static const int64_t in_shape[] = KILN_MODEL_INPUT_0_SHAPE;
    static const int64_t out_shape[] = KILN_MODEL_OUTPUT_0_SHAPE;
    static int64_t bad_shape[KILN_MODEL_INPUT_0_RANK] = KILN_MODEL_INPUT_0_SHAPE;
    bad_shape[KILN_MODEL_INPUT_0_RANK - 1] += 1;
    size_t in_bytes = KILN_MODEL_INPUT_0_NUMEL * sizeof(float);
    size_t out_bytes = KILN_MODEL_OUTPUT_0_NUMEL * sizeof(float);
    float* y = aligned_alloc(64, (out_bytes + 63) / 64 * 64 + 64);
    kiln_tensor in = {KILN_DTYPE_F32, KILN_MODEL_INPUT_0_RANK, in_shape, x, in_bytes};
    kiln_tensor out = {KILN_DTYPE_F32, KILN_MODEL_OUTPUT_0_RANK, out_shape, y, out_bytes};
    kiln_tensor t;

    EXPECT_STATUS(kiln_model_run(NULL, &in, 1, &out, 1), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(kiln_model_run(model, NULL, 1, &out, 1), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(kiln_model_run(model, &in, 0, &out, 1), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(kiln_model_run(model, &in, 1, &out, 2), KILN_ERROR_INVALID_ARGUMENT);
    t = in;
    t.dtype = KILN_DTYPE_I32;
    EXPECT_STATUS(kiln_model_run(model, &t, 1, &out, 1), KILN_ERROR_DTYPE_MISMATCH);
    t = in;
    t.shape = bad_shape;
    EXPECT_STATUS(kiln_model_run(model, &t, 1, &out, 1), KILN_ERROR_SHAPE_MISMATCH);
    t = in;
    t.rank = KILN_MODEL_INPUT_0_RANK + 1;
    EXPECT_STATUS(kiln_model_run(model, &t, 1, &out, 1), KILN_ERROR_SHAPE_MISMATCH);
    t = out;
    t.byte_size = out_bytes - 1;
    EXPECT_STATUS(kiln_model_run(model, &in, 1, &t, 1), KILN_ERROR_BUFFER_TOO_SMALL);
    t = out;
    t.data = (char*)y + 1;
    EXPECT_STATUS(kiln_model_run(model, &in, 1, &t, 1), KILN_ERROR_MISALIGNED);
    /* Output aliasing an input. */
    float* both = aligned_alloc(64, (in_bytes + out_bytes + 63) / 64 * 64 + 64);
    kiln_tensor in2 = {KILN_DTYPE_F32, KILN_MODEL_INPUT_0_RANK, in_shape, both, in_bytes};
    kiln_tensor out2 = {KILN_DTYPE_F32, KILN_MODEL_OUTPUT_0_RANK, out_shape, both, out_bytes};
    EXPECT_STATUS(kiln_model_run(model, &in2, 1, &out2, 1), KILN_ERROR_BUFFER_OVERLAP);
    free(both);
    kiln_tensor_info info;
    EXPECT_STATUS(kiln_model_input(model, 7, &info), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(kiln_model_output(model, 0, NULL), KILN_ERROR_INVALID_ARGUMENT);
    kiln_model* other = NULL;
    EXPECT_STATUS(kiln_model_from_artifact(NULL, NULL, &other), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(other == NULL, "failed from_artifact set the model");
    /* The good call still works after all that. */
    run_and_compare(model, x, expected, "after misuse");
    free(y);
  }
  kiln_model* none = NULL;
  EXPECT_STATUS(kiln_model_load("/nonexistent/model.so", &none), KILN_ERROR_LOAD_FAILED);
  CHECK(none == NULL, "failed load set the model");

  kiln_model_free(model);
  kiln_model_free(loaded);
  kiln_model_free(NULL);
  free(x);
  free(expected);
  if (failures == 0) printf("ok\n");
  return failures == 0 ? 0 : 1;
}
