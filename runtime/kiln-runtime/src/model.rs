//! The safe Rust API: paths and typed slices on top of the core [`CoreModel`].
//!
//! Invariant: every check happens in `kiln-runtime-core`; this layer only
//! converts std types (paths, slices) into what the core takes, so it cannot
//! accept anything the C API would reject.

use crate::{DType, Error, LoadOptions, TensorInfo};
use kiln_runtime_core::abi::ArtifactV1;
use kiln_runtime_core::{Model as CoreModel, RawTensor};
use std::ffi::CString;
use std::path::Path;

/// Plain-old-data element types that can be viewed as bytes.
pub trait Element: Copy + sealed::Sealed {
    const DTYPE: DType;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}
element!(f64 => F64, f32 => F32, i64 => I64, i32 => I32, i16 => I16, i8 => I8,
         u64 => U64, u32 => U32, u16 => U16, u8 => U8);

/// A read-only input tensor.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub dtype: DType,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

impl<'a> TensorRef<'a> {
    pub fn new(dtype: DType, shape: &'a [i64], data: &'a [u8]) -> Self {
        TensorRef { dtype, shape, data }
    }

    /// Views a typed slice (alignment is preserved, so it passes the check).
    pub fn from_slice<T: Element>(shape: &'a [i64], data: &'a [T]) -> Self {
        // SAFETY: `Element` types are plain numbers without padding, so every
        // byte is initialized; the byte view borrows `data` for 'a.
        let bytes = unsafe {
            std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data))
        };
        TensorRef::new(T::DTYPE, shape, bytes)
    }
}

/// A writable output tensor.
#[derive(Debug)]
pub struct TensorMut<'a> {
    pub dtype: DType,
    pub shape: &'a [i64],
    pub data: &'a mut [u8],
}

impl<'a> TensorMut<'a> {
    pub fn new(dtype: DType, shape: &'a [i64], data: &'a mut [u8]) -> Self {
        TensorMut { dtype, shape, data }
    }

    /// Views a typed mutable slice.
    pub fn from_slice<T: Element>(shape: &'a [i64], data: &'a mut [T]) -> Self {
        let len = std::mem::size_of_val(data);
        // SAFETY: as in `TensorRef::from_slice`; any byte pattern written by
        // the model is a valid value of a plain number type.
        let bytes = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), len) };
        TensorMut::new(T::DTYPE, shape, bytes)
    }
}

