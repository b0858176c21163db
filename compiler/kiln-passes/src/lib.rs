//! Graph-level passes over Kiln IR, the table that names them, pipelines of
//! them, and the pass manager that runs a pipeline.
//!
//! Code map:
//! - [`pass`]: the [`Pass`] trait, [`PassOptions`], [`PassStats`], [`PassError`];
//! - [`registry`]: the one table of passes ([`registry::PASSES`]), each
//!   with a kebab-case name, a one-line summary and a constructor;
//! - [`pipeline`]: a [`Pipeline`] is data (a list of registry entries) that
//!   parses from and prints to `"canonicalize,cse,dce"`; named pipelines
//!   such as `default` live in one table there;
//! - [`manager`]: [`PassManager`] runs a pipeline, verifies after every pass
//!   when asked (on by default in debug builds and tests), times passes and
//!   reports the IR after each pass to a callback;
//! - [`rewrite`]: the one policy for replacing a value, which keeps graph
//!   output names and types stable;
//! - [`pattern`]: read-only matching helpers (producers, users, constant
//!   values) that the recognition and fusion passes decide with;
//! - [`fusion`]: turning a convex group of nodes into one `nn.fused` node,
//!   and the topological re-sort that follows;
//! - `passes/`: one file per pass.
//!
//! Invariants:
//! - Every pass maps a verified graph to a verified graph, and never changes
//!   the graph's interface: input names and types, output names, and output
//!   types (only `shape-inference` refines output types, and only from
//!   unknown or symbolic to static extents).
//! - Pass order never comes from registration side effects, environment
//!   variables or global flags: it is the [`Pipeline`] the caller passes in.
//! - This crate knows nothing about ONNX, MLIR, LLVM or the command line.

pub mod fusion;
pub mod manager;
pub mod pass;
pub mod passes;
pub mod pattern;
pub mod pipeline;
pub mod registry;
pub mod rewrite;

pub use manager::{ManagerOptions, PassManager, PassTiming, RunReport};
pub use pass::{Pass, PassError, PassOptions, PassStats, TargetFacts};
pub use passes::quantize_weights::Options as QuantizeOptions;
pub use pipeline::{Pipeline, PipelineError};
pub use registry::{PassInfo, PASSES};
