//! Kiln's runtime for Rust programs (the CLI): loads compiled Kiln artifacts
//! and runs them.
//!
//! A thin, std-facing layer over `kiln-runtime-core`, which holds the ABI
//! ([`abi`], mirrored in `runtime/include/kiln.h`), the validation and the
//! thread pool. The C library (`libkiln_runtime.so` / `.a`) is built by the
//! `kiln-runtime-c` crate from the same core, so the Rust and C front ends
//! accept, reject and report exactly the same things.
//!
//! Architecture invariants:
//! - The runtime knows nothing about the compiler: it depends on no compiler
//!   crate, only on the ABI.
//! - Nothing the user passes in is trusted: every tensor is validated before
//!   compiled code sees it, and errors are typed ([`Error`]) with stable C
//!   status codes ([`Status`]).
//! - A [`Model`] is `Send + Sync`; concurrent runs on one model are safe.

mod model;

pub use kiln_runtime_core::{
    abi, cpu, env, integrity, DType, Error, LoadOptions, Role, Status, TensorInfo, TensorName,
    VERSION,
};
pub use model::{DeviceTensor, Element, Model, TensorMut, TensorRef};

/// Appends the integrity record for `record` to the artifact file at `path`
/// (what `kiln compile` does after linking; see [`integrity`]). The file
/// must not carry a record yet.
pub fn seal_file(path: &std::path::Path, record: &integrity::Record) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)?;
    let mut sealer = integrity::Sealer::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sealer.update(&buf[..n]);
    }
    file.write_all(&sealer.finish(record))?;
    file.flush()
}
