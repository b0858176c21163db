//! Minimal safe wrappers over the POSIX calls the runtime needs: mutexes and
//! condition variables, threads, `dlopen`, read-only file mappings, `realpath`,
//! the environment and the CPU count. Only `libc`, never `std`, so the C
//! library can be built without std's panic and backtrace machinery.
//!
//! Invariants:
//! - pthread objects live in their own heap allocation and never move after
//!   initialization; they are destroyed only when no thread can use them.
//! - Every OS error is turned into a message here (`strerror_r`), formatted
//!   like std's `io::Error`: "No such file or directory (os error 2)".

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::{String, ToString};
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// A mutual-exclusion lock around `T` (`pthread_mutex_t`).
pub struct Mutex<T> {
    raw: Box<UnsafeCell<libc::pthread_mutex_t>>,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialized by the pthread mutex.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    pub fn new(data: T) -> Mutex<T> {
        Mutex {
            raw: Box::new(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER)),
            data: UnsafeCell::new(data),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        // SAFETY: an initialized mutex that does not move (boxed). A default
        // mutex only fails on deadlock detection, which it does not do.
        unsafe { libc::pthread_mutex_lock(self.raw.get()) };
        MutexGuard { mutex: self }
    }
}

impl<T> Drop for Mutex<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody holds or waits on the lock.
        unsafe { libc::pthread_mutex_destroy(self.raw.get()) };
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop.
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held, exclusively through this guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: locked by this thread in `Mutex::lock`.
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw.get()) };
    }
}

/// A condition variable (`pthread_cond_t`).
pub struct Condvar {
    raw: Box<UnsafeCell<libc::pthread_cond_t>>,
}

// SAFETY: pthread condition variables are made for use across threads.
unsafe impl Send for Condvar {}
// SAFETY: as above.
unsafe impl Sync for Condvar {}

impl Condvar {
    pub fn new() -> Condvar {
        Condvar {
            raw: Box::new(UnsafeCell::new(libc::PTHREAD_COND_INITIALIZER)),
        }
    }

    /// Atomically unlocks `guard`'s mutex and sleeps until notified (or
    /// spuriously woken); returns with the lock held again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        // SAFETY: both objects are initialized and pinned; the mutex is held
        // by this thread (guard).
        unsafe { libc::pthread_cond_wait(self.raw.get(), guard.mutex.raw.get()) };
        guard
    }

    pub fn notify_one(&self) {
        // SAFETY: initialized and pinned.
        unsafe { libc::pthread_cond_signal(self.raw.get()) };
    }

    pub fn notify_all(&self) {
        // SAFETY: initialized and pinned.
        unsafe { libc::pthread_cond_broadcast(self.raw.get()) };
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl Drop for Condvar {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody waits on it.
        unsafe { libc::pthread_cond_destroy(self.raw.get()) };
    }
}

type ThreadMain = Box<dyn FnOnce() + Send>;

/// A joinable thread.
pub struct Thread(libc::pthread_t);

