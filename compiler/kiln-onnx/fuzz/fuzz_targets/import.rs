//! Fuzz target: the whole ONNX frontend on arbitrary bytes. Loading,
//! inspecting and importing must never panic, and whenever the import
//! succeeds the graph must verify and agree with `unsupported_ops` (see
//! `kiln_onnx::fuzz_import_bytes`); a violation aborts as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(bug) = kiln_onnx::fuzz_import_bytes(data) {
        panic!("{bug}");
    }
});
