//! The C API declared in `runtime/include/kiln.h`.
//!
//! Invariants:
//! - No panic crosses the boundary: every status-returning function runs
//!   inside [`guard`], which turns a panic into `KILN_ERROR_INTERNAL` in
//!   unwinding builds; `panic = "abort"` builds abort instead.
//! - Every status-returning function sets the thread's last error: the error
//!   message on failure, "" on success.
//! - The C API only converts pointers and forwards to [`Model`]; all checks
//!   live in `kiln-runtime-core`, shared with the Rust API, so both front
//!   ends behave the same.

use crate::last_error;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::ffi::{c_char, c_void, CStr};
use kiln_runtime_core::abi::ArtifactV1;
use kiln_runtime_core::{DType, Error, LoadOptions, Model, RawTensor, Status, TensorInfo};

/// `kiln_status`.
pub type KilnStatus = i32;

/// `kiln_tensor`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KilnTensor {
    pub dtype: u32,
    pub rank: u32,
    pub shape: *const i64,
    pub data: *mut c_void,
    pub byte_size: u64,
}

/// `kiln_tensor_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KilnTensorInfo {
    pub name: *const c_char,
    pub dtype: u32,
    pub rank: u32,
    pub shape: *const i64,
    pub byte_size: u64,
}

/// Runs `f`, records its outcome as the last error and returns the status.
fn guard(f: impl FnOnce() -> Result<(), Error>) -> KilnStatus {
    #[cfg(not(panic = "abort"))]
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::Internal("panic inside the Kiln runtime".into())));
    #[cfg(panic = "abort")]
    let result = f();
    match result {
        Ok(()) => {
            last_error::set(None);
            Status::Ok.code()
        }
        Err(error) => {
            last_error::set(Some(&error.to_string()));
            error.status().code()
        }
    }
}

fn null_error(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is NULL"))
}

/// # Safety
/// `ptr` is null or a NUL-terminated string.
unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a CStr, Error> {
    if ptr.is_null() {
        return Err(null_error(what));
    }
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { CStr::from_ptr(ptr) })
}

/// # Safety
/// `out` is null or writable.
unsafe fn store_model(out: *mut *mut Model, model: Model) {
    // SAFETY: checked non-null by callers, writable by contract.
    unsafe { out.write(Box::into_raw(Box::new(model))) };
}

/// Loads an artifact shared library.
///
/// # Safety
/// `artifact_path` is null or a C string; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_load(
    artifact_path: *const c_char,
    out: *mut *mut Model,
) -> KilnStatus {
    guard(|| {
        if out.is_null() {
            return Err(null_error("out"));
        }
        // SAFETY: `out` is writable (caller contract); clear it first so a
        // failed load never leaves a stale pointer behind.
        unsafe { out.write(core::ptr::null_mut()) };
        // SAFETY: caller contract.
        let path = unsafe { c_str(artifact_path, "artifact_path")? };
        let model = Model::load(path.to_bytes())?;
        // SAFETY: `out` checked above.
        unsafe { store_model(out, model) };
        Ok(())
    })
}

/// `kiln_load_options`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KilnLoadOptions {
    pub struct_size: u32,
    pub device: i32,
}

/// Loads an artifact shared library with options (the device of a GPU artifact).
///
/// # Safety
/// `artifact_path` is null or a C string; `options` is null or points to
/// `options->struct_size` readable bytes; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_load_with_options(
    artifact_path: *const c_char,
    options: *const KilnLoadOptions,
    out: *mut *mut Model,
) -> KilnStatus {
    guard(|| {
        if out.is_null() {
            return Err(null_error("out"));
        }
        // SAFETY: `out` is writable (caller contract).
        unsafe { out.write(core::ptr::null_mut()) };
        // SAFETY: caller contract.
        let path = unsafe { c_str(artifact_path, "artifact_path")? };
        let mut opts = LoadOptions::default();
        if !options.is_null() {
            // SAFETY: the first field is readable (caller contract).
            let size = unsafe { options.cast::<u32>().read() } as usize;
            if size < core::mem::size_of::<KilnLoadOptions>() {
                return Err(Error::InvalidArgument(format!(
                    "options->struct_size is {size}; set it to sizeof(kiln_load_options)"
                )));
            }
            // SAFETY: at least this struct's bytes are readable (checked size).
            let o = unsafe { options.read() };
            opts.device = match o.device {
                d if d < 0 => None,
                d => Some(d as u32),
            };
        }
        let model = Model::load_with(path.to_bytes(), &opts)?;
        // SAFETY: `out` checked above.
        unsafe { store_model(out, model) };
        Ok(())
    })
}

