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

use kiln_codegen::gpu::DeviceCode;
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
    /// For a GPU artifact, the CPU of its host code.
    pub target: (&'a str, &'a str, &'a str),
    /// A GPU artifact's device code: its images are defined by the images
    /// object ([`device_image_symbol`]), the rest is a device record here.
    pub device: Option<&'a DeviceCode>,
}

/// The symbol of device image `i` of a GPU artifact (defined by the images
/// object, read-only data).
pub fn device_image_symbol(i: usize) -> String {
    format!("kiln_device_image{i}")
}

/// `kiln_artifact_v1.flags` bit: a `kiln_artifact_target` follows the descriptor.
pub const FLAG_TARGET: u32 = 1;
/// `kiln_artifact_v1.flags` bit: a `kiln_artifact_device` follows the target.
pub const FLAG_DEVICE: u32 = 2;

const DESC_TY: &str = "!llvm.struct<(ptr, i32, i32, ptr)>";
/// The descriptor, then the target record.
const ARTIFACT_FIELDS: &str =
    "i32, i32, i32, i32, ptr, ptr, ptr, ptr, ptr, i64, ptr, i64, ptr, ptr, ptr, ptr";
/// `kiln_artifact_device` (api, images, kernels, chip).
const DEVICE_FIELDS: &str = "i32, i32, ptr, i32, i32, ptr, ptr";
/// `kiln_device_image`.
const IMAGE_TY: &str = "!llvm.struct<(i32, i32, ptr, ptr, i64)>";
/// `kiln_device_kernel`.
const KERNEL_TY: &str = "!llvm.struct<(ptr, i32, !llvm.array<3 x i32>, i32, i32, ptr)>";

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
    let artifact_ty = match d.device {
        None => format!("!llvm.struct<({ARTIFACT_FIELDS})>"),
        Some(_) => format!("!llvm.struct<({ARTIFACT_FIELDS}, {DEVICE_FIELDS})>"),
    };
    let artifact_ty = artifact_ty.as_str();
    let n_args = d.inputs.len() + d.outputs.len() + 1 + usize::from(d.workspace.is_some());
    let ptrs = vec!["!llvm.ptr"; n_args].join(", ");
    let _ = writeln!(out, "  llvm.func @{MAIN_SYMBOL}({ptrs})");

    // kiln_entry(ctx, inputs, outputs, weights, workspace) -> i32
    let _ = writeln!(
        out,
        "  llvm.func internal @kiln_entry(%ctx: !llvm.ptr, %ins: !llvm.ptr, %outs: !llvm.ptr, %w: !llvm.ptr, %ws: !llvm.ptr) -> i32 {{"
    );
    out.push_str(&parallel::enter_ops("%ctx"));
    if d.device.is_some() {
        out.push_str(&kiln_codegen::gpu::shim::enter_ops("%ctx"));
    }
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
    if d.device.is_some() {
        // The run's status: 0, or the first device failure.
        out.push_str(&kiln_codegen::gpu::shim::leave_ops());
        out.push_str(&parallel::leave_ops());
        let _ = writeln!(out, "    llvm.return %kiln_gpu_status : i32\n  }}");
    } else {
        out.push_str(&parallel::leave_ops());
        let _ = writeln!(out, "    %ok = llvm.mlir.constant(0 : i32) : i32");
        let _ = writeln!(out, "    llvm.return %ok : i32\n  }}");
    }

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

    if let Some(device) = d.device {
        device_tables(&mut out, device);
    }
    let _ = writeln!(
        out,
        "  llvm.mlir.global internal constant @kiln_descriptor() {{addr_space = 0 : i32}} : {artifact_ty} {{"
    );
    let _ = writeln!(out, "    %a0 = llvm.mlir.undef : {artifact_ty}");
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
    let flags = if d.device.is_some() {
        FLAG_TARGET | FLAG_DEVICE
    } else {
        FLAG_TARGET
    };
    let _ = writeln!(out, "    %flags = llvm.mlir.constant({flags} : i32) : i32");
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
    let mut fields: Vec<String> = [
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(device) = d.device {
        fields.extend(device_record_fields(&mut out, device));
    }
    let mut last = "%a0".to_owned();
    for (f, value) in fields.iter().enumerate() {
        let next = format!("%a{}", f + 1);
        let _ = writeln!(
            out,
            "    {next} = llvm.insertvalue {value}, {last}[{f}] : {artifact_ty}"
        );
        last = next;
    }
    let _ = writeln!(out, "    llvm.return {last} : {artifact_ty}\n  }}");
    let _ = writeln!(
        out,
        "  llvm.func @{}() -> !llvm.ptr {{\n    %d = llvm.mlir.addressof @kiln_descriptor : !llvm.ptr\n    llvm.return %d : !llvm.ptr\n  }}",
        d.symbol
    );
    // The shims are objects of their own ([`shim_modules`]); the entry calls into them.
    out.push_str(parallel::ENTRY_DECLS);
    if d.device.is_some() {
        out.push_str(kiln_codegen::gpu::shim::ENTRY_DECLS);
    }
    out.push_str("}\n");
    out
}

