//! The GPU lowering: one pipeline from the planned lowering's MLIR to device code and the
//! host code that launches it, shared by every GPU target.
//!
//! Input: the module `lower::lower_graph` produces for a graph with a memory plan and no CPU
//! kernel library (every node a tensor island writing into its home: an input, an output, a
//! weight or the arena). Stages, all of them MLIR passes ([`shared_passes`], then the target's
//! device passes, then [`HOST_PIPELINE`]):
//!
//! 1. bufferization, as on the CPU (temporaries become `memref.alloc`, which the host part
//!    turns into device allocations of the run);
//! 2. contractions of f32 values (convolutions included) with enough rows and columns become
//!    tiled kernels (tiles of A and B staged in workgroup memory, a block of outputs per
//!    thread: `kiln-gpu-tile-contractions`, shaped by [`GpuConfig::contraction_tile`]); reductions
//!    along their inputs' innermost dimension become one block per result with a tree in
//!    workgroup memory (`kiln-gpu-reduction-trees`); every other
//!    linalg op becomes a parallel loop nest (`memref.copy` first becomes `linalg.copy`),
//!    and every outermost parallel loop one kernel: its iteration space linearized over a 1-D
//!    grid of `block_size` threads ([`GpuConfig`]); reductions stay sequential loops inside
//!    each thread (the lowering splits those of more than `GpuConfig::split_reductions_above`
//!    elements per result into partial results over chunks, then their combination, so no
//!    thread walks a whole large tensor). Host code that would still read or write memory (0-d values, loops over
//!    scalars) runs as a one-thread kernel, so the host part only computes addresses and
//!    launches: every buffer it sees (inputs, outputs, weights, workspace, temporaries) lives
//!    on the device;
//! 3. kernel outlining into one `gpu.module`; each launch becomes a call of
//!    `kiln_gpu_launch(kernel, grid x, y, z, args)` with one 64-bit slot per argument, and the
//!    kernel table (name, block size, argument kinds) is recorded ([`KernelInfo`]);
//! 4. the target's device passes (NVVM → PTX, ROCDL → HSACO, SPIR-V, SPIR-V → MSL) and its
//!    image step ([`crate::targets::gpu::GpuSpec`]);
//! 5. the host function to the LLVM dialect (allocation through `_mlir_memref_to_llvm_alloc`,
//!    which the artifact's GPU shim implements on the runtime's device API), then an object for
//!    [`Target::host_target`].
//!
//! Invariants: what is GPU-specific lives here and in the GPU target modules, never in the
//! CPU files; the passes Kiln adds to MLIR are in `passes.cpp` (registered with every context,
//! so every pipeline string parses); the artifact's host code never dereferences a device
//! address (on Vulkan and Metal a device address is an opaque handle).

pub mod shim;
pub mod tools;

use crate::error::{CodegenError, Result};
use crate::llvm::{self, LlvmOutput, OptLevel};
use crate::mlir;
use crate::targets::gpu::GpuSpec;
use crate::targets::{DeviceApi, DeviceImage, DeviceTools, GpuConfig, Target};
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationLike;
use std::ffi::{c_char, c_void};

extern "C" {
    fn kiln_gpu_register_passes();
    fn kiln_gpu_take_constants(
        module: mlir_sys::MlirOperation,
        sink: extern "C" fn(*mut c_void, *const c_char, *const c_char, usize),
        data: *mut c_void,
    ) -> i32;
    fn kiln_gpu_take_binaries(
        module: mlir_sys::MlirOperation,
        sink: extern "C" fn(*mut c_void, *const c_char, *const c_char, usize),
        data: *mut c_void,
    ) -> i32;
}

/// Registers Kiln's GPU passes with MLIR (idempotent; called for every new context).
pub(crate) fn register_passes() {
    // SAFETY: registers passes in MLIR's global registry; guarded inside against repeats.
    unsafe { kiln_gpu_register_passes() }
}

