//! The ONNX package's "light" CNNs (AlexNet, DenseNet-121, Inception v1/v2,
//! ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512), compiled and run
//! by Kiln and compared with ONNX Runtime's outputs.
//!
//! `testdata/gen_light_models.py` writes the models (with informative
//! weights in place of the shipped all-equal ones, which make every output
//! exactly uniform), an input and ONNX Runtime's outputs, once per test run,
//! from the project venv (`scripts/setup.sh`).

use super::{assert_outputs_close, root};
use kiln_driver::tensors::read_test_set;
use kiln_driver::{Prepared, SessionOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The generated models, made once per test process.
fn light_models_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-light-models");
        // Stale files from an older generator must not survive.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh",
            python.display()
        );
        let out = Command::new(&python)
            .arg(root().join("testdata/gen_light_models.py"))
            .arg(&dir)
            .output()
            .expect("run testdata/gen_light_models.py");
        assert!(
            out.status.success(),
            "gen_light_models.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Compiles `name` for this machine, runs it on its input and compares
/// every output with ONNX Runtime's: within 2e-3 of relative error, where
/// values below 1% of the output's largest magnitude count as that 1%
/// (probabilities near zero after a softmax carry the absolute error of
/// the logits). Measured: at most 1e-4 on every model.
fn light_model_matches_ort(name: &str) {
    let dir = light_models_dir().join(name);
    let prepared = Prepared::open(&dir.join("model.onnx"), &SessionOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let set = dir.join("test_data_set_0");
    let inputs = read_test_set(&set, "input", &prepared.input_names()).unwrap();
    let expected = read_test_set(&set, "output", &prepared.output_names()).unwrap();
    let session = prepared
        .into_session(Some(&inputs))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(session.is_compiled());
    assert!(
        session.constant_outputs().is_empty(),
        "{name}: outputs folded at compile time: {:?}",
        session.constant_outputs()
    );
    let got = session.run(&inputs).unwrap();
    for (e, g) in expected.iter().zip(&got) {
        let largest = e
            .to_f64()
            .unwrap()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(largest > 0.0, "{name}: output '{}' is all zeros", e.name);
        assert_outputs_close(
            &format!("{name} '{}'", e.name),
            std::slice::from_ref(e),
            std::slice::from_ref(g),
            0.01 * largest,
            2e-3,
        );
    }
    assert_eq!(got.len(), expected.len(), "{name}: output count");
}

macro_rules! light_model_tests {
    ($($test:ident => $model:literal,)*) => {
        /// The models tested below, sorted.
        const TESTED: &[&str] = &[$($model),*];
        $(
            #[test]
            fn $test() {
                light_model_matches_ort($model);
            }
        )*
    };
}

light_model_tests! {
    light_bvlc_alexnet_matches_onnx_runtime => "light_bvlc_alexnet",
    light_densenet121_matches_onnx_runtime => "light_densenet121",
    light_inception_v1_matches_onnx_runtime => "light_inception_v1",
    light_inception_v2_matches_onnx_runtime => "light_inception_v2",
    light_resnet50_matches_onnx_runtime => "light_resnet50",
    light_shufflenet_matches_onnx_runtime => "light_shufflenet",
    light_squeezenet_matches_onnx_runtime => "light_squeezenet",
    light_vgg19_matches_onnx_runtime => "light_vgg19",
    light_zfnet512_matches_onnx_runtime => "light_zfnet512",
}

/// Every model the generator wrote has a test above (a new light model in
/// a newer onnx package must not go untested).
#[test]
fn every_light_model_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(light_models_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, TESTED);
}
