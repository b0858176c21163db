//! Integration tests of the Rust API: a hand-written C artifact
//! (`runtime/fixtures/affine.c`, y = x * w + 1) is compiled with `cc` and run
//! through [`Model`]. Expected values are computed here from the fixture's
//! constants, independently of the runtime. The C library has its own tests
//! in `kiln-runtime-c`.

use kiln_runtime::{DType, Error, Model, TensorMut, TensorRef};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The fixture's weights, written out again as the independent reference.
const WEIGHTS: [f32; 6] = [0.5, -1.0, 2.0, 3.0, -0.25, 10.0];
const SHAPE: [i64; 2] = [2, 3];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    crate_dir().join("../include")
}

fn fixture(name: &str) -> PathBuf {
    crate_dir().join("../fixtures").join(name)
}

fn cc(args: &[&std::ffi::OsStr]) {
    let compiler = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let output = Command::new(&compiler)
        .args(args)
        .output()
        .expect("run the C compiler");
    assert!(
        output.status.success(),
        "cc {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles the affine fixture into `dir/name` as a shared library.
fn build_artifact(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let include = format!("-I{}", include_dir().display());
    let mut args: Vec<std::ffi::OsString> = vec![
        "-shared".into(),
        "-fPIC".into(),
        "-O2".into(),
        "-Wall".into(),
        "-Werror".into(),
        include.into(),
    ];
    args.extend(defines.iter().map(|d| format!("-D{d}").into()));
    args.extend([fixture("affine.c").into(), "-o".into(), out.clone().into()]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    cc(&refs);
    // Sealed as `kiln compile` seals its artifacts; external weights are
    // expected to be `weights_bytes()`.
    let external = defines.iter().any(|d| d.starts_with("EXTERNAL_WEIGHTS"));
    kiln_runtime::seal_file(&out, &host_record(external)).unwrap();
    out
}

/// An integrity record for the fixture, built for this machine.
fn host_record(external_weights: bool) -> kiln_runtime::integrity::Record {
    let w = weights_bytes();
    kiln_runtime::integrity::Record {
        abi_version: kiln_runtime::abi::ABI_VERSION,
        symbol: "kiln_artifact".into(),
        arch: kiln_runtime::cpu::host_arch().into(),
        cpu: "generic".into(),
        features: String::new(),
        weights: external_weights.then(|| kiln_runtime::integrity::WeightsSeal {
            size: w.len() as u64,
            hash: kiln_runtime::integrity::hash(&w),
        }),
        alternates: Vec::new(),
    }
}

fn expected(x: &[f32]) -> Vec<f32> {
    x.iter().zip(WEIGHTS).map(|(x, w)| x * w + 1.0).collect()
}

fn run_affine(model: &Model, x: &[f32; 6]) -> Result<[f32; 6], Error> {
    let mut y = [0f32; 6];
    model.run(
        &[TensorRef::from_slice(&SHAPE, x)],
        &mut [TensorMut::from_slice(&SHAPE, &mut y)],
    )?;
    Ok(y)
}

fn weights_bytes() -> Vec<u8> {
    WEIGHTS.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn loads_and_runs_an_artifact_with_embedded_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(build_artifact(dir.path(), "affine.so", &[])).unwrap();
    assert_eq!(model.name(), "affine");
    assert_eq!(model.producer(), "hand-written test fixture");
    let [x_info] = model.inputs() else {
        panic!("one input")
    };
    assert_eq!(
        (x_info.name(), x_info.dtype(), x_info.shape()),
        ("x", DType::F32, &SHAPE[..])
    );
    assert_eq!(x_info.byte_size(), 24);
    assert_eq!(model.outputs()[0].name(), "y");
    for threads in [1, 2, 4] {
        model.set_num_threads(threads).unwrap();
        assert_eq!(model.num_threads(), threads);
        let x = [1.0, -2.0, 3.5, 0.0, 8.0, -0.5];
        assert_eq!(run_affine(&model, &x).unwrap().to_vec(), expected(&x));
    }
}

#[test]
fn loads_external_weights_next_to_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_artifact(dir.path(), "ext.so", &["EXTERNAL_WEIGHTS=\"ext.weights\""]);
    let missing = Model::load(&so).unwrap_err();
    assert!(matches!(missing, Error::LoadFailed(_)), "{missing}");
    assert!(missing.to_string().contains("ext.weights"), "{missing}");

    std::fs::write(dir.path().join("ext.weights"), &weights_bytes()[..20]).unwrap();
    let short = Model::load(&so).unwrap_err();
    assert!(
        short
            .to_string()
            .contains("has 20 bytes, the artifact expects 24"),
        "{short}"
    );

    // The right size but other bytes: refused by the record's checksum.
    let mut other = weights_bytes();
    other[3] ^= 1;
    std::fs::write(dir.path().join("ext.weights"), &other).unwrap();
    let altered = Model::load(&so).unwrap_err();
    assert!(matches!(altered, Error::CorruptArtifact(_)), "{altered}");

    std::fs::write(dir.path().join("ext.weights"), weights_bytes()).unwrap();
    let model = Model::load(&so).unwrap();
    let x = [2.0, 2.0, 2.0, -1.0, 4.0, 0.25];
    assert_eq!(run_affine(&model, &x).unwrap().to_vec(), expected(&x));
}

#[test]
fn refuses_weights_paths_that_escape_the_artifact_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.path().join("w.bin"), weights_bytes()).unwrap();
    for (name, file) in [("up.so", "\"../w.bin\""), ("abs.so", "\"/etc/passwd\"")] {
        let so = build_artifact(&dir, name, &[&format!("EXTERNAL_WEIGHTS={file}")]);
        let err = Model::load(&so).unwrap_err();
        assert!(matches!(err, Error::LoadFailed(_)), "{err}");
        assert!(err.to_string().contains("relative path inside"), "{err}");
    }
}

