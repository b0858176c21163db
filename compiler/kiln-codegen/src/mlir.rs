//! MLIR helpers: context creation, parsing, running textual pass pipelines and translating the
//! LLVM dialect to LLVM IR.
//!
//! Invariants:
//! - Every context made by [`create_context`] has all upstream dialects, passes and LLVM
//!   translations registered, so any pipeline `mlir-opt-22` accepts is accepted here.
//! - MLIR diagnostics never go to stderr: they are captured while an operation runs and returned
//!   inside the [`CodegenError`], so callers decide how to report them.

use crate::error::{CodegenError, Result};
use melior::{
    dialect::DialectRegistry,
    ir::{operation::OperationLike, Module},
    pass::PassManager,
    utility::{
        parse_pass_pipeline, register_all_dialects, register_all_llvm_translations,
        register_all_passes,
    },
    Context,
};
use std::{cell::RefCell, rc::Rc};

/// Creates an MLIR context with every upstream dialect, pass and LLVM translation registered.
pub fn create_context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    // `register_all_passes` is guarded by a `Once` inside melior (registering twice double-frees).
    register_all_passes();
    // Kiln's own GPU passes, so every pipeline string of a GPU target parses.
    crate::gpu::register_passes();
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    context
}

/// Parses and verifies an MLIR module from its textual form.
pub fn parse_module<'c>(context: &'c Context, source: &str) -> Result<Module<'c>> {
    let capture = DiagnosticCapture::attach(context);
    let module = Module::parse(context, source);
    let diagnostics = capture.finish();
    match module {
        Some(module) if module.as_operation().verify() => Ok(module),
        Some(_) => Err(CodegenError::MlirParse(or_default(
            diagnostics,
            "the module does not verify",
        ))),
        None => Err(CodegenError::MlirParse(or_default(
            diagnostics,
            "the text is not a valid MLIR module",
        ))),
    }
}

/// Checks that a textual pass pipeline parses, without running it.
pub fn check_pipeline(context: &Context, pipeline: &str) -> Result<()> {
    let manager = PassManager::new(context);
    parse_pass_pipeline(manager.as_operation_pass_manager(), pipeline).map_err(|error| {
        CodegenError::PassPipelineParse {
            pipeline: pipeline.to_owned(),
            message: error.to_string(),
        }
    })
}

/// Runs a textual pass pipeline (`builtin.module(...)`) on a module, verifying after each pass.
pub fn run_pipeline(context: &Context, module: &mut Module, pipeline: &str) -> Result<()> {
    let manager = PassManager::new(context);
    manager.enable_verifier(true);
    parse_pass_pipeline(manager.as_operation_pass_manager(), pipeline).map_err(|error| {
        CodegenError::PassPipelineParse {
            pipeline: pipeline.to_owned(),
            message: error.to_string(),
        }
    })?;
    let capture = DiagnosticCapture::attach(context);
    let result = manager.run(module);
    let diagnostics = capture.finish();
    result.map_err(|_| CodegenError::PassFailed {
        pipeline: pipeline.to_owned(),
        diagnostics: or_default(diagnostics, "a pass failed without a diagnostic"),
    })
}

/// Translates a module in the MLIR LLVM dialect to an LLVM IR module owned by `llvm_context`.
///
/// The module's triple and data layout are left for [`crate::llvm::prepare_module`] to set.
pub fn translate_to_llvm<'ll>(
    context: &Context,
    module: &Module,
    llvm_context: &'ll inkwell::context::Context,
) -> Result<inkwell::module::Module<'ll>> {
    let capture = DiagnosticCapture::attach(context);
    // SAFETY: both handles are live for the call. mlir-sys and llvm-sys declare distinct opaque
    // types for the same C `LLVMContextRef`/`LLVMModuleRef`, hence the pointer casts. The returned
    // module is owned by the caller, allocated in `llvm_context`, and is handed to inkwell, which
    // disposes it; its lifetime is tied to `llvm_context` by the return type.
    let raw = unsafe {
        mlir_sys::mlirTranslateModuleToLLVMIR(
            module.as_operation().to_raw(),
            llvm_context.raw().cast(),
        )
    };
    let diagnostics = capture.finish();
    if raw.is_null() {
        return Err(CodegenError::LlvmTranslation(or_default(
            diagnostics,
            "unknown error (are all operations in the llvm dialect?)",
        )));
    }
    // SAFETY: `raw` is a non-null module just created in `llvm_context` (see above).
    Ok(unsafe { inkwell::module::Module::new(raw.cast()) })
}

fn or_default(diagnostics: String, default: &str) -> String {
    if diagnostics.is_empty() {
        default.to_owned()
    } else {
        diagnostics
    }
}

/// Collects the diagnostics a context emits while it is attached, instead of printing them.
struct DiagnosticCapture<'c> {
    context: &'c Context,
    id: melior::diagnostic::DiagnosticHandlerId,
    messages: Rc<RefCell<Vec<String>>>,
}

impl<'c> DiagnosticCapture<'c> {
    fn attach(context: &'c Context) -> Self {
        let messages = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&messages);
        let id = context.attach_diagnostic_handler(move |diagnostic| {
            let mut text = format!("{}: {}", diagnostic.location(), diagnostic);
            for index in 0..diagnostic.note_count() {
                if let Ok(note) = diagnostic.note(index) {
                    text.push_str(&format!("\n  note: {} {}", note.location(), note));
                }
            }
            sink.borrow_mut().push(text);
            // Handled: do not fall through to MLIR's default handler (stderr).
            true
        });
        Self {
            context,
            id,
            messages,
        }
    }

    /// Detaches the handler and returns the collected messages, one per line.
    fn finish(self) -> String {
        self.context.detach_diagnostic_handler(self.id);
        let messages = self.messages.borrow().join("\n");
        messages
    }
}
