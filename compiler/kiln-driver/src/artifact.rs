//! The artifact glue: the `kiln_artifact_v1` descriptor, the `kiln_entry`
//! wrapper and `kiln_artifact()`, generated as MLIR in the `llvm` dialect
//! (compiled by kiln-codegen with the same target machine as the model
//! code), plus the generated `model.h`.
//!
//! Invariants:
//! - The descriptor layout is `kiln.h`'s `kiln_artifact_v1` for 64-bit
//!   targets (88 bytes, `entry` at offset 80), directly followed by a
//!   `kiln_artifact_target` record (arch, CPU, features) that `flags`
//!   announces with `KILN_ARTIFACT_FLAG_TARGET`; tensor descriptors are
//!   `kiln_tensor_desc` (24 bytes). All are LLVM literal structs whose
//!   natural layout matches the C structs.
//! - `kiln_entry` unpacks the input/output pointer arrays and calls
//!   `kiln_main(in.., out.., weights)` with bare pointers (the lowering's
//!   calling convention), then returns 0. It and every descriptor constant
//!   are `internal`; only the descriptor function (`kiln_artifact`, or
//!   `<name>_artifact` with `--name`) is global.
//! - The glue also carries the parallel-loop shim (`kiln_codegen::parallel`):
//!   `kiln_entry` installs the run's `kiln_exec_ctx` for it around the
//!   `kiln_main` call; its OpenMP entry points are hidden, never exported.
//! - Weight bytes are never in this module: embedded weights are an
//!   external declaration of [`WEIGHTS_SYMBOL`], defined by the weights
//!   object.
//! - Strings (names, model name, producer) are NUL-terminated byte arrays;
//!   every byte outside printable ASCII is written as a `\XX` escape, so no
//!   name can break the MLIR text. Names containing NUL are refused earlier.

use kiln_codegen::lower::TensorSig;
use kiln_codegen::parallel;
use std::fmt::Write;

/// Symbol of the embedded weights blob (defined by the weights object).
pub const WEIGHTS_SYMBOL: &str = "kiln_weights";

/// Symbol of the model function produced by the lowering.
pub const MAIN_SYMBOL: &str = "kiln_main";

/// Where the descriptor says the weights are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsRef {
    /// No weights (`weights = NULL`, `weights_size = 0`).
    None,
    /// Embedded in the artifact at [`WEIGHTS_SYMBOL`].
    Embedded {
        /// Blob size in bytes.
        size: u64,
    },
    /// In a file next to the artifact.
    External {
        /// The file name (relative to the artifact).
        file: String,
        /// Blob size in bytes.
        size: u64,
    },
}

/// Everything the descriptor records.
#[derive(Clone, Debug)]
pub struct Descriptor<'a> {
    /// The model's name.
    pub model_name: &'a str,
    /// `"kiln <version>"`.
    pub producer: &'a str,
    /// Inputs in entry order.
    pub inputs: &'a [TensorSig],
    /// Outputs in entry order.
    pub outputs: &'a [TensorSig],
    /// Where the weights are.
    pub weights: WeightsRef,
    /// Bytes of the workspace `kiln_main` takes as its last argument (a
    /// planned module's arena), or `None` when it takes none.
    pub workspace: Option<u64>,
    /// The descriptor function's symbol (`kiln_artifact`, `<name>_artifact`).
    pub symbol: &'a str,
    /// Prefix of the header's macros (`KILN_MODEL`, or the upper-case name).
    pub macro_prefix: &'a str,
    /// The target the code was generated for: architecture, CPU and
    /// comma-separated features (the runtime refuses to run it elsewhere).
    pub target: (&'a str, &'a str, &'a str),
}

/// `kiln_artifact_v1.flags` bit: a `kiln_artifact_target` follows the descriptor.
pub const FLAG_TARGET: u32 = 1;

const DESC_TY: &str = "!llvm.struct<(ptr, i32, i32, ptr)>";
const ARTIFACT_TY: &str =
    "!llvm.struct<(i32, i32, i32, i32, ptr, ptr, ptr, ptr, ptr, i64, ptr, i64, ptr, ptr, ptr, ptr)>";

/// Escapes bytes for an MLIR string literal.
fn mlir_bytes(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\{b:02X}");
        }
    }
    s
}

