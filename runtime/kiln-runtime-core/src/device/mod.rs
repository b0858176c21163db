//! Running GPU artifacts: the device record read at load, the driver back ends, and the
//! device API (`kiln_device_api`) the artifact's host code calls during a run.
//!
//! Invariants:
//! - Drivers are opened with `dlopen` when a GPU artifact loads, never linked: without the
//!   driver library (or a device) loading fails with [`Error::DeviceUnavailable`] naming it
//!   ("CUDA driver not found: ..."), and no CPU artifact ever touches a driver.
//! - Everything read from the device record is validated and copied at load; images are
//!   handed to the driver at load (modules, pipelines), so nothing points into the artifact
//!   afterwards.
//! - A run copies the inputs to device buffers, calls the entry with device addresses (which
//!   the host code only adds offsets to), waits for the device, frees the run's temporaries,
//!   and copies the outputs back only when everything succeeded. Runs of one model are
//!   serialized (one queue or stream per model).
//! - Device addresses are never 0 (the shim's "allocation failed"); on Vulkan and Metal they
//!   are handles: a buffer slot in the high bits, a byte offset in the low 40 bits.

mod cuda;
mod hip;
mod metal;
mod vulkan;

use crate::abi::{self, DeviceRecord};
use crate::error::Error;
use crate::sys::{Library, Mutex};
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_void, CStr};

/// How [`Device::run`] calls the artifact's entry: `(device API, input addresses, output
/// addresses, weights, workspace)`, returning the entry's status.
pub(crate) type EntryCall<'a> =
    dyn FnMut(&abi::DeviceApi, &[*mut c_void], &[*mut c_void], u64, u64) -> i32 + 'a;

/// Most images or kernels a device record may declare.
const MAX_ENTRIES: u32 = 1 << 20;
/// Bits of the byte offset in a handle-style device address (Vulkan, Metal).
pub(crate) const OFFSET_BITS: u32 = 40;

/// One device image, validated (the bytes stay in the artifact until the back end loads them).
pub(crate) struct Image<'a> {
    pub format: u32,
    pub group: u32,
    pub chip: String,
    pub data: &'a [u8],
}

/// One kernel, validated and copied.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    pub name: CString,
    pub group: u32,
    pub block: [u32; 3],
    pub args: Vec<u8>,
}

/// A kernel argument's bytes on the device (`KILN_DEVICE_ARG_*` low nibble).
pub(crate) fn arg_bytes(code: u8) -> usize {
    usize::from(code & 0x0f)
}

/// Whether a kernel argument is a device address.
pub(crate) fn arg_is_address(code: u8) -> bool {
    code == abi::ARG_ADDRESS
}

/// What a driver back end does. Addresses are device addresses (never 0).
pub(crate) trait Backend: Send + Sync {
    /// The API's name for messages ("CUDA").
    fn name(&self) -> &'static str;
    /// Allocates `bytes` (at least 1) of device memory, 256-byte aligned.
    fn alloc(&self, bytes: u64) -> Result<u64, Error>;
    /// Frees an allocation (after the work using it finished).
    fn free(&self, address: u64);
    /// Copies host bytes to a device address (completes before later launches run).
    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error>;
    /// Copies device bytes to the host (after [`Backend::finish`]).
    fn download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error>;
    /// Enqueues kernel `kernel` on a grid.
    fn launch(&self, kernel: usize, grid: [u64; 3], args: &[i64]) -> Result<(), Error>;
    /// Runs everything enqueued and waits for it.
    fn finish(&self) -> Result<(), Error>;
}

/// Opens a driver library, trying each name; the error names the API and the libraries.
pub(crate) fn open_driver(api: &str, names: &[&CStr]) -> Result<Library, Error> {
    let mut reasons = Vec::new();
    for name in names {
        // SAFETY: a system driver library; its initializers are the vendor's.
        match unsafe { Library::open(name) } {
            Ok(lib) => return Ok(lib),
            Err(e) => reasons.push(e),
        }
    }
    Err(Error::DeviceUnavailable(format!(
        "{api} driver not found: {}",
        reasons.join("; ")
    )))
}