/// The runtime shims an artifact links, as `(name, MLIR module)`: the OpenMP entry points and
/// the kernels' pool (every artifact), and the GPU launch and allocation entry points (GPU
/// artifacts). They do not depend on the model, so the driver compiles each once per target and
/// optimisation level and caches the object (see `kernel_cache::shim_object`).
pub fn shim_modules(gpu: bool) -> Vec<(&'static str, String)> {
    let mut shims = vec![("parallel-shim", parallel::shim_module())];
    if gpu {
        shims.push(("gpu-shim", kiln_codegen::gpu::shim::shim_module()));
    }
    shims
}

/// The device record's image and kernel tables (globals of the glue module).
fn device_tables(out: &mut String, device: &DeviceCode) {
    for (i, image) in device.images.iter().enumerate() {
        let _ = writeln!(
            out,
            "  llvm.mlir.global external constant @{}() {{addr_space = 0 : i32}} : !llvm.array<{} x i8>",
            device_image_symbol(i),
            image.data.len().max(1)
        );
        string_global(out, &format!("kiln_image_chip{i}"), &image.chip);
    }
    for (k, kernel) in device.kernels.iter().enumerate() {
        string_global(out, &format!("kiln_kernel_name{k}"), &kernel.name);
        let codes: Vec<u8> = kernel.args.iter().map(|a| a.abi_code()).collect();
        if !codes.is_empty() {
            let _ = writeln!(
                out,
                "  llvm.mlir.global internal constant @kiln_kernel_args{k}(\"{}\") {{addr_space = 0 : i32}} : !llvm.array<{} x i8>",
                mlir_bytes(&codes),
                codes.len()
            );
        }
    }
    string_global(out, "kiln_device_chip", &device.chip);
    if !device.images.is_empty() {
        let arr = format!("!llvm.array<{} x {IMAGE_TY}>", device.images.len());
        let _ = writeln!(
            out,
            "  llvm.mlir.global internal constant @kiln_device_images() {{addr_space = 0 : i32}} : {arr} {{"
        );
        let _ = writeln!(out, "    %t = llvm.mlir.undef : {arr}");
        let mut last = "%t".to_owned();
        for (i, image) in device.images.iter().enumerate() {
            let _ = writeln!(
                out,
                "    %f{i} = llvm.mlir.constant({} : i32) : i32\n    %g{i} = llvm.mlir.constant({} : i32) : i32\n    %c{i} = llvm.mlir.addressof @kiln_image_chip{i} : !llvm.ptr\n    %d{i} = llvm.mlir.addressof @{} : !llvm.ptr\n    %s{i} = llvm.mlir.constant({} : i64) : i64",
                image.format.abi_code(),
                image.group,
                device_image_symbol(i),
                image.data.len()
            );
            for (f, v) in ["f", "g", "c", "d", "s"].iter().enumerate() {
                let next = format!("%t{i}_{f}");
                let _ = writeln!(
                    out,
                    "    {next} = llvm.insertvalue %{v}{i}, {last}[{i}, {f}] : {arr}"
                );
                last = next;
            }
        }
        let _ = writeln!(out, "    llvm.return {last} : {arr}\n  }}");
    }
    if !device.kernels.is_empty() {
        let arr = format!("!llvm.array<{} x {KERNEL_TY}>", device.kernels.len());
        let _ = writeln!(
            out,
            "  llvm.mlir.global internal constant @kiln_device_kernels() {{addr_space = 0 : i32}} : {arr} {{"
        );
        let _ = writeln!(out, "    %t = llvm.mlir.undef : {arr}\n    %null = llvm.mlir.zero : !llvm.ptr\n    %zero = llvm.mlir.constant(0 : i32) : i32");
        let mut last = "%t".to_owned();
        for (k, kernel) in device.kernels.iter().enumerate() {
            let group = kernel.group;
            let _ = writeln!(
                out,
                "    %n{k} = llvm.mlir.addressof @kiln_kernel_name{k} : !llvm.ptr\n    %g{k} = llvm.mlir.constant({group} : i32) : i32\n    %na{k} = llvm.mlir.constant({} : i32) : i32",
                kernel.args.len()
            );
            let args = if kernel.args.is_empty() {
                "%null".to_owned()
            } else {
                let _ = writeln!(
                    out,
                    "    %a{k} = llvm.mlir.addressof @kiln_kernel_args{k} : !llvm.ptr"
                );
                format!("%a{k}")
            };
            let mut fields: Vec<(String, String)> = vec![
                (format!("%n{k}"), "0".into()),
                (format!("%g{k}"), "1".into()),
            ];
            for (d, b) in kernel.block.iter().enumerate() {
                let _ = writeln!(out, "    %b{k}_{d} = llvm.mlir.constant({b} : i32) : i32");
                fields.push((format!("%b{k}_{d}"), format!("2, {d}")));
            }
            fields.push((format!("%na{k}"), "3".into()));
            fields.push(("%zero".into(), "4".into()));
            fields.push((args, "5".into()));
            for (f, (value, at)) in fields.iter().enumerate() {
                let next = format!("%t{k}_{f}");
                let _ = writeln!(
                    out,
                    "    {next} = llvm.insertvalue {value}, {last}[{k}, {at}] : {arr}"
                );
                last = next;
            }
        }
        let _ = writeln!(out, "    llvm.return {last} : {arr}\n  }}");
    }
}