/// Emits `@name` as a NUL-terminated string constant.
fn string_global(out: &mut String, name: &str, value: &str) {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    let _ = writeln!(
        out,
        "  llvm.mlir.global internal constant @{name}(\"{}\") {{addr_space = 0 : i32}} : !llvm.array<{} x i8>",
        mlir_bytes(&bytes),
        bytes.len()
    );
}

/// Emits the shape arrays, name strings and the descriptor array of one side.
fn tensor_table(out: &mut String, side: &str, sigs: &[TensorSig]) {
    for (i, s) in sigs.iter().enumerate() {
        string_global(out, &format!("kiln_{side}_name{i}"), &s.name);
        if !s.shape.is_empty() {
            let dims: Vec<String> = s.shape.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "  llvm.mlir.global internal constant @kiln_{side}_shape{i}(dense<[{}]> : tensor<{}xi64>) {{addr_space = 0 : i32}} : !llvm.array<{} x i64>",
                dims.join(", "),
                s.shape.len(),
                s.shape.len()
            );
        }
    }
    if sigs.is_empty() {
        return;
    }
    let arr = format!("!llvm.array<{} x {DESC_TY}>", sigs.len());
    let _ = writeln!(
        out,
        "  llvm.mlir.global internal constant @kiln_{side}s() {{addr_space = 0 : i32}} : {arr} {{"
    );
    let _ = writeln!(out, "    %t0 = llvm.mlir.undef : {arr}");
    let _ = writeln!(out, "    %null = llvm.mlir.zero : !llvm.ptr");
    let mut last = "%t0".to_owned();
    for (i, s) in sigs.iter().enumerate() {
        let _ = writeln!(
            out,
            "    %n{i} = llvm.mlir.addressof @kiln_{side}_name{i} : !llvm.ptr"
        );
        let shape = if s.shape.is_empty() {
            "%null".to_owned()
        } else {
            let _ = writeln!(
                out,
                "    %s{i} = llvm.mlir.addressof @kiln_{side}_shape{i} : !llvm.ptr"
            );
            format!("%s{i}")
        };
        let _ = writeln!(
            out,
            "    %d{i} = llvm.mlir.constant({} : i32) : i32",
            s.dtype.abi_code()
        );
        let _ = writeln!(
            out,
            "    %r{i} = llvm.mlir.constant({} : i32) : i32",
            s.shape.len()
        );
        let fields = [format!("%n{i}"), format!("%d{i}"), format!("%r{i}"), shape];
        for (f, value) in fields.iter().enumerate() {
            let next = format!("%t{i}_{f}");
            let _ = writeln!(
                out,
                "    {next} = llvm.insertvalue {value}, {last}[{i}, {f}] : {arr}"
            );
            last = next;
        }
    }
    let _ = writeln!(out, "    llvm.return {last} : {arr}");
    let _ = writeln!(out, "  }}");
}

