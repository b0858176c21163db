//! Op families, one module per `kiln_ir::ops` family module.

pub(crate) mod elementwise;
pub(crate) mod linalg;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod shape;