/// Looks up `name` in a driver library as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the C signature of the symbol.
pub(crate) unsafe fn symbol<F: Copy>(lib: &Library, api: &str, name: &CStr) -> Result<F, Error> {
    let p = lib.symbol(name).map_err(|e| {
        Error::DeviceUnavailable(format!(
            "{api} driver lacks {}: {e}",
            name.to_string_lossy()
        ))
    })?;
    debug_assert_eq!(
        core::mem::size_of::<F>(),
        core::mem::size_of::<*mut c_void>()
    );
    // SAFETY: a function pointer of the caller-promised type.
    Ok(unsafe { core::mem::transmute_copy::<*mut c_void, F>(&p.as_ptr()) })
}

/// Reads a C string field of the record.
///
/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: caller contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The device part of a loaded model.
pub(crate) struct Device {
    backend: Box<dyn Backend>,
    /// Weights on the device (0 when the model has none).
    weights: u64,
    state: Mutex<Buffers>,
    /// Device memory the program allocated through the model (address, bytes), for runs on
    /// device pointers: a run accepts only these addresses.
    user: Mutex<Vec<(u64, u64)>>,
    num_kernels: usize,
    kernel_args: Vec<usize>,
}

/// Device buffers reused by runs: inputs, outputs, workspace.
struct Buffers {
    inputs: Vec<u64>,
    outputs: Vec<u64>,
    workspace: u64,
    sized: bool,
}

impl Device {
    /// Validates the device record, opens the driver, loads the images and uploads the
    /// weights.
    ///
    /// # Safety
    /// `record` points to a valid device record (artifact contract) whose memory stays valid
    /// during the call.
    pub(crate) unsafe fn load(
        record: *const DeviceRecord,
        weights: &[u8],
        wanted: Option<u32>,
    ) -> Result<Device, Error> {
        // SAFETY: caller contract.
        let r = unsafe { record.read() };
        let bad = |m: &str| Error::LoadFailed(format!("device record: {m}"));
        if r.num_images > MAX_ENTRIES || r.num_kernels > MAX_ENTRIES {
            return Err(bad("too many images or kernels"));
        }
        if (r.num_images > 0 && r.images.is_null()) || (r.num_kernels > 0 && r.kernels.is_null()) {
            return Err(bad("null table"));
        }
        let mut images = Vec::new();
        for i in 0..r.num_images as usize {
            // SAFETY: `num_images` entries (artifact contract).
            let im = unsafe { r.images.add(i).read() };
            let size = usize::try_from(im.size).map_err(|_| bad("image too large"))?;
            if im.data.is_null() && size > 0 {
                return Err(bad("image without data"));
            }
            let data = if size == 0 {
                &[][..]
            } else {
                // SAFETY: `size` bytes at `data` (artifact contract).
                unsafe { core::slice::from_raw_parts(im.data, size) }
            };
            images.push(Image {
                format: im.format,
                group: im.group,
                // SAFETY: a C string (artifact contract).
                chip: unsafe { string(im.chip) },
                data,
            });
        }
        let mut kernels = Vec::new();
        for k in 0..r.num_kernels as usize {
            // SAFETY: `num_kernels` entries (artifact contract).
            let kr = unsafe { r.kernels.add(k).read() };
            if kr.name.is_null() || (kr.num_args > 0 && kr.args.is_null()) || kr.num_args > 4096 {
                return Err(bad("bad kernel entry"));
            }
            // SAFETY: a C string and `num_args` codes (artifact contract); a kernel without
            // arguments may have a null table.
            let (name, args) = unsafe {
                (
                    CStr::from_ptr(kr.name).to_owned(),
                    if kr.num_args == 0 {
                        Vec::new()
                    } else {
                        core::slice::from_raw_parts(kr.args, kr.num_args as usize).to_vec()
                    },
                )
            };
            if kr.block.iter().any(|&b| b == 0 || b > 1024) {
                return Err(bad("bad block size"));
            }
            if !images.iter().any(|im| im.group == kr.group) {
                return Err(bad("a kernel's image group has no image"));
            }
            for &a in &args {
                let ok = a == abi::ARG_ADDRESS
                    || (matches!(a & 0xf0, abi::ARG_INT | abi::ARG_FLOAT)
                        && matches!(arg_bytes(a), 1 | 2 | 4 | 8));
                if !ok {
                    return Err(bad("unknown kernel argument kind"));
                }
            }
            kernels.push(Kernel {
                name,
                group: kr.group,
                block: kr.block,
                args,
            });
        }
        // SAFETY: a C string (artifact contract).
        let chip = unsafe { string(r.chip) };
        let backend: Box<dyn Backend> = match r.api {
            abi::DEVICE_CUDA => Box::new(cuda::Cuda::open(&images, &kernels, &chip, wanted)?),
            abi::DEVICE_HIP => Box::new(hip::Hip::open(&images, &kernels, &chip, wanted)?),
            abi::DEVICE_VULKAN => Box::new(vulkan::Vulkan::open(&images, &kernels, wanted)?),
            abi::DEVICE_METAL => {
                // Metal runs on the system's default device.
                if wanted.is_some_and(|d| d != 0) {
                    return Err(Error::DeviceUnavailable(format!(
                        "Metal: no device {} (Metal artifacts run on the system default device, 0)",
                        wanted.unwrap_or(0)
                    )));
                }
                Box::new(metal::Metal::open(&images, &kernels)?)
            }
            other => return Err(bad(&format!("unknown device API {other}"))),
        };
        let weights_address = if weights.is_empty() {
            0
        } else {
            let a = backend.alloc(weights.len() as u64)?;
            backend.upload(a, weights)?;
            a
        };
        Ok(Device {
            weights: weights_address,
            state: Mutex::new(Buffers {
                inputs: Vec::new(),
                outputs: Vec::new(),
                workspace: 0,
                sized: false,
            }),
            user: Mutex::new(Vec::new()),
            num_kernels: kernels.len(),
            kernel_args: kernels.iter().map(|k| k.args.len()).collect(),
            backend,
        })
    }

