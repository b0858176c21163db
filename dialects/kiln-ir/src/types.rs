//! Tensor types: a dtype plus a list of dimensions, each static, unknown or
//! a named symbol.
//!
//! Text syntax (see `text`): `tensor<1x3x224x224xf32>`, `tensor<?x768xf32>`,
//! `tensor<{batch}x768xf32>`, and `tensor<f32>` for a scalar. Symbol names sit
//! in braces so that they may contain any character but `}` (ONNX dim params
//! such as `batch_size` or `sequence x` are common).
//!
//! Invariant: two equal symbols in one graph denote the same run-time extent.

use crate::dtype::DType;
use std::fmt;
use std::sync::Arc;

/// One dimension of a tensor type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known extent.
    Static(u64),
    /// An extent nothing is known about.
    Unknown,
    /// A named extent; equal names are equal extents.
    Sym(Arc<str>),
}

impl Dim {
    /// The static extent, if known.
    pub fn as_static(&self) -> Option<u64> {
        match self {
            Dim::Static(n) => Some(*n),
            _ => None,
        }
    }

    /// Creates a symbolic dimension.
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Arc::from(name))
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::Static(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Unknown => f.write_str("?"),
            Dim::Sym(s) => write!(f, "{{{s}}}"),
        }
    }
}

/// A ranked tensor type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first. Empty for a scalar.
    pub dims: Vec<Dim>,
}

impl TensorType {
    /// A type with the given dtype and dims.
    pub fn new(dtype: DType, dims: Vec<Dim>) -> TensorType {
        TensorType { dtype, dims }
    }

    /// A fully static type.
    pub fn fixed(dtype: DType, shape: &[u64]) -> TensorType {
        TensorType {
            dtype,
            dims: shape.iter().map(|&n| Dim::Static(n)).collect(),
        }
    }

    /// A scalar (rank 0) type.
    pub fn scalar(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            dims: Vec::new(),
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The shape if every dimension is static.
    pub fn static_shape(&self) -> Option<Vec<u64>> {
        self.dims.iter().map(Dim::as_static).collect()
    }

    /// Whether every dimension is static.
    pub fn is_static(&self) -> bool {
        self.dims.iter().all(|d| d.as_static().is_some())
    }

    /// Element count if static, `None` if dynamic or on overflow.
    pub fn numel(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.as_static()?))
    }

    /// Storage bytes if static, `None` if dynamic or on overflow.
    pub fn storage_bytes(&self) -> Option<u64> {
        self.dtype.storage_bytes(self.numel()?)
    }

    /// Whether `self` can describe the same run-time tensors as `other`:
    /// same dtype and rank, and static dims agree where both are static.
    pub fn is_compatible(&self, other: &TensorType) -> bool {
        self.dtype == other.dtype
            && self.rank() == other.rank()
            && self
                .dims
                .iter()
                .zip(&other.dims)
                .all(|(a, b)| match (a, b) {
                    (Dim::Static(x), Dim::Static(y)) => x == y,
                    _ => true,
                })
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        for d in &self.dims {
            write!(f, "{d}x")?;
        }
        write!(f, "{}>", self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let t = TensorType::new(
            DType::F32,
            vec![Dim::sym("batch"), Dim::Unknown, Dim::Static(768)],
        );
        assert_eq!(t.to_string(), "tensor<{batch}x?x768xf32>");
        assert_eq!(TensorType::scalar(DType::I64).to_string(), "tensor<i64>");
    }

    #[test]
    fn numel_overflow_is_none() {
        let t = TensorType::fixed(DType::F32, &[u64::MAX, 2]);
        assert_eq!(t.numel(), None);
        assert_eq!(
            TensorType::fixed(DType::F32, &[2, 3]).storage_bytes(),
            Some(24)
        );
    }
}
