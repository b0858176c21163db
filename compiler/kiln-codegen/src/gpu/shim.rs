//! The GPU shim: the launch, allocation and run-bracketing entry points the host part of a
//! GPU artifact calls, implemented on the runtime's device API (`kiln_exec_ctx.device`).
//!
//! Like [`crate::parallel`], the shim is C (`shim.c`) compiled once to target-neutral
//! `llvm`-dialect MLIR (`shim.mlir`, by `gen-shim.sh`) and placed in the glue module of every GPU
//! artifact, so it is built for the artifact's host target; its symbols are hidden.

/// The shim: `llvm`-dialect operations (no enclosing `module`), for an artifact's glue module.
pub const SHIM_MLIR: &str = include_str!("shim.mlir");

/// Bytes `kiln_entry` reserves on its stack for the shim's per-run frame (checked by a
/// `_Static_assert` in `shim.c`).
const FRAME_BYTES: u32 = 32;

/// MLIR (`llvm` dialect) lines for the start of `kiln_entry`: installs the run's device API
/// from the context `ctx` (a `!llvm.ptr`). Defines `%kiln_gpu_frame`, used by [`leave_ops`].
pub fn enter_ops(ctx: &str) -> String {
    format!(
        "    %kiln_gpu_n = llvm.mlir.constant({FRAME_BYTES} : i64) : i64\n    \
         %kiln_gpu_frame = llvm.alloca %kiln_gpu_n x i8 {{alignment = 8 : i64}} : (i64) -> !llvm.ptr\n    \
         llvm.call @kiln_gpu_enter({ctx}, %kiln_gpu_frame) : (!llvm.ptr, !llvm.ptr) -> ()\n"
    )
}

/// MLIR lines for the end of `kiln_entry`: defines `%kiln_gpu_status` (an `i32`), the run's
/// status (0, or the first device failure), which `kiln_entry` returns.
pub fn leave_ops() -> String {
    "    %kiln_gpu_status = llvm.call @kiln_gpu_leave(%kiln_gpu_frame) : (!llvm.ptr) -> i32\n"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_is_target_neutral_and_hidden() {
        for bad in ["x86", "target_cpu", "target_features", "#tbaa"] {
            assert!(!SHIM_MLIR.contains(bad), "shim.mlir mentions {bad}");
        }
        for symbol in [
            "kiln_gpu_enter",
            "kiln_gpu_leave",
            super::super::LAUNCH_SYMBOL,
            "_mlir_memref_to_llvm_alloc",
            "_mlir_memref_to_llvm_aligned_alloc",
            "_mlir_memref_to_llvm_free",
        ] {
            assert!(
                SHIM_MLIR.contains(&format!("llvm.func hidden local_unnamed_addr @{symbol}(")),
                "{symbol} is not a hidden function of the shim"
            );
        }
    }
}