/// Wraps a statically linked artifact.
///
/// # Safety
/// `artifact` is null or a valid descriptor that outlives the model;
/// `weights_path` is null or a C string; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_from_artifact(
    artifact: *const ArtifactV1,
    weights_path: *const c_char,
    out: *mut *mut Model,
) -> KilnStatus {
    guard(|| {
        if out.is_null() {
            return Err(null_error("out"));
        }
        // SAFETY: `out` is writable (caller contract).
        unsafe { out.write(core::ptr::null_mut()) };
        if artifact.is_null() {
            return Err(null_error("artifact"));
        }
        let weights = if weights_path.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            Some(unsafe { c_str(weights_path, "weights_path")? })
        };
        // SAFETY: caller contract.
        let model = unsafe { Model::from_artifact(artifact, weights)? };
        // SAFETY: `out` checked above.
        unsafe { store_model(out, model) };
        Ok(())
    })
}

/// Frees a model; null is ignored.
///
/// # Safety
/// `model` is null or came from a kiln_model_* constructor and is not used
/// afterwards or concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_free(model: *mut Model) {
    if model.is_null() {
        return;
    }
    // SAFETY: the pointer came from Box::into_raw (caller contract).
    let model = unsafe { Box::from_raw(model) };
    // Dropping joins the pool's threads; a panic there must not reach C.
    #[cfg(not(panic = "abort"))]
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(model)));
    #[cfg(panic = "abort")]
    drop(model);
}

/// # Safety
/// `model` is null or a live model.
unsafe fn model_ref<'a>(model: *const Model) -> Option<&'a Model> {
    // SAFETY: caller contract.
    unsafe { model.as_ref() }
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_num_inputs(model: *const Model) -> u32 {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(0, |m| m.inputs().len() as u32)
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_num_outputs(model: *const Model) -> u32 {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(0, |m| m.outputs().len() as u32)
}

fn info_of(info: &TensorInfo) -> KilnTensorInfo {
    KilnTensorInfo {
        name: info.c_name().as_ptr(),
        dtype: info.dtype().code(),
        rank: info.shape().len() as u32,
        shape: if info.shape().is_empty() {
            core::ptr::null()
        } else {
            info.shape().as_ptr()
        },
        byte_size: info.byte_size(),
    }
}

/// # Safety
/// `model` is null or live; `out` is null or writable.
unsafe fn query(
    model: *const Model,
    index: u32,
    out: *mut KilnTensorInfo,
    outputs: bool,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        if out.is_null() {
            return Err(null_error("out"));
        }
        let (infos, role) = if outputs {
            (model.outputs(), "outputs")
        } else {
            (model.inputs(), "inputs")
        };
        let info = infos.get(index as usize).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "index {index} out of range: model has {} {role}",
                infos.len()
            ))
        })?;
        // SAFETY: `out` is writable (caller contract).
        unsafe { out.write(info_of(info)) };
        Ok(())
    })
}

/// # Safety
/// `model` is null or live; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_input(
    model: *const Model,
    index: u32,
    out: *mut KilnTensorInfo,
) -> KilnStatus {
    // SAFETY: forwarded.
    unsafe { query(model, index, out, false) }
}

/// # Safety
/// `model` is null or live; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_output(
    model: *const Model,
    index: u32,
    out: *mut KilnTensorInfo,
) -> KilnStatus {
    // SAFETY: forwarded.
    unsafe { query(model, index, out, true) }
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_name(model: *const Model) -> *const c_char {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(core::ptr::null(), |m| m.c_name().as_ptr())
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_producer(model: *const Model) -> *const c_char {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(core::ptr::null(), |m| m.c_producer().as_ptr())
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_set_num_threads(
    model: *mut Model,
    num_threads: u32,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        model.set_num_threads(num_threads)
    })
}

/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_num_threads(model: *const Model) -> u32 {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(0, |m| m.num_threads())
}

/// # Safety
/// `tensors` is null or points to `count` tensors.
unsafe fn raw_tensors(
    tensors: *const KilnTensor,
    count: u32,
    what: &str,
) -> Result<Vec<RawTensor>, Error> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if tensors.is_null() {
        return Err(Error::InvalidArgument(format!(
            "{what} is NULL but {what} count is {count}"
        )));
    }
    // SAFETY: `count` tensors (caller contract).
    let tensors = unsafe { core::slice::from_raw_parts(tensors, count as usize) };
    Ok(tensors
        .iter()
        .map(|t| RawTensor {
            dtype: t.dtype,
            rank: t.rank,
            shape: t.shape,
            data: t.data.cast(),
            byte_size: t.byte_size,
        })
        .collect())
}

