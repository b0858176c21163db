//! AMD GPUs through HIP (`libamdhip64.so`, opened with `dlopen`).
//!
//! The same shape as the CUDA back end: the null stream for copies and launches, one module
//! per image group (the HSACO; HIP refuses a code object built for another `gfx` chip, which
//! is reported as "no device code for this device"), device `KILN_DEVICE` (default 0).

use super::cuda::device_ordinal;
use super::{choose_images, open_driver, symbol, Backend, Image, Kernel};
use crate::abi;
use crate::error::Error;
use crate::sys::Library;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_uint, c_void, CStr};

type HipError = c_int;
type HipModule = *mut c_void;
type HipFunction = *mut c_void;

struct Api {
    init: unsafe extern "C" fn(c_uint) -> HipError,
    set_device: unsafe extern "C" fn(c_int) -> HipError,
    module_load_data: unsafe extern "C" fn(*mut HipModule, *const c_void) -> HipError,
    module_get_function:
        unsafe extern "C" fn(*mut HipFunction, HipModule, *const c_char) -> HipError,
    module_unload: unsafe extern "C" fn(HipModule) -> HipError,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> HipError,
    free: unsafe extern "C" fn(*mut c_void) -> HipError,
    memcpy_htod: unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> HipError,
    memcpy_dtoh: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> HipError,
    #[allow(clippy::type_complexity)]
    launch_kernel: unsafe extern "C" fn(
        HipFunction,
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
    ) -> HipError,
    synchronize: unsafe extern "C" fn() -> HipError,
    error_string: unsafe extern "C" fn(HipError) -> *const c_char,
}

pub(crate) struct Hip {
    api: Api,
    device: c_int,
    modules: Vec<HipModule>,
    functions: Vec<(HipFunction, [u32; 3], usize)>,
    /// Last field: the runtime stays loaded while anything above is used.
    _lib: Library,
}

// SAFETY: HIP handles may be used from any thread once the device is selected there (every
// entry point below selects it).
unsafe impl Send for Hip {}
// SAFETY: as above; HIP is thread-safe.
unsafe impl Sync for Hip {}

fn describe(api: &Api, rc: HipError) -> String {
    // SAFETY: returns a static string (or null).
    let s = unsafe { (api.error_string)(rc) };
    if s.is_null() {
        format!("HIP error {rc}")
    } else {
        // SAFETY: a NUL-terminated static string.
        format!("{} ({rc})", unsafe { CStr::from_ptr(s) }.to_string_lossy())
    }
}

fn check(api: &Api, rc: HipError, what: &str) -> Result<(), Error> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::DeviceFailed(format!(
            "HIP: {what}: {}",
            describe(api, rc)
        )))
    }
}

impl Hip {
    fn current(&self) -> Result<(), Error> {
        // SAFETY: a device ordinal that worked at load.
        check(
            &self.api,
            unsafe { (self.api.set_device)(self.device) },
            "hipSetDevice",
        )
    }

