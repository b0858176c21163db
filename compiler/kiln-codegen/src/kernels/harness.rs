//! A loadable library of kernels, for tests and benchmarks of the kernel library itself.
//!
//! Kernels have hidden visibility (an artifact never exports them), so a test cannot look them
//! up in an artifact. [`build_harness_library`] links the kernels with the parallel shim and a
//! small harness module into a shared library that exports, for each kernel `kiln_k_X`, a
//! wrapper `kiln_harness_kiln_k_X(const int64_t *args)`, plus `kiln_harness_enter(ctx, frame)`
//! and `kiln_harness_leave(prev)`, which install and remove a run context exactly as an
//! artifact's `kiln_entry` does (so kernels reach the caller's `parallel_for`). `frame` is
//! [`crate::parallel::FRAME_BYTES`] bytes, 8-aligned, owned by the caller for the duration of
//! the run.

use super::compile_kernels;
use crate::error::{CodegenError, Result};
use crate::llvm::OptLevel;
use crate::targets::Target;
use crate::{emit_with_pipeline, link_shared_library, Emit};
use std::path::Path;

/// The exported wrapper of kernel `name`.
pub fn wrapper_symbol(name: &str) -> String {
    format!("kiln_harness_{name}")
}

/// The harness module (LLVM-dialect MLIR): one exported wrapper per kernel, and the run
/// context entry points.
fn harness_mlir(names: &[&str]) -> String {
    let mut s = format!("module {{\n{}", crate::parallel::ENTRY_DECLS);
    s.push_str(
        "  llvm.func @kiln_harness_enter(%ctx: !llvm.ptr, %frame: !llvm.ptr) -> !llvm.ptr {\n    \
         %p = llvm.call @kiln_par_enter(%ctx, %frame) : (!llvm.ptr, !llvm.ptr) -> !llvm.ptr\n    \
         llvm.return %p : !llvm.ptr\n  }\n  \
         llvm.func @kiln_harness_leave(%prev: !llvm.ptr) {\n    \
         llvm.call @kiln_par_leave(%prev) : (!llvm.ptr) -> ()\n    llvm.return\n  }\n",
    );
    for name in names {
        let wrapper = wrapper_symbol(name);
        s.push_str(&format!(
            "  llvm.func @{name}(!llvm.ptr)\n  llvm.func @{wrapper}(%a: !llvm.ptr) {{\n    \
             llvm.call @{name}(%a) : (!llvm.ptr) -> ()\n    llvm.return\n  }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// Compiles the kernels `names` for `target` and links them, the parallel shim and the harness
/// into the shared library `output` (see the module documentation).
pub fn build_harness_library(
    target: &Target,
    opt: OptLevel,
    names: &[&str],
    output: &Path,
) -> Result<()> {
    let kernels = compile_kernels(target, opt, names)?;
    link_harness_library(target, opt, &kernels, names, output)
}

/// Like [`build_harness_library`], with the kernels already compiled (`kernels`, an object from
/// [`compile_kernels`] defining `names`).
pub fn link_harness_library(
    target: &Target,
    opt: OptLevel,
    kernels: &[u8],
    names: &[&str],
    output: &Path,
) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|source| CodegenError::Io {
        action: "create a temporary directory for",
        path: output.to_path_buf(),
        source,
    })?;
    let shim = crate::parallel::shim_module();
    let objects = [
        ("kernels.o", kernels.to_vec()),
        (
            "shim.o",
            emit_with_pipeline(&shim, target, "", opt, Emit::Obj)?,
        ),
        (
            "harness.o",
            emit_with_pipeline(&harness_mlir(names), target, "", opt, Emit::Obj)?,
        ),
    ];
    let mut paths = Vec::new();
    for (file, bytes) in objects {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).map_err(|source| CodegenError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let wrappers: Vec<String> = names.iter().map(|n| wrapper_symbol(n)).collect();
    let mut exports: Vec<&str> = wrappers.iter().map(String::as_str).collect();
    exports.extend(["kiln_harness_enter", "kiln_harness_leave"]);
    link_shared_library(&refs, output, &exports)
}
