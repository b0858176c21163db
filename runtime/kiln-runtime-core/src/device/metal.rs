//! Apple GPUs through Metal, called through the Objective-C runtime (`libobjc`, `Metal` and
//! `Foundation` opened with `dlopen`; every message send is `objc_msgSend` cast to the
//! method's C signature). Only macOS has Metal: elsewhere loading a Metal artifact is
//! [`Error::DeviceUnavailable`].
//!
//! - Device: `MTLCreateSystemDefaultDevice()`; one command queue.
//! - Kernels: each image group is one MSL source, compiled at load
//!   (`newLibraryWithSource:options:error:`) into a compute pipeline for its kernel.
//! - Memory: shared-storage buffers (`MTLResourceStorageModeShared`: host and GPU see the same
//!   memory), addressed like Vulkan's (a buffer slot in the high bits, an offset below).
//! - A run encodes every launch into one compute encoder (serial dispatches: Metal orders
//!   them and tracks the buffers they share), commits it when the entry returns and waits.

#[cfg(not(target_os = "macos"))]
mod imp {
    use super::super::{Backend, Image, Kernel};
    use crate::error::Error;

    /// Metal exists only on macOS.
    pub(crate) enum Metal {}

    impl Metal {
        pub(crate) fn open(_images: &[Image<'_>], _kernels: &[Kernel]) -> Result<Metal, Error> {
            Err(Error::DeviceUnavailable(
                "Metal driver not found: Metal artifacts run on macOS only".into(),
            ))
        }
    }

