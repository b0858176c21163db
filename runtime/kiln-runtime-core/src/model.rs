//! Loading artifacts, validating tensors, running models: the one
//! implementation behind both the Rust API and the C API.
//!
//! Invariants:
//! - Everything read from an artifact descriptor is validated once, at load,
//!   and copied into owned [`TensorInfo`]s; runs never re-read descriptor
//!   memory except through the entry point.
//! - [`Model::run_raw`] checks every tensor (dtype, rank, dims, size,
//!   alignment, overlap) before the entry is called; a failed check leaves all
//!   buffers untouched.
//! - The loaded library outlives every pointer into it: it is the last field
//!   of [`Model`] and therefore dropped last.
//! - Concurrent runs on one model are safe: each run takes its own workspace
//!   and the pool accepts concurrent `parallel_for` calls.
//! - Paths are byte strings (POSIX): nothing here assumes UTF-8 file names.

use crate::abi::{self, ArtifactV1, ExecCtx, TensorDesc};
use crate::error::{Error, Role, TensorName};
use crate::integrity;
use crate::pool::{self, Pool};
use crate::sys::{self, Library, Mmap, Mutex};
use crate::DType;
use alloc::borrow::ToOwned;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ffi::{c_char, c_void, CStr};
use core::ptr::NonNull;

/// Most inputs or outputs a model may declare; larger counts mean a corrupt
/// descriptor.
const MAX_TENSORS: u32 = 1 << 16;
/// Highest rank a model may declare.
const MAX_RANK: u32 = 64;

/// One model input or output, as declared by the artifact.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    name: String,
    c_name: CString,
    dtype: DType,
    shape: Vec<i64>,
    byte_size: u64,
}

impl TensorInfo {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The name as a NUL-terminated string (for the C API).
    pub fn c_name(&self) -> &CStr {
        &self.c_name
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }
    /// Exact bytes the tensor occupies.
    pub fn byte_size(&self) -> u64 {
        self.byte_size
    }
}

/// How [`Model::load_with`] loads an artifact.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The device a GPU artifact runs on: an index among its driver's devices (`None`:
    /// `KILN_DEVICE`, else the driver's first, or for Vulkan the first discrete GPU).
    /// CPU artifacts ignore it.
    pub device: Option<u32>,
}

/// An unchecked tensor as passed through the C API. `shape` is only read
/// after `rank` matched the model, and then `rank` entries are read.
#[derive(Debug, Clone, Copy)]
pub struct RawTensor {
    pub dtype: u32,
    pub rank: u32,
    pub shape: *const i64,
    pub data: *mut u8,
    pub byte_size: u64,
}

/// Where the weights passed to the entry live.
enum Weights {
    None,
    /// Inside the artifact's data (kept alive by the library or by 'static).
    Embedded(*const u8),
    Mapped(Mmap),
}

impl Weights {
    fn as_ptr(&self) -> *const u8 {
        match self {
            Weights::None => core::ptr::null(),
            Weights::Embedded(ptr) => *ptr,
            Weights::Mapped(map) => map.as_ptr(),
        }
    }
}