/// The MLIR (`llvm` dialect) module with the descriptor, `kiln_entry` and
/// `kiln_artifact`.
pub fn glue_module(d: &Descriptor<'_>) -> String {
    let mut out =
        String::from("// Kiln artifact descriptor and entry wrapper (ABI v1).\nmodule {\n");
    let n_args = d.inputs.len() + d.outputs.len() + 1 + usize::from(d.workspace.is_some());
    let ptrs = vec!["!llvm.ptr"; n_args].join(", ");
    let _ = writeln!(out, "  llvm.func @{MAIN_SYMBOL}({ptrs})");

    // kiln_entry(ctx, inputs, outputs, weights, workspace) -> i32
    let _ = writeln!(
        out,
        "  llvm.func internal @kiln_entry(%ctx: !llvm.ptr, %ins: !llvm.ptr, %outs: !llvm.ptr, %w: !llvm.ptr, %ws: !llvm.ptr) -> i32 {{"
    );
    out.push_str(&parallel::enter_ops("%ctx"));
    let mut args = Vec::new();
    for (side, count) in [("ins", d.inputs.len()), ("outs", d.outputs.len())] {
        for i in 0..count {
            let _ = writeln!(
                out,
                "    %{side}_p{i} = llvm.getelementptr %{side}[{i}] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr"
            );
            let _ = writeln!(
                out,
                "    %{side}_{i} = llvm.load %{side}_p{i} : !llvm.ptr -> !llvm.ptr"
            );
            args.push(format!("%{side}_{i}"));
        }
    }
    args.push("%w".into());
    if d.workspace.is_some() {
        args.push("%ws".into());
    }
    let _ = writeln!(
        out,
        "    llvm.call @{MAIN_SYMBOL}({}) : ({ptrs}) -> ()",
        args.join(", ")
    );
    out.push_str(&parallel::leave_ops());
    let _ = writeln!(out, "    %ok = llvm.mlir.constant(0 : i32) : i32");
    let _ = writeln!(out, "    llvm.return %ok : i32\n  }}");

    string_global(&mut out, "kiln_model_name", d.model_name);
    string_global(&mut out, "kiln_target_arch", d.target.0);
    string_global(&mut out, "kiln_target_cpu", d.target.1);
    string_global(&mut out, "kiln_target_features", d.target.2);
    string_global(&mut out, "kiln_producer", d.producer);
    tensor_table(&mut out, "input", d.inputs);
    tensor_table(&mut out, "output", d.outputs);
    let (weights_size, weights_file) = match &d.weights {
        WeightsRef::None => (0, None),
        WeightsRef::Embedded { size } => {
            let _ = writeln!(
                out,
                "  llvm.mlir.global external constant @{WEIGHTS_SYMBOL}() {{addr_space = 0 : i32}} : !llvm.array<{size} x i8>"
            );
            (*size, None)
        }
        WeightsRef::External { file, size } => {
            string_global(&mut out, "kiln_weights_file", file);
            (*size, Some(()))
        }
    };

    let _ = writeln!(
        out,
        "  llvm.mlir.global internal constant @kiln_descriptor() {{addr_space = 0 : i32}} : {ARTIFACT_TY} {{"
    );
    let _ = writeln!(out, "    %a0 = llvm.mlir.undef : {ARTIFACT_TY}");
    let _ = writeln!(out, "    %null = llvm.mlir.zero : !llvm.ptr");
    let _ = writeln!(out, "    %abi = llvm.mlir.constant(1 : i32) : i32");
    let _ = writeln!(
        out,
        "    %nin = llvm.mlir.constant({} : i32) : i32",
        d.inputs.len()
    );
    let _ = writeln!(
        out,
        "    %nout = llvm.mlir.constant({} : i32) : i32",
        d.outputs.len()
    );
    let _ = writeln!(
        out,
        "    %flags = llvm.mlir.constant({FLAG_TARGET} : i32) : i32"
    );
    for t in ["arch", "cpu", "features"] {
        let _ = writeln!(
            out,
            "    %t_{t} = llvm.mlir.addressof @kiln_target_{t} : !llvm.ptr"
        );
    }
    let side_ptr = |out: &mut String, side: &str, n: usize| -> String {
        if n == 0 {
            "%null".into()
        } else {
            let _ = writeln!(
                out,
                "    %{side}s = llvm.mlir.addressof @kiln_{side}s : !llvm.ptr"
            );
            format!("%{side}s")
        }
    };
    let ins = side_ptr(&mut out, "input", d.inputs.len());
    let outs = side_ptr(&mut out, "output", d.outputs.len());
    let _ = writeln!(
        out,
        "    %name = llvm.mlir.addressof @kiln_model_name : !llvm.ptr"
    );
    let _ = writeln!(
        out,
        "    %producer = llvm.mlir.addressof @kiln_producer : !llvm.ptr"
    );
    let weights = if matches!(d.weights, WeightsRef::Embedded { .. }) {
        let _ = writeln!(
            out,
            "    %weights = llvm.mlir.addressof @{WEIGHTS_SYMBOL} : !llvm.ptr"
        );
        "%weights"
    } else {
        "%null"
    };
    let wfile = if weights_file.is_some() {
        let _ = writeln!(
            out,
            "    %wfile = llvm.mlir.addressof @kiln_weights_file : !llvm.ptr"
        );
        "%wfile"
    } else {
        "%null"
    };
    let _ = writeln!(
        out,
        "    %wsize = llvm.mlir.constant({weights_size} : i64) : i64"
    );
    // The runtime gives each run a 64-byte aligned workspace of this size
    // (NULL when 0): the arena of a planned module.
    let workspace = d.workspace.unwrap_or(0).next_multiple_of(64);
    let _ = writeln!(
        out,
        "    %wksize = llvm.mlir.constant({workspace} : i64) : i64"
    );
    let _ = writeln!(
        out,
        "    %entry = llvm.mlir.addressof @kiln_entry : !llvm.ptr"
    );
    let fields = [
        "%abi",
        "%nin",
        "%nout",
        "%flags",
        &ins,
        &outs,
        "%name",
        "%producer",
        weights,
        "%wsize",
        wfile,
        "%wksize",
        "%entry",
        "%t_arch",
        "%t_cpu",
        "%t_features",
    ];
    let mut last = "%a0".to_owned();
    for (f, value) in fields.iter().enumerate() {
        let next = format!("%a{}", f + 1);
        let _ = writeln!(
            out,
            "    {next} = llvm.insertvalue {value}, {last}[{f}] : {ARTIFACT_TY}"
        );
        last = next;
    }
    let _ = writeln!(out, "    llvm.return {last} : {ARTIFACT_TY}\n  }}");
    let _ = writeln!(
        out,
        "  llvm.func @{}() -> !llvm.ptr {{\n    %d = llvm.mlir.addressof @kiln_descriptor : !llvm.ptr\n    llvm.return %d : !llvm.ptr\n  }}",
        d.symbol
    );
    // The OpenMP entry points the kernel object calls (hidden, defined here).
    out.push_str(parallel::SHIM_MLIR);
    out.push_str("}\n");
    out
}