#[test]
fn rejects_other_abi_versions_and_non_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_artifact(dir.path(), "v2.so", &["ARTIFACT_ABI=2"]);
    let err = Model::load(&so).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AbiMismatch {
                found: 2,
                expected: 1
            }
        ),
        "{err}"
    );

    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    assert!(matches!(Model::load(&junk), Err(Error::CorruptArtifact(_))));

    // A record that announces another ABI is refused before dlopen.
    let plain = build_artifact(dir.path(), "plain.so", &[]);
    let mut bytes = std::fs::read(&plain).unwrap();
    let record_start = bytes.len() - 24 - {
        let mut n = [0u8; 8];
        n.copy_from_slice(&bytes[bytes.len() - 24..bytes.len() - 16]);
        u64::from_le_bytes(n) as usize - 24
    };
    bytes.truncate(record_start);
    let unsealed = dir.path().join("abi9.so");
    std::fs::write(&unsealed, &bytes).unwrap();
    let mut record = host_record(false);
    record.abi_version = 9;
    kiln_runtime::seal_file(&unsealed, &record).unwrap();
    assert!(matches!(
        Model::load(&unsealed),
        Err(Error::AbiMismatch { found: 9, .. })
    ));
}

#[test]
fn rust_api_validates_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(build_artifact(dir.path(), "affine.so", &[])).unwrap();
    let x = [1f32; 6];
    let mut y = [7f32; 6];
    let xi = [1i32; 6];
    let err = model
        .run(
            &[TensorRef::from_slice(&SHAPE, &xi)],
            &mut [TensorMut::from_slice(&SHAPE, &mut y)],
        )
        .unwrap_err();
    assert!(matches!(err, Error::DtypeMismatch { .. }), "{err}");
    let err = model
        .run(
            &[TensorRef::from_slice(&[6], &x)],
            &mut [TensorMut::from_slice(&SHAPE, &mut y)],
        )
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = model
        .run(
            &[TensorRef::from_slice(&SHAPE, &x[..5])],
            &mut [TensorMut::from_slice(&SHAPE, &mut y)],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BufferTooSmall {
                required: 24,
                got: 20,
                ..
            }
        ),
        "{err}"
    );
    // An 8-aligned buffer, so that offset 1 is misaligned for f32 whatever
    // the stack layout.
    #[repr(align(8))]
    struct Aligned([u8; 32]);
    let bytes = Aligned([0u8; 32]);
    let err = model
        .run(
            &[TensorRef::new(DType::F32, &SHAPE, &bytes.0[1..25])],
            &mut [TensorMut::from_slice(&SHAPE, &mut y)],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Misaligned { align: 4, .. }), "{err}");
    let err = model.run(&[], &mut []).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(
        y, [7f32; 6],
        "outputs must be untouched after a failed check"
    );
}

#[test]
fn concurrent_runs_on_one_model_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(Model::load(build_artifact(dir.path(), "affine.so", &[])).unwrap());
    model.set_num_threads(3).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let model = Arc::clone(&model);
            scope.spawn(move || {
                for round in 0..200 {
                    let base = (t * 1000 + round) as f32;
                    let x = [base, base + 1.0, -base, 0.5, base * 2.0, 3.0];
                    assert_eq!(run_affine(&model, &x).unwrap().to_vec(), expected(&x));
                    if round % 50 == 0 && t == 0 {
                        // Changing the thread count while others run is allowed.
                        model.set_num_threads(2 + (round as u32 / 50) % 3).unwrap();
                    }
                }
            });
        }
    });
}