/// How external weights are found.
enum WeightsSource<'a> {
    /// Relative to this directory (the artifact's), never escaping it; with
    /// the size and checksum the artifact's integrity record gives for it.
    ArtifactDir(&'a [u8], Option<integrity::WeightsSeal>),
    /// A file the user named explicitly.
    Explicit(Option<&'a CStr>),
}

/// A 64-byte aligned scratch buffer.
struct Workspace {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is exclusively owned; it is just memory.
unsafe impl Send for Workspace {}

impl Workspace {
    fn new(size: usize) -> Result<Workspace, Error> {
        let oom = || Error::OutOfMemory(format!("workspace of {size} bytes"));
        let layout = Layout::from_size_align(size, abi::BUFFER_ALIGN).map_err(|_| oom())?;
        // SAFETY: callers only create non-empty workspaces.
        let ptr = unsafe { alloc::alloc::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(oom)?;
        Ok(Workspace { ptr, layout })
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// Thread settings of a model; the pool is created lazily on first use.
struct Threads {
    requested: u32,
    pool: Option<Arc<Pool>>,
}

/// A loaded, validated model.
pub struct Model {
    entry: abi::EntryFn,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    name: CString,
    producer: CString,
    /// The CPU the loaded build was generated for (the chosen one of a
    /// multi-versioned artifact); empty for a statically linked descriptor.
    cpu: String,
    weights: Weights,
    workspace_size: usize,
    threads: Mutex<Threads>,
    workspaces: Mutex<Vec<Workspace>>,
    /// The device part of a GPU artifact (its driver, code and device buffers).
    device: Option<crate::device::Device>,
    /// Last field: dropped after everything that may point into the library.
    _library: Option<Library>,
}

// SAFETY: the descriptor data and weights are immutable after load; the entry
// must be reentrant (ABI contract, see kiln.h); the mutable state (threads,
// workspace cache) is behind mutexes.
unsafe impl Send for Model {}
// SAFETY: as above.
unsafe impl Sync for Model {}

impl core::fmt::Debug for Model {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// A path for messages (file names need not be UTF-8).
fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// `bytes` as a C string; an interior NUL is an invalid argument.
fn c_string(bytes: &[u8], what: &str) -> Result<CString, Error> {
    CString::new(bytes).map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL byte")))
}

/// Reads an optional C string from the artifact.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string.
unsafe fn artifact_string(ptr: *const c_char, what: &str) -> Result<Option<CString>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(ptr) };
    if s.to_str().is_err() {
        return Err(Error::LoadFailed(format!("{what} is not valid UTF-8")));
    }
    Ok(Some(s.to_owned()))
}

/// Validates and copies `count` descriptors.
///
/// # Safety
/// `descs` points to `count` descriptors whose pointers are valid (artifact
/// contract); their contents are checked here.
unsafe fn read_descs(
    role: Role,
    descs: *const TensorDesc,
    count: u32,
) -> Result<Vec<TensorInfo>, Error> {
    if count > MAX_TENSORS {
        return Err(Error::LoadFailed(format!(
            "artifact declares {count} {role}s"
        )));
    }
    if count > 0 && descs.is_null() {
        return Err(Error::LoadFailed(format!(
            "artifact declares {count} {role}s but no descriptors"
        )));
    }
    let mut infos = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        // SAFETY: index < count (caller contract).
        let desc = unsafe { descs.add(index).read() };
        let what = format!("{role} {index}");
        // SAFETY: the name is a C string (artifact contract).
        let c_name = unsafe { artifact_string(desc.name, &what)? }
            .ok_or_else(|| Error::LoadFailed(format!("{what} has no name")))?;
        let name = c_name.to_str().unwrap_or_default().to_owned();
        let dtype = DType::from_code(desc.dtype).ok_or_else(|| {
            Error::LoadFailed(format!(
                "{what} ('{name}') has unknown dtype code {}",
                desc.dtype
            ))
        })?;
        if desc.rank > MAX_RANK {
            return Err(Error::LoadFailed(format!(
                "{what} ('{name}') has rank {}",
                desc.rank
            )));
        }
        let shape = if desc.rank == 0 {
            Vec::new()
        } else if desc.shape.is_null() {
            return Err(Error::LoadFailed(format!("{what} ('{name}') has no shape")));
        } else {
            // SAFETY: `rank` entries (artifact contract).
            unsafe { core::slice::from_raw_parts(desc.shape, desc.rank as usize) }.to_vec()
        };
        let byte_size = dtype
            .byte_size(&shape)
            .filter(|&size| usize::try_from(size).is_ok())
            .ok_or_else(|| {
                Error::LoadFailed(format!("{what} ('{name}') has invalid shape {shape:?}"))
            })?;
        infos.push(TensorInfo {
            name,
            c_name,
            dtype,
            shape,
            byte_size,
        });
    }
    Ok(infos)
}

/// The directory holding the file at `path` ("." for a bare file name).
fn parent_dir(path: &[u8]) -> &[u8] {
    let trimmed = match path.iter().rposition(|&b| b != b'/') {
        Some(last) => &path[..=last],
        None => return if path.is_empty() { b"." } else { b"/" },
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        None => b".",
        Some(0) => b"/",
        Some(slash) => &trimmed[..slash],
    }
}

/// Checks that `name` stays inside `dir` and returns the canonical full path.
fn resolve_weights_file(dir: &[u8], name: &[u8]) -> Result<CString, Error> {
    let shown = display(name);
    if name.first() == Some(&b'/') {
        return Err(Error::LoadFailed(format!(
            "weights file '{shown}' must be a relative path inside the artifact's directory"
        )));
    }
    let mut has_name = false;
    for component in name.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                return Err(Error::LoadFailed(format!(
                    "weights file '{shown}' must be a relative path inside the artifact's directory"
                )))
            }
            _ => has_name = true,
        }
    }
    if !has_name {
        return Err(Error::LoadFailed(format!(
            "weights file name '{shown}' is empty"
        )));
    }
    let mut path = dir.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    // Symbolic links could still lead outside; compare canonical paths.
    let canonical_dir = sys::canonicalize(&c_string(dir, "artifact directory")?)
        .map_err(|e| Error::LoadFailed(format!("{}: {e}", display(dir))))?;
    let canonical = sys::canonicalize(&c_string(&path, "weights file")?)
        .map_err(|e| Error::LoadFailed(format!("weights file {}: {e}", display(&path))))?;
    let dir_bytes = canonical_dir.to_bytes();
    let inside = match canonical.to_bytes().strip_prefix(dir_bytes) {
        Some(rest) => dir_bytes == b"/" || rest.first() == Some(&b'/'),
        None => false,
    };
    if !inside {
        return Err(Error::LoadFailed(format!(
            "weights file '{shown}' resolves outside the artifact's directory"
        )));
    }
    Ok(canonical)
}