    /// Runs the entry on the device: uploads `inputs`, calls `call(ctx device api, input
    /// addresses, output addresses, weights, workspace)`, waits, downloads `outputs`.
    ///
    /// # Safety
    /// `call` runs compiled code with the given addresses.
    pub(crate) unsafe fn run(
        &self,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        workspace_size: usize,
        call: &mut EntryCall<'_>,
    ) -> Result<(), Error> {
        let mut bufs = self.state.lock();
        if !bufs.sized {
            for i in inputs {
                let a = self.backend.alloc(i.len().max(1) as u64)?;
                bufs.inputs.push(a);
            }
            for o in outputs.iter() {
                let a = self.backend.alloc(o.len().max(1) as u64)?;
                bufs.outputs.push(a);
            }
            bufs.sized = true;
        }
        self.size_workspace(&mut bufs, workspace_size)?;
        for (bytes, &a) in inputs.iter().zip(&bufs.inputs) {
            if !bytes.is_empty() {
                self.backend.upload(a, bytes)?;
            }
        }
        // SAFETY: forwarded (caller contract).
        unsafe { self.call(&bufs.inputs, &bufs.outputs, bufs.workspace, call)? };
        for (bytes, &a) in outputs.iter_mut().zip(&bufs.outputs) {
            if !bytes.is_empty() {
                self.backend.download(a, bytes)?;
            }
        }
        Ok(())
    }

    /// The workspace buffer, allocated on the first run that needs one.
    fn size_workspace(&self, bufs: &mut Buffers, workspace_size: usize) -> Result<(), Error> {
        if workspace_size > 0 && bufs.workspace == 0 {
            bufs.workspace = self.backend.alloc(workspace_size as u64)?;
        }
        Ok(())
    }