/// Escapes a string for a C string literal (octal escapes for every byte
/// outside printable ASCII, so the header is plain ASCII).
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for &b in s.as_bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            // `?` escaped against trigraphs.
            b'?' => out.push_str("\\?"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// Makes an identifier fragment for a macro name (upper case, `_` for
/// everything else).
fn macro_fragment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The generated `model.h`: includes `kiln.h`, declares the descriptor
/// function, and describes every input and output with comments and macros
/// (`<PREFIX>_INPUT_0_SHAPE`, ...; the prefix is `KILN_MODEL`, or the
/// upper-case `--name`, so several models' headers fit in one file).
pub fn model_header(d: &Descriptor<'_>, header_name: &str) -> String {
    let guard = format!("KILN_MODEL_{}_", macro_fragment(header_name));
    let m = d.macro_prefix;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* Generated by {} for model {}. Do not edit. */",
        d.producer.replace("*/", "* /"),
        c_string(d.model_name).replace("*/", "* /")
    );
    let _ = writeln!(
        h,
        "#ifndef {guard}\n#define {guard}\n\n#include \"kiln.h\"\n"
    );
    let _ = writeln!(h, "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n");
    let _ = writeln!(
        h,
        "/* The artifact descriptor; pass it to kiln_model_from_artifact() when\n * this model is linked into the program. */\nconst kiln_artifact_v1* {}(void);\n",
        d.symbol
    );
    let _ = writeln!(h, "#define {m}_NAME {}", c_string(d.model_name));
    let _ = writeln!(h, "#define {m}_NUM_INPUTS {}u", d.inputs.len());
    let _ = writeln!(h, "#define {m}_NUM_OUTPUTS {}u", d.outputs.len());
    let _ = writeln!(
        h,
        "#define {m}_TARGET_CPU {}",
        c_string(&format!("{}:{}", d.target.0, d.target.1))
    );
    match &d.weights {
        WeightsRef::External { file, .. } => {
            let _ = writeln!(h, "#define {m}_WEIGHTS_FILE {}", c_string(file));
        }
        WeightsRef::Embedded { .. } | WeightsRef::None => {
            let _ = writeln!(h, "/* Weights are embedded (no weights file). */");
        }
    }
    for (side, sigs) in [("INPUT", d.inputs), ("OUTPUT", d.outputs)] {
        for (i, s) in sigs.iter().enumerate() {
            let dims: Vec<String> = s.shape.iter().map(u64::to_string).collect();
            let p = format!("{m}_{side}_{i}");
            let _ = writeln!(
                h,
                "\n/* {} {i}: {} {} [{}] */",
                side.to_lowercase(),
                c_string(&s.name).replace("*/", "* /"),
                s.dtype.name(),
                dims.join(", ")
            );
            let _ = writeln!(h, "#define {p}_NAME {}", c_string(&s.name));
            let _ = writeln!(
                h,
                "#define {p}_DTYPE KILN_DTYPE_{}",
                macro_fragment(s.dtype.name())
            );
            let _ = writeln!(h, "#define {p}_RANK {}u", s.shape.len());
            let _ = writeln!(
                h,
                "#define {p}_NUMEL {}ull",
                s.shape.iter().product::<u64>()
            );
            if !s.shape.is_empty() {
                let _ = writeln!(h, "#define {p}_SHAPE {{{}}}", dims.join(", "));
            }
        }
    }
    let _ = writeln!(
        h,
        "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */"
    );
    h
}
