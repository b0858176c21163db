//! End-to-end smoke tests of the code generation chain:
//! MLIR text → CPU pipeline → LLVM IR → x86-64 object → shared library (+ weights object) →
//! `dlopen` → call, plus initialisation and emission checks for the other targets.
//!
//! Expected numbers are computed independently in the test (plain Rust float addition), never
//! taken from Kiln's output.

use kiln_codegen::{
    compile_mlir_to_object, emit, emit_with_pipeline, link_shared_library, llvm, mlir,
    write_data_object, Arch, CodegenError, Emit, OptLevel, Target,
};
use object::{Object, ObjectSymbol};
use std::path::Path;

/// `out[i] = x[i] + kiln_weights[i]` over `f32[4]`, written as `linalg.generic` on tensors, so
/// the pipeline's bufferization, loop lowering and LLVM conversion all take part. The weights are
/// an external `memref.global`, defined by a separate data object at link time.
const ADD_WEIGHTS: &str = include_str!("add_weights.mlir");

fn defined_symbols(bytes: &[u8]) -> (object::Architecture, Vec<String>) {
    let file = object::File::parse(bytes).expect("valid object file");
    let names = file
        .symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect();
    (file.architecture(), names)
}

#[test]
fn host_object_links_with_weights_and_runs() {
    // The host CPU with all its features (like -march=native), since the code is executed here.
    let target = Target::host().unwrap();
    let obj = compile_mlir_to_object(ADD_WEIGHTS, &target, OptLevel::O3).unwrap();
    let (arch, symbols) = defined_symbols(&obj);
    assert_eq!(Some(arch), target.elf_arch().map(|(arch, _)| arch));
    assert!(symbols.iter().any(|s| s == "add_weights"), "{symbols:?}");
    assert!(
        !symbols.iter().any(|s| s == "kiln_weights"),
        "weights must stay external"
    );

    let dir = tempfile::tempdir().unwrap();
    let code_path = dir.path().join("code.o");
    std::fs::write(&code_path, &obj).unwrap();
    let weights = [0.5f32, -1.0, 2.25, 1e3];
    let weight_bytes: Vec<u8> = weights.iter().flat_map(|w| w.to_le_bytes()).collect();
    let weights_path = dir.path().join("weights.o");
    write_data_object(&weights_path, &target, "kiln_weights", &weight_bytes).unwrap();
    // Parallel loops call the OpenMP entry points of the shim every
    // artifact carries; without a run context they execute serially.
    let shim = format!("module {{\n{}\n}}\n", kiln_codegen::parallel::SHIM_MLIR);
    let shim_obj = emit_with_pipeline(&shim, &target, "", OptLevel::O2, Emit::Obj).unwrap();
    let shim_path = dir.path().join("shim.o");
    std::fs::write(&shim_path, &shim_obj).unwrap();
    let lib_path = dir.path().join("libmodel.so");
    link_shared_library(&[&code_path, &weights_path, &shim_path], &lib_path, &[]).unwrap();

    let mut x = [1.0f32, 2.0, 3.0, -4.0];
    let mut out = [f32::NAN; 4];
    // SAFETY: the library was just built from the module above; under the CPU pipeline's
    // bare-pointer convention the symbol has the C signature `void(float*, float*)`.
    unsafe {
        let library = libloading::Library::new(&lib_path).unwrap();
        let add: libloading::Symbol<unsafe extern "C" fn(*mut f32, *mut f32)> =
            library.get(b"add_weights").unwrap();
        add(x.as_mut_ptr(), out.as_mut_ptr());
        let exported: libloading::Symbol<*const f32> = library.get(b"kiln_weights").unwrap();
        assert_eq!(
            *exported as usize % 64,
            0,
            "weights must be 64-byte aligned"
        );
    }
    let expected: Vec<f32> = x.iter().zip(&weights).map(|(a, b)| a + b).collect();
    assert_eq!(out.to_vec(), expected);
}

