//! arm64 macOS (Mach-O): the CPU the host part of Metal artifacts runs on.
//!
//! Only what a Metal artifact's host code needs: the LLVM triple and CPU, Mach-O objects
//! (linked into a dylib by `ld64.lld`). There is no CPU kernel library for it: models compiled
//! for it run their nodes as MLIR loops.

use super::{cpu, ArchSpec};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "aarch64-apple",
    triple: "arm64-apple-macosx11.0.0",
    // Every Apple silicon Mac; Metal's GPUs sit next to these cores.
    default_cpu: "apple-m1",
    deploy_cpu: "apple-m1",
    elf: Some((object::Architecture::Aarch64, object::Endianness::Little)),
    object_format: object::BinaryFormat::MachO,
    initialize_llvm,
    mlir_pipeline: cpu::pipeline,
    cpu_config: None,
    gpu: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_aarch64(&Default::default());
}
