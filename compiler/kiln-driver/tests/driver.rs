//! End-to-end tests of the driver. This is the crate's only test binary that
//! links LLVM (each such binary is ~290 MB), so every compile/run test lives
//! here.
//!
//! Expected outputs come from ONNX Runtime (`testdata/models/*/
//! test_data_set_0/output_*.pb`), never from Kiln itself.

use kiln_codegen::{OptLevel, Target};
use kiln_driver::compile::{find_runtime_archive, Emit, RUNTIME_ARCHIVE};
use kiln_driver::specialize::{freeze_inputs, shape_defining_inputs};
use kiln_driver::tensors::{self, max_relative_error, read_test_set, HostTensor};
use kiln_driver::{
    compile, load, CompileOptions, DriverError, ErrorKind, LoadOptions, Prepared, Session,
    SessionOptions, WeightsMode,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "driver/differential.rs"]
mod differential;
#[path = "driver/light_models.rs"]
mod light_models;

/// Relative-error bound for f32 outputs; values below `FLOOR` in magnitude
/// are compared with an absolute tolerance of `TOL * FLOOR`.
const TOL: f64 = 1e-4;
const FLOOR: f64 = 1e-2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir(name: &str) -> PathBuf {
    root().join("testdata/models").join(name)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn shapes(pairs: &[(&str, &[u64])]) -> LoadOptions {
    LoadOptions {
        input_shapes: pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect::<BTreeMap<_, _>>(),
        input_values: Vec::new(),
    }
}

fn compile_lib(model: &Path, load_opts: &LoadOptions, out: &Path, weights: WeightsMode) {
    let graph = load(model, load_opts).unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(out.to_path_buf()));
    opts.weights = weights;
    compile(graph, &opts).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
}

/// Checks `got` against `expected`: as many outputs (at least one), in the
/// same order, each within `tol` of maximum relative error (see
/// [`max_relative_error`] for `floor`).
fn assert_outputs_close(
    what: &str,
    expected: &[HostTensor],
    got: &[HostTensor],
    floor: f64,
    tol: f64,
) {
    assert!(!expected.is_empty(), "{what}: no expected outputs");
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: {} outputs, expected {}",
        got.len(),
        expected.len()
    );
    for (e, g) in expected.iter().zip(got) {
        let err = max_relative_error(e, g, floor).unwrap_or_else(|m| panic!("{what}: {m}"));
        assert!(
            err <= tol,
            "{what}: output '{}': max relative error {err}",
            g.name
        );
    }
}

/// Runs the session on the model's test set and checks every output.
fn check_against_ort(session: &Session, name: &str) {
    let dir = model_dir(name).join("test_data_set_0");
    let inputs = read_test_set(&dir, "input", &session.input_names()).unwrap();
    let expected = read_test_set(&dir, "output", &session.output_names()).unwrap();
    assert!(!inputs.is_empty());
    let got = session.run(&inputs).unwrap();
    assert_outputs_close(name, &expected, &got, FLOOR, TOL);
}

fn compiled_matches_ort(name: &str, load_opts: &LoadOptions, weights: WeightsMode) {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    compile_lib(&model_dir(name).join("model.onnx"), load_opts, &so, weights);
    assert!(dir.path().join("model.h").is_file());
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    assert!(session.is_compiled());
    check_against_ort(&session, name);
}

#[test]
fn mlp_matches_onnx_runtime() {
    compiled_matches_ort("mlp", &LoadOptions::default(), WeightsMode::Embedded);
}

#[test]
fn cnn_matches_onnx_runtime() {
    compiled_matches_ort("cnn", &LoadOptions::default(), WeightsMode::Embedded);
}

#[test]
fn transformer_matches_onnx_runtime() {
    compiled_matches_ort(
        "transformer",
        &LoadOptions::default(),
        WeightsMode::Embedded,
    );
}

#[test]
fn mlp_dynamic_with_input_shape_matches_onnx_runtime() {
    compiled_matches_ort(
        "mlp_dynamic",
        &shapes(&[("x", &[4, 64])]),
        WeightsMode::Embedded,
    );
}

#[test]
fn external_weights_file_sits_next_to_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    compile_lib(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
        &so,
        WeightsMode::External,
    );
    let weights = dir.path().join("model.so.weights");
    let len = std::fs::metadata(&weights).unwrap().len();
    // mlp: Gemm 64x128 + 128, 128x10 + 10 f32 (each padded to 64 bytes).
    assert!(len >= (64 * 128 + 128 + 128 * 10 + 10) * 4, "{len}");
    assert_eq!(len % 64, 0);
    // The library itself holds no weights: the same model with embedded
    // weights is larger by about their size.
    let embedded = dir.path().join("embedded.so");
    compile_lib(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
        &embedded,
        WeightsMode::Embedded,
    );
    let (ext, emb) = (
        std::fs::metadata(&so).unwrap().len(),
        std::fs::metadata(&embedded).unwrap().len(),
    );
    assert!(
        emb >= ext + len * 9 / 10,
        "external {ext}, embedded {emb}, weights {len}"
    );
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    check_against_ort(&session, "mlp");
    // Without its weights file the artifact does not load.
    std::fs::remove_file(&weights).unwrap();
    let err = Session::open(&so, &SessionOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.so.weights"), "{err}");
}

