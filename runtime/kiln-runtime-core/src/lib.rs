//! The `no_std` core of Kiln's runtime, shared by the safe Rust API
//! (`kiln-runtime`) and the C library (`kiln-runtime-c`, which builds
//! `libkiln_runtime.so` / `libkiln_runtime.a`).
//!
//! It owns the artifact ABI (version 1, [`abi`], mirrored in
//! `runtime/include/kiln.h`), the dtype table, the typed errors with their C
//! status codes, model loading and validation ([`Model`]) and the thread pool
//! behind `parallel_for`. Having one implementation means both front ends
//! accept and reject exactly the same things, with the same messages.
//!
//! Architecture invariants:
//! - `no_std`: only `core`, `alloc` and `libc` (POSIX). It must never link
//!   `std`, so the C library can be built without std's panic machinery.
//! - The runtime knows nothing about the compiler: it depends on no compiler
//!   crate, only on the ABI.
//! - Nothing the user passes in is trusted: every tensor is validated before
//!   compiled code sees it, and errors are typed ([`Error`]) with stable C
//!   status codes ([`Status`]).
//! - A [`Model`] is `Send + Sync`; concurrent runs on one model are safe.
//! - GPU artifacts (`KILN_ARTIFACT_FLAG_DEVICE`) run through a driver opened with `dlopen`
//!   at load (CUDA, HIP, Vulkan, Metal; see `device`), never linked: without it loading
//!   fails with a typed error (`Error::DeviceUnavailable`), and CPU artifacts never touch a
//!   driver.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod cpu;
mod device;
mod dtype;
pub mod env;
mod error;
pub mod integrity;
mod model;
mod pool;
mod sys;

pub use dtype::DType;
pub use error::{Error, Role, Status, TensorName};
pub use model::{LoadOptions, Model, RawTensor, TensorInfo};

/// Version of this runtime.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
