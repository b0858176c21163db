//! `#[repr(C)]` mirror of the artifact ABI, version 1 (see `runtime/include/kiln.h`).
//!
//! These types are the contract with the code generator: field order, sizes
//! and meaning must match `kiln.h` exactly, and changing any of them needs a
//! new ABI version. A layout test below pins the sizes and offsets for 64-bit
//! targets.

use core::ffi::{c_char, c_void};

/// The ABI version this runtime implements for artifact descriptors (CPU and GPU artifacts
/// alike; GPU artifacts announce their device record with [`FLAG_DEVICE`]).
pub const ABI_VERSION: u32 = 1;

/// The version of the [`ExecCtx`] this runtime passes: 2 adds [`ExecCtx::device`]. Artifacts
/// compiled for version 1 read only the fields before it.
pub const EXEC_CTX_VERSION: u32 = 2;

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

/// `kiln_device_api`: the device entry points of a GPU artifact's run.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DeviceApi {
    /// The run's device state.
    pub handle: *mut c_void,
    /// `launch(handle, kernel, gx, gy, gz, args)`: 0 or a negative code.
    pub launch: Option<unsafe extern "C" fn(*mut c_void, u32, u64, u64, u64, *const i64) -> i32>,
    /// `alloc(handle, bytes)`: a device address, 0 when out of memory.
    pub alloc: Option<unsafe extern "C" fn(*mut c_void, u64) -> u64>,
    /// `free(handle, address)`.
    pub free: Option<unsafe extern "C" fn(*mut c_void, u64)>,
}

/// `kiln_exec_ctx`: what compiled code receives from the runtime.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExecCtx {
    /// [`EXEC_CTX_VERSION`].
    pub abi_version: u32,
    pub num_threads: u32,
    /// Opaque to compiled code.
    pub pool: *mut c_void,
    pub parallel_for: Option<ParallelFor>,
    /// Version 2: the device API of a GPU artifact's run, null for CPU artifacts.
    pub device: *const DeviceApi,
}

/// `kiln_entry`'s return value when the context has no device API.
pub const ENTRY_NO_DEVICE: i32 = -2;
/// `kiln_entry`'s return value when a temporary device allocation failed.
pub const ENTRY_OUT_OF_DEVICE_MEMORY: i32 = -3;

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

/// `kiln_artifact_v1.flags` bit: a [`DeviceRecord`] follows the [`TargetRecord`].
pub const FLAG_DEVICE: u32 = 2;

/// `kiln_device_image`: one image of a GPU artifact's device code.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DeviceImage {
    /// `KILN_DEVICE_FORMAT_*`.
    pub format: u32,
    /// Images of one group hold the same kernels.
    pub group: u32,
    /// The chip it was built for, "" when any.
    pub chip: *const c_char,
    pub data: *const u8,
    pub size: u64,
}

/// `kiln_device_kernel`: one kernel of a GPU artifact.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DeviceKernel {
    pub name: *const c_char,
    /// The image group holding it.
    pub group: u32,
    /// Threads per block.
    pub block: [u32; 3],
    pub num_args: u32,
    pub reserved: u32,
    /// `num_args` `KILN_DEVICE_ARG_*` codes.
    pub args: *const u8,
}

/// `kiln_artifact_device`: the device code of a GPU artifact.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DeviceRecord {
    /// `KILN_DEVICE_*`.
    pub api: u32,
    pub num_images: u32,
    pub images: *const DeviceImage,
    pub num_kernels: u32,
    pub reserved: u32,
    pub kernels: *const DeviceKernel,
    pub chip: *const c_char,
}

/// Device APIs (`KILN_DEVICE_*`).
pub const DEVICE_CUDA: u32 = 1;
pub const DEVICE_HIP: u32 = 2;
pub const DEVICE_VULKAN: u32 = 3;
pub const DEVICE_METAL: u32 = 4;

/// Image formats (`KILN_DEVICE_FORMAT_*`).
pub const FORMAT_PTX: u32 = 1;
pub const FORMAT_CUBIN: u32 = 2;
pub const FORMAT_HSACO: u32 = 3;
pub const FORMAT_SPIRV: u32 = 4;
pub const FORMAT_MSL: u32 = 5;

/// Kernel argument kinds (`KILN_DEVICE_ARG_*`): the high nibble the kind, the low one the
/// bytes the device reads from the low end of the argument's slot.
pub const ARG_ADDRESS: u8 = 0x18;
pub const ARG_INT: u8 = 0x20;
pub const ARG_FLOAT: u8 = 0x30;

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
        assert_eq!(size_of::<ExecCtx>(), 32);
        assert_eq!(offset_of!(ExecCtx, parallel_for), 16);
        assert_eq!(offset_of!(ExecCtx, device), 24);
        assert_eq!(size_of::<DeviceApi>(), 32);
        assert_eq!(size_of::<DeviceImage>(), 32);
        assert_eq!(size_of::<DeviceKernel>(), 40);
        assert_eq!(offset_of!(DeviceKernel, args), 32);
        assert_eq!(size_of::<DeviceRecord>(), 40);
        assert_eq!(offset_of!(DeviceRecord, kernels), 24);
        assert_eq!(size_of::<ArtifactV1>(), 88);
        assert_eq!(offset_of!(ArtifactV1, inputs), 16);
        assert_eq!(offset_of!(ArtifactV1, weights), 48);
        assert_eq!(offset_of!(ArtifactV1, weights_file), 64);
        assert_eq!(offset_of!(ArtifactV1, entry), 80);
    }
}