fn map_weights(path: &CStr, expected: u64) -> Result<Weights, Error> {
    let shown = display(path.to_bytes());
    let (len, map) =
        sys::map_file(path).map_err(|e| Error::LoadFailed(format!("weights file {shown}: {e}")))?;
    if len != expected {
        return Err(Error::LoadFailed(format!(
            "weights file {shown} has {len} bytes, the artifact expects {expected}"
        )));
    }
    Ok(map.map_or(Weights::None, Weights::Mapped))
}

/// Checks the integrity record of the artifact file at `path` (without
/// loading it) and its ABI version; returns the record and the xxh3-64 of
/// the whole file (what a multi-versioned artifact records of its
/// alternates).
fn verify_record(path: &[u8]) -> Result<(integrity::Record, u64, u64), Error> {
    let shown = display(path);
    let c_path = c_string(path, "artifact_path")?;
    let (_, map) =
        sys::map_file(&c_path).map_err(|e| Error::LoadFailed(format!("{shown}: {e}")))?;
    let bytes: &[u8] = match &map {
        // SAFETY: a read-only mapping of `len` bytes, alive while `map` is.
        Some(m) => unsafe { core::slice::from_raw_parts(m.as_ptr(), m.len()) },
        None => &[],
    };
    let record =
        integrity::verify(bytes).map_err(|e| Error::CorruptArtifact(format!("{shown}: {e}")))?;
    let (size, hash) = (bytes.len() as u64, integrity::hash(bytes));
    drop(map);
    if record.abi_version != abi::ABI_VERSION {
        return Err(Error::AbiMismatch {
            found: record.abi_version,
            expected: abi::ABI_VERSION,
        });
    }
    Ok((record, size, hash))
}

/// The build of a (possibly multi-versioned) artifact this CPU should run:
/// the most preferred alternate whose CPU features this machine has (its
/// file verified and matching the size and checksum the main record holds
/// of it), else the main file, if this CPU can run it. Returns its path and
/// record.
fn choose_build(path: &[u8]) -> Result<(Vec<u8>, integrity::Record), Error> {
    let (record, _, _) = verify_record(path)?;
    let host = crate::cpu::host_arch();
    for alt in record.alternates.iter().rev() {
        if record.arch != host || !crate::cpu::missing_features(&alt.features).is_empty() {
            continue;
        }
        let mut alt_path = parent_dir(path).to_vec();
        if !alt_path.is_empty() {
            alt_path.push(b'/');
        }
        alt_path.extend_from_slice(alt.file.as_bytes());
        let shown = display(&alt_path);
        let (alt_record, size, hash) = verify_record(&alt_path)?;
        if size != alt.size || hash != alt.hash || !alt_record.alternates.is_empty() {
            return Err(Error::CorruptArtifact(format!(
                "{shown} is not the build for cpu '{}' that {} records (altered, or from \
                 another build)",
                alt.cpu,
                display(path)
            )));
        }
        crate::cpu::check(
            &shown,
            &alt_record.arch,
            &alt_record.cpu,
            &alt_record.features,
        )?;
        return Ok((alt_path, alt_record));
    }
    crate::cpu::check(&display(path), &record.arch, &record.cpu, &record.features)?;
    Ok((path.to_vec(), record))
}

/// Compares mapped external weights with the artifact's record of them.
fn check_weights_seal(
    path: &CStr,
    weights: &Weights,
    size: u64,
    seal: Option<integrity::WeightsSeal>,
) -> Result<(), Error> {
    let shown = display(path.to_bytes());
    let Some(seal) = seal else {
        return Err(Error::CorruptArtifact(format!(
            "the artifact's integrity record has no checksum for its weights file {shown}"
        )));
    };
    let bytes: &[u8] = match weights {
        // SAFETY: the mapping holds `size` bytes (checked by map_weights).
        Weights::Mapped(m) => unsafe { core::slice::from_raw_parts(m.as_ptr(), size as usize) },
        _ => &[],
    };
    if seal.size != size || integrity::hash(bytes) != seal.hash {
        return Err(Error::CorruptArtifact(format!(
            "weights file {shown} does not match the artifact's checksum of it \
             (altered, damaged, or from another build)"
        )));
    }
    Ok(())
}

/// Opens an artifact shared library.
fn open_library(path: &[u8]) -> Result<Library, Error> {
    // A bare file name would make dlopen search the system library path;
    // loading a model always means this exact file.
    let mut full = Vec::with_capacity(path.len() + 2);
    if !path.contains(&b'/') {
        full.extend_from_slice(b"./");
    }
    full.extend_from_slice(path);
    let c_path = c_string(&full, "artifact_path")?;
    // SAFETY: running the artifact's initializers is inherent to loading it;
    // Kiln artifacts have none beyond the C runtime's.
    unsafe { Library::open(&c_path) }
        .map_err(|e| Error::LoadFailed(format!("{}: {e}", display(&full))))
}