/// The symbol the host code calls for every kernel launch (defined by the GPU shim).
pub const LAUNCH_SYMBOL: &str = "kiln_gpu_launch";

/// Bufferization, mapping, outlining and the launch ABI, for a chip's [`GpuConfig`].
pub fn shared_passes(c: &GpuConfig) -> String {
    // Every grid dimension stays within 65535 blocks (CUDA's and Vulkan's y and z limit).
    let tile = c
        .contraction_tile
        .map(|t| {
            format!(
                "kiln-gpu-tile-contractions{{threads={} micro={} tile-k={} min-extent={} max-grid=65535}}, ",
                t.threads, t.micro, t.k, t.min_extent
            )
        })
        .unwrap_or_default();
    let trees = c
        .reduction_tree_min_extent
        .map(|min| {
            format!(
                "kiln-gpu-reduction-trees{{block-size={} min-extent={min} max-grid=65535}}, ",
                c.block_size
            )
        })
        .unwrap_or_default();
    format!(
        "eliminate-empty-tensors, \
         one-shot-bufferize{{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}}, \
         ownership-based-buffer-deallocation, canonicalize, buffer-deallocation-simplification, \
         bufferization-lower-deallocations, canonicalize, \
         kiln-gpu-constants, {tile}{trees}kiln-gpu-parallel-first, kiln-gpu-copies, func.func(convert-linalg-to-parallel-loops), \
         kiln-gpu-map-loops{{block-size={} max-grid={}}}, \
         scf-parallel-for-to-nested-fors, kiln-gpu-serial, \
         lower-affine, canonicalize, cse, \
         gpu-launch-sink-index-computations, gpu-kernel-outlining, kiln-gpu-merge-modules, \
         canonicalize, kiln-gpu-launch-abi{{index-bytes={}}}",
        c.block_size, c.max_grid, c.index_bytes
    )
}

/// The host function's lowering to the LLVM dialect (after the device code was taken out).
pub const HOST_PIPELINE: &str = "builtin.module(expand-strided-metadata, lower-affine, \
     finalize-memref-to-llvm{use-generic-functions=1}, convert-scf-to-cf, \
     convert-func-to-llvm{use-bare-ptr-memref-call-conv=1}, convert-arith-to-llvm, \
     convert-cf-to-llvm, convert-index-to-llvm, reconcile-unrealized-casts)";

/// How far the device passes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStage {
    /// Device code in its MLIR dialect (NVVM, ROCDL, SPIR-V), before serialization.
    Dialect,
    /// Device assembly (PTX, AMDGPU assembly); SPIR-V has none and stays binary.
    Assembly,
    /// The binary the runtime loads.
    Binary,
}

/// The whole pipeline of a GPU target as one string (`--print-pipeline`, tests).
pub(crate) fn whole_pipeline(
    c: &GpuConfig,
    spec: &GpuSpec,
    tools: &DeviceTools,
    asm: bool,
) -> Result<String> {
    Ok(format!(
        "builtin.module({}, {})",
        shared_passes(c),
        (spec.device_passes)(c, tools, asm)?
    ))
}

/// The device passes of a GPU target (as `--print-pipeline` shows them).
pub fn device_passes_text(target: &Target) -> Result<String> {
    let c = target
        .gpu_config()
        .ok_or_else(|| internal("a GPU target without a GPU configuration"))?;
    device_pipeline(target, &c, &DeviceTools::default(), DeviceStage::Binary)
}

/// The passes after the shared ones for `stage`.
fn device_pipeline(
    target: &Target,
    c: &GpuConfig,
    tools: &DeviceTools,
    stage: DeviceStage,
) -> Result<String> {
    let spec = gpu_spec(target)?;
    let passes = (spec.device_passes)(c, tools, stage != DeviceStage::Binary)?;
    let passes = match stage {
        DeviceStage::Dialect => passes
            .rsplit_once(", gpu-module-to-binary")
            .map(|(before, _)| before.to_owned())
            .ok_or_else(|| internal("the device passes do not end with gpu-module-to-binary"))?,
        _ => passes,
    };
    Ok(format!("builtin.module({passes})"))
}

