//! Fuzz target: decoding and checking arbitrary bytes as an ONNX model must
//! never panic, whatever it returns.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_onnx::fuzz_load_bytes(data);
});
