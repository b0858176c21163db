//! `#[repr(C)]` mirror of the artifact ABI, version 1 (see `runtime/include/kiln.h`).
//!
//! These types are the contract with the code generator: field order, sizes
//! and meaning must match `kiln.h` exactly, and changing any of them needs a
//! new ABI version. A layout test below pins the sizes and offsets for 64-bit
//! targets.

use core::ffi::{c_char, c_void};

/// The ABI version this runtime implements.
pub const ABI_VERSION: u32 = 1;

/// Name of the symbol every artifact shared library exports.
pub const ARTIFACT_SYMBOL: &[u8] = b"kiln_artifact\0";

/// Alignment the ABI guarantees for embedded weights and the workspace.
pub const BUFFER_ALIGN: usize = 64;

/// `kiln_tensor_desc`: static description of one input or output.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorDesc {
    /// UTF-8, NUL-terminated.
    pub name: *const c_char,
    /// A [`crate::DType`] code.
    pub dtype: u32,
    pub rank: u32,
    /// `rank` entries.
    pub shape: *const i64,
}

/// Body of a parallel loop: `body(data, begin, end)` handles `[begin, end)`.
pub type ParallelBody = unsafe extern "C" fn(data: *mut c_void, begin: i64, end: i64);

/// `parallel_for(pool, n, body, data)`.
pub type ParallelFor =
    unsafe extern "C" fn(pool: *mut c_void, n: i64, body: Option<ParallelBody>, data: *mut c_void);

/// `kiln_exec_ctx`: what compiled code receives from the runtime.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExecCtx {
    pub abi_version: u32,
    pub num_threads: u32,
    /// Opaque to compiled code.
    pub pool: *mut c_void,
    pub parallel_for: Option<ParallelFor>,
}

/// The compiled entry point; returns 0 on success.
pub type EntryFn = unsafe extern "C" fn(
    ctx: *const ExecCtx,
    inputs: *const *mut c_void,
    outputs: *const *mut c_void,
    weights: *const u8,
    workspace: *mut u8,
) -> i32;

/// `kiln_artifact_v1`: the descriptor returned by `kiln_artifact()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ArtifactV1 {
    pub abi_version: u32,
    pub num_inputs: u32,
    pub num_outputs: u32,
    /// [`FLAG_TARGET`] when a [`TargetRecord`] follows the descriptor.
    pub flags: u32,
    pub inputs: *const TensorDesc,
    pub outputs: *const TensorDesc,
    pub model_name: *const c_char,
    pub producer: *const c_char,
    /// Embedded weights (64-byte aligned), or null when external.
    pub weights: *const u8,
    pub weights_size: u64,
    /// External weights file, relative to the artifact, or null.
    pub weights_file: *const c_char,
    /// Scratch bytes the entry needs (multiple of 64, may be 0).
    pub workspace_size: u64,
    pub entry: Option<EntryFn>,
}

/// `kiln_artifact_v1.flags` bit: a [`TargetRecord`] directly follows the
/// descriptor.
pub const FLAG_TARGET: u32 = 1;

/// `kiln_artifact_target`: the machine the artifact's code was built for.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TargetRecord {
    pub arch: *const c_char,
    pub cpu: *const c_char,
    /// Comma-separated LLVM feature names.
    pub features: *const c_char,
}

/// `const kiln_artifact_v1* kiln_artifact(void)`.
pub type ArtifactFn = unsafe extern "C" fn() -> *const ArtifactV1;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn layout_matches_kiln_h_on_64_bit_targets() {
        assert_eq!(size_of::<TensorDesc>(), 24);
        assert_eq!(offset_of!(TensorDesc, shape), 16);
        assert_eq!(size_of::<ExecCtx>(), 24);
        assert_eq!(offset_of!(ExecCtx, parallel_for), 16);
        assert_eq!(size_of::<ArtifactV1>(), 88);
        assert_eq!(offset_of!(ArtifactV1, inputs), 16);
        assert_eq!(offset_of!(ArtifactV1, weights), 48);
        assert_eq!(offset_of!(ArtifactV1, weights_file), 64);
        assert_eq!(offset_of!(ArtifactV1, entry), 80);
    }
}
