//! Kiln IR: element types, tensor types, weight storage, graphs of ops over
//! SSA values, the `nn` and `quant` op definitions, the element codecs
//! (`codec`: small floats, sub-byte packing, block-wise quantization), the
//! verifier, and the `.kir` text format.
//!
//! Invariants:
//! - This crate knows nothing about ONNX, MLIR or LLVM; it builds and tests
//!   without them.
//! - Weight bytes are never copied by the IR: constants hold a [`Blob`] view.

pub mod attr;
pub mod blob;
pub mod codec;
pub mod dtype;
pub mod graph;
pub mod ops;
pub mod plan;
pub mod text;
pub mod types;
pub mod verify;

pub use attr::{Attr, AttrKind, Attrs};
pub use blob::Blob;
pub use dtype::{DType, DTypeClass};
pub use graph::{
    Def, Derivation, Graph, Node, ValueId, ValueInfo, Weight, WeightData, WeightId, WeightSource,
};
pub use ops::{OpDef, OpKind};
pub use plan::{Home, MemoryPlan};
pub use types::{Dim, TensorType};
pub use verify::{verify, VerifyError};
