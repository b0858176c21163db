//! The external tools device code generation runs: NVIDIA's `ptxas` (PTX → SASS), SPIRV-Cross
//! (SPIR-V → MSL), and `ld.lld` through MLIR's AMD serializer. Each call runs in a temporary
//! folder and reports the tool's diagnostics in a [`CodegenError::DeviceTool`].

use crate::error::{CodegenError, Result};
use std::path::Path;
use std::process::Command;

fn tool_error(tool: &Path, message: String) -> CodegenError {
    CodegenError::DeviceTool {
        tool: tool.display().to_string(),
        message,
    }
}

fn run(tool: &Path, command: &mut Command) -> Result<()> {
    let out = command
        .output()
        .map_err(|e| tool_error(tool, format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(tool_error(
            tool,
            format!(
                "{}:\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    Ok(())
}

fn scratch() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("kiln-device-")
        .tempdir()
        .map_err(|e| CodegenError::Io {
            action: "create a temporary folder in",
            path: std::env::temp_dir(),
            source: e,
        })
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CodegenError {
    let path = path.to_owned();
    move |source| CodegenError::Io {
        action,
        path,
        source,
    }
}

/// Assembles PTX into a cubin (SASS) for `chip` (`sm_90`).
pub fn ptxas(ptxas: &Path, ptx: &[u8], chip: &str) -> Result<Vec<u8>> {
    let dir = scratch()?;
    let input = dir.path().join("kernels.ptx");
    let output = dir.path().join("kernels.cubin");
    std::fs::write(&input, ptx).map_err(io("write", &input))?;
    run(
        ptxas,
        Command::new(ptxas)
            .arg(format!("-arch={chip}"))
            .arg("-O3")
            .arg(&input)
            .arg("-o")
            .arg(&output),
    )?;
    std::fs::read(&output).map_err(io("read", &output))
}

/// Translates the kernel `entry` of a SPIR-V module to Metal Shading Language (MSL 2.3: 64-bit integers in buffers; macOS 11, like the host code).
pub fn spirv_to_msl(cross: &Path, spirv: &[u8], entry: &str) -> Result<Vec<u8>> {
    let dir = scratch()?;
    let input = dir.path().join("kernels.spv");
    let output = dir.path().join("kernel.metal");
    std::fs::write(&input, spirv).map_err(io("write", &input))?;
    run(
        cross,
        Command::new(cross)
            .arg(&input)
            .arg("--msl")
            .arg("--msl-version")
            .arg("20300")
            .arg("--entry")
            .arg(entry)
            .arg("--stage")
            .arg("comp")
            .arg("--output")
            .arg(&output),
    )?;
    std::fs::read(&output).map_err(io("read", &output))
}

/// Lays out `dir` like a ROCm installation's `llvm/bin` with `ld.lld` pointing at `lld`: where
/// MLIR's AMD serializer looks for the linker of code objects (its `toolkit` option).
pub fn lld_toolkit(lld: &Path, dir: &Path) -> Result<()> {
    let lld = lld.canonicalize().map_err(io("find", lld))?;
    let bin = dir.join("llvm").join("bin");
    std::fs::create_dir_all(&bin).map_err(io("create", &bin))?;
    let link = bin.join("ld.lld");
    std::os::unix::fs::symlink(&lld, &link).map_err(io("link", &link))
}

/// A temporary folder for a tool's files (removed when dropped).
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir> {
    scratch()
}
