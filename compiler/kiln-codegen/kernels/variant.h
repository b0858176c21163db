/*
 * variant.h - instantiates every kernel for one variant. The includer
 * defines KV_NAME (the symbol suffix), KV_W (vector lanes), KV_MR and KV_NRV
 * (GEMM register tile: MR rows x NRV vectors), KV_KC and KV_NC (default
 * cache blocks), KV_KC_FEW and KV_FEW_TILES (the K block of a panel-major
 * convolution, and up to how many row tiles one is panel-major, conv.h) and
 * KV_ATTR (function attributes, e.g. the minimum legal vector width), then
 * includes this file.
 */
typedef float KCAT(kv_v_, KV_NAME) __attribute__((ext_vector_type(KV_W)));
typedef float KCAT(kv_vu_, KV_NAME) __attribute__((ext_vector_type(KV_W), aligned(4)));
typedef int32_t KCAT(kv_vi_, KV_NAME) __attribute__((ext_vector_type(KV_W)));
typedef _Bool KCAT(kv_vm_, KV_NAME) __attribute__((ext_vector_type(KV_W)));

#define V KCAT(kv_v_, KV_NAME)   /* vector of VW floats */
#define VU KCAT(kv_vu_, KV_NAME) /* the same, for unaligned memory */
#define VI KCAT(kv_vi_, KV_NAME) /* vector of VW int32 (masks, bits) */
#define VM KCAT(kv_vm_, KV_NAME) /* vector of VW bools (masked loads and stores) */
#define VW KV_W
#define MR KV_MR
#define NRV KV_NRV
#define NR (KV_W * KV_NRV)
#define FN(x) KCAT(KCAT(x, _), KV_NAME)
#define KF static inline __attribute__((always_inline)) KV_ATTR

#include "vmath.h"
#include "epilogue.h"
#include "gemm.h"
#include "eltwise.h"
#include "copy.h"
#include "conv.h"
#include "dwconv.h"
#include "pool.h"
#include "attention.h"
#include "qgemm.h"
#include "igemm.h"
#include "qlinear.h"

#undef V
#undef VU
#undef VI
#undef VM
#undef VW
#undef MR
#undef NRV
#undef NR
#undef FN
#undef KF
#undef KV_NAME
#undef KV_W
#undef KV_MR
#undef KV_NRV
#undef KV_ATTR
#undef KV_KC
#undef KV_NC
#undef KV_KC_FEW
#undef KV_FEW_TILES
