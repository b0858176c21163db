//! Imports the bundled models and the ONNX package's own model test data,
//! and checks the imported graphs verify and keep the model's interface.

use kiln_onnx::import::{import_model, ImportOptions};
use kiln_onnx::load_model;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bundled_models_import_and_verify() {
    for name in ["mlp", "mlp_dynamic", "cnn", "transformer"] {
        let path = repo().join("testdata/models").join(name).join("model.onnx");
        let model = load_model(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let g = import_model(&model, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        kiln_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {}", e[0]));
        let inputs: Vec<&str> = model
            .graph
            .runtime_inputs()
            .map(|i| i.name.as_str())
            .collect();
        let got: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
        assert_eq!(got, inputs, "{name}: graph inputs");
        let outs: Vec<&str> = model
            .graph
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        let got: Vec<&str> = g
            .outputs
            .iter()
            .map(|&v| g.value(v).name.as_str())
            .collect();
        assert_eq!(got, outs, "{name}: graph outputs");
        // Text round trip of the imported graph.
        let text = kiln_ir::text::print(&g);
        let back = kiln_ir::text::parse(&text, name, None)
            .unwrap_or_else(|e| panic!("{name}: {}\n{text}", e[0]));
        assert_eq!(kiln_ir::text::print(&back.graph), text);
    }
}