/// Emits the values of the device record's fields (inside the descriptor's
/// initializer) and returns their SSA names, in `kiln_artifact_device` order.
fn device_record_fields(out: &mut String, device: &DeviceCode) -> Vec<String> {
    let _ = writeln!(
        out,
        "    %dev_api = llvm.mlir.constant({} : i32) : i32\n    %dev_nimg = llvm.mlir.constant({} : i32) : i32\n    %dev_nker = llvm.mlir.constant({} : i32) : i32\n    %dev_zero = llvm.mlir.constant(0 : i32) : i32\n    %dev_chip = llvm.mlir.addressof @kiln_device_chip : !llvm.ptr",
        device.api.abi_code(),
        device.images.len(),
        device.kernels.len()
    );
    let images = if device.images.is_empty() {
        "%null".to_owned()
    } else {
        let _ = writeln!(
            out,
            "    %dev_images = llvm.mlir.addressof @kiln_device_images : !llvm.ptr"
        );
        "%dev_images".to_owned()
    };
    let kernels = if device.kernels.is_empty() {
        "%null".to_owned()
    } else {
        let _ = writeln!(
            out,
            "    %dev_kernels = llvm.mlir.addressof @kiln_device_kernels : !llvm.ptr"
        );
        "%dev_kernels".to_owned()
    };
    vec![
        "%dev_api".into(),
        "%dev_nimg".into(),
        images,
        "%dev_nker".into(),
        "%dev_zero".into(),
        kernels,
        "%dev_chip".into(),
    ]
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
