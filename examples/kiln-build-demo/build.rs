//! Compiles two models that share kernels (both are Gemm/Relu MLPs) into
//! one program: `mlp` as it is, `mlp4` with its dynamic batch fixed to 4.
fn main() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models");
    kiln_build::Config::new()
        .model(models.join("mlp/model.onnx"), "mlp")
        .model(models.join("mlp_dynamic/model.onnx"), "mlp4")
        .args(["--input-shape", "x=4x64"])
        .compile()
        .unwrap_or_else(|e| panic!("{e}"));
}