/// Validates and runs.
///
/// # Safety
/// `model` is null or live; `inputs`/`outputs` are null or point to
/// `num_inputs`/`num_outputs` tensors whose shape and data pointers are null
/// or valid for `rank` entries and `byte_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_run(
    model: *mut Model,
    inputs: *const KilnTensor,
    num_inputs: u32,
    outputs: *mut KilnTensor,
    num_outputs: u32,
) -> KilnStatus {
    // SAFETY: forwarded (caller contract).
    unsafe { run(model, inputs, num_inputs, outputs, num_outputs, false) }
}

/// [`kiln_model_run`] (`device` false) or [`kiln_model_run_device`].
///
/// # Safety
/// As [`kiln_model_run`].
unsafe fn run(
    model: *mut Model,
    inputs: *const KilnTensor,
    num_inputs: u32,
    outputs: *mut KilnTensor,
    num_outputs: u32,
    device: bool,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        // SAFETY: caller contract.
        let (inputs, outputs) = unsafe {
            (
                raw_tensors(inputs, num_inputs, "inputs")?,
                raw_tensors(outputs, num_outputs, "outputs")?,
            )
        };
        if device {
            // SAFETY: caller contract on shapes.
            unsafe { model.run_device(&inputs, &outputs) }
        } else {
            // SAFETY: caller contract on shapes and data.
            unsafe { model.run_raw(&inputs, &outputs) }
        }
    })
}

/// Whether the model is a GPU artifact (1) or runs on the CPU (0; also for NULL).
///
/// # Safety
/// `model` is null or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_is_device(model: *const Model) -> i32 {
    // SAFETY: caller contract.
    unsafe { model_ref(model) }.map_or(0, |m| i32::from(m.is_device()))
}

/// # Safety
/// `model` is null or live; `address` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_device_alloc(
    model: *mut Model,
    bytes: u64,
    address: *mut u64,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        if address.is_null() {
            return Err(null_error("address"));
        }
        let a = model.device_alloc(bytes)?;
        // SAFETY: writable (caller contract).
        unsafe { address.write(a) };
        Ok(())
    })
}

/// # Safety
/// `model` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_device_free(model: *mut Model, address: u64) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        model.device_free(address)
    })
}

/// # Safety
/// `model` is null or live; `src` is null or points to `bytes` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_device_upload(
    model: *mut Model,
    address: u64,
    src: *const c_void,
    bytes: u64,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        let len =
            usize::try_from(bytes).map_err(|_| Error::InvalidArgument("bytes too large".into()))?;
        let data = if len == 0 {
            &[][..]
        } else if src.is_null() {
            return Err(null_error("src"));
        } else {
            // SAFETY: `bytes` readable bytes (caller contract).
            unsafe { core::slice::from_raw_parts(src.cast::<u8>(), len) }
        };
        model.device_upload(address, data)
    })
}

/// # Safety
/// `model` is null or live; `dst` is null or points to `bytes` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_device_download(
    model: *mut Model,
    address: u64,
    dst: *mut c_void,
    bytes: u64,
) -> KilnStatus {
    guard(|| {
        // SAFETY: caller contract.
        let model = unsafe { model_ref(model) }.ok_or_else(|| null_error("model"))?;
        let len =
            usize::try_from(bytes).map_err(|_| Error::InvalidArgument("bytes too large".into()))?;
        let data = if len == 0 {
            &mut [][..]
        } else if dst.is_null() {
            return Err(null_error("dst"));
        } else {
            // SAFETY: `bytes` writable bytes (caller contract).
            unsafe { core::slice::from_raw_parts_mut(dst.cast::<u8>(), len) }
        };
        model.device_download(address, data)
    })
}

/// Runs a GPU artifact on tensors in its device memory (`data` holds addresses from
/// kiln_model_device_alloc).
///
/// # Safety
/// As [`kiln_model_run`], except that `data` is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_model_run_device(
    model: *mut Model,
    inputs: *const KilnTensor,
    num_inputs: u32,
    outputs: *mut KilnTensor,
    num_outputs: u32,
) -> KilnStatus {
    // SAFETY: forwarded (caller contract).
    unsafe { run(model, inputs, num_inputs, outputs, num_outputs, true) }
}

/// The calling thread's last error message; "" when the last call succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn kiln_last_error() -> *const c_char {
    // The message lives in the thread's slot until the next kiln_* call on
    // this thread replaces it, which is the documented lifetime.
    last_error::get()
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_status_string(status: KilnStatus) -> *const c_char {
    Status::c_description(status).as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_dtype_name(dtype: u32) -> *const c_char {
    DType::from_code(dtype).map_or(core::ptr::null(), |d| d.c_name().as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_dtype_bits(dtype: u32) -> u32 {
    DType::from_code(dtype).map_or(0, DType::bits)
}
