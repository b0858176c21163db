//! What the driver does for GPU targets only: finding the optional device tools, and writing
//! the device images of an artifact (`--emit=device`, and the images object linked into GPU
//! artifacts).
//!
//! Tools are found, in order, from:
//! - libdevice: `$KILN_LIBDEVICE`, then `nvvm/libdevice/libdevice.10.bc` under `$CUDA_HOME`,
//!   `$CUDA_PATH`, the folder above the `ptxas` found below, and `/usr/local/cuda`;
//! - `ptxas`: `$KILN_PTXAS`, then `bin/ptxas` under `$CUDA_HOME`/`$CUDA_PATH`, `ptxas` on
//!   `PATH`, `/usr/local/cuda/bin/ptxas`;
//! - `spirv-cross` on `PATH`; `ld.lld` as for linking.
//!
//! PyPI's `nvidia-cuda-nvcc` wheel has both NVIDIA tools under `nvidia/cu13` (set
//! `CUDA_HOME` to it, or put its `bin` on `PATH`).

use crate::error::{DriverError, Result};
use kiln_codegen::gpu::DeviceCode;
use kiln_codegen::DeviceTools;
use std::path::{Path, PathBuf};

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn cuda_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|v| env_path(v))
        .collect();
    roots.push(PathBuf::from("/usr/local/cuda"));
    roots
}

/// Finds the device tools (see the module docs); `extra_sms` are more CUDA architectures to
/// build SASS for.
pub fn device_tools(extra_sms: &[String]) -> DeviceTools {
    let ptxas = env_path("KILN_PTXAS")
        .filter(|p| p.is_file())
        .or_else(|| {
            cuda_roots()
                .into_iter()
                .take(2)
                .map(|r| r.join("bin/ptxas"))
                .find(|p| p.is_file())
        })
        .or_else(|| on_path("ptxas"))
        .or_else(|| Some(PathBuf::from("/usr/local/cuda/bin/ptxas")).filter(|p| p.is_file()));
    let mut roots = cuda_roots();
    if let Some(dir) = ptxas
        .as_ref()
        .and_then(|p| p.parent())
        .and_then(Path::parent)
    {
        roots.insert(roots.len() - 1, dir.to_owned());
    }
    let libdevice = env_path("KILN_LIBDEVICE")
        .filter(|p| p.is_file())
        .or_else(|| {
            roots
                .iter()
                .map(|r| r.join("nvvm/libdevice/libdevice.10.bc"))
                .find(|p| p.is_file())
        });
    let ld_lld = kiln_codegen::Linker::find()
        .ok()
        .filter(|l| l.kind() == kiln_codegen::LinkerKind::Lld)
        .map(|l| l.program().to_owned());
    DeviceTools {
        libdevice,
        ptxas,
        ld_lld,
        spirv_cross: on_path("spirv-cross"),
        extra_sms: extra_sms.to_vec(),
        lld_toolkit: None,
    }
}

/// Writes each device image into `dir` (`kernels.ptx`, `kernels.sm_90.cubin`,
/// `kernels.hsaco`, `kernels.spv`, `<kernel>.metal`), creating the folder; returns the files.
pub fn write_images(device: &DeviceCode, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| DriverError::io("create", dir, e))?;
    let mut files = Vec::new();
    for image in &device.images {
        let ext = image.format.extension();
        let name = match image.format {
            kiln_codegen::ImageFormat::Cubin => format!("kernels.{}.{ext}", image.chip),
            kiln_codegen::ImageFormat::Msl => {
                let kernel = device
                    .kernels
                    .iter()
                    .find(|k| k.group == image.group)
                    .map_or("kernel", |k| k.name.as_str());
                format!("{kernel}.{ext}")
            }
            _ => format!("kernels.{ext}"),
        };
        let path = dir.join(name);
        // Text images carry the NUL the runtime needs; files do not.
        let data = match image.format {
            kiln_codegen::ImageFormat::Ptx | kiln_codegen::ImageFormat::Msl => {
                image.data.strip_suffix(&[0]).unwrap_or(&image.data)
            }
            _ => &image.data[..],
        };
        std::fs::write(&path, data).map_err(|e| DriverError::io("write", &path, e))?;
        files.push(path);
    }
    Ok(files)
}
