//! NVIDIA GPUs through the CUDA driver API (`libcuda.so.1`, opened with `dlopen`).
//!
//! One context (the device's primary context), the legacy default stream for everything (so
//! copies and launches are ordered without events), one module per image group: the cubin
//! built for this device's `sm_NN` when the artifact has one, else the PTX, which the driver
//! compiles for the device. The device is `KILN_DEVICE` (an ordinal, default 0).

use super::{choose_images, open_driver, symbol, Backend, Image, Kernel};
use crate::abi;
use crate::error::Error;
use crate::sys::Library;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_uint, c_void, CStr};

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuModule = *mut c_void;
type CuFunction = *mut c_void;
type CuDevicePtr = u64;

const ATTR_CC_MAJOR: c_int = 75;
const ATTR_CC_MINOR: c_int = 76;

/// The driver entry points Kiln uses.
struct Api {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_attribute: unsafe extern "C" fn(*mut c_int, c_int, CuDevice) -> CuResult,
    ctx_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    ctx_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    ctx_synchronize: unsafe extern "C" fn() -> CuResult,
    module_load_data: unsafe extern "C" fn(*mut CuModule, *const c_void) -> CuResult,
    module_get_function: unsafe extern "C" fn(*mut CuFunction, CuModule, *const c_char) -> CuResult,
    module_unload: unsafe extern "C" fn(CuModule) -> CuResult,
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    memcpy_htod: unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult,
    memcpy_dtoh: unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize) -> CuResult,
    #[allow(clippy::type_complexity)]
    launch_kernel: unsafe extern "C" fn(
        CuFunction,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> CuResult,
    error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

pub(crate) struct Cuda {
    api: Api,
    device: CuDevice,
    context: CuContext,
    modules: Vec<CuModule>,
    functions: Vec<(CuFunction, [u32; 3], usize)>,
    /// Last field: the driver stays loaded while anything above is used.
    _lib: Library,
}

// SAFETY: CUDA driver handles may be used from any thread once the context is made current
// there (every entry point below does).
unsafe impl Send for Cuda {}
// SAFETY: as above; the driver API is thread-safe.
unsafe impl Sync for Cuda {}

impl Cuda {
    fn check(&self, rc: CuResult, what: &str) -> Result<(), Error> {
        check(&self.api, rc, what)
    }

    fn current(&self) -> Result<(), Error> {
        // SAFETY: a live context.
        self.check(
            unsafe { (self.api.ctx_set_current)(self.context) },
            "cuCtxSetCurrent",
        )
    }

    pub(crate) fn open(
        images: &[Image<'_>],
        kernels: &[Kernel],
        _chip: &str,
        wanted: Option<u32>,
    ) -> Result<Cuda, Error> {
        let lib = open_driver("CUDA", &[c"libcuda.so.1", c"libcuda.so"])?;
        // SAFETY: the CUDA driver API's C signatures.
        let api = unsafe {
            Api {
                init: symbol(&lib, "CUDA", c"cuInit")?,
                device_get: symbol(&lib, "CUDA", c"cuDeviceGet")?,
                device_attribute: symbol(&lib, "CUDA", c"cuDeviceGetAttribute")?,
                ctx_retain: symbol(&lib, "CUDA", c"cuDevicePrimaryCtxRetain")?,
                ctx_release: symbol(&lib, "CUDA", c"cuDevicePrimaryCtxRelease_v2")?,
                ctx_set_current: symbol(&lib, "CUDA", c"cuCtxSetCurrent")?,
                ctx_synchronize: symbol(&lib, "CUDA", c"cuCtxSynchronize")?,
                module_load_data: symbol(&lib, "CUDA", c"cuModuleLoadData")?,
                module_get_function: symbol(&lib, "CUDA", c"cuModuleGetFunction")?,
                module_unload: symbol(&lib, "CUDA", c"cuModuleUnload")?,
                mem_alloc: symbol(&lib, "CUDA", c"cuMemAlloc_v2")?,
                mem_free: symbol(&lib, "CUDA", c"cuMemFree_v2")?,
                memcpy_htod: symbol(&lib, "CUDA", c"cuMemcpyHtoD_v2")?,
                memcpy_dtoh: symbol(&lib, "CUDA", c"cuMemcpyDtoH_v2")?,
                launch_kernel: symbol(&lib, "CUDA", c"cuLaunchKernel")?,
                error_string: symbol(&lib, "CUDA", c"cuGetErrorString")?,
            }
        };
        let unavailable = |m: String| Error::DeviceUnavailable(format!("CUDA: {m}"));
        // SAFETY: driver calls with valid out-pointers.
        let rc = unsafe { (api.init)(0) };
        if rc != 0 {
            return Err(unavailable(format!(
                "cuInit failed: {} (no NVIDIA GPU or driver)",
                describe(&api, rc)
            )));
        }
        let ordinal = device_ordinal(wanted);
        let mut device: CuDevice = 0;
        // SAFETY: as above.
        let rc = unsafe { (api.device_get)(&mut device, ordinal) };
        if rc != 0 {
            return Err(unavailable(format!(
                "no device {ordinal}: {}",
                describe(&api, rc)
            )));
        }
        let (mut major, mut minor) = (0, 0);
        // SAFETY: as above.
        unsafe {
            check(
                &api,
                (api.device_attribute)(&mut major, ATTR_CC_MAJOR, device),
                "cuDeviceGetAttribute",
            )?;
            check(
                &api,
                (api.device_attribute)(&mut minor, ATTR_CC_MINOR, device),
                "cuDeviceGetAttribute",
            )?;
        }
        let sm = format!("sm_{major}{minor}");
        let mut context: CuContext = core::ptr::null_mut();
        // SAFETY: as above.
        unsafe {
            check(
                &api,
                (api.ctx_retain)(&mut context, device),
                "cuDevicePrimaryCtxRetain",
            )?;
        }
        let mut cuda = Cuda {
            api,
            device,
            context,
            modules: Vec::new(),
            functions: Vec::new(),
            _lib: lib,
        };
        cuda.current()?;
        let chosen = choose_images("CUDA", images, kernels, |im| match im.format {
            abi::FORMAT_CUBIN => im.chip == sm,
            abi::FORMAT_PTX => true,
            _ => false,
        })?;
        let mut group_modules = Vec::new();
        for (group, image) in chosen {
            // PTX must be NUL-terminated for cuModuleLoadData.
            if image.format == abi::FORMAT_PTX && image.data.last() != Some(&0) {
                return Err(Error::LoadFailed("PTX image is not NUL-terminated".into()));
            }
            let mut module: CuModule = core::ptr::null_mut();
            // SAFETY: a complete image (cubin, or NUL-terminated PTX).
            let rc =
                unsafe { (cuda.api.module_load_data)(&mut module, image.data.as_ptr().cast()) };
            cuda.check(
                rc,
                &format!("loading the {} image for {sm}", format_name(image.format)),
            )?;
            cuda.modules.push(module);
            group_modules.push((group, module));
        }
        for k in kernels {
            let module = group_modules
                .iter()
                .find(|(g, _)| *g == k.group)
                .map(|(_, m)| *m)
                .ok_or_else(|| Error::LoadFailed("kernel without a module".into()))?;
            let mut f: CuFunction = core::ptr::null_mut();
            // SAFETY: a loaded module and a C string.
            let rc = unsafe { (cuda.api.module_get_function)(&mut f, module, k.name.as_ptr()) };
            cuda.check(rc, &format!("finding kernel {}", k.name.to_string_lossy()))?;
            cuda.functions.push((f, k.block, k.args.len()));
        }
        Ok(cuda)
    }
}

fn format_name(format: u32) -> &'static str {
    if format == abi::FORMAT_CUBIN {
        "SASS"
    } else {
        "PTX"
    }
}

/// The device ordinal: the one the program asked for, else `KILN_DEVICE` (validated when the
/// model was loaded), else 0.
pub(crate) fn device_ordinal(wanted: Option<u32>) -> c_int {
    wanted
        .or_else(|| crate::env::device().ok().flatten())
        .unwrap_or(0) as c_int
}

fn describe(api: &Api, rc: CuResult) -> String {
    let mut s: *const c_char = core::ptr::null();
    // SAFETY: a valid out-pointer; the string is static in the driver.
    let ok = unsafe { (api.error_string)(rc, &mut s) } == 0 && !s.is_null();
    if ok {
        // SAFETY: a NUL-terminated static string.
        format!("{} ({rc})", unsafe { CStr::from_ptr(s) }.to_string_lossy())
    } else {
        format!("CUDA error {rc}")
    }
}

fn check(api: &Api, rc: CuResult, what: &str) -> Result<(), Error> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::DeviceFailed(format!(
            "CUDA: {what}: {}",
            describe(api, rc)
        )))
    }
}

impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "CUDA"
    }

    fn alloc(&self, bytes: u64) -> Result<u64, Error> {
        self.current()?;
        let mut p: CuDevicePtr = 0;
        // SAFETY: a valid out-pointer.
        let rc = unsafe { (self.api.mem_alloc)(&mut p, bytes as usize) };
        if rc != 0 || p == 0 {
            return Err(Error::OutOfMemory(format!(
                "{bytes} bytes of CUDA device memory: {}",
                describe(&self.api, rc)
            )));
        }
        Ok(p)
    }

    fn free(&self, address: u64) {
        if self.current().is_ok() {
            // SAFETY: an address from `alloc`.
            unsafe { (self.api.mem_free)(address) };
        }
    }

    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.current()?;
        // SAFETY: `bytes.len()` bytes at a device allocation at least that large.
        let rc = unsafe { (self.api.memcpy_htod)(address, bytes.as_ptr().cast(), bytes.len()) };
        self.check(rc, "cuMemcpyHtoD")
    }

    fn download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        self.current()?;
        // SAFETY: as above, the other way.
        let rc = unsafe { (self.api.memcpy_dtoh)(bytes.as_mut_ptr().cast(), address, bytes.len()) };
        self.check(rc, "cuMemcpyDtoH")
    }

    fn launch(&self, kernel: usize, grid: [u64; 3], args: &[i64]) -> Result<(), Error> {
        self.current()?;
        let (f, block, n) = self.functions[kernel];
        let mut slots: Vec<i64> = args[..n].to_vec();
        let mut params: Vec<*mut c_void> =
            slots.iter_mut().map(|s| (s as *mut i64).cast()).collect();
        let g = |v: u64| {
            u32::try_from(v).map_err(|_| Error::DeviceFailed(format!("grid of {v} blocks")))
        };
        // SAFETY: a loaded function; one parameter pointer per kernel argument, each to 8
        // readable bytes (the driver reads the argument's size from its low end).
        let rc = unsafe {
            (self.api.launch_kernel)(
                f,
                g(grid[0])?,
                g(grid[1])?,
                g(grid[2])?,
                block[0],
                block[1],
                block[2],
                0,
                core::ptr::null_mut(),
                params.as_mut_ptr(),
                core::ptr::null_mut(),
            )
        };
        self.check(rc, "cuLaunchKernel")
    }

    fn finish(&self) -> Result<(), Error> {
        self.current()?;
        // SAFETY: no arguments.
        let rc = unsafe { (self.api.ctx_synchronize)() };
        self.check(rc, "running the kernels")
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        if self.current().is_ok() {
            for &m in &self.modules {
                // SAFETY: loaded modules, unloaded once.
                unsafe { (self.api.module_unload)(m) };
            }
        }
        // SAFETY: retained in `open`.
        unsafe { (self.api.ctx_release)(self.device) };
    }
}
