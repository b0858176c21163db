//! Op families, one module per `kiln_ir::ops` family module; the large
//! shape family is split into `shape`, `indexing` (gather_nd, scatters,
//! pad) and `resize` (resize, grid_sample).

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod indexing;
pub(crate) mod layout;
pub(crate) mod linalg;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod quant;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod shape;
pub(crate) mod signal;
