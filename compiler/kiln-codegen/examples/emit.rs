//! Developer tool until the `kiln` CLI exposes codegen: compile an MLIR file for a target and
//! print one stage to stdout.
//!
//! Usage: `cargo run -p kiln-codegen --example emit -- TARGET mlir|llvm|asm|obj FILE.mlir [PIPELINE]`
//! (PIPELINE overrides the target's MLIR pipeline; `""` runs none.)

use kiln_codegen::{emit_with_pipeline, Emit, OptLevel, Target};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, stage, file) = match args.as_slice() {
        [target, stage, file, ..] => (target, stage, file),
        _ => {
            eprintln!("usage: emit TARGET mlir|llvm|asm|obj FILE.mlir [PIPELINE]");
            return ExitCode::from(2);
        }
    };
    let stage = match stage.as_str() {
        "mlir" => Emit::Mlir,
        "llvm" => Emit::Llvm,
        "asm" => Emit::Asm,
        "obj" => Emit::Obj,
        other => {
            eprintln!("unknown stage '{other}'");
            return ExitCode::from(2);
        }
    };
    let result = Target::parse(target).and_then(|target| {
        let text =
            std::fs::read_to_string(file).map_err(|source| kiln_codegen::CodegenError::Io {
                action: "read",
                path: file.into(),
                source,
            })?;
        let pipeline = args
            .get(3)
            .cloned()
            .unwrap_or_else(|| target.mlir_pipeline());
        emit_with_pipeline(&text, &target, &pipeline, OptLevel::O3, stage)
    });
    match result {
        Ok(bytes) => {
            if std::io::stdout().write_all(&bytes).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}
