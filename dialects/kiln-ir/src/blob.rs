//! Shared, immutable byte storage for weights.
//!
//! A [`Blob`] is a cheap-to-clone view into bytes owned by anything that can
//! lend a `&[u8]`: a `Vec<u8>`, or a memory map created by a frontend. The IR
//! never copies weight bytes; passes that need a sub-range take a sub-view.

use std::fmt;
use std::sync::Arc;

/// An immutable, reference-counted byte range.
#[derive(Clone)]
pub struct Blob {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl Blob {
    /// Wraps owned bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Blob {
        let len = bytes.len();
        Blob {
            owner: Arc::new(bytes),
            start: 0,
            len,
        }
    }

    /// Wraps any byte owner (for example a `memmap2::Mmap`).
    pub fn from_owner(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Blob {
        let len = (*owner).as_ref().len();
        Blob {
            owner,
            start: 0,
            len,
        }
    }

    /// A sub-view, or `None` if `start..start+len` is out of range.
    pub fn slice(&self, start: usize, len: usize) -> Option<Blob> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Blob {
            owner: self.owner.clone(),
            start: self.start + start,
            len,
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the bytes to `out` in large chunks, telling the kernel after
    /// each chunk that its source pages will not be needed soon. When the
    /// blob is a view into a memory-mapped file, this keeps resident memory
    /// near one chunk instead of growing to the whole weight while a
    /// gigabyte-sized weight is copied to an artifact or side file.
    pub fn write_streaming(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        for chunk in self.bytes().chunks(RELEASE_CHUNK) {
            out.write_all(chunk)?;
            release_pages(chunk);
        }
        Ok(())
    }
}

/// Bytes written between two [`release_pages`] calls.
const RELEASE_CHUNK: usize = 32 << 20;

/// Advises the kernel (`MADV_PAGEOUT`) that the whole pages inside `bytes`
/// will not be used again soon: clean file-backed pages leave this
/// process's resident set and are re-read from disk if touched again.
/// Purely advisory; errors (old kernels) are ignored.
#[cfg(target_os = "linux")]
fn release_pages(bytes: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let start = bytes.as_ptr() as usize;
    let first = start.div_ceil(page) * page;
    let last = (start + bytes.len()) / page * page;
    if last > first {
        // SAFETY: the range is whole pages inside `bytes`, which is live for
        // the call. MADV_PAGEOUT never changes memory contents: clean file
        // pages are dropped and re-read on access, anonymous pages are
        // swapped out (or left alone without swap), so every view of these
        // pages reads the same bytes afterwards.
        unsafe {
            libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_PAGEOUT);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn release_pages(_bytes: &[u8]) {}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Blob {}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.len)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Blob {
        Blob::from_vec(v)
    }
}
