//! The MLIR pipeline shared by the CPU targets (x86-64, AArch64).
//!
//! It is deliberately naive (scalar loops): tiling, vectorisation and packing will be added here,
//! per CPU if needed, without touching the code that runs the pipeline.

/// Lowers `func`/`linalg`/`tensor`/`bufferization`/`arith` input to the LLVM dialect.
///
/// Why each step sits where it does:
/// - `linalg-fuse-elementwise-ops` first, while ops are still on tensors (fusion is a tensor rewrite);
/// - `eliminate-empty-tensors` lets `tensor.empty` outputs reuse the destination of
///   `bufferization.materialize_in_destination`, so results are written in place, not malloc'ed;
/// - `one-shot-bufferize` with function-boundary bufferization turns tensors into memrefs with
///   identity layouts (a plain pointer + sizes ABI);
/// - `convert-linalg-to-loops` then lowers the memref linalg ops to `scf` loops;
/// - `convert-scf-to-cf`, `convert-to-llvm` and `reconcile-unrealized-casts` finish in the LLVM
///   dialect, ready for translation.
pub(super) fn naive_pipeline(_cpu: &str) -> String {
    concat!(
        "builtin.module(",
        "func.func(linalg-fuse-elementwise-ops), ",
        "eliminate-empty-tensors, ",
        "one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}, ",
        "func.func(convert-linalg-to-loops), ",
        "convert-scf-to-cf, ",
        "convert-to-llvm, ",
        "reconcile-unrealized-casts)"
    )
    .to_owned()
}