    /// Runs the entry on device memory the program owns: `inputs` and `outputs` are
    /// addresses from [`Device::alloc_user`] of at least the tensors' `(address, bytes)`
    /// sizes; nothing is copied between host and device.
    ///
    /// # Safety
    /// `call` runs compiled code with the given addresses.
    pub(crate) unsafe fn run_addresses(
        &self,
        inputs: &[(u64, u64)],
        outputs: &[(u64, u64)],
        workspace_size: usize,
        call: &mut EntryCall<'_>,
    ) -> Result<(), Error> {
        {
            let user = self.user.lock();
            let check = |what: &str, i: usize, &(address, bytes): &(u64, u64)| {
                let ok = user.iter().any(|&(a, n)| a == address && n >= bytes);
                if ok || (bytes == 0 && address == 0) {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "{what} {i}: {address:#x} is not a device allocation of this model \
                         (kiln_model_device_alloc) of at least {bytes} bytes"
                    )))
                }
            };
            for (i, t) in inputs.iter().enumerate() {
                check("input", i, t)?;
            }
            for (i, t) in outputs.iter().enumerate() {
                check("output", i, t)?;
            }
        }
        let mut bufs = self.state.lock();
        self.size_workspace(&mut bufs, workspace_size)?;
        let ins: Vec<u64> = inputs.iter().map(|t| t.0).collect();
        let outs: Vec<u64> = outputs.iter().map(|t| t.0).collect();
        // SAFETY: forwarded (caller contract).
        unsafe { self.call(&ins, &outs, bufs.workspace, call) }
    }

    /// Device memory for the program (at least 1 byte, 256-byte aligned), freed with
    /// [`Device::free_user`] or with the model.
    pub(crate) fn alloc_user(&self, bytes: u64) -> Result<u64, Error> {
        let a = self.backend.alloc(bytes.max(1))?;
        self.user.lock().push((a, bytes.max(1)));
        Ok(a)
    }

    /// Frees an allocation of [`Device::alloc_user`].
    pub(crate) fn free_user(&self, address: u64) -> Result<(), Error> {
        let mut user = self.user.lock();
        let i = user
            .iter()
            .position(|&(a, _)| a == address)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{address:#x} is not a device allocation of this model"
                ))
            })?;
        user.swap_remove(i);
        drop(user);
        // Runs finish before they return, so no work uses it any more.
        self.backend.free(address);
        Ok(())
    }

    /// The allocation of [`Device::alloc_user`] at `address`, checked to hold `bytes`.
    fn user_range(&self, address: u64, bytes: usize) -> Result<(), Error> {
        let user = self.user.lock();
        match user.iter().find(|&&(a, _)| a == address) {
            Some(&(_, n)) if bytes as u64 <= n => Ok(()),
            Some(&(_, n)) => Err(Error::InvalidArgument(format!(
                "{bytes} bytes do not fit the {n}-byte device allocation {address:#x}"
            ))),
            None => Err(Error::InvalidArgument(format!(
                "{address:#x} is not a device allocation of this model"
            ))),
        }
    }

    /// Copies host bytes into an allocation of [`Device::alloc_user`].
    pub(crate) fn upload_user(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.user_range(address, bytes.len())?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.backend.upload(address, bytes)?;
        self.backend.finish()
    }

    /// Copies an allocation of [`Device::alloc_user`] to the host.
    pub(crate) fn download_user(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        self.user_range(address, bytes.len())?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.backend.finish()?;
        self.backend.download(address, bytes)
    }

    /// Calls the entry with device addresses, waits for the device and frees the run's
    /// temporaries.
    ///
    /// # Safety
    /// `call` runs compiled code with the given addresses.
    unsafe fn call(
        &self,
        ins: &[u64],
        outs: &[u64],
        workspace: u64,
        call: &mut EntryCall<'_>,
    ) -> Result<(), Error> {
        let mut run = Run {
            device: self,
            temporaries: Vec::new(),
            error: None,
        };
        let api = abi::DeviceApi {
            handle: (&mut run as *mut Run<'_>).cast(),
            launch: Some(run_launch),
            alloc: Some(run_alloc),
            free: Some(run_free),
        };
        let ins: Vec<*mut c_void> = ins.iter().map(|&a| a as *mut c_void).collect();
        let outs: Vec<*mut c_void> = outs.iter().map(|&a| a as *mut c_void).collect();
        let rc = call(&api, &ins, &outs, self.weights, workspace);
        // Whatever happened, let the device finish before freeing or reading anything.
        let finished = self.backend.finish();
        for t in run.temporaries.drain(..) {
            self.backend.free(t);
        }
        if let Some(e) = run.error.take() {
            return Err(e);
        }
        finished?;
        match rc {
            0 => {}
            abi::ENTRY_NO_DEVICE => {
                return Err(Error::Internal(
                    "the artifact's host code found no device API in the context".into(),
                ))
            }
            abi::ENTRY_OUT_OF_DEVICE_MEMORY => {
                return Err(Error::OutOfMemory(format!(
                    "{} device memory for a temporary buffer",
                    self.backend.name()
                )))
            }
            rc => return Err(Error::ExecutionFailed(rc)),
        }
        Ok(())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let bufs = self.state.lock();
        for &a in bufs.inputs.iter().chain(&bufs.outputs) {
            self.backend.free(a);
        }
        for &(a, _) in self.user.lock().iter() {
            self.backend.free(a);
        }
        if bufs.workspace != 0 {
            self.backend.free(bufs.workspace);
        }
        if self.weights != 0 {
            self.backend.free(self.weights);
        }
    }
}

