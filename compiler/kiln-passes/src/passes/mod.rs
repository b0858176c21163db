//! One module per pass. Each defines `INFO` (its registry entry) and the
//! pass type; [`crate::registry::PASSES`] lists them.

pub mod assign_layout;
pub mod canonicalize;
pub mod conv_transpose_to_conv;
pub mod cse;
pub mod dce;
pub mod fold_batch_norm;
pub mod fold_constants;
pub mod fold_quantized_unary;
pub mod fuse_elementwise;
pub mod fuse_epilogue;
pub mod pack_weights;
pub mod plan_memory;
pub mod quantize_weights;
pub mod recognize_attention;
pub mod recognize_norms;
pub mod recognize_qdq_weights;
pub mod shape_inference;
pub mod sink_transposes;

#[cfg(test)]
pub(crate) mod models;
#[cfg(test)]
pub(crate) mod testutil;
