//! The MLIR pipeline shared by the CPU targets (x86-64, AArch64): the one definition of
//! [`CPU_PIPELINE`], used both by the targets and as the hint of `lower::lower_graph`.
//!
//! It produces scalar loops, the outermost parallel loop of each nest running on the runtime's
//! thread pool (see [`crate::parallel`]); speed comes from emitting loop nests whose innermost loop is a
//! parallel, unit-stride dimension (see `lower::linalg`), which LLVM's loop vectorizer turns into
//! SIMD code at `-O2`/`-O3` without fast-math. Tiling and packing would be added here, per CPU
//! if needed, without touching the code that runs the pipeline.

/// The CPU pass list after an optional first step (see [`CPU_PIPELINE`]).
macro_rules! cpu_pipeline {
    ($first:literal) => {
        concat!(
            "builtin.module(",
            $first,
            "eliminate-empty-tensors, ",
            "one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}, ",
            "ownership-based-buffer-deallocation, ",
            "canonicalize, ",
            "buffer-deallocation-simplification, ",
            "bufferization-lower-deallocations, ",
            "canonicalize, ",
            "func.func(convert-linalg-to-affine-loops, ",
            "affine-loop-normalize{promote-single-iter=true}, ",
            "affine-parallelize{max-nested=1}), ",
            "expand-strided-metadata, ",
            "lower-affine, ",
            "convert-scf-to-openmp, ",
            "finalize-memref-to-llvm, ",
            "convert-scf-to-cf, ",
            "convert-math-to-llvm, ",
            "convert-math-to-libm, ",
            "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1}, ",
            "convert-arith-to-llvm, ",
            "convert-cf-to-llvm, ",
            "convert-index-to-llvm, ",
            "convert-openmp-to-llvm, ",
            "reconcile-unrealized-casts)"
        )
    };
}

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
/// - `convert-linalg-to-affine-loops` lowers the memref linalg ops to `affine.for` loops, in the
///   order of the loop dimensions of each op; `affine-loop-normalize{promote-single-iter}`
///   removes one-iteration loops (batch 1), so the next step sees the first real dimension;
/// - `affine-parallelize{max-nested=1}` turns the outermost loop of each nest that dependence
///   analysis proves parallel into `affine.parallel` (one per nest: inner loops stay serial and
///   vectorizable; loops with non-affine accesses, such as clamped padding reads, stay serial);
/// - `expand-strided-metadata` and `lower-affine` remove `memref.view`/subview arithmetic and
///   turn `affine.parallel` into `scf.parallel`;
/// - `convert-scf-to-openmp` makes each `scf.parallel` an `omp.parallel` + `omp.wsloop`; at
///   translation MLIR outlines it and calls the OpenMP entry points of [`crate::parallel`], which
///   every artifact carries, so the loop runs on the runtime's thread pool;
/// - `finalize-memref-to-llvm` runs before `convert-scf-to-cf`: it lowers the
///   `memref.alloca_scope` that `convert-scf-to-openmp` puts around each loop body, which must
///   keep a single block;
/// - math ops with an LLVM intrinsic become intrinsics, the others (`erf`, `tanh`, `atan`,
///   `acos`, `sinh`, ...) libm calls (`convert-math-to-libm`): the shared library needs libm
///   (present in every process that links the C runtime);
/// - functions use the bare-pointer calling convention (one pointer per static memref argument,
///   no descriptors, no `_mlir_ciface_` wrappers), which is the ABI of `kiln_main`.
pub const CPU_PIPELINE: &str = cpu_pipeline!("func.func(linalg-fuse-elementwise-ops), ");

/// The CPU pipeline of planned modules (`lower` with a memory plan): the
/// same passes without `linalg-fuse-elementwise-ops`. Each node is its own
/// island there, and what is fused was fused by Kiln's passes, which never
/// pull an elementwise producer into a reduction loop (where it would be
/// recomputed once per reduction step).
pub const CPU_PLANNED_PIPELINE: &str = cpu_pipeline!("");

/// The CPU pipeline for any CPU name (the pipeline does not depend on it yet).
pub(super) fn pipeline(_cpu: &str) -> String {
    CPU_PIPELINE.to_owned()
}