    pub(crate) fn open(
        images: &[Image<'_>],
        kernels: &[Kernel],
        chip: &str,
        wanted: Option<u32>,
    ) -> Result<Hip, Error> {
        let lib = open_driver(
            "HIP",
            &[c"libamdhip64.so", c"libamdhip64.so.6", c"libamdhip64.so.5"],
        )?;
        // SAFETY: HIP's C signatures.
        let api = unsafe {
            Api {
                init: symbol(&lib, "HIP", c"hipInit")?,
                set_device: symbol(&lib, "HIP", c"hipSetDevice")?,
                module_load_data: symbol(&lib, "HIP", c"hipModuleLoadData")?,
                module_get_function: symbol(&lib, "HIP", c"hipModuleGetFunction")?,
                module_unload: symbol(&lib, "HIP", c"hipModuleUnload")?,
                malloc: symbol(&lib, "HIP", c"hipMalloc")?,
                free: symbol(&lib, "HIP", c"hipFree")?,
                memcpy_htod: symbol(&lib, "HIP", c"hipMemcpyHtoD")?,
                memcpy_dtoh: symbol(&lib, "HIP", c"hipMemcpyDtoH")?,
                launch_kernel: symbol(&lib, "HIP", c"hipModuleLaunchKernel")?,
                synchronize: symbol(&lib, "HIP", c"hipDeviceSynchronize")?,
                error_string: symbol(&lib, "HIP", c"hipGetErrorString")?,
            }
        };
        // SAFETY: plain driver calls.
        let rc = unsafe { (api.init)(0) };
        if rc != 0 {
            return Err(Error::DeviceUnavailable(format!(
                "HIP: hipInit failed: {} (no AMD GPU or driver)",
                describe(&api, rc)
            )));
        }
        let device = device_ordinal(wanted);
        // SAFETY: as above.
        let rc = unsafe { (api.set_device)(device) };
        if rc != 0 {
            return Err(Error::DeviceUnavailable(format!(
                "HIP: no device {device}: {}",
                describe(&api, rc)
            )));
        }
        let mut hip = Hip {
            api,
            device,
            modules: Vec::new(),
            functions: Vec::new(),
            _lib: lib,
        };
        let chosen = choose_images("HIP", images, kernels, |im| im.format == abi::FORMAT_HSACO)?;
        let mut group_modules = Vec::new();
        for (group, image) in chosen {
            let mut module: HipModule = core::ptr::null_mut();
            // SAFETY: a complete code object.
            let rc = unsafe { (hip.api.module_load_data)(&mut module, image.data.as_ptr().cast()) };
            if rc != 0 {
                return Err(Error::DeviceUnavailable(format!(
                    "HIP: cannot load the code object for {chip} on this device: {}",
                    describe(&hip.api, rc)
                )));
            }
            hip.modules.push(module);
            group_modules.push((group, module));
        }
        for k in kernels {
            let module = group_modules
                .iter()
                .find(|(g, _)| *g == k.group)
                .map(|(_, m)| *m)
                .ok_or_else(|| Error::LoadFailed("kernel without a module".into()))?;
            let mut f: HipFunction = core::ptr::null_mut();
            // SAFETY: a loaded module and a C string.
            let rc = unsafe { (hip.api.module_get_function)(&mut f, module, k.name.as_ptr()) };
            check(
                &hip.api,
                rc,
                &format!("finding kernel {}", k.name.to_string_lossy()),
            )?;
            hip.functions.push((f, k.block, k.args.len()));
        }
        Ok(hip)
    }
}

impl Backend for Hip {
    fn name(&self) -> &'static str {
        "HIP"
    }

    fn alloc(&self, bytes: u64) -> Result<u64, Error> {
        self.current()?;
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let rc = unsafe { (self.api.malloc)(&mut p, bytes as usize) };
        if rc != 0 || p.is_null() {
            return Err(Error::OutOfMemory(format!(
                "{bytes} bytes of HIP device memory: {}",
                describe(&self.api, rc)
            )));
        }
        Ok(p as u64)
    }

    fn free(&self, address: u64) {
        if self.current().is_ok() {
            // SAFETY: an address from `alloc`.
            unsafe { (self.api.free)(address as *mut c_void) };
        }
    }

    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.current()?;
        // SAFETY: `bytes.len()` bytes into an allocation at least that large.
        let rc = unsafe {
            (self.api.memcpy_htod)(address as *mut c_void, bytes.as_ptr().cast(), bytes.len())
        };
        check(&self.api, rc, "hipMemcpyHtoD")
    }

    fn download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        self.current()?;
        // SAFETY: as above, the other way.
        let rc = unsafe {
            (self.api.memcpy_dtoh)(
                bytes.as_mut_ptr().cast(),
                address as *mut c_void,
                bytes.len(),
            )
        };
        check(&self.api, rc, "hipMemcpyDtoH")
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
        // SAFETY: a loaded function; one parameter pointer per argument, each to 8 bytes.
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
        check(&self.api, rc, "hipModuleLaunchKernel")
    }

    fn finish(&self) -> Result<(), Error> {
        self.current()?;
        // SAFETY: no arguments.
        check(
            &self.api,
            unsafe { (self.api.synchronize)() },
            "running the kernels",
        )
    }
}

impl Drop for Hip {
    fn drop(&mut self) {
        if self.current().is_ok() {
            for &m in &self.modules {
                // SAFETY: loaded modules, unloaded once.
                unsafe { (self.api.module_unload)(m) };
            }
        }
    }
}
