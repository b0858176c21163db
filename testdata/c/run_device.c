/* Runs a GPU (Vulkan) artifact through the C API's device memory and checks the misuse paths:
 *
 *   run_device GPU.so CPU.so input.bin expected.bin
 *
 * The model has one f32 input and one f32 output (the bundled MLP); input.bin and expected.bin
 * are raw f32 values of an ONNX Runtime test set. Prints "ok" when every check passed, else
 * the first failure, and exits 1. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static int failures = 0;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "run_device: line %d: ", __LINE__);   \
      fprintf(stderr, __VA_ARGS__);                         \
      fprintf(stderr, " (last error: %s)\n", kiln_last_error()); \
      failures++;                                           \
    }                                                       \
  } while (0)

static void* read_file(const char* path, uint64_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void* p = malloc(n > 0 ? (size_t)n : 1);
  if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *size = (uint64_t)n;
  return p;
}

static kiln_tensor tensor_of(const kiln_tensor_info* info, uint64_t address) {
  kiln_tensor t;
  t.dtype = info->dtype;
  t.rank = info->rank;
  t.shape = info->shape;
  t.data = (void*)(uintptr_t)address;
  t.byte_size = info->byte_size;
  return t;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: run_device GPU.so CPU.so input.bin expected.bin\n");
    return 2;
  }
  uint64_t x_size = 0, y_size = 0;
  float* x = read_file(argv[3], &x_size);
  float* want = read_file(argv[4], &y_size);
  if (!x || !want) {
    fprintf(stderr, "run_device: cannot read the test set\n");
    return 2;
  }

  /* A device index the machine does not have: refused, no model. */
  kiln_load_options opts;
  memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.device = 4096;
  kiln_model* model = (kiln_model*)1;
  kiln_status st = kiln_model_load_with_options(argv[1], &opts, &model);
  CHECK(st == KILN_ERROR_DEVICE_UNAVAILABLE && model == NULL, "device 4096 loaded (status %d)", st);
  /* A struct_size from nothing: refused. */
  opts.struct_size = 0;
  st = kiln_model_load_with_options(argv[1], &opts, &model);
  CHECK(st == KILN_ERROR_INVALID_ARGUMENT, "struct_size 0 accepted (status %d)", st);

  /* Device 0 explicitly. */
  opts.struct_size = sizeof opts;
  opts.device = 0;
  st = kiln_model_load_with_options(argv[1], &opts, &model);
  CHECK(st == KILN_OK && model != NULL, "load on device 0 failed (status %d)", st);
  if (st != KILN_OK) return 1;
  CHECK(kiln_model_is_device(model) == 1, "a Vulkan artifact is not a device model");

  kiln_tensor_info in_info, out_info;
  CHECK(kiln_model_input(model, 0, &in_info) == KILN_OK, "input info");
  CHECK(kiln_model_output(model, 0, &out_info) == KILN_OK, "output info");
  CHECK(in_info.byte_size == x_size && out_info.byte_size == y_size,
        "test set sizes %llu/%llu differ from the model's %llu/%llu", (unsigned long long)x_size,
        (unsigned long long)y_size, (unsigned long long)in_info.byte_size,
        (unsigned long long)out_info.byte_size);
  if (failures) return 1;

  /* Device buffers: upload, run on device pointers, download. */
  uint64_t dx = 0, dy = 0;
  CHECK(kiln_model_device_alloc(model, in_info.byte_size, &dx) == KILN_OK && dx != 0, "alloc x");
  CHECK(kiln_model_device_alloc(model, out_info.byte_size, &dy) == KILN_OK && dy != 0, "alloc y");
  CHECK(kiln_model_device_upload(model, dx, x, x_size) == KILN_OK, "upload x");
  kiln_tensor in = tensor_of(&in_info, dx);
  kiln_tensor out = tensor_of(&out_info, dy);
  st = kiln_model_run_device(model, &in, 1, &out, 1);
  CHECK(st == KILN_OK, "run_device failed (status %d)", st);
  size_t n = (size_t)(y_size / sizeof(float));
  float* got = calloc(n, sizeof(float));
  CHECK(kiln_model_device_download(model, dy, got, y_size) == KILN_OK, "download y");
  float scale = 0.0f, err = 0.0f;
  for (size_t i = 0; i < n; i++) {
    if (fabsf(want[i]) > scale) scale = fabsf(want[i]);
    float e = fabsf(got[i] - want[i]);
    if (!(e <= err)) err = e; /* NaN propagates into err */
  }
  CHECK(err <= 1e-4f * scale, "device-pointer run differs from ONNX Runtime: max error %g (scale %g)",
        (double)err, (double)scale);

  /* The same model through host pointers gives the same values. */
  float* host = calloc(n, sizeof(float));
  kiln_tensor hin = tensor_of(&in_info, 0), hout = tensor_of(&out_info, 0);
  hin.data = x;
  hout.data = host;
  CHECK(kiln_model_run(model, &hin, 1, &hout, 1) == KILN_OK, "host run");
  CHECK(memcmp(host, got, y_size) == 0, "host-pointer and device-pointer runs differ");

  /* Misuse: a host pointer, a buffer too small, an input written as output, bad copies. */
  st = kiln_model_run_device(model, &hin, 1, &out, 1);
  CHECK(st == KILN_ERROR_INVALID_ARGUMENT && strstr(kiln_last_error(), "not a device allocation"),
        "a host pointer was taken as a device address (status %d)", st);
  uint64_t small = 0;
  CHECK(kiln_model_device_alloc(model, 4, &small) == KILN_OK, "alloc 4 bytes");
  kiln_tensor tiny = tensor_of(&out_info, small);
  st = kiln_model_run_device(model, &in, 1, &tiny, 1);
  CHECK(st == KILN_ERROR_INVALID_ARGUMENT, "a 4-byte output allocation was accepted (status %d)", st);
  kiln_tensor alias = tensor_of(&out_info, dx);
  st = kiln_model_run_device(model, &in, 1, &alias, 1);
  CHECK(st != KILN_OK, "the input's buffer was accepted as the output");
  st = kiln_model_device_upload(model, small, x, x_size);
  CHECK(st == KILN_ERROR_INVALID_ARGUMENT, "an upload past the allocation was accepted (status %d)", st);
  CHECK(kiln_model_device_free(model, small) == KILN_OK, "free");
  st = kiln_model_device_free(model, small);
  CHECK(st == KILN_ERROR_INVALID_ARGUMENT, "a double free was accepted (status %d)", st);
  CHECK(kiln_model_device_free(model, dx) == KILN_OK, "free x");
  /* dy stays allocated: freed with the model. */
  kiln_model_free(model);

  /* A CPU artifact has no device memory. */
  kiln_model* cpu = NULL;
  CHECK(kiln_model_load_with_options(argv[2], NULL, &cpu) == KILN_OK, "load the CPU artifact");
  if (cpu) {
    uint64_t a = 0;
    CHECK(kiln_model_is_device(cpu) == 0, "a CPU artifact is a device model");
    st = kiln_model_device_alloc(cpu, 16, &a);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT && strstr(kiln_last_error(), "CPU artifact"),
          "device memory from a CPU artifact (status %d)", st);
    kiln_model_free(cpu);
  }
  free(x);
  free(want);
  free(got);
  free(host);
  if (failures) return 1;
  printf("ok\n");
  return 0;
}