/// The bytes of a path, as the core (POSIX) takes them.
#[cfg(unix)]
fn path_bytes(path: &Path) -> Result<&[u8], Error> {
    use std::os::unix::ffi::OsStrExt;
    Ok(path.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Result<&[u8], Error> {
    path.to_str().map(str::as_bytes).ok_or_else(|| {
        Error::InvalidArgument(format!("path {} is not valid UTF-8", path.display()))
    })
}

/// A tensor in a GPU artifact's device memory: an address from
/// [`Model::device_alloc`] holding `bytes` bytes.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTensor<'a> {
    pub dtype: DType,
    pub shape: &'a [i64],
    pub address: u64,
    pub bytes: u64,
}

/// A loaded, validated model.
#[derive(Debug)]
pub struct Model(CoreModel);

impl Model {
    /// Loads an artifact shared library and its external weights, if any.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, Error> {
        CoreModel::load(path_bytes(path.as_ref())?).map(Model)
    }

    /// [`Model::load`] with options (the device a GPU artifact runs on).
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Model, Error> {
        CoreModel::load_with(path_bytes(path.as_ref())?, options).map(Model)
    }

    /// Whether this is a GPU artifact.
    pub fn is_device(&self) -> bool {
        self.0.is_device()
    }

    /// Device memory of a GPU artifact (freed by [`Model::device_free`] or
    /// with the model).
    pub fn device_alloc(&self, bytes: u64) -> Result<u64, Error> {
        self.0.device_alloc(bytes)
    }

    /// Frees an allocation of [`Model::device_alloc`].
    pub fn device_free(&self, address: u64) -> Result<(), Error> {
        self.0.device_free(address)
    }

    /// Copies `bytes` to the start of an allocation.
    pub fn device_upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.0.device_upload(address, bytes)
    }

    /// Copies the start of an allocation into `bytes`.
    pub fn device_download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        self.0.device_download(address, bytes)
    }

    /// Runs a GPU artifact on tensors in its device memory (no host copies).
    pub fn run_device(
        &self,
        inputs: &[DeviceTensor<'_>],
        outputs: &[DeviceTensor<'_>],
    ) -> Result<(), Error> {
        let raw = |t: &DeviceTensor<'_>| RawTensor {
            dtype: t.dtype.code(),
            rank: u32::try_from(t.shape.len()).unwrap_or(u32::MAX),
            shape: t.shape.as_ptr(),
            data: t.address as *mut u8,
            byte_size: t.bytes,
        };
        let ins: Vec<RawTensor> = inputs.iter().map(raw).collect();
        let outs: Vec<RawTensor> = outputs.iter().map(raw).collect();
        // SAFETY: shapes are slices of `rank` entries; `data` holds device
        // addresses, which the core only compares with the model's allocations.
        unsafe { self.0.run_device(&ins, &outs) }
    }

    /// Wraps an artifact linked into this program.
    ///
    /// # Safety
    /// `artifact` must be null or point to a valid descriptor (and everything
    /// it points to) that outlives the model, as a statically linked
    /// `kiln_artifact()` result does.
    pub unsafe fn from_artifact(
        artifact: *const ArtifactV1,
        weights_path: Option<&Path>,
    ) -> Result<Model, Error> {
        let weights_path = match weights_path {
            Some(path) => Some(CString::new(path_bytes(path)?).map_err(|_| {
                Error::InvalidArgument(format!(
                    "weights path {} contains a NUL byte",
                    path.display()
                ))
            })?),
            None => None,
        };
        // SAFETY: forwarded from the caller.
        unsafe { CoreModel::from_artifact(artifact, weights_path.as_deref()) }.map(Model)
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        self.0.inputs()
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        self.0.outputs()
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The CPU the loaded build was generated for: of a multi-versioned
    /// artifact (`kiln compile --cpu=A,B`), the one chosen for this machine.
    /// Empty for a statically linked descriptor.
    pub fn cpu(&self) -> &str {
        self.0.cpu()
    }

    /// The compiler that produced the artifact, e.g. "kiln 0.1.0".
    pub fn producer(&self) -> &str {
        self.0.producer()
    }

    /// Threads later runs use (the caller's thread included).
    pub fn num_threads(&self) -> u32 {
        self.0.num_threads()
    }

    /// Sets the threads for later runs; 0 restores the default (the
    /// `KILN_NUM_THREADS` environment variable, else the available cores; a
    /// malformed value is [`Error::InvalidEnvironment`]). Runs already in
    /// progress keep their pool.
    pub fn set_num_threads(&self, num_threads: u32) -> Result<(), Error> {
        self.0.set_num_threads(num_threads)
    }

    /// Validates every tensor against the model, then runs it; outputs are
    /// written only when every check passed.
    pub fn run(
        &self,
        inputs: &[TensorRef<'_>],
        outputs: &mut [TensorMut<'_>],
    ) -> Result<(), Error> {
        let raw = |dtype: DType, shape: &[i64], data: *mut u8, len: usize| RawTensor {
            dtype: dtype.code(),
            rank: u32::try_from(shape.len()).unwrap_or(u32::MAX),
            shape: shape.as_ptr(),
            data,
            byte_size: len as u64,
        };
        let raw_inputs: Vec<RawTensor> = inputs
            .iter()
            .map(|t| raw(t.dtype, t.shape, t.data.as_ptr().cast_mut(), t.data.len()))
            .collect();
        let raw_outputs: Vec<RawTensor> = outputs
            .iter_mut()
            .map(|t| raw(t.dtype, t.shape, t.data.as_mut_ptr(), t.data.len()))
            .collect();
        // SAFETY: every pointer comes from a live slice of the stated length;
        // shapes are slices of `rank` entries; inputs are only read.
        unsafe { self.0.run_raw(&raw_inputs, &raw_outputs) }
    }
}
