/*
 * kernels.c - Kiln's CPU kernel library (unity file).
 *
 * Compiled by build.rs with clang to LLVM bitcode, once per architecture,
 * without target CPU or features; every artifact then compiles the kernels
 * it uses for its own CPU (src/kernels/mod.rs). The ABI is kiln_kernels.h.
 *
 * Rules for this code: clang vector extensions only (no ISA intrinsics but
 * the VNNI dot products and the 16-lane variant's table permute), no
 * libm calls (vmath.h), no allocation, stack use per call well under 64 KiB,
 * parallelism only through kiln_par_for.
 */
#include "common.h"

/* 16 x 128-bit registers: x86-64 baseline (SSE2). */
#define KV_NAME w4r16
#define KV_W 4
#define KV_MR KILN_W4R16_MR
#define KV_NRV (KILN_W4R16_NR / 4)
#define KV_KC 256
#define KV_NC 256
#define KV_KC_FEW KV_KC /* not measured: the default */
#define KV_FEW_TILES 16
#define KV_ATTR
#include "variant.h"

/* 16 x 256-bit registers: AVX2 + FMA. */
#define KV_NAME w8r16
#define KV_W 8
#define KV_MR KILN_W8R16_MR
#define KV_NRV (KILN_W8R16_NR / 8)
#define KV_KC 256 /* KC x NC = 256 KiB of B: half of a Zen 3 L2 */
#define KV_NC 256
/* Panel-major convolutions (conv.h): 128 KiB of a panel's B, each block
 * reused by every row tile from L2. Zen 3, 3x3 convolution of 7x7x512
 * (ResNet-50's last stage): 2.99 -> 2.40 ms (minimum) against 256. */
#define KV_KC_FEW 2048
/* 1x1 convolutions, Zen 3: 33 row tiles (14x14) 5% faster panel-major than
 * in column blocks, 131 tiles (28x28) 8% slower. */
#define KV_FEW_TILES 40
#define KV_ATTR __attribute__((min_vector_width(256)))
#include "variant.h"

/* 32 x 512-bit registers: AVX-512 (the minimum vector width keeps 512-bit
 * registers on CPUs that prefer 256-bit vectors for auto-vectorization).
 * The only variant that uses an ISA builtin outside the VNNI kernels (the
 * AVX-512F permute of qgemm.h's 4-bit lookups), so it is compiled only for
 * CPUs with AVX-512F (`Kernel::compiles_for`); the attribute lets clang
 * accept the builtin and is removed with the others per artifact. */
#define KV_NAME w16r32
#define KV_W 16
#define KV_MR KILN_W16R32_MR
#define KV_NRV (KILN_W16R32_NR / 16)
#define KV_KC 512 /* measured best on a Sapphire Rapids core (2 MiB L2) */
#define KV_NC 512
#define KV_KC_FEW KV_KC /* not measured: the default */
#define KV_FEW_TILES 16
#if defined(__x86_64__)
#define KV_ATTR __attribute__((min_vector_width(512), target("avx512f")))
#else
#define KV_ATTR __attribute__((min_vector_width(512)))
#endif
#include "variant.h"

/* 32 x 128-bit registers: AArch64 NEON. */
#define KV_NAME w4r32
#define KV_W 4
#define KV_MR KILN_W4R32_MR
#define KV_NRV (KILN_W4R32_NR / 4)
#define KV_KC 256
#define KV_NC 256
#define KV_KC_FEW KV_KC /* not measured: the default */
#define KV_FEW_TILES 16
#define KV_ATTR
#include "variant.h"