fn gpu_spec(target: &Target) -> Result<&'static GpuSpec> {
    target
        .gpu_spec()
        .ok_or_else(|| CodegenError::UnsupportedTarget {
            operation: "the GPU lowering",
            target: target.to_string(),
        })
}

fn internal(message: &str) -> CodegenError {
    CodegenError::Gpu(format!("internal: {message}"))
}

/// The kind of one kernel argument slot: what the runtime passes to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A device address (a buffer).
    Address,
    /// An integer of this many bytes (the slot's low bytes).
    Int(u8),
    /// A float of this many bytes (the slot's low bytes hold its bits).
    Float(u8),
}

impl ArgKind {
    /// The code in `kiln_device_kernel.args` (`KILN_DEVICE_ARG_*` in `kiln.h`): the kind in
    /// the high nibble (1 address, 2 integer, 3 float), the byte size in the low one.
    pub fn abi_code(self) -> u8 {
        match self {
            ArgKind::Address => 0x18,
            ArgKind::Int(n) => 0x20 | n,
            ArgKind::Float(n) => 0x30 | n,
        }
    }
}

/// One kernel of the device code, in kernel-id order (the id `kiln_gpu_launch` receives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// The entry point's name in the device image.
    pub name: String,
    /// The image group holding it (0, or its own group where each kernel has its own image:
    /// Metal).
    pub group: u32,
    /// Threads per block (x, y, z).
    pub block: [u32; 3],
    /// Argument kinds, in order.
    pub args: Vec<ArgKind>,
}

/// The device part of an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCode {
    /// The driver API.
    pub api: DeviceApi,
    /// The chip.
    pub chip: String,
    /// The images (alternatives share a group).
    pub images: Vec<DeviceImage>,
    /// The kernels.
    pub kernels: Vec<KernelInfo>,
    /// Bytes appended to the weights blob (at its end, a multiple of 64 bytes): the constant
    /// tables of the lowering (resize weights, DFT twiddles, ...), which live on the device
    /// with the weights.
    pub weights_tail: Vec<u8>,
}

/// What [`compile`] returns.
#[derive(Debug)]
pub enum GpuOutput {
    /// Text: MLIR after a stage, device assembly, SPIR-V or MSL.
    Text(Vec<u8>),
    /// Host code (LLVM IR text, or an object for the host target) and the device code.
    Program {
        /// The host part.
        host: Vec<u8>,
        /// The device part.
        device: DeviceCode,
    },
}

/// Where [`compile`] stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuEmit {
    /// MLIR after the shared passes (outlined kernels, launch calls).
    Mlir,
    /// Device code as text: PTX, AMDGPU assembly, SPIR-V (MLIR `spirv` dialect), or MSL.
    DeviceText,
    /// The SPIR-V module as text (the `spirv` dialect), for Vulkan and Metal.
    Spirv,
    /// Host code as LLVM IR text, plus the device code.
    HostLlvm,
    /// Host code as an object file, plus the device code.
    HostObject,
}

