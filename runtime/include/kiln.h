/*
 * kiln.h - C API of the Kiln runtime (libkiln_runtime.so / libkiln_runtime.a).
 *
 * The runtime loads an artifact produced by the Kiln compiler (a shared
 * library exporting `kiln_artifact()`, or an object file linked statically),
 * validates every call, and runs the compiled entry point on a small thread
 * pool.
 *
 * Conventions
 *  - Every function returning kiln_status returns KILN_OK (0) on success.
 *    On failure it stores a message for the calling thread, readable with
 *    kiln_last_error(); on success the message is reset to "".
 *  - Strings returned by the runtime are UTF-8, NUL-terminated and owned by
 *    the runtime: the model's strings live as long as the model, the
 *    kiln_last_error() string until the next kiln_* call on the same thread.
 *  - Invalid arguments never cause undefined behaviour inside the runtime as
 *    long as every non-NULL pointer points to memory of the size the call
 *    says (for example `rank` shape entries, `byte_size` data bytes).
 *
 * Thread safety
 *  - A kiln_model may be shared between threads: kiln_model_run,
 *    kiln_model_set_num_threads and the query functions may be called
 *    concurrently on the same model. Each run gets its own workspace (taken
 *    from a per-model cache under a lock), and the thread pool accepts
 *    parallel_for calls from several runs at the same time.
 *  - kiln_model_free must not race with any other call on the same model.
 *
 * Alignment
 *  - Input and output data pointers must be aligned to the natural alignment
 *    of the element type: 8 bytes for f64/i64/u64, 4 for f32/i32/u32,
 *    2 for f16/bf16/i16/u16, 1 for 8-bit and packed 4-bit types and bool.
 *    The runtime checks this and returns KILN_ERROR_MISALIGNED otherwise.
 *
 * Aliasing
 *  - An output buffer must not overlap any input buffer or any other output
 *    buffer (KILN_ERROR_BUFFER_OVERLAP). Inputs may overlap each other.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Artifact ABI, version 1: the contract between the code generator and the
 * runtime. Compiled code sees only these types.                            */
/* ------------------------------------------------------------------------ */

#define KILN_ABI_VERSION 1u
/* The kiln_exec_ctx version a runtime passes (abi_version field): 2 adds
 * `device`; compiled code accepts any version >= 1 and reads only the fields
 * its version has. */
#define KILN_EXEC_CTX_VERSION 2u

/* dtype codes (stable). Bits per element in comments; sub-byte types are
 * packed (two 4-bit or four 2-bit elements per byte, the first element in the
 * lowest bits), and a tensor's byte size is ceil(elements * bits / 8). The
 * small float formats follow ONNX (FNUZ: one NaN 0x80, no -0; F4E2M1: no
 * NaN/infinity; F8E8M0: 2^(code - 127), 0xFF NaN). */
enum kiln_dtype {
  KILN_DTYPE_F64 = 1,       /* 64 */
  KILN_DTYPE_F32 = 2,       /* 32 */
  KILN_DTYPE_F16 = 3,       /* 16 */
  KILN_DTYPE_BF16 = 4,      /* 16 */
  KILN_DTYPE_F8E4M3FN = 5,  /* 8 */
  KILN_DTYPE_F8E5M2 = 6,    /* 8 */
  KILN_DTYPE_NF4 = 7,       /* 4 */
  KILN_DTYPE_I64 = 8,       /* 64 */
  KILN_DTYPE_I32 = 9,       /* 32 */
  KILN_DTYPE_I16 = 10,      /* 16 */
  KILN_DTYPE_I8 = 11,       /* 8 */
  KILN_DTYPE_I4 = 12,       /* 4 */
  KILN_DTYPE_U64 = 13,      /* 64 */
  KILN_DTYPE_U32 = 14,      /* 32 */
  KILN_DTYPE_U16 = 15,      /* 16 */
  KILN_DTYPE_U8 = 16,       /* 8 */
  KILN_DTYPE_U4 = 17,       /* 4 */
  KILN_DTYPE_BOOL = 18,     /* 8 */
  KILN_DTYPE_F8E4M3FNUZ = 19, /* 8 */
  KILN_DTYPE_F8E5M2FNUZ = 20, /* 8 */
  KILN_DTYPE_F4E2M1 = 21,   /* 4 */
  KILN_DTYPE_F8E8M0 = 22,   /* 8 */
  KILN_DTYPE_I2 = 23,       /* 2 */
  KILN_DTYPE_U2 = 24        /* 2 */
};

