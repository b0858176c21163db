//! Parallel loops on the runtime's thread pool.
//!
//! The CPU pipeline ([`crate::targets::CPU_PIPELINE`]) turns the outermost parallel loop of
//! each loop nest into an OpenMP region; translation to LLVM IR outlines it and calls the
//! `libomp` entry points listed in [`OPENMP_SYMBOLS`]. No OpenMP runtime is linked: every
//! artifact carries its own small implementation of exactly these entry points ([`SHIM_MLIR`],
//! generated from `shim.c` by `gen-shim.sh`), built on `kiln_exec_ctx.parallel_for`.
//!
//! Invariants:
//! - The shim is target-neutral `llvm`-dialect MLIR (no triple, CPU or feature attributes),
//!   compiled for the artifact's target into an object of its own that every artifact for that
//!   target and optimisation level shares (the driver caches it beside the kernel objects); the
//!   glue module declares the two functions it calls ([`ENTRY_DECLS`]).
//! - Its entry points have hidden visibility: an artifact never exports them, and two artifacts
//!   (or an artifact and a real OpenMP runtime) in one process never interpose on each other.
//! - The glue's `kiln_entry` brackets the model call with [`enter_ops`] and [`leave_ops`]:
//!   the run's `kiln_exec_ctx` is found through a thread-local set there, so concurrent runs on
//!   different threads are independent. Loops reached without it (nested regions, calls that
//!   bypass `kiln_entry`) run serially.
//! - Whether a region runs in parallel is decided by measuring it (see `shim.c`); results never
//!   depend on it, because the iterations of a parallel loop are independent.
//! - The shim also defines the kernel library's `kiln_par_for`, `kiln_par_threads` and
//!   `kiln_par_min_work` ([`crate::kernels::PAR_SYMBOLS`]): the run's pool for kernels, serial
//!   outside a run and inside a chunk.

/// The shim: `llvm`-dialect operations (no enclosing `module`), to be placed inside the glue
/// module of an artifact.
pub const SHIM_MLIR: &str = include_str!("shim.mlir");

/// The shim as a module of its own, which the driver compiles (and caches) once per target.
pub fn shim_module() -> String {
    format!("module {{\n{SHIM_MLIR}}}\n")
}

/// Declarations of the shim functions the glue's `kiln_entry` calls ([`enter_ops`],
/// [`leave_ops`]), for a glue module that links the shim as a separate object.
pub const ENTRY_DECLS: &str =
    "  llvm.func hidden @kiln_par_enter(!llvm.ptr, !llvm.ptr) -> !llvm.ptr\n  \
     llvm.func hidden @kiln_par_leave(!llvm.ptr)\n";

/// The OpenMP runtime entry points that compiled loops call and the shim defines; a kernel
/// object must not call any other `__kmpc_*`/`omp_*` function.
pub const OPENMP_SYMBOLS: [&str; 5] = [
    "__kmpc_fork_call",
    "__kmpc_global_thread_num",
    "__kmpc_for_static_init_8u",
    "__kmpc_for_static_fini",
    "__kmpc_barrier",
];

/// Environment variable: the serial time (µs) from which a region runs in parallel.
pub const MIN_US_ENV: &str = "KILN_PARALLEL_MIN_US";

/// Bytes `kiln_entry` reserves on its stack for the shim's per-run frame (checked by a
/// `_Static_assert` in `shim.c`).
pub const FRAME_BYTES: u32 = 64;

/// MLIR (`llvm` dialect) lines for the start of `kiln_entry`: installs the run whose context is
/// the SSA value `ctx` (a `!llvm.ptr`). Defines `%kiln_par_prev`, which [`leave_ops`] uses.
pub fn enter_ops(ctx: &str) -> String {
    format!(
        "    %kiln_par_n = llvm.mlir.constant({FRAME_BYTES} : i64) : i64\n    \
         %kiln_par_frame = llvm.alloca %kiln_par_n x i8 {{alignment = 8 : i64}} : (i64) -> !llvm.ptr\n    \
         %kiln_par_prev = llvm.call @kiln_par_enter({ctx}, %kiln_par_frame) : (!llvm.ptr, !llvm.ptr) -> !llvm.ptr\n"
    )
}

/// MLIR lines for the end of `kiln_entry` (after the model call, before returning).
pub fn leave_ops() -> String {
    "    llvm.call @kiln_par_leave(%kiln_par_prev) : (!llvm.ptr) -> ()\n".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_defines_every_openmp_symbol_with_hidden_visibility() {
        for sym in OPENMP_SYMBOLS
            .iter()
            .chain(&["kiln_par_enter", "kiln_par_leave"])
            .chain(&crate::kernels::PAR_SYMBOLS)
        {
            let def = format!("llvm.func hidden local_unnamed_addr @{sym}(");
            assert!(SHIM_MLIR.contains(&def), "{sym} is not a hidden definition");
        }
    }

    #[test]
    fn shim_is_target_neutral() {
        for word in [
            "x86",
            "aarch64",
            "target_cpu",
            "target_features",
            "#tbaa",
            "module",
        ] {
            assert!(!SHIM_MLIR.contains(word), "shim.mlir mentions {word}");
        }
    }

    #[test]
    fn entry_ops_use_the_shim_functions() {
        let ops = enter_ops("%ctx") + &leave_ops();
        assert!(ops.contains("@kiln_par_enter(%ctx, %kiln_par_frame)"));
        assert!(ops.contains("@kiln_par_leave(%kiln_par_prev)"));
        for sym in ["kiln_par_enter", "kiln_par_leave"] {
            assert!(ENTRY_DECLS.contains(&format!("llvm.func hidden @{sym}(")));
        }
    }
}
