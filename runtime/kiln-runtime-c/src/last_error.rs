//! The calling thread's last error message (`kiln_last_error`), without
//! std's `thread_local!`: a `pthread_key_t` whose per-thread value is a boxed
//! `CString`, freed by the key's destructor when the thread exits.
//!
//! Invariants:
//! - A thread only ever reads or writes its own slot, so no locking is needed.
//! - The string returned by [`get`] stays valid until the next [`set`] on the
//!   same thread (the documented lifetime in kiln.h).
//! - If the key cannot be created (the process ran out of keys), messages are
//!   dropped and `kiln_last_error()` reads "", status codes still work.

use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The key plus one; 0 while not created yet.
static KEY: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn free_message(value: *mut c_void) {
    // SAFETY: every non-null slot value is a leaked `Box<CString>` (see `set`).
    drop(unsafe { Box::from_raw(value.cast::<CString>()) });
}

/// The key, created on first use; `None` when the system has no key left.
fn key() -> Option<libc::pthread_key_t> {
    let current = KEY.load(Ordering::Acquire);
    if current != 0 {
        return Some((current - 1) as libc::pthread_key_t);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: creates a key with a destructor that matches the slot values.
    if unsafe { libc::pthread_key_create(&mut key, Some(free_message)) } != 0 {
        return None;
    }
    match KEY.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(key),
        Err(winner) => {
            // Another thread created one first; use that and drop ours (no
            // slot of ours was ever set).
            // SAFETY: our key, unused.
            unsafe { libc::pthread_key_delete(key) };
            Some((winner - 1) as libc::pthread_key_t)
        }
    }
}

/// Replaces the thread's message; `None` resets it to "".
pub fn set(message: Option<&str>) {
    let Some(key) = key() else { return };
    // Interior NULs would cut the message short; replace them.
    let value = message.map_or(core::ptr::null_mut(), |m| {
        let bytes: Vec<u8> = m.bytes().map(|b| if b == 0 { b'?' } else { b }).collect();
        Box::into_raw(Box::new(CString::new(bytes).unwrap_or_default()))
    });
    // SAFETY: this thread's slot of a live key; the old value is ours to free
    // once replaced.
    unsafe {
        let old = libc::pthread_getspecific(key);
        libc::pthread_setspecific(key, value.cast::<c_void>());
        if !old.is_null() {
            free_message(old);
        }
    }
}

/// The thread's message; "" when none.
pub fn get() -> *const c_char {
    let value = match key() {
        // SAFETY: this thread's slot of a live key.
        Some(key) => unsafe { libc::pthread_getspecific(key) },
        None => core::ptr::null_mut(),
    };
    if value.is_null() {
        c"".as_ptr()
    } else {
        // SAFETY: a live `Box<CString>` owned by this thread's slot.
        unsafe { (*value.cast::<CString>()).as_ptr() }
    }
}