/// Compiles the planned lowering's MLIR for a GPU target.
pub fn compile(
    mlir_text: &str,
    target: &Target,
    opt: OptLevel,
    tools: &DeviceTools,
    emit: GpuEmit,
) -> Result<GpuOutput> {
    let spec = gpu_spec(target)?;
    let c = target
        .gpu_config()
        .ok_or_else(|| internal("a GPU target without a GPU configuration"))?;
    target.validate()?;
    let context = mlir::create_context();
    let mut module = mlir::parse_module(&context, mlir_text)?;
    mlir::run_pipeline(
        &context,
        &mut module,
        &format!("builtin.module({})", shared_passes(&c)),
    )?;
    if emit == GpuEmit::Mlir {
        return Ok(GpuOutput::Text(
            module.as_operation().to_string().into_bytes(),
        ));
    }
    let weights_tail = take_constants(&module);
    let mut kernels = kernel_table(&module)?;
    if spec.image_per_kernel {
        for (k, kernel) in kernels.iter_mut().enumerate() {
            kernel.group = k as u32;
        }
    }
    let names: Vec<String> = kernels.iter().map(|k| k.name.clone()).collect();
    let text_stage = match (emit, c.api) {
        (GpuEmit::Spirv, DeviceApi::Vulkan | DeviceApi::Metal) => Some(DeviceStage::Dialect),
        (GpuEmit::Spirv, _) => {
            return Err(CodegenError::UnsupportedTarget {
                operation: "SPIR-V output (--emit=spirv is for vulkan and metal)",
                target: target.to_string(),
            })
        }
        (GpuEmit::DeviceText, DeviceApi::Vulkan) => Some(DeviceStage::Dialect),
        (GpuEmit::DeviceText, DeviceApi::Cuda | DeviceApi::Hip) => Some(DeviceStage::Assembly),
        _ => None,
    };
    if let Some(stage) = text_stage {
        mlir::run_pipeline(
            &context,
            &mut module,
            &device_pipeline(target, &c, tools, stage)?,
        )?;
        if stage == DeviceStage::Dialect {
            return Ok(GpuOutput::Text(device_dialect_text(&module).into_bytes()));
        }
        let objects = take_binaries(&module)?;
        return Ok(GpuOutput::Text(objects));
    }
    // AMD code objects are linked by ld.lld, found by MLIR in a ROCm-like folder.
    let mut tools = tools.clone();
    let _toolkit = match (c.api, &tools.ld_lld) {
        (DeviceApi::Hip, Some(lld)) => {
            let dir = tools::scratch_dir()?;
            tools::lld_toolkit(lld, dir.path())?;
            tools.lld_toolkit = Some(dir.path().to_owned());
            Some(dir)
        }
        (DeviceApi::Hip, None) => {
            return Err(CodegenError::UnsupportedTarget {
                operation: "AMD code objects without ld.lld",
                target: target.to_string(),
            })
        }
        _ => None,
    };
    let tools = &tools;
    mlir::run_pipeline(
        &context,
        &mut module,
        &device_pipeline(target, &c, tools, DeviceStage::Binary)?,
    )?;
    let object = take_binaries(&module)?;
    // A model without kernels (only views of its inputs) has no device image.
    let images = if kernels.is_empty() {
        Vec::new()
    } else {
        (spec.images)(object, &c, tools, &names)?
    };
    if emit == GpuEmit::DeviceText {
        // Metal: the MSL of every kernel.
        let mut text = Vec::new();
        for (image, name) in images.iter().zip(&names) {
            text.extend_from_slice(format!("// kernel {name}\n").as_bytes());
            text.extend(image.data.iter().copied().filter(|&b| b != 0));
            text.push(b'\n');
        }
        return Ok(GpuOutput::Text(text));
    }
    mlir::run_pipeline(&context, &mut module, HOST_PIPELINE)?;
    let host = target.host_target()?;
    let output = if emit == GpuEmit::HostLlvm {
        LlvmOutput::Ir
    } else {
        LlvmOutput::Obj
    };
    let llvm_context = inkwell::context::Context::create();
    let llvm_module = mlir::translate_to_llvm(&context, &module, &llvm_context)?;
    let machine = llvm::target_machine(&host, opt)?;
    llvm::prepare_module(&llvm_module, &machine)?;
    llvm::optimize(&llvm_module, &machine, opt)?;
    let host_code = llvm::emit_module(&llvm_module, &machine, output)?;
    Ok(GpuOutput::Program {
        host: host_code,
        device: DeviceCode {
            api: c.api,
            chip: c.chip.clone(),
            images,
            kernels,
            weights_tail,
        },
    })
}

