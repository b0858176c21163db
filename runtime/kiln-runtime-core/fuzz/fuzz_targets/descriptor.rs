//! Fuzz target: artifact descriptor validation. The input describes a
//! `kiln_artifact_v1` (counts, NULL or real pointers, dtype codes, ranks,
//! dims, names, sizes); loading it must never crash, must succeed exactly
//! when the descriptor keeps `kiln.h`'s contract, and a loaded model must
//! run on buffers of its declared sizes (see the harness, shared with
//! `cargo test -p kiln-runtime-core --test descriptors`). A violation
//! panics, which libFuzzer reports as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/harness/descriptor.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    if let Err(bug) = harness::check_bytes(data) {
        panic!("{bug}");
    }
});