#[test]
fn model_files_run_compiled_on_the_fly_and_interpreted() {
    let path = model_dir("mlp").join("model.onnx");
    let compiled = Session::open(&path, &SessionOptions::default()).unwrap();
    assert!(compiled.is_compiled());
    check_against_ort(&compiled, "mlp");
    let interp = SessionOptions {
        interpret: true,
        ..Default::default()
    };
    let session = Session::open(&path, &interp).unwrap();
    assert!(!session.is_compiled());
    check_against_ort(&session, "mlp");
}

#[test]
fn dynamic_shapes_are_refused_with_a_hint() {
    let graph = load(
        &model_dir("mlp_dynamic").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = CompileOptions::new(Target::host().unwrap(), Some(dir.path().join("m.so")));
    let err = compile(graph, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("--input-shape x=1x64"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_input_shapes_are_refused() {
    let onnx = model_dir("mlp_dynamic").join("model.onnx");
    let err = load(&onnx, &shapes(&[("nope", &[1, 64])])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("'nope'"), "{err}");
    let err = kiln_driver::parse_input_shape("x=1xAx3").unwrap_err();
    assert!(err.to_string().contains("NAME=DIMS"), "{err}");
    assert_eq!(
        kiln_driver::parse_input_shape("a=b=1x3x224x224").unwrap(),
        ("a=b".to_owned(), vec![1, 3, 224, 224])
    );
}

#[test]
fn failed_compile_leaves_nothing_behind() {
    let graph = load(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The last step, renaming the library to `-o`, fails: `-o` is a
    // non-empty directory. The header renamed just before must be removed
    // again, and the staging directory must be gone.
    let out = dir.path().join("model.so");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"old").unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(out.clone()));
    opts.weights = WeightsMode::External;
    let err = compile(graph.clone(), &opts).unwrap_err();
    assert!(err.to_string().contains("model.so"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.so")]);
    assert_eq!(std::fs::read(out.join("keep")).unwrap(), b"old");

    // A missing output directory fails before anything is written.
    let missing = dir.path().join("no/such/dir/model.so");
    let opts = CompileOptions::new(Target::host().unwrap(), Some(missing.clone()));
    assert!(compile(graph, &opts).is_err());
    assert!(!dir.path().join("no").exists());
}

#[test]
fn odd_names_survive_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("odd.so");
    compile_lib(
        &data("odd_names.kir"),
        &LoadOptions::default(),
        &so,
        WeightsMode::Embedded,
    );
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    assert_eq!(session.input_names(), vec!["in/put x".to_owned()]);
    assert_eq!(session.output_names(), vec!["out:y*".to_owned()]);
    let mut x = HostTensor::zeros("in/put x", kiln_ir::DType::F32, &[2, 3]).unwrap();
    let vals: [f32; 6] = [-1.0, 2.0, -3.0, 4.0, 0.5, -0.0];
    for (chunk, v) in x.data.as_mut().chunks_exact_mut(4).zip(vals) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let y = session.run(&[x]).unwrap();
    assert_eq!(y[0].to_f64().unwrap(), vec![0.0, 2.0, 0.0, 4.0, 0.5, 0.0]);
    let header = std::fs::read_to_string(dir.path().join("odd.h")).unwrap();
    assert!(
        header.contains(r#"#define KILN_MODEL_INPUT_0_NAME "in/put x""#),
        "{header}"
    );
    let out = dir.path().join("out");
    let files = tensors::write_outputs(&out, &y, tensors::OutputFormat::Npy).unwrap();
    assert_eq!(files, vec![out.join("out_y_.npy")]);
    let back = tensors::read_npy(&files[0], "out:y*").unwrap();
    assert_eq!(back, y[0]);
}

#[test]
fn tensor_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = model_dir("transformer").join("test_data_set_0/input_0.pb");
    let t = tensors::read_pb(&input, "input_ids").unwrap();
    assert_eq!(
        (t.dtype, t.shape.clone()),
        (kiln_ir::DType::I64, vec![1, 16])
    );
    let npy = dir.path().join("t.npy");
    tensors::write_npy(&npy, &t).unwrap();
    assert_eq!(tensors::read_npy(&npy, "input_ids").unwrap(), t);
    let pb = dir.path().join("t.pb");
    tensors::write_pb(&pb, &t).unwrap();
    assert_eq!(tensors::read_pb(&pb, "input_ids").unwrap(), t);
    // Garbage is an input error, not a panic.
    std::fs::write(&npy, b"\x93NUMPY\x01\x00garbage").unwrap();
    assert_eq!(
        tensors::read_npy(&npy, "x").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(tensors::sanitize_file_name(".."), "_..");
    assert_eq!(tensors::sanitize_file_name("a/b c"), "a_b_c");
}

#[test]
fn nan_never_passes() {
    let mut a = HostTensor::zeros("y", kiln_ir::DType::F32, &[2]).unwrap();
    let b = a.clone();
    a.data.as_mut()[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(max_relative_error(&a, &a, FLOOR).is_err());
    assert!(max_relative_error(&b, &a, FLOOR).is_err());
    assert_eq!(max_relative_error(&b, &b, FLOOR), Ok(0.0));
}

#[test]
fn aarch64_cross_compile_gives_aarch64_code() {
    let graph = load(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let target = kiln_driver::target_from_args(Some("aarch64-linux-gnu"), None).unwrap();
    let mut opts = CompileOptions::new(target.clone(), None);
    opts.emit = Emit::Asm;
    // -O0 lowers the whole graph as loops: FP code in kiln_main itself.
    opts.set_level(OptLevel::O0);
    let asm = compile(graph.clone(), &opts).unwrap().text.unwrap();
    let asm = String::from_utf8(asm).unwrap();
    assert!(asm.contains("kiln_main"), "no kiln_main in the assembly");
    assert!(
        asm.contains("fmadd") || asm.contains("fmla") || asm.contains("fmul"),
        "no AArch64 FP code"
    );
    // -O3 calls the AArch64 kernels (NEON variant) instead.
    opts.set_level(OptLevel::O3);
    let asm = String::from_utf8(compile(graph.clone(), &opts).unwrap().text.unwrap()).unwrap();
    assert!(asm.contains("bl\tkiln_k_gemm_w4r32"), "{asm}");

    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("model.o");
    let mut opts = CompileOptions::new(target, Some(obj.clone()));
    opts.emit = Emit::Obj;
    compile(graph, &opts).unwrap();
    let out = Command::new("llvm-objdump-22")
        .arg("-d")
        .arg(&obj)
        .output()
        .expect("llvm-objdump-22");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("elf64-littleaarch64"),
        "{}",
        &text[..text.len().min(500)]
    );
    assert!(text.contains("<kiln_artifact>:") && text.contains("<kiln_main>:"));
    // The host runtime archive is not copied for a foreign architecture.
    assert!(!dir.path().join(RUNTIME_ARCHIVE).exists());
    assert!(dir.path().join("kiln.h").is_file() && dir.path().join("model.h").is_file());
}

#[test]
fn text_stages_print() {
    let graph = load(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let target = Target::host().unwrap();
    let stage = |emit| {
        let mut opts = CompileOptions::new(target.clone(), None);
        opts.emit = emit;
        String::from_utf8(compile(graph.clone(), &opts).unwrap().text.unwrap()).unwrap()
    };
    assert!(stage(Emit::Kir).contains("nn.gemm"));
    let dot = stage(Emit::Dot);
    assert!(
        dot.starts_with("digraph ") && dot.contains("nn.gemm"),
        "{dot}"
    );
    assert_eq!(Emit::parse("dot").unwrap(), Emit::Dot);
    let mut opts = CompileOptions::new(target.clone(), None);
    opts.emit = Emit::Mlir;
    // The whole-graph lowering (-O0) views weights in place.
    opts.set_level(OptLevel::O0);
    let mlir = String::from_utf8(compile(graph.clone(), &opts).unwrap().text.unwrap()).unwrap();
    assert!(mlir.contains("func.func @kiln_main") && mlir.contains("memref.view"));
    assert!(stage(Emit::Llvm).contains("define void @kiln_main("));
}

/// Builds the shipped C runtime once (into its own target directory, so it
/// does not contend with this test's cargo lock).
fn c_runtime() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let build_dir = target.join("kiln-c-build");
        let out = build_dir.join("kiln-c");
        let status = Command::new("bash")
            .arg(root().join("runtime/scripts/build-c-lib.sh"))
            .arg(&out)
            .env("CARGO_TARGET_DIR", &build_dir)
            .status()
            .expect("run build-c-lib.sh");
        assert!(status.success(), "build-c-lib.sh failed");
        out
    })
    .clone()
}

fn f32_bytes(t: &HostTensor) -> &[u8] {
    assert_eq!(t.dtype, kiln_ir::DType::F32);
    t.data.as_ref()
}

#[test]
fn c_program_runs_the_artifact_and_misuse_fails_cleanly() {
    let runtime = c_runtime();
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    compile_lib(
        &model_dir("cnn").join("model.onnx"),
        &LoadOptions::default(),
        &so,
        WeightsMode::Embedded,
    );
    let set = model_dir("cnn").join("test_data_set_0");
    let x = tensors::read_pb(&set.join("input_0.pb"), "x").unwrap();
    let y = tensors::read_pb(&set.join("output_0.pb"), "logits").unwrap();
    std::fs::write(dir.path().join("x.bin"), f32_bytes(&x)).unwrap();
    std::fs::write(dir.path().join("y.bin"), f32_bytes(&y)).unwrap();
    let exe = dir.path().join("run_model");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let lib = runtime.join("lib");
    let out = Command::new(cc)
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-O1")
        .arg(format!("-I{}", runtime.join("include").display()))
        .arg(format!("-I{}", dir.path().display()))
        .arg(root().join("testdata/c/run_model.c"))
        .arg("-o")
        .arg(&exe)
        .arg(&so)
        .arg(format!("-L{}", lib.display()))
        .arg("-lkiln_runtime")
        .arg(format!(
            "-Wl,-rpath,{}:{}",
            lib.display(),
            dir.path().display()
        ))
        .arg("-lm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .arg(&so)
        .arg(dir.path().join("x.bin"))
        .arg(dir.path().join("y.bin"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.trim() == "ok",
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn emit_obj_ships_runtime_archive_and_headers() {
    let runtime = c_runtime();
    let graph = load(
        &model_dir("mlp").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("model.o");
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(obj.clone()));
    opts.emit = Emit::Obj;
    opts.runtime_dir = Some(runtime.join("lib"));
    let art = compile(graph.clone(), &opts).unwrap();
    assert_eq!(art.files[0], obj);
    for f in ["model.o", "model.h", "kiln.h", RUNTIME_ARCHIVE] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // Without a runtime archive to ship, nothing is written.
    let empty = tempfile::tempdir().unwrap();
    assert!(find_runtime_archive(Some(empty.path())).is_err());
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(empty.path().join("m.o")));
    opts.emit = Emit::Obj;
    opts.runtime_dir = Some(empty.path().to_path_buf());
    let err: DriverError = compile(graph, &opts).unwrap_err();
    assert!(err.to_string().contains(RUNTIME_ARCHIVE), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

fn f32_tensor(name: &str, shape: &[u64], values: &[f32]) -> HostTensor {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    HostTensor {
        name: name.into(),
        dtype: kiln_ir::DType::F32,
        shape: shape.to_vec(),
        data: tensors::AlignedBytes::from_slice(&bytes),
    }
}

fn i64_tensor(name: &str, values: &[i64]) -> HostTensor {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    HostTensor {
        name: name.into(),
        dtype: kiln_ir::DType::I64,
        shape: vec![values.len() as u64],
        data: tensors::AlignedBytes::from_slice(&bytes),
    }
}

/// Runs `model` compiled (specialized to `inputs`) and interpreted; both must
/// give `expected` (computed by hand: the models are a reshape and a sum).
fn specialized_run_matches(
    model: &str,
    inputs: &[HostTensor],
    frozen: &str,
    expected: &HostTensor,
) {
    let path = data(model);
    let prepared = Prepared::open(&path, &SessionOptions::default()).unwrap();
    assert_eq!(prepared.shape_defining_inputs(), vec![frozen.to_string()]);
    assert_eq!(prepared.input_names().len(), 2);
    let session = prepared.into_session(Some(inputs)).unwrap();
    assert!(session.is_compiled());
    assert_eq!(session.specialized_inputs(), vec![frozen.to_string()]);
    // The temporary artifact takes only the data input.
    assert_eq!(session.input_names(), vec!["x".to_string()]);
    let compiled = session.run(inputs).unwrap();
    let interp_opts = SessionOptions {
        interpret: true,
        ..SessionOptions::default()
    };
    let interp = Session::open(&path, &interp_opts)
        .unwrap()
        .run(inputs)
        .unwrap();
    assert_eq!(compiled.len(), 1);
    assert_eq!(&compiled[0].shape, &expected.shape, "{model}");
    assert_eq!(compiled[0].data, expected.data, "{model}: compiled");
    assert_eq!(interp[0].shape, expected.shape, "{model}");
    assert_eq!(interp[0].data, expected.data, "{model}: interpreted");
    // The specialized value is checked on every run.
    let other: Vec<HostTensor> = inputs
        .iter()
        .map(|t| {
            if t.name == frozen {
                let mut t = t.clone();
                t.data.as_mut()[0] ^= 1;
                t
            } else {
                t.clone()
            }
        })
        .collect();
    let err = session.run(&other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(frozen), "{err}");
}

#[test]
fn reshape_with_a_shape_input_runs_compiled_through_specialization() {
    let x = f32_tensor("x", &[2, 3], &[0., 1., 2., 3., 4., 5.]);
    let shape = i64_tensor("shape", &[3, 2]);
    let expected = f32_tensor("y", &[3, 2], &[0., 1., 2., 3., 4., 5.]);
    specialized_run_matches("reshape_shape_input.kir", &[x, shape], "shape", &expected);
}

#[test]
fn reduce_with_an_axes_input_runs_compiled_through_specialization() {
    let x = f32_tensor("x", &[2, 3], &[0., 1., 2., 3., 4., 5.]);
    let axes = i64_tensor("axes", &[1]);
    // Row sums of [[0, 1, 2], [3, 4, 5]].
    let expected = f32_tensor("y", &[2], &[3., 12.]);
    specialized_run_matches("reduce_axes_input.kir", &[axes, x], "axes", &expected);
}

#[test]
fn compile_keeps_shape_inputs_unless_frozen() {
    let path = data("reduce_axes_input.kir");
    let graph = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(shape_defining_inputs(&graph), vec!["axes".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    // Unfrozen, the axes are a runtime value: the static compile refuses.
    let err = compile(
        graph.clone(),
        &CompileOptions::new(Target::host().unwrap(), Some(so.clone())),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(!so.exists());
    // Frozen (`kiln compile --freeze-input axes=...`), the artifact has
    // only `x` and sums the columns.
    let mut frozen = graph.clone();
    freeze_inputs(&mut frozen, &[i64_tensor("axes", &[0])]).unwrap();
    compile(
        frozen,
        &CompileOptions::new(Target::host().unwrap(), Some(so.clone())),
    )
    .unwrap();
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    assert_eq!(session.input_names(), vec!["x".to_string()]);
    let x = f32_tensor("x", &[2, 3], &[0., 1., 2., 3., 4., 5.]);
    let y = session.run(&[x]).unwrap();
    assert_eq!(y[0].shape, vec![3]);
    assert_eq!(y[0].data, f32_tensor("y", &[3], &[3., 5., 7.]).data);
    // Bad freezes name the input and leave the graph alone.
    let mut g = graph.clone();
    for bad in [
        i64_tensor("nope", &[0]),
        f32_tensor("axes", &[1], &[0.]),
        i64_tensor("axes", &[0, 1]),
    ] {
        let err = freeze_inputs(&mut g, &[bad]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("axes") || err.to_string().contains("nope"));
        assert_eq!(g.inputs.len(), 2);
    }
}

#[test]
fn specialized_inputs_feed_generated_code_not_the_interpreter() {
    // All of start, limit and delta decide the length, so all are frozen;
    // the range itself must still be computed by the artifact, while the
    // shape of the static input is a compile-time constant (and reported).
    let scalar = |name: &str, v: f32| f32_tensor(name, &[], &[v]);
    let inputs = [
        scalar("start", 1.0),
        scalar("limit", 2.5),
        scalar("delta", 0.25),
        f32_tensor("x", &[2], &[0., 0.]),
    ];
    let prepared = Prepared::open(&data("range_inputs.kir"), &SessionOptions::default()).unwrap();
    let session = prepared.into_session(Some(&inputs)).unwrap();
    assert_eq!(session.specialized_inputs().len(), 3);
    assert_eq!(session.constant_outputs(), &["s".to_string()]);
    let got = session.run(&inputs).unwrap();
    // 1, 1.25, ..., 2.25: six values, computed by hand.
    let want = f32_tensor("y", &[6], &[1.0, 1.25, 1.5, 1.75, 2.0, 2.25]);
    assert_eq!((&got[0].shape, &got[0].data), (&want.shape, &want.data));
    assert_eq!(got[1].data, i64_tensor("s", &[2]).data);
}

#[test]
fn dft_inverse_matches_a_float64_dft() {
    // ONNX's test_dft_inverse input: x[n][j] = 10 n + j + 0i, transformed
    // along n. Expected values from a naive float64 inverse DFT written
    // here; the node test's own data holds float32 FFT noise up to 1.9e-6
    // where the result is exactly 0, so it is listed as a known failure
    // and this test guards Kiln's accuracy instead.
    let n = 10usize;
    let mut x = vec![0f32; n * n * 2];
    for k in 0..n {
        for j in 0..n {
            x[(k * n + j) * 2] = (10 * k + j) as f32;
        }
    }
    let mut want = vec![0f64; n * n * 2];
    for k in 0..n {
        for j in 0..n {
            let (mut re, mut im) = (0f64, 0f64);
            for m in 0..n {
                let (xr, xi) = (
                    f64::from(x[(m * n + j) * 2]),
                    f64::from(x[(m * n + j) * 2 + 1]),
                );
                let t = 2.0 * std::f64::consts::PI * (k * m) as f64 / n as f64;
                re += xr * t.cos() - xi * t.sin();
                im += xr * t.sin() + xi * t.cos();
            }
            want[(k * n + j) * 2] = re / n as f64;
            want[(k * n + j) * 2 + 1] = im / n as f64;
        }
    }
    let input = f32_tensor("x", &[1, 10, 10, 2], &x);
    for interpret in [false, true] {
        let opts = SessionOptions {
            interpret,
            ..SessionOptions::default()
        };
        let session = Session::open(&data("dft_inverse.kir"), &opts).unwrap();
        let got = session.run(std::slice::from_ref(&input)).unwrap();
        let got = got[0].to_f64().unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0f64, f64::max);
        // Measured: 4.4e-7 (values up to 49.5, so a few f32 ulps).
        assert!(
            worst <= 2e-6,
            "interpret {interpret}: max abs error {worst}"
        );
    }
}

#[test]
fn dynamic_inputs_take_the_given_shapes_when_running_a_model() {
    let dir = model_dir("mlp_dynamic");
    let prepared = Prepared::open(&dir.join("model.onnx"), &SessionOptions::default()).unwrap();
    let set = dir.join("test_data_set_0");
    let inputs = read_test_set(&set, "input", &prepared.input_names()).unwrap();
    let expected = read_test_set(&set, "output", &prepared.output_names()).unwrap();
    let session = prepared.into_session(Some(&inputs)).unwrap();
    assert!(session.specialized_inputs().is_empty());
    let got = session.run(&inputs).unwrap();
    assert_outputs_close("mlp_dynamic", &expected, &got, FLOOR, TOL);
}

#[test]
fn errors_map_to_their_exit_classes() {
    use kiln_interp::InterpError as I;
    let wrapped = |e: I| I::Node {
        node: "nn.dropout 'y'".into(),
        source: Box::new(e),
    };
    let cases = [
        (
            wrapped(I::Unsupported("random".into())),
            ErrorKind::Unsupported,
        ),
        (
            wrapped(wrapped(I::Unsupported("x".into()))),
            ErrorKind::Unsupported,
        ),
        (
            wrapped(I::Invalid("index 9".into())),
            ErrorKind::InvalidInput,
        ),
        (wrapped(I::BadData("short".into())), ErrorKind::InvalidInput),
        (
            wrapped(I::TooLarge {
                elements: 1 << 40,
                limit: 1 << 30,
            }),
            ErrorKind::ResourceLimit,
        ),
        (wrapped(I::Internal("mismatch".into())), ErrorKind::Internal),
    ];
    for (e, kind) in cases {
        let msg = e.to_string();
        assert_eq!(DriverError::Interp(e).kind(), kind, "{msg}");
    }
    let lower = kiln_codegen::lower::LowerError::Unsupported {
        node: "nn.top_k 'y'".into(),
        reason: "k must be a constant".into(),
        more: Vec::new(),
    };
    assert_eq!(DriverError::Lower(lower).kind(), ErrorKind::Unsupported);
    assert_eq!(ErrorKind::Unsupported.exit_code(), 3);
    assert_eq!(ErrorKind::InvalidInput.exit_code(), 2);
}

/// The `(count, total constant bytes)` of `@malloc` calls, and the count of
/// `@free` calls, in LLVM IR text.
fn malloc_free_calls(llvm: &str) -> (usize, u64, usize) {
    let mut mallocs = 0;
    let mut bytes = 0;
    let mut frees = 0;
    for line in llvm.lines().filter(|l| l.contains("call ")) {
        if let Some(rest) = line.split("@malloc(i64 ").nth(1) {
            mallocs += 1;
            bytes += rest
                .split(')')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if line.contains("@free(") {
            frees += 1;
        }
    }
    (mallocs, bytes, frees)
}

#[test]
fn compiled_code_frees_every_temporary() {
    let graph = load(
        &model_dir("transformer").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), None);
    opts.emit = Emit::Llvm;
    // Planned code (-O1..-O3) allocates nothing: every value has a home.
    let planned = compile(graph.clone(), &opts).unwrap();
    let (m, _, _) = malloc_free_calls(&String::from_utf8(planned.text.unwrap()).unwrap());
    assert_eq!(m, 0, "planned code allocates");
    // The whole-graph lowering (-O0) allocates temporaries and frees them.
    opts.set_level(OptLevel::O0);
    let art = compile(graph, &opts).unwrap();
    let llvm = String::from_utf8(art.text.unwrap()).unwrap();
    let (mallocs, bytes, frees) = malloc_free_calls(&llvm);
    assert!(mallocs > 0, "the transformer allocates no temporaries?");
    assert_eq!(mallocs, frees, "every @malloc needs its @free");

    // And at run time: many runs do not grow the resident set by anything
    // near what leaking the temporaries would (a separate process, so other
    // tests' allocations do not count).
    let runtime = c_runtime();
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    compile_lib(
        &model_dir("transformer").join("model.onnx"),
        &LoadOptions::default(),
        &so,
        WeightsMode::Embedded,
    );
    let exe = dir.path().join("rss_probe");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let lib = runtime.join("lib");
    let out = Command::new(cc)
        .args(["-std=c11", "-Wall", "-Werror", "-O1"])
        .arg(format!("-I{}", runtime.join("include").display()))
        .arg(data("rss_probe.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-lkiln_runtime")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    const RUNS: u64 = 2000;
    let run = Command::new(&exe)
        .arg(&so)
        .arg("20")
        .arg(RUNS.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "rss_probe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let growth_kib: u64 = stdout
        .trim()
        .strip_prefix("rss_growth_kib=")
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("bad probe output {stdout:?}"))
        .max(0) as u64;
    let leak_kib = bytes * RUNS / 1024;
    assert!(
        growth_kib * 8 < leak_kib,
        "resident set grew {growth_kib} KiB over {RUNS} runs; leaking every temporary \
         would add {leak_kib} KiB"
    );
}

/// CPU ticks (user + system) of every thread of this process, by thread id.
fn thread_cpu_ticks() -> BTreeMap<u64, u64> {
    let mut ticks = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let entry = entry.unwrap();
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // the thread exited meanwhile
        };
        // Fields after the parenthesized command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: u64 = fields[11].parse().unwrap();
        let system: u64 = fields[12].parse().unwrap();
        ticks.insert(tid, user + system);
    }
    ticks
}

/// Child-process part of [`parallel_loops_run_on_the_pool`]: runs with
/// `KILN_PARALLEL_MIN_US=0`, so every parallel loop goes to the pool once its
/// first serial runs have been measured.
fn parallel_loops_child() {
    // The bundled models at 1, 2 and 4 threads; several runs each, so that
    // runs after the measuring ones take the parallel path.
    for name in ["mlp", "cnn", "transformer"] {
        let dir = tempfile::tempdir().unwrap();
        let so = dir.path().join("model.so");
        let model = model_dir(name).join("model.onnx");
        compile_lib(&model, &LoadOptions::default(), &so, WeightsMode::Embedded);
        let session = Session::open(&so, &SessionOptions::default()).unwrap();
        for threads in [1, 2, 4] {
            session.set_num_threads(threads).unwrap();
            for _ in 0..5 {
                check_against_ort(&session, name);
            }
        }
        // One model from several threads at once, on a shared 2-thread pool.
        session.set_num_threads(2).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        check_against_ort(&session, name);
                    }
                });
            }
        });
    }

    // A matmul on both paths: -O0's loop nest (its row loop is one parallel
    // region) and -O3's GEMM kernel (its panels go to the pool), at sizes
    // where splitting pays.
    matmul_runs_on_the_pool(OptLevel::O0, 256);
    matmul_runs_on_the_pool(OptLevel::O3, 512);
}

/// Runs an `n`x`n` matmul compiled at `level` on a 2-thread pool and checks
/// that the pool's worker did a share of the work. Integer-valued inputs
/// make every f32 product and sum exact, so the reference below (plain
/// Rust) must match bit for bit.
fn matmul_runs_on_the_pool(level: OptLevel, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let kir = dir.path().join("matmul.kir");
    std::fs::write(
        &kir,
        format!(
            "graph @matmul(%a: tensor<{n}x{n}xf32>, %b: tensor<{n}x{n}xf32>) -> (tensor<{n}x{n}xf32>) {{\n  \
             %y = nn.matmul %a, %b : tensor<{n}x{n}xf32>\n  return %y\n}}\n"
        ),
    )
    .unwrap();
    let so = dir.path().join("matmul.so");
    let graph = load(&kir, &LoadOptions::default()).unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(so.clone()));
    opts.set_level(level);
    compile(graph, &opts).unwrap();
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7 + i / n) % 5) as f32 - 2.0)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i * 3 + i / n) % 7) as f32 - 3.0)
        .collect();
    let mut want = vec![0f32; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                want[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    let inputs = [
        f32_tensor("a", &[n as u64, n as u64], &a),
        f32_tensor("b", &[n as u64, n as u64], &b),
    ];
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    let want_bytes: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
    session.set_num_threads(2).unwrap();
    // The first runs are measured serially; then the region goes parallel.
    for _ in 0..3 {
        assert_eq!(
            f32_bytes(&session.run(&inputs).unwrap()[0]),
            &want_bytes[..]
        );
    }
    let me: u64 = std::fs::read_link("/proc/thread-self")
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .parse()
        .unwrap();
    let before = thread_cpu_ticks();
    // Runs until the calling thread has used at least 20 ticks (200 ms) of
    // CPU, so the split is measured over enough work on any machine.
    let mut runs = 0;
    loop {
        assert_eq!(
            f32_bytes(&session.run(&inputs).unwrap()[0]),
            &want_bytes[..]
        );
        runs += 1;
        let now = thread_cpu_ticks();
        let used = now.get(&me).copied().unwrap_or(0) - before.get(&me).copied().unwrap_or(0);
        if used >= 20 || runs >= 5000 {
            break;
        }
    }
    let after = thread_cpu_ticks();
    let mine = after.get(&me).copied().unwrap_or(0) - before.get(&me).copied().unwrap_or(0);
    let others: u64 = after
        .iter()
        .filter(|(tid, _)| **tid != me)
        .map(|(tid, t)| t - before.get(tid).copied().unwrap_or(0))
        .sum();
    // With two threads the pool's worker does about half of the loop's work;
    // allow for coarse (10 ms) tick accounting and a busy machine.
    assert!(
        others * 4 >= mine && others >= 3,
        "{level:?}, n = {n}: pool workers used {others} CPU ticks while the calling thread \
         used {mine} over {runs} runs: the matmul did not run in parallel"
    );
}

#[test]
fn parallel_loops_run_on_the_pool() {
    const CHILD: &str = "KILN_TEST_PARALLEL_CHILD";
    if std::env::var_os(CHILD).is_some() {
        parallel_loops_child();
        return;
    }
    // The shim reads KILN_PARALLEL_MIN_US once per artifact from the
    // environment; setting it in this process would race with other tests
    // reading the environment, so the checks run in a child process.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "parallel_loops_run_on_the_pool",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env(kiln_codegen::parallel::MIN_US_ENV, "0")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kernels_call_only_the_shims_openmp_entry_points() {
    // Every OpenMP call in compiled code must be one the artifact's shim
    // defines, with the single aggregate argument the shim forwards.
    let graph = load(
        &model_dir("transformer").join("model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), None);
    opts.emit = Emit::Llvm;
    let art = compile(graph, &opts).unwrap();
    let llvm = String::from_utf8(art.text.unwrap()).unwrap();
    let mut forks = 0;
    for line in llvm.lines() {
        for (at, _) in line
            .match_indices("@__kmpc_")
            .chain(line.match_indices("@omp_"))
        {
            let name: String = line[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                kiln_codegen::parallel::OPENMP_SYMBOLS.contains(&name.as_str()),
                "compiled code calls {name}, which the shim does not define"
            );
        }
        if line.contains("call void (ptr, i32, ptr, ...) @__kmpc_fork_call(") {
            forks += 1;
            assert!(line.contains(", i32 1, ptr"), "fork with argc != 1: {line}");
        }
    }
    assert!(forks > 0, "the transformer has no parallel loop");
}

/// A Loop whose trip count is a graph input: `Prepared::open` still lists
/// both inputs, and opening the session with the inputs imports the model
/// with the trip count compiled in (compiled and interpreted), matching
/// ONNX Runtime's outputs stored with the fixture. Without inputs the
/// importer's error names the input to freeze.
#[test]
fn loop_with_trip_count_input_runs_when_inputs_are_given() {
    let dir = root().join("compiler/kiln-onnx/tests/fixtures/control_flow/loop_trip_count");
    let model = dir.join("model.onnx");
    let set = dir.join("test_data_set_0");
    for interpret in [false, true] {
        let opts = SessionOptions {
            interpret,
            ..SessionOptions::default()
        };
        let prepared = Prepared::open(&model, &opts).unwrap();
        assert_eq!(
            prepared.input_names(),
            vec!["n".to_string(), "x".to_string()]
        );
        let inputs = read_test_set(&set, "input", &prepared.input_names()).unwrap();
        let expected = read_test_set(&set, "output", &prepared.output_names()).unwrap();
        let session = prepared.into_session(Some(&inputs)).unwrap();
        assert_eq!(session.is_compiled(), !interpret);
        assert_eq!(session.specialized_inputs(), vec!["n".to_string()]);
        assert_eq!(session.input_names(), vec!["x".to_string()]);
        let got = session.run(&inputs).unwrap();
        let what = format!("loop_trip_count (interpret: {interpret})");
        assert_outputs_close(&what, &expected, &got, 1.0, 1e-6);
        // Another trip count than the one compiled in is refused.
        let mut other = inputs.clone();
        other[0].data.as_mut()[0] ^= 1;
        let err = session.run(&other).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let err = Session::open(&model, &SessionOptions::default())
        .err()
        .expect("needs the trip count");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("'n'"), "{err}");
}

mod kernel_paths;

/// `--cpu=native` asks LLVM for this machine's CPU and features; the
/// runtime's load-time check detects features itself (CPUID). The two must
/// agree, or a native artifact is refused on the machine that built it
/// (seen on AMD Zen 5, which reports PREFETCHI where Intel does not).
#[test]
fn native_features_pass_the_runtimes_cpu_check() {
    let host = kiln_codegen::Target::host().unwrap();
    let features = kiln_codegen::enabled_features(&host).unwrap();
    assert!(!features.is_empty());
    let missing = kiln_runtime::cpu::missing_features(&features.join(","));
    assert!(
        missing.is_empty(),
        "LLVM enables {missing:?} for {} but the runtime does not detect them",
        host.cpu()
    );
}
