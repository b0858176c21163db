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
}

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