typedef struct kiln_tensor_desc {
  const char* name;        /* UTF-8, NUL-terminated */
  uint32_t dtype;          /* kiln_dtype code */
  uint32_t rank;
  const int64_t* shape;    /* rank entries; all static in ABI v1 */
} kiln_tensor_desc;

/* The device API a runtime gives GPU artifacts (kiln_exec_ctx.device). Device
 * addresses are 64-bit values that only the device API interprets: host code
 * computes with them (base + offset) but never dereferences them. Everything
 * happens on the run's stream or queue; the runtime waits for it after the
 * entry returns. */
typedef struct kiln_device_api {
  void* handle;            /* the run's device state, opaque to compiled code */
  /* Launches kernel `kernel` (an index into kiln_artifact_device.kernels) on a
   * grid of gx * gy * gz blocks of the kernel's block size; args holds one
   * 64-bit slot per kernel argument (kiln_device_kernel.args says what each
   * is). Returns 0, or a negative code after recording the error. */
  int32_t (*launch)(void* handle, uint32_t kernel, uint64_t gx, uint64_t gy, uint64_t gz,
                    const int64_t* args);
  /* Device memory for a temporary of this run (at least 256-byte aligned);
   * 0 when out of memory. Freed by free() or when the run ends. */
  uint64_t (*alloc)(void* handle, uint64_t bytes);
  void (*free)(void* handle, uint64_t address);
} kiln_device_api;

typedef struct kiln_exec_ctx {
  uint32_t abi_version;    /* 1, or 2 when `device` exists */
  uint32_t num_threads;
  void* pool;              /* opaque to compiled code */
  /* Runs body(data, begin, end) over [0, n) split into chunks across the
   * pool; returns when all are done. Each index is covered exactly once.
   * May be called from several threads at once and from inside a body. */
  void (*parallel_for)(void* pool, int64_t n,
                       void (*body)(void* data, int64_t begin, int64_t end),
                       void* data);
  /* abi_version >= 2: the device API of a GPU artifact's run (NULL for CPU
   * artifacts). The entry's input, output, weights and workspace pointers
   * are then device addresses. */
  const kiln_device_api* device;
} kiln_exec_ctx;

/* The entry's return values for device failures (GPU artifacts): the runtime
 * has no device API (an older runtime), or a temporary allocation failed. */
#define KILN_ENTRY_NO_DEVICE (-2)
#define KILN_ENTRY_OUT_OF_DEVICE_MEMORY (-3)

/* kiln_artifact_v1.flags: a kiln_artifact_target directly follows the
 * descriptor in memory (runtimes that do not know the flag ignore it). */
#define KILN_ARTIFACT_FLAG_TARGET 1u
/* kiln_artifact_v1.flags: a kiln_artifact_device follows the target record:
 * the artifact's code runs on a GPU. The target record then describes the
 * CPU of the host code. Runtimes that do not know the flag run the entry with
 * an ABI version 1 context, for which it fails (KILN_ENTRY_NO_DEVICE). */
#define KILN_ARTIFACT_FLAG_DEVICE 2u

typedef struct kiln_artifact_v1 {
  uint32_t abi_version;    /* 1 */
  uint32_t num_inputs;
  uint32_t num_outputs;
  uint32_t flags;          /* KILN_ARTIFACT_FLAG_* bits; 0 for hand-written descriptors */
  const kiln_tensor_desc* inputs;
  const kiln_tensor_desc* outputs;
  const char* model_name;
  const char* producer;          /* e.g. "kiln 0.1.0" */
  const uint8_t* weights;        /* embedded weights (64-byte aligned), or NULL when external */
  uint64_t weights_size;
  const char* weights_file;      /* file name of external weights (relative to the artifact), or NULL */
  uint64_t workspace_size;       /* scratch bytes the entry needs, 64-byte aligned, may be 0 */
  /* Returns 0 on success. inputs/outputs are arrays of num_inputs/num_outputs
   * data pointers. Must be reentrant: the runtime may call it from several
   * threads at once, each call with its own workspace (NULL when
   * workspace_size is 0; otherwise 64-byte aligned, contents unspecified). */
  int32_t (*entry)(const kiln_exec_ctx* ctx, void* const* inputs, void* const* outputs,
                   const uint8_t* weights, uint8_t* workspace);
} kiln_artifact_v1;