extern "C" fn thread_start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Box<ThreadMain>` leaked by `spawn`, owned by this
    // thread from now on.
    let main = unsafe { Box::from_raw(arg.cast::<ThreadMain>()) };
    main();
    core::ptr::null_mut()
}

impl Thread {
    /// Starts `main` on a new thread with a stack of `stack_size` bytes;
    /// `None` when the system refuses.
    pub fn spawn(stack_size: usize, main: ThreadMain) -> Option<Thread> {
        let arg = Box::into_raw(Box::new(main));
        // SAFETY: plain pthread calls on local, initialized objects; on
        // success the new thread owns `arg`, on failure it is reclaimed here.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) != 0 {
                drop(Box::from_raw(arg));
                return None;
            }
            // A stack size the system rejects falls back to its default.
            libc::pthread_attr_setstacksize(&mut attr, stack_size);
            let mut thread: libc::pthread_t = core::mem::zeroed();
            let rc = libc::pthread_create(&mut thread, &attr, thread_start, arg.cast());
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 {
                drop(Box::from_raw(arg));
                return None;
            }
            Some(Thread(thread))
        }
    }

    /// Waits for the thread to finish.
    pub fn join(self) {
        // SAFETY: a joinable thread, joined exactly once (`self` by value).
        unsafe { libc::pthread_join(self.0, core::ptr::null_mut()) };
    }
}

fn errno() -> c_int {
    // SAFETY: the thread's errno location is always valid.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let location = libc::__errno_location();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let location = libc::__error();
        *location
    }
}

/// The message of OS error `code`, formatted like std's `io::Error`.
pub fn os_error_message(code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its length; strerror_r NUL-terminates.
    let message = unsafe {
        if libc::strerror_r(code, buf.as_mut_ptr(), buf.len()) == 0 {
            CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
        } else {
            "unknown error".to_string()
        }
    };
    format!("{message} (os error {code})")
}

/// The message for the current `errno`.
pub fn last_os_error() -> String {
    os_error_message(errno())
}

/// The thread's pending `dlerror()` message.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the
    // next dl* call on this thread; it is copied at once.
    unsafe {
        let message = libc::dlerror();
        if message.is_null() {
            "unknown dynamic loader error".to_string()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    }
}

/// A shared library opened with `dlopen`; closed on drop.
pub struct Library(NonNull<c_void>);

// SAFETY: dlopen handles may be used and closed from any thread.
unsafe impl Send for Library {}
// SAFETY: as above; dlsym is thread-safe.
unsafe impl Sync for Library {}

impl Library {
    /// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`.
    ///
    /// # Safety
    /// Runs the library's initializers.
    pub unsafe fn open(path: &CStr) -> Result<Library, String> {
        // SAFETY: a C string; initializers are the caller's responsibility.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        NonNull::new(handle).map(Library).ok_or_else(dl_error)
    }

    /// The address of symbol `name`.
    pub fn symbol(&self, name: &CStr) -> Result<NonNull<c_void>, String> {
        // SAFETY: a live handle and a C string. Clearing dlerror first tells
        // "not found" apart from a symbol whose value is null.
        unsafe {
            libc::dlerror();
            NonNull::new(libc::dlsym(self.0.as_ptr(), name.as_ptr())).ok_or_else(dl_error)
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: opened by `open`, closed once.
        unsafe { libc::dlclose(self.0.as_ptr()) };
    }
}

/// A read-only, private memory mapping of a whole file; unmapped on drop.
pub struct Mmap {
    ptr: NonNull<c_void>,
    len: usize,
}

// SAFETY: read-only memory.
unsafe impl Send for Mmap {}
// SAFETY: as above.
unsafe impl Sync for Mmap {}

impl Mmap {
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr().cast()
    }

    #[allow(clippy::len_without_is_empty)] // never empty: empty files are not mapped
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: mapped by `map_file` with this length.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// Closes a file descriptor on drop.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: an open descriptor owned by this value.
        unsafe { libc::close(self.0) };
    }
}

/// Opens `path` and returns its size and, when it is not empty, a read-only
/// mapping of it. Errors are OS error messages.
pub fn map_file(path: &CStr) -> Result<(u64, Option<Mmap>), String> {
    // SAFETY: a C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_os_error());
    }
    let fd = Fd(fd);
    // SAFETY: `stat` is plain data, filled by fstat on an open descriptor.
    let mut stat: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.0, &mut stat) } != 0 {
        return Err(last_os_error());
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size == 0 {
        return Ok((0, None));
    }
    let len = usize::try_from(size).map_err(|_| "file too large to map".to_string())?;
    // SAFETY: a fresh read-only private mapping of an open file; the file must
    // not be truncated while mapped (the documented contract for weights).
    let ptr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd.0,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_os_error());
    }
    let ptr = NonNull::new(ptr).ok_or_else(|| "mmap returned NULL".to_string())?;
    Ok((size, Some(Mmap { ptr, len })))
}

/// The canonical absolute path of `path` (`realpath`).
pub fn canonicalize(path: &CStr) -> Result<CString, String> {
    // SAFETY: a C string; with a null buffer realpath mallocs the result,
    // which is copied and freed here.
    unsafe {
        let resolved = libc::realpath(path.as_ptr(), core::ptr::null_mut());
        if resolved.is_null() {
            return Err(last_os_error());
        }
        let owned = CStr::from_ptr(resolved).to_owned();
        libc::free(resolved.cast());
        Ok(owned)
    }
}

/// The bytes of environment variable `name`, if set.
pub fn env_bytes(name: &CStr) -> Option<alloc::vec::Vec<u8>> {
    // SAFETY: getenv returns null or a C string; it is copied at once.
    // (Like any getenv, it races only with a concurrent setenv in C code.)
    unsafe {
        let value = libc::getenv(name.as_ptr());
        if value.is_null() {
            return None;
        }
        Some(CStr::from_ptr(value).to_bytes().to_vec())
    }
}

/// CPUs this process may run on: its affinity mask where available, else
/// the online CPUs; at least 1.
pub fn available_parallelism() -> u32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: cpu_set_t is plain data filled by sched_getaffinity.
        unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                let count = libc::CPU_COUNT(&set);
                if count > 0 {
                    return count as u32;
                }
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(online).unwrap_or(1).max(1)
}
