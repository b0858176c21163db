//! Compiler driver: load a model, run the pipeline, emit and link artifacts,
//! and run or benchmark them.
//!
//! Data flow, one module per step:
//! - [`load`]: `.onnx` (kiln-onnx) or `.kir` (kiln-ir text) → verified
//!   [`kiln_ir::Graph`], with `--input-shape` overrides;
//! - [`compile`]: graph pipeline (kiln-passes) → lowering → MLIR/LLVM
//!   (kiln-codegen) → objects → `model.so` + `model.h`, stopping at any
//!   stage ([`compile::Emit`]);
//! - [`artifact`]: the `kiln_artifact_v1` descriptor, the entry wrapper and
//!   `model.h`, generated as text;
//! - [`specialize`]: freezing graph inputs into constants and fixing
//!   dynamic input shapes to given tensors, before the pipeline;
//! - [`session`]: running an artifact (kiln-runtime), a model compiled on
//!   the fly, or the reference interpreter; benchmarking;
//! - [`tensors`]: `.npy`/`.pb` tensor files and numeric comparison;
//! - [`gpu`]: for GPU targets, finding the optional device tools (`ptxas`,
//!   libdevice, `spirv-cross`) and writing device images.
//!
//! Invariants: this crate never prints and never exits; every failure is a
//! [`DriverError`] whose [`ErrorKind`] the CLI maps to an exit code. Every
//! file it produces appears complete or not at all.

pub mod artifact;
pub mod compile;
mod error;
pub mod gpu;
pub mod kernel_cache;
pub mod kirfile;
pub mod load;
pub mod quant_report;
pub mod session;
pub mod specialize;
pub mod tensors;
pub mod verify;

pub use compile::{
    compile, deploy_target_from_args, optimize_for, target_facts, target_from_args, Artifacts,
    CompileOptions, Emit, StageHook, WeightsMode,
};
pub use error::{io_kind, DriverError, ErrorKind, Result};
/// The code generator's target and optimisation level, re-exported so that
/// the CLI needs no dependency on kiln-codegen.
pub use kiln_codegen::{
    cpu_names, enabled_features, llvm_version, Arch, CodegenError, DeviceApi, OptLevel, Target,
};
/// The error types [`DriverError`] wraps, re-exported so that the CLI can
/// map every variant to an error code without depending on their crates.
pub use kiln_interp::InterpError;
pub use kiln_runtime::{env as runtime_env, Error as RuntimeError, Status as RuntimeStatus};
/// The artifact ABI version this driver generates and its runtime loads.
pub const RUNTIME_ABI_VERSION: u32 = kiln_runtime::abi::ABI_VERSION;
pub use kirfile::write_kir;
pub use load::{load, load_with_deps, parse_input_shape, LoadOptions};
pub use session::{
    bench, BenchOptions, BenchResult, Prepared, Session, SessionOptions, TensorSpec,
};
pub use tensors::{HostTensor, OutputFormat};