#[test]
fn every_stage_can_be_printed() {
    let target = Target::parse("x86-64-v3").unwrap();
    let text = |e| String::from_utf8(emit(ADD_WEIGHTS, &target, OptLevel::O2, e).unwrap()).unwrap();
    let lowered = text(Emit::Mlir);
    assert!(lowered.contains("llvm.func @add_weights"), "{lowered}");
    assert!(
        !lowered.contains("linalg."),
        "linalg must be lowered: {lowered}"
    );
    let ir = text(Emit::Llvm);
    assert!(ir.contains("define void @add_weights(ptr"), "{ir}");
    assert!(
        ir.contains("target triple = \"x86_64-unknown-linux-gnu\""),
        "{ir}"
    );
    let asm = text(Emit::Asm);
    assert!(asm.contains("add_weights:"), "{asm}");
    let obj = emit(ADD_WEIGHTS, &target, OptLevel::O2, Emit::Obj).unwrap();
    let (arch, symbols) = defined_symbols(&obj);
    assert_eq!(arch, object::Architecture::X86_64);
    assert!(symbols.iter().any(|s| s == "add_weights"), "{symbols:?}");
}

#[test]
fn aarch64_object_is_emitted() {
    let target = Target::parse("aarch64-linux-gnu").unwrap();
    let obj = compile_mlir_to_object(ADD_WEIGHTS, &target, OptLevel::O3).unwrap();
    let (arch, symbols) = defined_symbols(&obj);
    assert_eq!(arch, object::Architecture::Aarch64);
    assert!(symbols.iter().any(|s| s == "add_weights"), "{symbols:?}");

    // An independent check with LLVM's disassembler (scripts/setup.sh
    // installs it with llvm-22-dev).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.o");
    std::fs::write(&path, &obj).unwrap();
    let output = std::process::Command::new("llvm-objdump-22")
        .arg("-d")
        .arg(&path)
        .output()
        .expect("llvm-objdump-22 is missing: run scripts/setup.sh");
    assert!(
        output.status.success(),
        "llvm-objdump-22 failed: {output:?}"
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing.contains("file format elf64-littleaarch64"),
        "{listing}"
    );
    assert!(listing.contains("<add_weights>:"), "{listing}");

    // lld cross-links AArch64 objects on any host.
    let weights_path = dir.path().join("w.o");
    write_data_object(&weights_path, &target, "kiln_weights", &[0; 16]).unwrap();
    let lib = dir.path().join("liba.so");
    link_shared_library(&[&path, &weights_path], &lib, &[]).unwrap();
    let bytes = std::fs::read(&lib).unwrap();
    assert_eq!(
        object::File::parse(&*bytes).unwrap().architecture(),
        object::Architecture::Aarch64
    );
}

#[test]
fn gpu_targets_initialise_and_emit_device_code() {
    // A device function already in the LLVM dialect, marked as an NVVM kernel.
    const NVPTX_KERNEL: &str = r#"
        llvm.func @scale(%p: !llvm.ptr<1>) attributes {nvvm.kernel} {
          %v = llvm.load %p : !llvm.ptr<1> -> f32
          %w = llvm.fadd %v, %v : f32
          llvm.store %w, %p : f32, !llvm.ptr<1>
          llvm.return
        }"#;
    let nvptx = Target::parse("nvptx:sm_90").unwrap();
    llvm::target_machine(&nvptx, OptLevel::O3).unwrap();
    let ptx = emit_with_pipeline(NVPTX_KERNEL, &nvptx, "", OptLevel::O3, Emit::Asm).unwrap();
    let ptx = String::from_utf8(ptx).unwrap();
    assert!(ptx.contains(".target sm_90"), "{ptx}");
    assert!(ptx.contains(".entry scale"), "{ptx}");

    const AMDGPU_KERNEL: &str = r#"
        llvm.func @scale(%p: !llvm.ptr<1>) attributes {rocdl.kernel} {
          %v = llvm.load %p : !llvm.ptr<1> -> f32
          %w = llvm.fadd %v, %v : f32
          llvm.store %w, %p : f32, !llvm.ptr<1>
          llvm.return
        }"#;
    let amdgpu = Target::parse("amdgpu:gfx942").unwrap();
    llvm::target_machine(&amdgpu, OptLevel::O3).unwrap();
    let isa = emit_with_pipeline(AMDGPU_KERNEL, &amdgpu, "", OptLevel::O3, Emit::Asm).unwrap();
    let isa = String::from_utf8(isa).unwrap();
    assert!(isa.contains("gfx942"), "{isa}");
    assert!(isa.contains(".amdhsa_kernel scale"), "{isa}");
}