impl Model {
    /// Loads an artifact shared library (a file path, as bytes) and its
    /// external weights, if any.
    ///
    /// Before `dlopen` runs anything of the file, its integrity record is
    /// verified (length, checksum, ABI version; see [`crate::integrity`])
    /// and the CPU it was built for is checked against this one, so a
    /// truncated, altered or foreign file, or one this CPU cannot execute,
    /// is refused with an error rather than a signal. A multi-versioned
    /// artifact loads its most preferred alternate this CPU can run (which
    /// must match the size and checksum the main record holds of it), else
    /// the main build.
    pub fn load(path: &[u8]) -> Result<Model, Error> {
        Model::load_with(path, &LoadOptions::default())
    }

    /// [`Model::load`] with options: the device a GPU artifact loads onto.
    pub fn load_with(path: &[u8], options: &LoadOptions) -> Result<Model, Error> {
        crate::env::check()?;
        let (path, record) = choose_build(path)?;
        let path = path.as_slice();
        let library = open_library(path)?;
        let symbol = c_string(record.symbol.as_bytes(), "descriptor symbol")?;
        let get = library.symbol(&symbol).map_err(|e| {
            Error::LoadFailed(format!(
                "{}: no {} symbol: {e}",
                display(path),
                record.symbol
            ))
        })?;
        // SAFETY: every Kiln artifact exports its descriptor function (the
        // symbol its record names) with this type.
        let get: abi::ArtifactFn = unsafe { core::mem::transmute(get.as_ptr()) };
        // SAFETY: calling the artifact's own descriptor function.
        let artifact = unsafe { get() };
        let dir = parent_dir(path);
        // SAFETY: the descriptor comes from the library, which the model keeps.
        let mut model = unsafe {
            Model::from_descriptor(
                artifact,
                WeightsSource::ArtifactDir(dir, record.weights),
                Some(library),
                options.device,
            )
        }?;
        model.cpu = record.cpu;
        Ok(model)
    }

    /// Wraps an artifact linked into this program.
    ///
    /// # Safety
    /// `artifact` must be null or point to a valid descriptor (and everything
    /// it points to) that outlives the model, as a statically linked
    /// `kiln_artifact()` result does.
    pub unsafe fn from_artifact(
        artifact: *const ArtifactV1,
        weights_path: Option<&CStr>,
    ) -> Result<Model, Error> {
        crate::env::check()?;
        // SAFETY: forwarded from the caller.
        unsafe {
            Model::from_descriptor(artifact, WeightsSource::Explicit(weights_path), None, None)
        }
    }