/// The state of one run behind `kiln_device_api.handle`.
struct Run<'d> {
    device: &'d Device,
    temporaries: Vec<u64>,
    error: Option<Error>,
}

/// `kiln_device_api.launch`.
unsafe extern "C" fn run_launch(
    handle: *mut c_void,
    kernel: u32,
    gx: u64,
    gy: u64,
    gz: u64,
    args: *const i64,
) -> i32 {
    // SAFETY: the handle is the `Run` of the current call of `Device::run`.
    let run = unsafe { &mut *handle.cast::<Run<'_>>() };
    let k = kernel as usize;
    let result = if k >= run.device.num_kernels {
        Err(Error::Internal(format!(
            "launch of unknown kernel {kernel}"
        )))
    } else if gx == 0 || gy == 0 || gz == 0 {
        Ok(())
    } else {
        let n = run.device.kernel_args[k];
        let slots = if n == 0 || args.is_null() {
            &[][..]
        } else {
            // SAFETY: one slot per kernel argument (ABI contract).
            unsafe { core::slice::from_raw_parts(args, n) }
        };
        run.device.backend.launch(k, [gx, gy, gz], slots)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            run.error.get_or_insert(e);
            -1
        }
    }
}

/// `kiln_device_api.alloc`.
unsafe extern "C" fn run_alloc(handle: *mut c_void, bytes: u64) -> u64 {
    // SAFETY: as in `run_launch`.
    let run = unsafe { &mut *handle.cast::<Run<'_>>() };
    match run.device.backend.alloc(bytes.max(1)) {
        Ok(a) => {
            run.temporaries.push(a);
            a
        }
        Err(e) => {
            run.error.get_or_insert(e);
            0
        }
    }
}

/// `kiln_device_api.free`: temporaries are freed when the device finished the run.
unsafe extern "C" fn run_free(_handle: *mut c_void, _address: u64) {}

/// Picks, per image group, the first image `fits` accepts.
pub(crate) fn choose_images<'i, 'a>(
    api: &str,
    images: &'i [Image<'a>],
    kernels: &[Kernel],
    fits: impl Fn(&Image<'a>) -> bool,
) -> Result<Vec<(u32, &'i Image<'a>)>, Error> {
    let mut groups: Vec<u32> = kernels.iter().map(|k| k.group).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .map(|g| {
            images
                .iter()
                .find(|im| im.group == g && fits(im))
                .map(|im| (g, im))
                .ok_or_else(|| {
                    Error::DeviceUnavailable(format!(
                        "no device code of this artifact runs on this {api} device"
                    ))
                })
        })
        .collect()
}