/* The machine an artifact's code was generated for; placed right after the
 * descriptor when flags has KILN_ARTIFACT_FLAG_TARGET. The runtime refuses
 * an artifact whose architecture differs or whose features this CPU lacks
 * (KILN_ERROR_UNSUPPORTED_CPU). */
typedef struct kiln_artifact_target {
  const char* arch;        /* "x86_64", "aarch64" */
  const char* cpu;         /* LLVM CPU name, e.g. "x86-64-v3" */
  const char* features;    /* comma-separated LLVM feature names, e.g. "avx,avx2,fma" */
} kiln_artifact_target;

/* Device APIs (kiln_artifact_device.api). */
#define KILN_DEVICE_CUDA 1u   /* libcuda.so.1, the CUDA driver API */
#define KILN_DEVICE_HIP 2u    /* libamdhip64.so, HIP (ROCm) */
#define KILN_DEVICE_VULKAN 3u /* libvulkan.so.1, Vulkan 1.1 compute */
#define KILN_DEVICE_METAL 4u  /* Metal (macOS) */

/* Device image formats (kiln_device_image.format). */
#define KILN_DEVICE_FORMAT_PTX 1u   /* PTX text, NUL-terminated */
#define KILN_DEVICE_FORMAT_CUBIN 2u /* SASS for `chip` (sm_NN) */
#define KILN_DEVICE_FORMAT_HSACO 3u /* AMD code object for `chip` (gfxNNN) */
#define KILN_DEVICE_FORMAT_SPIRV 4u /* SPIR-V module (little-endian words) */
#define KILN_DEVICE_FORMAT_MSL 5u   /* Metal Shading Language, NUL-terminated */

/* Kernel argument kinds (kiln_device_kernel.args): the high nibble is the
 * kind, the low nibble the bytes the device reads from the low end of the
 * argument's 64-bit slot. */
#define KILN_DEVICE_ARG_ADDRESS 0x18u /* a device address (a buffer) */
#define KILN_DEVICE_ARG_INT 0x20u     /* | bytes: an integer */
#define KILN_DEVICE_ARG_FLOAT 0x30u   /* | bytes: a float's bits */

typedef struct kiln_device_image {
  uint32_t format;         /* KILN_DEVICE_FORMAT_* */
  uint32_t group;          /* images of one group hold the same kernels */
  const char* chip;        /* what it was built for, "" when any device */
  const uint8_t* data;
  uint64_t size;
} kiln_device_image;

typedef struct kiln_device_kernel {
  const char* name;        /* entry point in the images of its group */
  uint32_t group;          /* the image group holding it */
  uint32_t block[3];       /* threads per block */
  uint32_t num_args;
  uint32_t reserved;       /* 0 */
  const uint8_t* args;     /* num_args KILN_DEVICE_ARG_* codes */
} kiln_device_kernel;

/* Follows the kiln_artifact_target when flags has KILN_ARTIFACT_FLAG_DEVICE.
 * The runtime opens the API's driver with dlopen when the model loads
 * (KILN_ERROR_DEVICE_UNAVAILABLE without it), loads one image per group (the
 * first that fits the device: SASS for its chip before PTX), copies the
 * weights to the device once, and for every run copies inputs in and outputs
 * out around the entry. */
typedef struct kiln_artifact_device {
  uint32_t api;            /* KILN_DEVICE_* */
  uint32_t num_images;
  const kiln_device_image* images;
  uint32_t num_kernels;
  uint32_t reserved;       /* 0 */
  const kiln_device_kernel* kernels;
  const char* chip;        /* the chip the artifact was compiled for */
} kiln_artifact_device;

/* Every artifact shared library exports a function of this type:
 * kiln_artifact(), or <name>_artifact() when compiled with --name NAME.
 * Its file ends with an integrity record (length, checksum, ABI version,
 * descriptor symbol, target) that kiln_model_load checks before dlopen. */