    impl Backend for Metal {
        fn name(&self) -> &'static str {
            match *self {}
        }
        fn alloc(&self, _bytes: u64) -> Result<u64, Error> {
            match *self {}
        }
        fn free(&self, _address: u64) {
            match *self {}
        }
        fn upload(&self, _address: u64, _bytes: &[u8]) -> Result<(), Error> {
            match *self {}
        }
        fn download(&self, _address: u64, _bytes: &mut [u8]) -> Result<(), Error> {
            match *self {}
        }
        fn launch(&self, _kernel: usize, _grid: [u64; 3], _args: &[i64]) -> Result<(), Error> {
            match *self {}
        }
        fn finish(&self) -> Result<(), Error> {
            match *self {}
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::super::{
        arg_bytes, arg_is_address, choose_images, open_driver, symbol, Backend, Image, Kernel,
        OFFSET_BITS,
    };
    use crate::abi;
    use crate::error::Error;
    use crate::sys::{Library, Mutex};
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::ffi::{c_char, c_void, CStr};

    type Id = *mut c_void;
    type Sel = *mut c_void;

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct MtlSize {
        width: u64,
        height: u64,
        depth: u64,
    }

    struct Objc {
        get_class: unsafe extern "C" fn(*const c_char) -> Id,
        sel: unsafe extern "C" fn(*const c_char) -> Sel,
        msg_send: *mut c_void,
        pool_push: unsafe extern "C" fn() -> *mut c_void,
        pool_pop: unsafe extern "C" fn(*mut c_void),
    }

    impl Objc {
        fn sel(&self, name: &CStr) -> Sel {
            // SAFETY: a C string.
            unsafe { (self.sel)(name.as_ptr()) }
        }

        /// `objc_msgSend` as a function of type `F`.
        ///
        /// # Safety
        /// `F` must be the method's C signature (receiver, selector, arguments).
        unsafe fn send<F: Copy>(&self) -> F {
            // SAFETY: caller contract.
            unsafe { core::mem::transmute_copy::<*mut c_void, F>(&self.msg_send) }
        }

        /// `[receiver name]` returning an object.
        unsafe fn call0(&self, receiver: Id, name: &CStr) -> Id {
            // SAFETY: a method without arguments returning an object (caller contract).
            unsafe {
                let f: unsafe extern "C" fn(Id, Sel) -> Id = self.send();
                f(receiver, self.sel(name))
            }
        }

        unsafe fn release(&self, object: Id) {
            if !object.is_null() {
                // SAFETY: an object this back end owns.
                unsafe { self.call0(object, c"release") };
            }
        }

        unsafe fn nsstring(&self, s: &CStr) -> Id {
            // SAFETY: +[NSString stringWithUTF8String:] (autoreleased).
            unsafe {
                let f: unsafe extern "C" fn(Id, Sel, *const c_char) -> Id = self.send();
                f(
                    (self.get_class)(c"NSString".as_ptr()),
                    self.sel(c"stringWithUTF8String:"),
                    s.as_ptr(),
                )
            }
        }

        unsafe fn error_text(&self, error: Id) -> String {
            if error.is_null() {
                return "unknown error".into();
            }
            // SAFETY: an NSError: localizedDescription, then UTF8String.
            unsafe {
                let text = self.call0(error, c"localizedDescription");
                let f: unsafe extern "C" fn(Id, Sel) -> *const c_char = self.send();
                let p = f(text, self.sel(c"UTF8String"));
                if p.is_null() {
                    "unknown error".into()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            }
        }
    }

    struct Buf {
        buffer: Id,
        contents: *mut u8,
        size: u64,
    }

    struct State {
        buffers: Vec<Option<Buf>>,
        free_slots: Vec<usize>,
        /// The run's command buffer, encoder and autorelease pool while launches are encoded.
        open: Option<(Id, Id, *mut c_void)>,
    }

    pub(crate) struct Metal {
        objc: Objc,
        device: Id,
        queue: Id,
        pipelines: Vec<(Id, Vec<u8>, [u32; 3])>,
        state: Mutex<State>,
        _libs: (Library, Library, Library),
    }

    // SAFETY: Metal devices, queues and pipelines are thread-safe; command buffers and
    // encoders are used under `state`'s lock.
    unsafe impl Send for Metal {}
    // SAFETY: as above.
    unsafe impl Sync for Metal {}

    impl Metal {
        pub(crate) fn open(images: &[Image<'_>], kernels: &[Kernel]) -> Result<Metal, Error> {
            let objc_lib = open_driver("Metal", &[c"/usr/lib/libobjc.A.dylib"])?;
            let foundation = open_driver(
                "Metal",
                &[c"/System/Library/Frameworks/Foundation.framework/Foundation"],
            )?;
            let metal = open_driver(
                "Metal",
                &[c"/System/Library/Frameworks/Metal.framework/Metal"],
            )?;
            // SAFETY: the Objective-C runtime's and Metal's C signatures.
            let (objc, create) = unsafe {
                (
                    Objc {
                        get_class: symbol(&objc_lib, "Metal", c"objc_getClass")?,
                        sel: symbol(&objc_lib, "Metal", c"sel_registerName")?,
                        msg_send: objc_lib
                            .symbol(c"objc_msgSend")
                            .map_err(|e| Error::DeviceUnavailable(format!("Metal: {e}")))?
                            .as_ptr(),
                        pool_push: symbol(&objc_lib, "Metal", c"objc_autoreleasePoolPush")?,
                        pool_pop: symbol(&objc_lib, "Metal", c"objc_autoreleasePoolPop")?,
                    },
                    symbol::<unsafe extern "C" fn() -> Id>(
                        &metal,
                        "Metal",
                        c"MTLCreateSystemDefaultDevice",
                    )?,
                )
            };
            // SAFETY: no arguments.
            let device = unsafe { create() };
            if device.is_null() {
                return Err(Error::DeviceUnavailable("Metal: no Metal device".into()));
            }
            // SAFETY: -[MTLDevice newCommandQueue].
            let queue = unsafe { objc.call0(device, c"newCommandQueue") };
            let mut m = Metal {
                objc,
                device,
                queue,
                pipelines: Vec::new(),
                state: Mutex::new(State {
                    buffers: Vec::new(),
                    free_slots: Vec::new(),
                    open: None,
                }),
                _libs: (objc_lib, foundation, metal),
            };
            let chosen =
                choose_images("Metal", images, kernels, |im| im.format == abi::FORMAT_MSL)?;
            for k in kernels {
                let (_, image) = chosen
                    .iter()
                    .find(|(g, _)| *g == k.group)
                    .ok_or_else(|| Error::LoadFailed("kernel without an image".into()))?;
                let source = CStr::from_bytes_until_nul(image.data)
                    .map_err(|_| Error::LoadFailed("MSL image is not NUL-terminated".into()))?;
                let pipeline = m.pipeline(source, &k.name)?;
                m.pipelines.push((pipeline, k.args.clone(), k.block));
            }
            Ok(m)
        }

        fn pipeline(&self, source: &CStr, name: &CStr) -> Result<Id, Error> {
            let o = &self.objc;
            // SAFETY: Metal's documented methods with their C signatures; objects made with
            // `new*` are released here or by `Drop`.
            unsafe {
                let pool = (o.pool_push)();
                let mut error: Id = core::ptr::null_mut();
                let f: unsafe extern "C" fn(Id, Sel, Id, Id, *mut Id) -> Id = o.send();
                let library = f(
                    self.device,
                    o.sel(c"newLibraryWithSource:options:error:"),
                    o.nsstring(source),
                    core::ptr::null_mut(),
                    &mut error,
                );
                if library.is_null() {
                    let text = o.error_text(error);
                    (o.pool_pop)(pool);
                    return Err(Error::DeviceFailed(format!("Metal: compiling MSL: {text}")));
                }
                let f: unsafe extern "C" fn(Id, Sel, Id) -> Id = o.send();
                let function = f(library, o.sel(c"newFunctionWithName:"), o.nsstring(name));
                o.release(library);
                if function.is_null() {
                    (o.pool_pop)(pool);
                    return Err(Error::LoadFailed(format!(
                        "Metal: no kernel {} in its library",
                        name.to_string_lossy()
                    )));
                }
                let mut error: Id = core::ptr::null_mut();
                let f: unsafe extern "C" fn(Id, Sel, Id, *mut Id) -> Id = o.send();
                let pipeline = f(
                    self.device,
                    o.sel(c"newComputePipelineStateWithFunction:error:"),
                    function,
                    &mut error,
                );
                o.release(function);
                let result = if pipeline.is_null() {
                    Err(Error::DeviceFailed(format!(
                        "Metal: pipeline of {}: {}",
                        name.to_string_lossy(),
                        o.error_text(error)
                    )))
                } else {
                    Ok(pipeline)
                };
                (o.pool_pop)(pool);
                result
            }
        }

        fn locate(state: &State, address: u64) -> Result<(usize, u64), Error> {
            let slot = (address >> OFFSET_BITS) as usize;
            let offset = address & ((1u64 << OFFSET_BITS) - 1);
            match slot
                .checked_sub(1)
                .and_then(|s| state.buffers.get(s))
                .and_then(Option::as_ref)
            {
                Some(b) if offset < b.size => Ok((slot - 1, offset)),
                _ => Err(Error::DeviceFailed(format!(
                    "Metal: address {address:#x} is not inside a buffer"
                ))),
            }
        }
    }

    impl Backend for Metal {
        fn name(&self) -> &'static str {
            "Metal"
        }

        fn alloc(&self, bytes: u64) -> Result<u64, Error> {
            if bytes >= 1 << OFFSET_BITS {
                return Err(Error::OutOfMemory(format!(
                    "a Metal buffer of {bytes} bytes"
                )));
            }
            let o = &self.objc;
            // SAFETY: -[MTLDevice newBufferWithLength:options:] (shared storage = 0) and
            // -[MTLBuffer contents].
            let (buffer, contents) = unsafe {
                let f: unsafe extern "C" fn(Id, Sel, u64, u64) -> Id = o.send();
                let buffer = f(
                    self.device,
                    o.sel(c"newBufferWithLength:options:"),
                    bytes.max(1),
                    0,
                );
                if buffer.is_null() {
                    return Err(Error::OutOfMemory(format!("{bytes} bytes of Metal memory")));
                }
                let f: unsafe extern "C" fn(Id, Sel) -> *mut c_void = o.send();
                (buffer, f(buffer, o.sel(c"contents")).cast::<u8>())
            };
            let mut state = self.state.lock();
            let b = Buf {
                buffer,
                contents,
                size: bytes.max(1),
            };
            let slot = match state.free_slots.pop() {
                Some(i) => {
                    state.buffers[i] = Some(b);
                    i
                }
                None => {
                    state.buffers.push(Some(b));
                    state.buffers.len() - 1
                }
            };
            Ok(((slot as u64) + 1) << OFFSET_BITS)
        }

        fn free(&self, address: u64) {
            let mut state = self.state.lock();
            if let Ok((slot, _)) = Metal::locate(&state, address) {
                if let Some(b) = state.buffers[slot].take() {
                    state.free_slots.push(slot);
                    // SAFETY: a buffer this back end made; no pending work uses it.
                    unsafe { self.objc.release(b.buffer) };
                }
            }
        }

        fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
            let state = self.state.lock();
            let (slot, offset) = Metal::locate(&state, address)?;
            let b = state.buffers[slot]
                .as_ref()
                .ok_or_else(|| Error::Internal("freed buffer".into()))?;
            if offset + bytes.len() as u64 > b.size {
                return Err(Error::Internal("upload past the end of a buffer".into()));
            }
            // SAFETY: inside the shared buffer (checked above).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    b.contents.add(offset as usize),
                    bytes.len(),
                )
            };
            Ok(())
        }

