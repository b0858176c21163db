//! The MLIR pipeline shared by the CPU targets (x86-64, AArch64): the one definition of
//! [`CPU_PIPELINE`], used both by the targets and as the hint of `lower::lower_graph`.
//!
//! It produces scalar loops; speed comes from emitting loop nests whose innermost loop is a
//! parallel, unit-stride dimension (see `lower::linalg`), which LLVM's loop vectorizer turns into
//! SIMD code at `-O2`/`-O3` without fast-math. Tiling and packing would be added here, per CPU
//! if needed, without touching the code that runs the pipeline.

/// Lowers `func`/`linalg`/`tensor`/`bufferization`/`arith`/`math`/`memref` input to the LLVM
/// dialect; validated with `mlir-opt-22` (LLVM 22.1) on every module `lower` produces.
///
/// Why each step sits where it does:
/// - `linalg-fuse-elementwise-ops` first, while ops are still on tensors (fusion is a tensor
///   rewrite);
/// - `eliminate-empty-tensors` lets `tensor.empty` outputs reuse the destination of
///   `bufferization.materialize_in_destination`, so results are written in place, not malloc'ed;
/// - `one-shot-bufferize` with function-boundary bufferization turns tensors into memrefs with
///   identity layouts;
/// - `ownership-based-buffer-deallocation` (+ simplification and lowering) frees every
///   temporary buffer bufferization had to allocate, so repeated runs do not leak; the
///   `canonicalize` runs clean up the ownership bookkeeping it inserts;
/// - `convert-linalg-to-loops` lowers the memref linalg ops to `scf` loops, in the order of the
///   loop dimensions of each op;
/// - `expand-strided-metadata` and `lower-affine` remove `memref.view`/subview arithmetic;
/// - math ops with an LLVM intrinsic become intrinsics, the others (`erf`, `tanh`, `atan`,
///   `acos`, `sinh`, ...) libm calls (`convert-math-to-libm`): the shared library needs libm
///   (present in every process that links the C runtime);
/// - functions use the bare-pointer calling convention (one pointer per static memref argument,
///   no descriptors, no `_mlir_ciface_` wrappers), which is the ABI of `kiln_main`.
pub const CPU_PIPELINE: &str = concat!(
    "builtin.module(",
    "func.func(linalg-fuse-elementwise-ops), ",
    "eliminate-empty-tensors, ",
    "one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}, ",
    "ownership-based-buffer-deallocation, ",
    "canonicalize, ",
    "buffer-deallocation-simplification, ",
    "bufferization-lower-deallocations, ",
    "canonicalize, ",
    "func.func(convert-linalg-to-loops), ",
    "expand-strided-metadata, ",
    "lower-affine, ",
    "convert-scf-to-cf, ",
    "convert-math-to-llvm, ",
    "convert-math-to-libm, ",
    "finalize-memref-to-llvm, ",
    "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1}, ",
    "convert-arith-to-llvm, ",
    "convert-cf-to-llvm, ",
    "convert-index-to-llvm, ",
    "reconcile-unrealized-casts)"
);

/// The CPU pipeline for any CPU name (the pipeline does not depend on it yet).
pub(super) fn pipeline(_cpu: &str) -> String {
    CPU_PIPELINE.to_owned()
}