    /// # Safety
    /// As for [`Model::from_artifact`], with `library` keeping the memory alive.
    unsafe fn from_descriptor(
        artifact: *const ArtifactV1,
        weights_source: WeightsSource<'_>,
        library: Option<Library>,
        device: Option<u32>,
    ) -> Result<Model, Error> {
        if artifact.is_null() {
            return Err(Error::LoadFailed("kiln_artifact() returned NULL".into()));
        }
        // Every ABI version starts with the version field; read only that
        // before trusting the rest of the layout.
        // SAFETY: non-null descriptor (caller contract).
        let found = unsafe { artifact.cast::<u32>().read() };
        if found != abi::ABI_VERSION {
            return Err(Error::AbiMismatch {
                found,
                expected: abi::ABI_VERSION,
            });
        }
        // SAFETY: a version-1 descriptor.
        let a = unsafe { artifact.read() };
        if a.flags & abi::FLAG_DEVICE != 0 && a.flags & abi::FLAG_TARGET == 0 {
            return Err(Error::LoadFailed(
                "artifact has a device record but no target record".into(),
            ));
        }
        if a.flags & abi::FLAG_TARGET != 0 {
            // SAFETY: the flag says a target record follows the descriptor.
            let t = unsafe { artifact.add(1).cast::<abi::TargetRecord>().read() };
            // SAFETY: the record's strings are C strings (artifact contract).
            let (arch, cpu, features) = unsafe {
                (
                    artifact_string(t.arch, "target architecture")?.unwrap_or_default(),
                    artifact_string(t.cpu, "target CPU")?.unwrap_or_default(),
                    artifact_string(t.features, "target features")?.unwrap_or_default(),
                )
            };
            crate::cpu::check(
                "the artifact",
                arch.to_str().unwrap_or_default(),
                cpu.to_str().unwrap_or_default(),
                features.to_str().unwrap_or_default(),
            )?;
        }
        let entry = a
            .entry
            .ok_or_else(|| Error::LoadFailed("artifact has no entry function".into()))?;
        // SAFETY: descriptor arrays and strings are valid (caller contract).
        let (inputs, outputs, name, producer, weights_file) = unsafe {
            (
                read_descs(Role::Input, a.inputs, a.num_inputs)?,
                read_descs(Role::Output, a.outputs, a.num_outputs)?,
                artifact_string(a.model_name, "model name")?.unwrap_or_default(),
                artifact_string(a.producer, "producer")?.unwrap_or_default(),
                artifact_string(a.weights_file, "weights file name")?,
            )
        };
        // Checked here rather than at the first run: a size no allocation
        // can have (above isize::MAX once rounded up to the alignment) is a
        // corrupt descriptor. A merely huge one fails at run time with
        // OutOfMemory.
        let workspace_size = usize::try_from(a.workspace_size)
            .ok()
            .and_then(|size| size.checked_next_multiple_of(abi::BUFFER_ALIGN))
            .filter(|&size| Layout::from_size_align(size, abi::BUFFER_ALIGN).is_ok())
            .ok_or_else(|| {
                Error::LoadFailed(format!("workspace size {} is too large", a.workspace_size))
            })?;
        let weights_len = usize::try_from(a.weights_size).map_err(|_| {
            Error::LoadFailed(format!("weights size {} is too large", a.weights_size))
        })?;
        let weights = match (a.weights.is_null(), weights_file, weights_source) {
            (false, Some(_), _) => {
                return Err(Error::LoadFailed(
                    "artifact has both embedded weights and a weights file".into(),
                ))
            }
            (false, None, WeightsSource::Explicit(Some(path))) => {
                return Err(Error::InvalidArgument(format!(
                    "artifact embeds its weights, but weights file {} was given",
                    display(path.to_bytes())
                )))
            }
            (false, None, _) => {
                let in_memory = (a.weights as usize)
                    .checked_add(weights_len)
                    .is_some_and(|_| isize::try_from(weights_len).is_ok());
                if !in_memory {
                    return Err(Error::LoadFailed(format!(
                        "embedded weights at {:#x} with {weights_len} bytes would run past the end of memory",
                        a.weights as usize
                    )));
                }
                if a.weights as usize % abi::BUFFER_ALIGN != 0 {
                    return Err(Error::LoadFailed(format!(
                        "embedded weights at {:#x} are not {}-byte aligned",
                        a.weights as usize,
                        abi::BUFFER_ALIGN
                    )));
                }
                if weights_len == 0 {
                    Weights::None
                } else {
                    Weights::Embedded(a.weights)
                }
            }
            (true, Some(file), WeightsSource::ArtifactDir(dir, seal)) => {
                let path = resolve_weights_file(dir, file.to_bytes())?;
                let weights = map_weights(&path, a.weights_size)?;
                check_weights_seal(&path, &weights, a.weights_size, seal)?;
                weights
            }
            (true, Some(_), WeightsSource::Explicit(Some(path))) => {
                map_weights(path, a.weights_size)?
            }
            (true, Some(file), WeightsSource::Explicit(None)) => {
                return Err(Error::InvalidArgument(format!(
                    "artifact needs external weights file '{}'; pass its path",
                    file.to_string_lossy()
                )))
            }
            (true, None, WeightsSource::Explicit(Some(path))) => {
                return Err(Error::InvalidArgument(format!(
                    "artifact has no weights, but weights file {} was given",
                    display(path.to_bytes())
                )))
            }
            (true, None, _) => {
                if weights_len != 0 {
                    return Err(Error::LoadFailed(format!(
                        "artifact declares {weights_len} weight bytes but neither embeds nor names them"
                    )));
                }
                Weights::None
            }
        };
        let device = if a.flags & abi::FLAG_DEVICE != 0 {
            let bytes = match &weights {
                Weights::None => &[][..],
                // SAFETY: the weights' `weights_len` bytes live as long as the model.
                _ => unsafe { core::slice::from_raw_parts(weights.as_ptr(), weights_len) },
            };
            // SAFETY: the flags say a device record follows the target record, which
            // follows the descriptor.
            let record = unsafe {
                artifact
                    .add(1)
                    .cast::<abi::TargetRecord>()
                    .add(1)
                    .cast::<abi::DeviceRecord>()
            };
            // SAFETY: a device record of a loaded artifact.
            Some(unsafe { crate::device::Device::load(record, bytes, device)? })
        } else {
            None
        };
        Ok(Model {
            entry,
            inputs,
            outputs,
            name,
            producer,
            cpu: String::new(),
            weights,
            workspace_size,
            device,
            threads: Mutex::new(Threads {
                requested: pool::default_num_threads()?,
                pool: None,
            }),
            workspaces: Mutex::new(Vec::new()),
            _library: library,
        })
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or_default()
    }

    /// The model name as a NUL-terminated string (for the C API).
    pub fn c_name(&self) -> &CStr {
        &self.name
    }

    /// The CPU the loaded build was generated for (see [`Model::load`]).
    pub fn cpu(&self) -> &str {
        &self.cpu
    }

    /// The compiler that produced the artifact, e.g. "kiln 0.1.0".
    pub fn producer(&self) -> &str {
        self.producer.to_str().unwrap_or_default()
    }

    /// The producer as a NUL-terminated string (for the C API).
    pub fn c_producer(&self) -> &CStr {
        &self.producer
    }

    /// Threads later runs use (the caller's thread included).
    pub fn num_threads(&self) -> u32 {
        let threads = self.threads.lock();
        threads
            .pool
            .as_ref()
            .map_or(threads.requested, |p| p.num_threads())
    }