typedef const kiln_artifact_v1* (*kiln_artifact_fn)(void);

/* ------------------------------------------------------------------------ */
/* Runtime API                                                               */
/* ------------------------------------------------------------------------ */

typedef int32_t kiln_status;
enum {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1,  /* NULL pointer, wrong count, bad index */
  KILN_ERROR_DTYPE_MISMATCH = 2,    /* tensor dtype differs from the model's */
  KILN_ERROR_SHAPE_MISMATCH = 3,    /* rank or a dimension differs */
  KILN_ERROR_BUFFER_TOO_SMALL = 4,  /* byte_size below the tensor's size */
  KILN_ERROR_MISALIGNED = 5,        /* data not aligned to the element type */
  KILN_ERROR_BUFFER_OVERLAP = 6,    /* an output overlaps another buffer */
  KILN_ERROR_LOAD_FAILED = 7,       /* cannot open artifact or weights, bad descriptors */
  KILN_ERROR_ABI_MISMATCH = 8,      /* artifact built for another ABI version */
  KILN_ERROR_OUT_OF_MEMORY = 9,     /* workspace or thread allocation failed */
  KILN_ERROR_EXECUTION_FAILED = 10, /* the compiled entry returned non-zero */
  KILN_ERROR_INTERNAL = 11,         /* a bug in the runtime (caught panic) */
  KILN_ERROR_CORRUPT_ARTIFACT = 12, /* truncated or altered file, no integrity record */
  KILN_ERROR_UNSUPPORTED_CPU = 13,  /* built for another architecture or missing CPU features */
  KILN_ERROR_INVALID_ENVIRONMENT = 14, /* a malformed KILN_NUM_THREADS or KILN_PARALLEL_MIN_US */
  KILN_ERROR_DEVICE_UNAVAILABLE = 15, /* a GPU artifact's driver or device is absent */
  KILN_ERROR_DEVICE_FAILED = 16     /* the device reported an error while running */
};

typedef struct kiln_model kiln_model; /* opaque */

/* A caller-owned tensor passed to kiln_model_run. */
typedef struct kiln_tensor {
  uint32_t dtype;          /* kiln_dtype code */
  uint32_t rank;
  const int64_t* shape;    /* rank entries (may be NULL when rank is 0) */
  void* data;              /* may be NULL only when the tensor has 0 bytes */
  uint64_t byte_size;      /* bytes available at data */
} kiln_tensor;

/* Describes one model input or output; pointers live as long as the model. */
typedef struct kiln_tensor_info {
  const char* name;
  uint32_t dtype;
  uint32_t rank;
  const int64_t* shape;
  uint64_t byte_size;      /* exact bytes the tensor occupies */
} kiln_tensor_info;

/* Loads an artifact shared library (dlopen with RTLD_LOCAL). Before dlopen
 * the file's integrity record is verified (KILN_ERROR_CORRUPT_ARTIFACT for a
 * truncated or altered file, KILN_ERROR_ABI_MISMATCH) and its target is
 * checked against this CPU (KILN_ERROR_UNSUPPORTED_CPU, naming the missing
 * features), so no code of an unusable file runs. External weights named by
 * the artifact are memory-mapped from the artifact's directory and checked
 * against the record's checksum; names that are absolute, contain "..", or
 * resolve outside that directory are refused. */
kiln_status kiln_model_load(const char* artifact_path, kiln_model** out);
/* How kiln_model_load_with_options loads an artifact. Set struct_size to
 * sizeof(kiln_load_options) (later runtimes may add fields after these). */
typedef struct kiln_load_options {
  uint32_t struct_size;
  /* GPU artifacts: the device to run on, an index among the driver's devices
   * (CUDA ordinal, HIP device, Vulkan physical device; Metal: 0 only); -1 for
   * $KILN_DEVICE, else the driver's default. An absent device is
   * KILN_ERROR_DEVICE_UNAVAILABLE. CPU artifacts ignore it. */
  int32_t device;
} kiln_load_options;
/* kiln_model_load with options; options may be NULL (the defaults). */
kiln_status kiln_model_load_with_options(const char* artifact_path, const kiln_load_options* options,
                                         kiln_model** out);