        fn download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
            let state = self.state.lock();
            let (slot, offset) = Metal::locate(&state, address)?;
            let b = state.buffers[slot]
                .as_ref()
                .ok_or_else(|| Error::Internal("freed buffer".into()))?;
            if offset + bytes.len() as u64 > b.size {
                return Err(Error::Internal("download past the end of a buffer".into()));
            }
            // SAFETY: inside the shared buffer; the work writing it finished.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    b.contents.add(offset as usize),
                    bytes.as_mut_ptr(),
                    bytes.len(),
                )
            };
            Ok(())
        }

        fn launch(&self, kernel: usize, grid: [u64; 3], args: &[i64]) -> Result<(), Error> {
            let o = &self.objc;
            let mut state = self.state.lock();
            let (pipeline, kinds, block) = &self.pipelines[kernel];
            // SAFETY: Metal's documented methods with their C signatures, on objects of this
            // device, under the state lock.
            unsafe {
                if state.open.is_none() {
                    let pool = (o.pool_push)();
                    let cb = o.call0(self.queue, c"commandBuffer");
                    let enc = o.call0(cb, c"computeCommandEncoder");
                    state.open = Some((cb, enc, pool));
                }
                let (_, enc, _) = state.open.unwrap_or((
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                ));
                let f: unsafe extern "C" fn(Id, Sel, Id) = o.send();
                f(enc, o.sel(c"setComputePipelineState:"), *pipeline);
                for (i, &kind) in kinds.iter().enumerate() {
                    if arg_is_address(kind) {
                        let (slot, offset) = Metal::locate(&state, args[i] as u64)?;
                        let b = state.buffers[slot]
                            .as_ref()
                            .ok_or_else(|| Error::Internal("freed buffer".into()))?;
                        let f: unsafe extern "C" fn(Id, Sel, Id, u64, u64) = o.send();
                        f(
                            enc,
                            o.sel(c"setBuffer:offset:atIndex:"),
                            b.buffer,
                            offset,
                            i as u64,
                        );
                    } else {
                        let bytes = args[i].to_le_bytes();
                        let f: unsafe extern "C" fn(Id, Sel, *const c_void, u64, u64) = o.send();
                        f(
                            enc,
                            o.sel(c"setBytes:length:atIndex:"),
                            bytes.as_ptr().cast(),
                            arg_bytes(kind) as u64,
                            i as u64,
                        );
                    }
                }
                let f: unsafe extern "C" fn(Id, Sel, MtlSize, MtlSize) = o.send();
                f(
                    enc,
                    o.sel(c"dispatchThreadgroups:threadsPerThreadgroup:"),
                    MtlSize {
                        width: grid[0],
                        height: grid[1],
                        depth: grid[2],
                    },
                    MtlSize {
                        width: u64::from(block[0]),
                        height: u64::from(block[1]),
                        depth: u64::from(block[2]),
                    },
                );
            }
            Ok(())
        }

        fn finish(&self) -> Result<(), Error> {
            let o = &self.objc;
            let mut state = self.state.lock();
            let Some((cb, enc, pool)) = state.open.take() else {
                return Ok(());
            };
            // SAFETY: as in `launch`; the pool was pushed on this thread by the run's first
            // launch.
            unsafe {
                let f: unsafe extern "C" fn(Id, Sel) = o.send();
                f(enc, o.sel(c"endEncoding"));
                f(cb, o.sel(c"commit"));
                f(cb, o.sel(c"waitUntilCompleted"));
                let g: unsafe extern "C" fn(Id, Sel) -> u64 = o.send();
                // MTLCommandBufferStatusCompleted = 4.
                let status = g(cb, o.sel(c"status"));
                let result = if status == 4 {
                    Ok(())
                } else {
                    let error = o.call0(cb, c"error");
                    Err(Error::DeviceFailed(format!(
                        "Metal: running the kernels: {}",
                        o.error_text(error)
                    )))
                };
                (o.pool_pop)(pool);
                result
            }
        }
    }

    impl Drop for Metal {
        fn drop(&mut self) {
            let mut state = self.state.lock();
            // SAFETY: objects this back end made, released once; nothing runs any more.
            unsafe {
                for b in state.buffers.drain(..).flatten() {
                    self.objc.release(b.buffer);
                }
                for (p, _, _) in &self.pipelines {
                    self.objc.release(*p);
                }
                self.objc.release(self.queue);
                self.objc.release(self.device);
            }
        }
    }
}

pub(crate) use imp::Metal;