    /// Sets the threads for later runs; 0 restores the default (which reads
    /// `KILN_NUM_THREADS` again: a malformed value is an error and changes
    /// nothing). Runs already in progress keep their pool.
    pub fn set_num_threads(&self, num_threads: u32) -> Result<(), Error> {
        let requested = if num_threads == 0 {
            crate::env::check()?;
            pool::default_num_threads()?
        } else {
            num_threads
        };
        let mut threads = self.threads.lock();
        if threads.requested != requested {
            threads.requested = requested;
            threads.pool = None;
        }
        Ok(())
    }

    /// Validates `tensor` against `info`; returns its byte range.
    ///
    /// # Safety
    /// `tensor.shape` points to `tensor.rank` entries when non-null.
    unsafe fn check_tensor(
        role: Role,
        index: usize,
        info: &TensorInfo,
        tensor: &RawTensor,
    ) -> Result<(usize, usize), Error> {
        let name = || TensorName {
            role,
            index,
            name: info.name.clone(),
        };
        if tensor.dtype != info.dtype.code() {
            let got = DType::from_code(tensor.dtype).map_or_else(
                || format!("unknown code {}", tensor.dtype),
                |d| d.name().to_owned(),
            );
            return Err(Error::DtypeMismatch {
                tensor: name(),
                expected: info.dtype,
                got,
            });
        }
        if tensor.rank as usize != info.shape.len() {
            return Err(Error::ShapeMismatch {
                tensor: name(),
                detail: format!(
                    "expected rank {}, got rank {}",
                    info.shape.len(),
                    tensor.rank
                ),
            });
        }
        if tensor.rank > 0 {
            if tensor.shape.is_null() {
                return Err(Error::InvalidArgument(format!("{}: shape is NULL", name())));
            }
            // SAFETY: `rank` entries (caller contract), rank checked above.
            let shape = unsafe { core::slice::from_raw_parts(tensor.shape, tensor.rank as usize) };
            if shape != info.shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    tensor: name(),
                    detail: format!("expected {:?}, got {:?}", info.shape, shape),
                });
            }
        }
        if tensor.data.is_null() {
            if info.byte_size == 0 {
                return Ok((0, 0));
            }
            return Err(Error::InvalidArgument(format!("{}: data is NULL", name())));
        }
        if tensor.byte_size < info.byte_size {
            return Err(Error::BufferTooSmall {
                tensor: name(),
                required: info.byte_size,
                got: tensor.byte_size,
            });
        }
        let address = tensor.data as usize;
        let align = info.dtype.align();
        if address % align != 0 {
            return Err(Error::Misaligned {
                tensor: name(),
                dtype: info.dtype,
                align,
                address,
            });
        }
        // byte_size fits usize (checked at load).
        let len = info.byte_size as usize;
        if address.checked_add(len).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{}: buffer wraps around memory",
                name()
            )));
        }
        Ok((address, len))
    }

    /// Validates every tensor, then calls the compiled entry.
    ///
    /// # Safety
    /// Each tensor's `shape` points to `rank` entries when non-null and its
    /// `data` to `byte_size` bytes when non-null, inputs readable and outputs
    /// writable, for the duration of the call.
    pub unsafe fn run_raw(&self, inputs: &[RawTensor], outputs: &[RawTensor]) -> Result<(), Error> {
        // SAFETY: forwarded from the caller.
        let (input_ranges, output_ranges) = unsafe { self.validate(inputs, outputs)? };
        if let Some(device) = &self.device {
            // SAFETY: forwarded from the caller; the ranges were validated above.
            return unsafe { self.run_on_device(device, &input_ranges, &output_ranges) };
        }
        // SAFETY: forwarded from the caller; the tensors were validated above.
        unsafe { self.run_host(inputs, outputs) }
    }

    /// Whether this is a GPU artifact (its tensors can live in device memory).
    pub fn is_device(&self) -> bool {
        self.device.is_some()
    }

    fn device(&self) -> Result<&crate::device::Device, Error> {
        self.device.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "model '{}' is a CPU artifact: it has no device memory",
                self.name()
            ))
        })
    }

    /// Allocates `bytes` of the model's device memory (GPU artifacts), for
    /// [`Model::run_device`]; freed by [`Model::device_free`] or with the model.
    pub fn device_alloc(&self, bytes: u64) -> Result<u64, Error> {
        self.device()?.alloc_user(bytes)
    }

    /// Frees an allocation of [`Model::device_alloc`].
    pub fn device_free(&self, address: u64) -> Result<(), Error> {
        self.device()?.free_user(address)
    }

    /// Copies host bytes to the start of an allocation of [`Model::device_alloc`].
    pub fn device_upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.device()?.upload_user(address, bytes)
    }

    /// Copies the start of an allocation of [`Model::device_alloc`] to the host.
    pub fn device_download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        self.device()?.download_user(address, bytes)
    }

    /// Runs a GPU artifact on tensors in device memory: each tensor's `data` is an address
    /// from [`Model::device_alloc`] (of at least the tensor's bytes); nothing is copied
    /// between host and device. Checks dtypes, shapes and sizes like [`Model::run_raw`].
    ///
    /// # Safety
    /// Each tensor's `shape` points to `rank` entries when non-null.
    pub unsafe fn run_device(
        &self,
        inputs: &[RawTensor],
        outputs: &[RawTensor],
    ) -> Result<(), Error> {
        let device = self.device()?;
        // SAFETY: forwarded from the caller; `data` is only compared, never read.
        let (ins, outs) = unsafe { self.validate(inputs, outputs)? };
        let wide = |r: &[(usize, usize)]| -> Vec<(u64, u64)> {
            r.iter().map(|&(a, n)| (a as u64, n as u64)).collect()
        };
        let entry = self.entry;
        let mut call = Model::device_entry(entry);
        // SAFETY: the addresses are the program's device allocations, checked by the device.
        unsafe { device.run_addresses(&wide(&ins), &wide(&outs), self.workspace_size, &mut call) }
    }

    /// Checks the tensors against the model's signature; their `(address, bytes)` ranges.
    ///
    /// # Safety
    /// As [`Model::run_raw`].
    #[allow(clippy::type_complexity)]
    unsafe fn validate(
        &self,
        inputs: &[RawTensor],
        outputs: &[RawTensor],
    ) -> Result<(Vec<(usize, usize)>, Vec<(usize, usize)>), Error> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::InvalidArgument(format!(
                "model '{}' has {} inputs, got {}",
                self.name(),
                self.inputs.len(),
                inputs.len()
            )));
        }
        if outputs.len() != self.outputs.len() {
            return Err(Error::InvalidArgument(format!(
                "model '{}' has {} outputs, got {}",
                self.name(),
                self.outputs.len(),
                outputs.len()
            )));
        }
        let mut input_ranges = Vec::with_capacity(inputs.len());
        for (index, (tensor, info)) in inputs.iter().zip(&self.inputs).enumerate() {
            // SAFETY: forwarded from the caller.
            input_ranges.push(unsafe { Model::check_tensor(Role::Input, index, info, tensor)? });
        }
        let mut output_ranges = Vec::with_capacity(outputs.len());
        for (index, (tensor, info)) in outputs.iter().zip(&self.outputs).enumerate() {
            // SAFETY: forwarded from the caller.
            output_ranges.push(unsafe { Model::check_tensor(Role::Output, index, info, tensor)? });
        }
        self.check_overlap(&input_ranges, &output_ranges)?;
        Ok((input_ranges, output_ranges))
    }

    /// Runs a CPU artifact on validated tensors.
    ///
    /// # Safety
    /// As [`Model::run_raw`], after [`Model::validate`].
    unsafe fn run_host(&self, inputs: &[RawTensor], outputs: &[RawTensor]) -> Result<(), Error> {
        let input_ptrs: Vec<*mut c_void> = inputs.iter().map(|t| t.data.cast()).collect();
        let output_ptrs: Vec<*mut c_void> = outputs.iter().map(|t| t.data.cast()).collect();
        let pool = self.pool();
        let ctx = match &pool {
            Some(pool) => ExecCtx {
                abi_version: abi::EXEC_CTX_VERSION,
                num_threads: pool.num_threads(),
                pool: pool.as_ctx_pointer(),
                parallel_for: Some(pool::pool_parallel_for),
                device: core::ptr::null(),
            },
            None => ExecCtx {
                abi_version: abi::EXEC_CTX_VERSION,
                num_threads: 1,
                pool: core::ptr::null_mut(),
                parallel_for: Some(pool::inline_parallel_for),
                device: core::ptr::null(),
            },
        };
        let workspace = self.take_workspace()?;
        let workspace_ptr = workspace
            .as_ref()
            .map_or(core::ptr::null_mut(), |w| w.ptr.as_ptr());
        // SAFETY: all tensors were validated against the model's declared
        // signature; the workspace has `workspace_size` bytes, 64-byte aligned;
        // the weights stay mapped for the model's lifetime; `ctx` and `pool`
        // outlive the call.
        let rc = unsafe {
            (self.entry)(
                &ctx,
                input_ptrs.as_ptr(),
                output_ptrs.as_ptr(),
                self.weights.as_ptr(),
                workspace_ptr,
            )
        };
        if let Some(workspace) = workspace {
            self.workspaces.lock().push(workspace);
        }
        drop(pool);
        if rc != 0 {
            return Err(Error::ExecutionFailed(rc));
        }
        Ok(())
    }

    /// Runs a GPU artifact: inputs to the device, the entry with device addresses, outputs
    /// back (see [`crate::device`]).
    ///
    /// # Safety
    /// The ranges are validated tensors: `(address, length)` of readable inputs and writable
    /// outputs.
    unsafe fn run_on_device(
        &self,
        device: &crate::device::Device,
        inputs: &[(usize, usize)],
        outputs: &[(usize, usize)],
    ) -> Result<(), Error> {
        let ins: Vec<&[u8]> = inputs
            .iter()
            .map(|&(a, n)| {
                if n == 0 {
                    &[][..]
                } else {
                    // SAFETY: a validated input range (caller contract).
                    unsafe { core::slice::from_raw_parts(a as *const u8, n) }
                }
            })
            .collect();
        let mut outs: Vec<&mut [u8]> = outputs
            .iter()
            .map(|&(a, n)| {
                if n == 0 {
                    &mut [][..]
                } else {
                    // SAFETY: a validated, non-overlapping output range (caller contract).
                    unsafe { core::slice::from_raw_parts_mut(a as *mut u8, n) }
                }
            })
            .collect();
        let mut call = Model::device_entry(self.entry);
        // SAFETY: `call` runs the artifact's host code.
        unsafe { device.run(&ins, &mut outs, self.workspace_size, &mut call) }
    }

    /// The call of a GPU artifact's entry with device addresses and the run's device API.
    fn device_entry(
        entry: abi::EntryFn,
    ) -> impl FnMut(&abi::DeviceApi, &[*mut c_void], &[*mut c_void], u64, u64) -> i32 {
        move |api, ins, outs, weights, workspace| {
            let ctx = ExecCtx {
                abi_version: abi::EXEC_CTX_VERSION,
                num_threads: 1,
                pool: core::ptr::null_mut(),
                parallel_for: Some(pool::inline_parallel_for),
                device: api,
            };
            // SAFETY: the entry of a GPU artifact, called with device addresses of buffers
            // of the declared sizes; `ctx` and `api` outlive the call.
            unsafe {
                entry(
                    &ctx,
                    ins.as_ptr(),
                    outs.as_ptr(),
                    weights as *const u8,
                    workspace as *mut u8,
                )
            }
        }
    }

    /// Rejects outputs that overlap an input or another output.
    fn check_overlap(
        &self,
        inputs: &[(usize, usize)],
        outputs: &[(usize, usize)],
    ) -> Result<(), Error> {
        let overlaps = |a: (usize, usize), b: (usize, usize)| {
            a.1 > 0 && b.1 > 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1
        };
        let name = |role, index: usize| {
            let infos = if role == Role::Input {
                &self.inputs
            } else {
                &self.outputs
            };
            TensorName {
                role,
                index,
                name: infos[index].name.clone(),
            }
        };
        for (o, &out) in outputs.iter().enumerate() {
            if let Some(i) = inputs.iter().position(|&inp| overlaps(out, inp)) {
                return Err(Error::BufferOverlap {
                    first: name(Role::Input, i),
                    second: name(Role::Output, o),
                });
            }
            if let Some(p) = outputs[..o].iter().position(|&prev| overlaps(out, prev)) {
                return Err(Error::BufferOverlap {
                    first: name(Role::Output, p),
                    second: name(Role::Output, o),
                });
            }
        }
        Ok(())
    }

    /// The pool for one run, or `None` when running single-threaded.
    fn pool(&self) -> Option<Arc<Pool>> {
        let mut threads = self.threads.lock();
        if threads.requested <= 1 {
            return None;
        }
        let requested = threads.requested;
        Some(Arc::clone(
            threads
                .pool
                .get_or_insert_with(|| Arc::new(Pool::new(requested))),
        ))
    }

    fn take_workspace(&self) -> Result<Option<Workspace>, Error> {
        if self.workspace_size == 0 {
            return Ok(None);
        }
        let cached = self.workspaces.lock().pop();
        match cached {
            Some(workspace) => Ok(Some(workspace)),
            None => Workspace::new(self.workspace_size).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn weights_file_must_stay_inside_the_artifact_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.bin"), [0u8; 4]).unwrap();
        let d = dir.path().as_os_str().as_bytes();
        assert!(resolve_weights_file(d, b"w.bin").is_ok());
        assert!(resolve_weights_file(d, b"./w.bin").is_ok());
        for bad in ["../w.bin", "/etc/passwd", "", ".", "sub/../../w.bin"] {
            let err = resolve_weights_file(d, bad.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::LoadFailed(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn symlinks_out_of_the_artifact_directory_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.bin"), [0u8; 4]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.bin"), dir.path().join("w.bin"))
            .unwrap();
        let err = resolve_weights_file(dir.path().as_os_str().as_bytes(), b"w.bin").unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn a_sibling_directory_with_a_common_prefix_is_outside() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("model")).unwrap();
        std::fs::create_dir(root.path().join("model2")).unwrap();
        std::fs::write(root.path().join("model2/w.bin"), [0u8; 4]).unwrap();
        std::os::unix::fs::symlink("../model2/w.bin", root.path().join("model/w.bin")).unwrap();
        let dir = root.path().join("model");
        let err = resolve_weights_file(dir.as_os_str().as_bytes(), b"w.bin").unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn parent_dir_matches_path_semantics() {
        assert_eq!(parent_dir(b"model.so"), b".");
        assert_eq!(parent_dir(b"a/b/model.so"), b"a/b");
        assert_eq!(parent_dir(b"/model.so"), b"/");
        assert_eq!(parent_dir(b"a//model.so/"), b"a/");
        assert_eq!(parent_dir(b""), b".");
    }
}