/// A parallel loop, the input the GPU pipelines map onto blocks and threads.
const PARALLEL_SCALE: &str = r#"
    func.func @scale(%a: memref<1024xf32>, %b: memref<1024xf32>) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %n = arith.constant 1024 : index
      scf.parallel (%i) = (%c0) to (%n) step (%c1) {
        %x = memref.load %a[%i] : memref<1024xf32>
        %y = arith.addf %x, %x : f32
        memref.store %y, %b[%i] : memref<1024xf32>
      }
      return
    }"#;

#[test]
fn gpu_pipelines_embed_device_isa() {
    for (spec, marker) in [
        ("nvptx:sm_90", ".target sm_90"),
        ("amdgpu:gfx942", "amdhsa_kernel"),
    ] {
        let target = Target::parse(spec).unwrap();
        let lowered = emit(PARALLEL_SCALE, &target, OptLevel::O3, Emit::Mlir).unwrap();
        let lowered = String::from_utf8(lowered).unwrap();
        assert!(lowered.contains("gpu.binary"), "{spec}: {lowered}");
        assert!(lowered.contains(marker), "{spec}: {lowered}");
        assert!(matches!(
            emit(PARALLEL_SCALE, &target, OptLevel::O3, Emit::Obj),
            Err(CodegenError::UnsupportedTarget { .. })
        ));
    }
}

#[test]
fn every_target_pipeline_parses() {
    let context = mlir::create_context();
    for arch in Arch::ALL {
        let target = Target::generic(arch);
        mlir::check_pipeline(&context, &target.mlir_pipeline())
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

#[test]
fn errors_carry_mlir_diagnostics() {
    let target = Target::generic(Arch::X86_64);
    let error = compile_mlir_to_object("func.func @f( {", &target, OptLevel::O0).unwrap_err();
    assert!(
        matches!(error, CodegenError::MlirParse(ref m) if m.contains("error") || m.contains("expected")),
        "{error}"
    );

    let error = emit_with_pipeline(
        ADD_WEIGHTS,
        &target,
        "builtin.module(no-such-pass)",
        OptLevel::O0,
        Emit::Mlir,
    )
    .unwrap_err();
    assert!(
        matches!(error, CodegenError::PassPipelineParse { .. }),
        "{error}"
    );

    // Skipping the pipeline leaves linalg ops that have no LLVM translation.
    let error = emit_with_pipeline(ADD_WEIGHTS, &target, "", OptLevel::O0, Emit::Obj).unwrap_err();
    assert!(matches!(error, CodegenError::LlvmTranslation(_)), "{error}");
}

#[test]
fn shared_library_is_written_atomically_over_old_output() {
    let target = Target::generic(Arch::X86_64);
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.o");
    write_data_object(&weights, &target, "kiln_weights", &[1; 16]).unwrap();
    let lib = dir.path().join("lib.so");
    std::fs::write(&lib, b"old").unwrap();
    link_shared_library(&[Path::new(&weights)], &lib, &[]).unwrap();
    let bytes = std::fs::read(&lib).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary file left"
    );
}