/* A multi-versioned artifact (kiln compile --cpu=A,B) records its other
 * builds, files beside it; kiln_model_load opens the last one whose CPU
 * features this machine has (it must match the recorded size and checksum:
 * KILN_ERROR_CORRUPT_ARTIFACT otherwise), else the file itself.
 * Both loaders first check the environment variables the runtime and the
 * artifact read (KILN_NUM_THREADS, KILN_PARALLEL_MIN_US): a malformed value
 * is KILN_ERROR_INVALID_ENVIRONMENT, with kiln_last_error() naming it. */

/* Wraps an artifact linked into the program. weights_path must be given when
 * the artifact uses external weights, and must be NULL when it embeds them.
 * The descriptor's target record, when present, is checked against this CPU
 * (KILN_ERROR_UNSUPPORTED_CPU) before the model can run. */
kiln_status kiln_model_from_artifact(const kiln_artifact_v1* artifact, const char* weights_path,
                                     kiln_model** out);

/* Frees a model; NULL is ignored. */
void kiln_model_free(kiln_model* model);

uint32_t kiln_model_num_inputs(const kiln_model* model);  /* 0 for NULL */
uint32_t kiln_model_num_outputs(const kiln_model* model); /* 0 for NULL */
kiln_status kiln_model_input(const kiln_model* model, uint32_t index, kiln_tensor_info* out);
kiln_status kiln_model_output(const kiln_model* model, uint32_t index, kiln_tensor_info* out);
const char* kiln_model_name(const kiln_model* model);     /* NULL for NULL */
const char* kiln_model_producer(const kiln_model* model); /* NULL for NULL */

/* Threads used by later runs (0 = default: KILN_NUM_THREADS, else the number
 * of available cores; a malformed KILN_NUM_THREADS gives
 * KILN_ERROR_INVALID_ENVIRONMENT and changes nothing). With 1 thread every
 * parallel_for runs inline. */
kiln_status kiln_model_set_num_threads(kiln_model* model, uint32_t num_threads);
uint32_t kiln_model_num_threads(const kiln_model* model); /* 0 for NULL */

/* Validates all tensors against the model, then runs it. Outputs are written
 * only when every check passed. */
kiln_status kiln_model_run(kiln_model* model, const kiln_tensor* inputs, uint32_t num_inputs,
                           kiln_tensor* outputs, uint32_t num_outputs);

/* Device memory (GPU artifacts). kiln_model_run copies host tensors to the
 * device and back on every run; a program that keeps its tensors on the
 * device allocates them from the model, fills them with
 * kiln_model_device_upload (or its own kernels, given the API's address:
 * a CUdeviceptr / hipDeviceptr_t; Vulkan addresses are Kiln handles), and
 * runs with kiln_model_run_device, whose tensors' `data` fields hold these
 * addresses (cast to void*); nothing is copied then. Addresses not allocated
 * by the model, or smaller than the tensor, are KILN_ERROR_INVALID_ARGUMENT.
 * On a CPU artifact these return KILN_ERROR_INVALID_ARGUMENT. Allocations are
 * freed by kiln_model_device_free or with the model. */
int kiln_model_is_device(const kiln_model* model); /* 1: GPU artifact, 0: CPU (or NULL) */
kiln_status kiln_model_device_alloc(kiln_model* model, uint64_t bytes, uint64_t* address);
kiln_status kiln_model_device_free(kiln_model* model, uint64_t address);
kiln_status kiln_model_device_upload(kiln_model* model, uint64_t address, const void* src,
                                     uint64_t bytes);
kiln_status kiln_model_device_download(kiln_model* model, uint64_t address, void* dst,
                                       uint64_t bytes);
kiln_status kiln_model_run_device(kiln_model* model, const kiln_tensor* inputs, uint32_t num_inputs,
                                  kiln_tensor* outputs, uint32_t num_outputs);
const char* kiln_last_error(void);                 /* never NULL; "" when none */
const char* kiln_status_string(kiln_status status); /* never NULL */
const char* kiln_version(void);                    /* runtime version, e.g. "0.1.0" */
const char* kiln_dtype_name(uint32_t dtype);       /* "f32", ...; NULL when unknown */
uint32_t kiln_dtype_bits(uint32_t dtype);          /* bits per element; 0 when unknown */

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
