//! The Kiln runtime's C library: `libkiln_runtime.so` and
//! `libkiln_runtime.a`, implementing `runtime/include/kiln.h` on top of
//! `kiln-runtime-core` (the same loading and validation code the Rust API
//! uses).
//!
//! Invariants:
//! - In profiles with `panic = "abort"` (the shipped `runtime-release`
//!   build) the library is `no_std`: core, alloc and libc only, a
//!   malloc-backed global allocator and a panic handler that aborts. This is
//!   what keeps it small: std's panic/backtrace machinery is not linked.
//! - Under `panic = "unwind"` (dev and test builds; stable Rust cannot unwind
//!   without std) it links std for the panic runtime and turns a panic into
//!   `KILN_ERROR_INTERNAL`; all other code is identical.
//! - No panic ever crosses into C: it is either caught or aborts.

#![cfg_attr(panic = "abort", no_std)]

extern crate alloc;

mod capi;
mod last_error;

#[cfg(panic = "abort")]
mod no_std_support {
    //! What std would otherwise provide: an allocator and a panic handler.

    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;

    /// Alignment malloc guarantees (glibc and musl: two words).
    const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

    /// The C heap: malloc/free, posix_memalign for larger alignments.
    struct Malloc;

    // SAFETY: every pointer handed out comes from malloc/posix_memalign/
    // realloc with at least the requested size and alignment, and is freed
    // with free.
    unsafe impl GlobalAlloc for Malloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
                // SAFETY: plain malloc.
                unsafe { libc::malloc(layout.size()).cast() }
            } else {
                let align = layout.align().max(core::mem::size_of::<usize>());
                let mut out: *mut c_void = core::ptr::null_mut();
                // SAFETY: `align` is a power of two and a multiple of the word size.
                if unsafe { libc::posix_memalign(&mut out, align, layout.size()) } != 0 {
                    return core::ptr::null_mut();
                }
                out.cast()
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: allocated by `alloc`/`realloc` above.
            unsafe { libc::free(ptr.cast()) };
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
                // SAFETY: `ptr` came from malloc-family calls.
                return unsafe { libc::realloc(ptr.cast(), new_size).cast() };
            }
            // SAFETY: the GlobalAlloc contract for realloc: `layout` is the
            // block's layout and the new layout is valid.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }

    // The precompiled `core`/`alloc` carry unwind tables that name Rust's
    // personality routine and `_Unwind_Resume`, even though nothing unwinds
    // in a `panic = "abort"` build. `_Unwind_Resume` comes from the system
    // unwinder (libgcc_s, which every C program on these systems already
    // has); the personality routine is this stub, which is never called in
    // practice and, if it were, tells the unwinder to stop
    // (`_URC_FATAL_PHASE1_ERROR` = 3), so nothing unwinds through Rust
    // frames. Written in assembly where possible so that it can be hidden:
    // a `#[no_mangle]` function would be exported from the shared library.
    #[cfg(target_arch = "x86_64")]
    core::arch::global_asm!(
        ".pushsection .text.rust_eh_personality,\"ax\",@progbits",
        ".globl rust_eh_personality",
        ".hidden rust_eh_personality",
        ".type rust_eh_personality,@function",
        "rust_eh_personality:",
        "mov eax, 3",
        "ret",
        ".size rust_eh_personality, .-rust_eh_personality",
        ".popsection",
    );
    #[cfg(target_arch = "aarch64")]
    core::arch::global_asm!(
        ".pushsection .text.rust_eh_personality,\"ax\",%progbits",
        ".globl rust_eh_personality",
        ".hidden rust_eh_personality",
        ".type rust_eh_personality,%function",
        "rust_eh_personality:",
        "mov w0, #3",
        "ret",
        ".size rust_eh_personality, .-rust_eh_personality",
        ".popsection",
    );
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    #[no_mangle]
    extern "C" fn rust_eh_personality() -> i32 {
        3
    }

    #[link(name = "gcc_s")]
    extern "C" {}

    #[global_allocator]
    static ALLOCATOR: Malloc = Malloc;

    /// A panic is a bug in the runtime; with no unwinding available, say so
    /// on stderr and abort rather than continue in an unknown state.
    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        const MESSAGE: &[u8] = b"kiln runtime: internal error (panic), aborting\n";
        // SAFETY: writing a static buffer to stderr, then aborting.
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::abort()
        }
    }
}