/// The device dialect ops (`gpu.module` contents) as text.
fn device_dialect_text(module: &melior::ir::Module) -> String {
    let mut out = String::new();
    let body = module.body();
    let mut next = body.first_operation();
    while let Some(op) = next {
        if op.name().as_string_ref().as_str() == Ok("gpu.module") {
            out.push_str(&op.to_string());
            out.push('\n');
        }
        next = op.next_in_block();
    }
    out
}

/// Reads the kernel table `kiln-gpu-launch-abi` recorded (`kiln.kernels`, one line per
/// kernel: module, name, block x y z, argument kinds).
fn kernel_table(module: &melior::ir::Module) -> Result<Vec<KernelInfo>> {
    let attr = module
        .as_operation()
        .attribute("kiln.kernels")
        .map_err(|_| internal("no kernel table"))?;
    let text = melior::ir::attribute::StringAttribute::try_from(attr)
        .map_err(|_| internal("the kernel table is not a string"))?
        .value()
        .to_owned();
    let mut lines = text.lines();
    if lines.next() != Some("kiln-kernels") {
        return Err(internal("kernel table without its header"));
    }
    lines
        .map(|line| {
            let mut words = line.split_whitespace();
            let _module = words.next();
            let name = words
                .next()
                .ok_or_else(|| internal("kernel table: no name"))?;
            let mut block = [0u32; 3];
            for b in &mut block {
                *b = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| internal("kernel table: bad block size"))?;
            }
            let args = words
                .map(|w| {
                    let n: u8 = w[1..]
                        .parse()
                        .map_err(|_| internal("kernel table: bad argument size"))?;
                    match &w[..1] {
                        "p" => Ok(ArgKind::Address),
                        "i" => Ok(ArgKind::Int(n)),
                        "f" => Ok(ArgKind::Float(n)),
                        _ => Err(internal("kernel table: bad argument kind")),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(KernelInfo {
                name: name.to_owned(),
                group: 0,
                block,
                args,
            })
        })
        .collect()
}

extern "C" fn collect_binary(
    data: *mut c_void,
    _name: *const c_char,
    bytes: *const c_char,
    len: usize,
) {
    // SAFETY: `data` is the `Vec<Vec<u8>>` passed by `take_binaries`; `bytes` holds `len`
    // bytes for the duration of the call (and may be null when `len` is 0).
    unsafe {
        let out = &mut *data.cast::<Vec<Vec<u8>>>();
        if len == 0 || bytes.is_null() {
            out.push(Vec::new());
        } else {
            out.push(std::slice::from_raw_parts(bytes.cast::<u8>(), len).to_vec());
        }
    }
}

/// Takes the constants `kiln-gpu-constants` moved into the weights (empty when none).
fn take_constants(module: &melior::ir::Module) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    // SAFETY: a live module; the callback only appends to `out`.
    unsafe {
        kiln_gpu_take_constants(
            module.as_operation().to_raw(),
            collect_binary,
            (&mut out as *mut Vec<Vec<u8>>).cast(),
        )
    };
    out.pop().unwrap_or_default()
}

/// Takes the object of the one `gpu.binary` out of the module (erasing it).
fn take_binaries(module: &melior::ir::Module) -> Result<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    // SAFETY: a live module; the callback only appends to `out`.
    let n = unsafe {
        kiln_gpu_take_binaries(
            module.as_operation().to_raw(),
            collect_binary,
            (&mut out as *mut Vec<Vec<u8>>).cast(),
        )
    };
    match (n, out.len()) {
        (0, 0) => Ok(Vec::new()),
        (1, 1) => Ok(out.pop().unwrap_or_default()),
        _ => Err(internal("expected one device binary")),
    }
}
