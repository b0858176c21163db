//! Nodes lowered as calls into the kernel library (`crate::kernels`): the
//! planned lowering asks [`Kernels::lower`] first and emits a tensor island
//! only when no kernel applies.
//!
//! A call stores the kernel's argument block (`kernels::abi`) into one
//! stack array of `i64` slots shared by every call of the function, then
//! calls `kiln_k_<kernel>_<variant>(slots)`. Pointers are the address of a
//! value's home (base buffer + byte offset); scratch is a region of the
//! workspace past the memory plan's arena, shared by all calls (a call uses
//! it only while it runs).
//!
//! What takes a kernel (f32, and the 8-bit integer ops below; everything
//! else is an island):
//! - `nn.matmul` (2-D, or batched with whole or broadcast batches; a 2-D
//!   weight folds the batch into rows), `nn.gemm` (alpha, beta 0 or 1);
//!   B pre-packed when it is an `nn.unpack` of a `gemm_b` constant with the
//!   variant's NR, else packed at run time into scratch;
//! - `nn.conv` in NHWC with `conv_nhwc` (or depthwise `dwconv_nhwc`) packed
//!   weights, 2-D;
//! - `nn.fused {kind = "epilogue"}` whose body is one of those followed by a
//!   chain of epilogue ops (bias, activations, scale, residual);
//! - `nn.softmax`/`nn.log_softmax` over the last axis, `nn.layer_norm` /
//!   `nn.rms_norm` over trailing dims, NHWC pools, `nn.attention` without a
//!   KV cache, and elementwise chains (`nn.fused {kind = "elementwise"}` or
//!   one transcendental op) through the elementwise executor.
//! - `nn.concat`, `nn.split` and `nn.transpose` as strided box copies
//!   (`copy`: one call per concat operand or split result);
//! - `quant.matmul_integer` (`igemm`, or `igemmv` where the target has VNNI,
//!   reading `int8_gemm_b` weights packed at compile time), alone (int32) or
//!   heading a fused epilogue that starts with its cast to f32;
//!   `nn.reduce_max`/`nn.reduce_min` of a whole f32 tensor (`rminmax`) and
//!   per-tensor `quant.quantize_linear` to u8/i8 (`quantize`): what
//!   DynamicQuantizeLinear composes into;
//! - `quant.conv_integer` in NCHW (`iconv`/`iconvv`: the int8 product over
//!   im2col panels gathered while packing), int32 or requantized to bytes.

use super::ctx::{Builder, Res};
use crate::kernels::abi::{
    self, AttentionArgs, BFormat, Binary, ConvArgs, ConvQuant, CopyArgs, DwConvArgs, EltwiseArgs,
    EpiOp, Epilogue, GemmArgs, GlobalPoolArgs, IGemmArgs, Int8Operand, KernelArgs, Matrix, Nhwc,
    NormArgs, Operand, PoolArgs, PoolKind, QGemmArgs, QuantizeArgs, RMinMaxArgs, Slot, SoftmaxArgs,
    Strided4, Unary, Window,
};
use crate::kernels::{Kernel, Variant};
use kiln_ir::ops::infer::InferCtx;
use kiln_ir::ops::layout::{unpack_shape, DataLayout, PackLayout, Packing};
use kiln_ir::ops::GeluApprox;
use kiln_ir::plan::Home;
use kiln_ir::{Attr, DType, Def, Graph, Node, OpKind, ValueId};
use std::collections::{BTreeSet, HashMap};

/// Placeholder for the slot count of the shared argument array.
pub(super) const SLOTS: &str = "@KERNEL_SLOTS@";

/// Kernel-call state of one planned function.
pub(super) struct Kernels {
    /// The register budget the kernels are called in.
    pub variant: Variant,
    /// Symbols called.
    pub symbols: BTreeSet<String>,
    /// Largest argument block.
    pub max_slots: usize,
    /// Largest scratch any call needs (bytes).
    pub scratch: u64,
    /// Byte offset of the scratch region in the workspace.
    pub scratch_offset: u64,
    /// The target has 8-bit dot products (`igemmv`; `CpuConfig::int8_dot`).
    pub int8_dot: bool,
    /// The target has `pmaddubsw` pairs (`igemmp` on `int8_gemm_b_narrow` weights;
    /// `CpuConfig::int8_pairs`).
    pub int8_pairs: bool,
    /// 3x3 stride-1 convolutions may run Winograd (`CpuConfig::winograd`).
    pub winograd: bool,
    /// `i64` address of each base buffer, once computed.
    bases: HashMap<String, String>,
}

/// What a kernel lowering needs of the planned function: homes of values
/// and the byte offsets of weights.
pub(super) trait Homes {
    /// The home of a value, once the value has been computed there (a
    /// deferred unpack is emitted on first use).
    fn home_of(&mut self, b: &mut Builder, v: ValueId) -> Res<Home>;
    /// The base buffer and byte offset of a home.
    fn base(&mut self, home: Home) -> Res<(String, u64)>;
    /// The memref type of a base buffer.
    fn base_type(&self, base: &str) -> String;
    /// Where `v` may be stored in place, as channels of a concat's result.
    fn concat_slot(&self, v: ValueId) -> Option<ConcatSlot>;
    /// Records that `v` was stored into its concat slot.
    fn wrote_in_place(&mut self, v: ValueId);
    /// Whether `v` was stored into its concat slot.
    fn was_written_in_place(&self, v: ValueId) -> bool;
}

/// Channels `[offset, offset + C)` of the NHWC result `concat`, which has
/// `channels` channels: where a concat operand may be stored in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConcatSlot {
    /// The concat's result.
    pub concat: ValueId,
    /// First channel of the operand in it.
    pub offset: i64,
    /// Channels of the concat's result.
    pub channels: i64,
}

/// The value a node operand comes from, seen through the graph.
struct Source<'g> {
    g: &'g Graph,
    defs: &'g HashMap<ValueId, Def>,
}

impl Source<'_> {
    fn node_of(&self, v: ValueId) -> Option<&Node> {
        match self.defs.get(&v)? {
            Def::Node { node, .. } => self.g.nodes.get(*node),
            Def::Input(_) => None,
        }
    }

    /// The packing and constant behind `v = nn.unpack(nn.constant)`.
    fn packed_constant(&self, v: ValueId) -> Option<(Packing, ValueId)> {
        let n = self.node_of(v)?;
        if n.op != OpKind::Unpack {
            return None;
        }
        let src = n.inputs.first().copied().flatten()?;
        self.g.constant_weight(self.defs, src)?;
        let tys = [Some(&self.g.value(src).ty)];
        let ctx = InferCtx::of_node(n, &tys);
        let p = Packing::read(&ctx, unpack_shape(&ctx).ok()?).ok()?;
        Some((p, src))
    }

    /// The packed constants behind a quantized weight's codes `w`, scales
    /// `s` and zero points `z` when `pack-weights` laid them out in panels
    /// of [`abi::QG_PANEL`] rows (codes and zero points `row_panels_k8`,
    /// scales `row_panels`).
    #[allow(clippy::type_complexity)]
    fn quant_panels(
        &self,
        w: ValueId,
        s: ValueId,
        z: Option<ValueId>,
    ) -> Option<(ValueId, ValueId, Option<ValueId>)> {
        let packed = |v: ValueId, layout: PackLayout| {
            self.packed_constant(v)
                .filter(|(p, _)| p.layout == layout && p.block as i64 == abi::QG_PANEL)
                .map(|(_, c)| c)
        };
        // 4-bit codes in steps of 8 (`row_panels_k8`), 8-bit ones a K index
        // at a time (`row_panels`).
        let codes = if self.g.value(w).ty.dtype.bits() == 8 {
            PackLayout::RowPanels
        } else {
            PackLayout::RowPanelsK8
        };
        match (
            packed(w, codes)?,
            packed(s, PackLayout::RowPanels)?,
            z.map(|z| packed(z, codes)),
        ) {
            (cw, cs, None) => Some((cw, cs, None)),
            (cw, cs, Some(Some(cz))) => Some((cw, cs, Some(cz))),
            _ => None,
        }
    }

    /// The f32 value of a one-element f32 constant.
    fn scalar_constant(&self, v: ValueId) -> Option<f32> {
        let w = self.g.weight(self.g.constant_weight(self.defs, v)?);
        let b = w.bytes()?.bytes();
        (w.ty.dtype == DType::F32 && b.len() == 4)
            .then(|| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn shape(g: &Graph, v: ValueId) -> Option<Vec<u64>> {
    g.value(v).ty.static_shape()
}

fn is_f32(g: &Graph, v: ValueId) -> bool {
    g.value(v).ty.dtype == DType::F32
}

fn i(v: u64) -> i64 {
    v as i64
}

/// A pointer slot value: an SSA name of an `i64` address.
type P = String;

impl Kernels {
    /// Kernel state for `variant`, scratch at `scratch_offset` in the workspace.
    pub fn new(variant: Variant, scratch_offset: u64) -> Kernels {
        Kernels {
            variant,
            symbols: BTreeSet::new(),
            max_slots: 0,
            scratch: 0,
            scratch_offset,
            int8_dot: false,
            int8_pairs: false,
            winograd: false,
            bases: HashMap::new(),
        }
    }

    /// The `i64` address of value `v`.
    fn ptr(&mut self, b: &mut Builder, h: &mut dyn Homes, v: ValueId) -> Res<P> {
        let home = h.home_of(b, v)?;
        self.addr(b, h, home)
    }

    fn addr(&mut self, b: &mut Builder, h: &mut dyn Homes, home: Home) -> Res<P> {
        let (base, offset) = h.base(home)?;
        let base_addr = match self.bases.get(&base) {
            Some(a) => a.clone(),
            None => {
                let ix = b.op(format!(
                    "memref.extract_aligned_pointer_as_index {base} : {} -> index",
                    h.base_type(&base)
                ));
                let a = b.op(format!("arith.index_cast {ix} : index to i64"));
                self.bases.insert(base.clone(), a.clone());
                a
            }
        };
        if offset == 0 {
            return Ok(base_addr);
        }
        let c = b.op(format!("arith.constant {offset} : i64"));
        Ok(b.op(format!("arith.addi {base_addr}, {c} : i64")))
    }

    fn scratch(&mut self, b: &mut Builder, h: &mut dyn Homes, bytes: u64) -> Res<P> {
        self.scratch = self.scratch.max(bytes.next_multiple_of(64));
        self.addr(b, h, Home::Arena(self.scratch_offset))
    }

    /// Stores `args` into the shared slot array and calls `kernel`.
    fn call(&mut self, b: &mut Builder, kernel: Kernel, args: &dyn KernelArgs<P>) {
        let slots = args.slots();
        let sym = kernel.symbol(self.variant);
        self.max_slots = self.max_slots.max(slots.len());
        for (k, s) in slots.iter().enumerate() {
            let val = match s {
                Slot::Int(v) => b.op(format!("arith.constant {v} : i64")),
                Slot::Float(f) => b.op(format!("arith.constant {} : i64", f.to_bits() as i64)),
                Slot::Ptr(p) => p.clone(),
            };
            let idx = b.index(k as u64);
            b.line(format!(
                "memref.store {val}, %kernel_args[{idx}] : memref<{SLOTS}xi64>"
            ));
        }
        b.line(format!(
            "func.call @{sym}(%kernel_args) : (memref<{SLOTS}xi64>) -> ()"
        ));
        self.symbols.insert(sym);
    }

    /// Lowers `node` as a kernel call if one applies; `Ok(false)` leaves it
    /// to a tensor island.
    pub fn lower(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        defs: &HashMap<ValueId, Def>,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let src = Source { g, defs };
        if node.op == OpKind::QMatMulInteger {
            let out = node.outputs[0];
            return self.igemm(b, h, &src, node, out, None);
        }
        if node.op == OpKind::QuantizeLinear {
            return self.quantize(b, h, g, node, a);
        }
        if node.op == OpKind::QConvInteger {
            return self.iconv(b, h, g, node, a);
        }
        if node.outputs.iter().any(|&r| !is_f32(g, r))
            || node.operands().any(|v| shape(g, v).is_none())
        {
            return Ok(false);
        }
        match node.op {
            OpKind::MatMul | OpKind::Gemm | OpKind::Conv | OpKind::QConv => {
                let out = node.outputs[0];
                self.contraction(b, h, &src, node, a, out, Vec::new())
            }
            OpKind::Fused => self.fused(b, h, &src, node),
            OpKind::Softmax | OpKind::LogSoftmax => self.softmax(b, h, g, node, a),
            OpKind::LayerNorm | OpKind::RmsNorm => self.norm(b, h, g, node, a),
            OpKind::MaxPool | OpKind::AveragePool => self.pool(b, h, g, node, a),
            OpKind::GlobalAveragePool | OpKind::GlobalMaxPool => self.global_pool(b, h, g, node, a),
            OpKind::Attention => self.attention(b, h, g, node, a),
            OpKind::QMatMul => self.qmatmul(b, h, &src, node, a),
            OpKind::ReduceMax | OpKind::ReduceMin => self.reduce_all(b, h, g, node),
            OpKind::Concat | OpKind::Split | OpKind::Transpose => {
                self.data_movement(b, h, g, node, a)
            }
            _ if node.op.def().traits.elementwise => self.single_elementwise(b, h, &src, node),
            _ => Ok(false),
        }
    }

    /// `quant.matmul` with constant codes, scales and zero points (f32,
    /// E8M0 or E4M3 scales; no code book, no double-quantized scales): the
    /// qgemm kernel reads the packed codes from the weights and decodes
    /// them as it multiplies.
    fn qmatmul(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let g = src.g;
        let Ok(sh) = kiln_ir::ops::qmatmul_shape(a) else {
            return Ok(false);
        };
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(w), Some(s)) = (operand(0), operand(1), operand(2)) else {
            return Ok(false);
        };
        let z = operand(3);
        let is_const = |v: ValueId| g.constant_weight(src.defs, v).is_some();
        // Codes, scales and zero points packed in panels for the 4-bit GEMV
        // (pack-weights): the kernel reads the packed constants.
        let panels = src.quant_panels(w, s, z);
        if node.attrs.contains_key("code_book")
            || operand(4).is_some()
            || !is_f32(g, x)
            || (panels.is_none()
                && (!is_const(w) || !is_const(s) || z.is_some_and(|z| !is_const(z))))
        {
            return Ok(false);
        }
        let Some((code, scale_code)) = quant_codes(g, w, s) else {
            return Ok(false);
        };
        let Some(xs) = shape(g, x) else {
            return Ok(false);
        };
        let k = sh.k;
        let m = xs.iter().product::<u64>() / k.max(1);
        if panels.is_some() && (m != 1 || g.value(w).ty.dtype.bits() != 4) {
            return Err(format!(
                "quant.matmul reads panel-packed weights only for one row of 4-bit codes \
                 (M = {m}, {} codes)",
                g.value(w).ty.dtype
            ));
        }
        let (w_ptr, s_ptr) = match panels {
            Some((cw, cs, _)) => (self.ptr(b, h, cw)?, self.ptr(b, h, cs)?),
            None => (self.ptr(b, h, w)?, self.ptr(b, h, s)?),
        };
        let zp = match z {
            Some(z) => {
                // The logical [N, zero point columns], packed or not.
                let zs = shape(g, z).unwrap_or_default();
                let cols = zs.get(1).copied().unwrap_or(0);
                let at = match panels {
                    Some((_, _, Some(cz))) => cz,
                    _ => z,
                };
                Some((self.ptr(b, h, at)?, i(cols)))
            }
            None => None,
        };
        let args = QGemmArgs {
            a: Matrix {
                ptr: self.ptr(b, h, x)?,
                ld: i(k),
            },
            w: w_ptr,
            kw: i(sh.kw),
            code,
            scales: s_ptr,
            scale_code,
            zp,
            block: i(sh.block),
            nblocks: i(sh.blocks),
            c: Matrix {
                ptr: self.ptr(b, h, node.outputs[0])?,
                ld: i(sh.n),
            },
            m: i(m),
            n: i(sh.n),
            k: i(k),
            panels: if panels.is_some() { abi::QG_PANEL } else { 0 },
        };
        self.call(b, Kernel::QGemm, &args);
        Ok(true)
    }

    /// A contraction `node` (possibly the head of a fused body, then `outer`
    /// maps body values to the graph) writing `out`, with `epi` applied.
    #[allow(clippy::too_many_arguments)]
    fn contraction(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
        a: &InferCtx<'_>,
        out: ValueId,
        epi: Vec<EpiOp<P>>,
    ) -> Res<bool> {
        let g = src.g;
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(w)) = (operand(0), operand(1)) else {
            return Ok(false);
        };
        if node.op == OpKind::QConv {
            return self.qconv(b, h, src, node, a, out, epi);
        }
        if !is_f32(g, x) || !is_f32(g, w) {
            return Ok(false);
        }
        match node.op {
            OpKind::MatMul => self.matmul(b, h, src, x, w, None, out, epi, false, false, 1.0),
            OpKind::Gemm => {
                let ta = a.bool("trans_a").map_err(super::attr_err)?;
                let tb = a.bool("trans_b").map_err(super::attr_err)?;
                let alpha = a.float("alpha").map_err(super::attr_err)?;
                let beta = a.float("beta").map_err(super::attr_err)?;
                let c = operand(2).filter(|_| beta != 0.0);
                if c.is_some() && beta != 1.0 {
                    return Ok(false);
                }
                self.matmul(b, h, src, x, w, c, out, epi, ta, tb, alpha)
            }
            OpKind::Conv => {
                let Some((p, cst)) = src.packed_constant(w) else {
                    return Ok(false);
                };
                let weights = ConvWeights::Packed(p, cst);
                self.conv(b, h, src, a, x, weights, operand(2), out, epi)
            }
            _ => Ok(false),
        }
    }

    /// The epilogue operand for value `v` broadcast to the output `view`.
    fn epi_operand(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        v: ValueId,
        view: OutView<'_>,
    ) -> Res<Option<(Operand<P>, i64)>> {
        let (out, rows, cols) = (view.shape, view.rows, view.cols);
        let g = src.g;
        let Some(s) = shape(g, v) else {
            return Ok(None);
        };
        if !is_f32(g, v) || s.len() > out.len() {
            return Ok(None);
        }
        let numel: u64 = s.iter().product();
        if numel == 1 {
            if let Some(c) = src.scalar_constant(v) {
                return Ok(Some((Operand::Imm(c), 0)));
            }
            return Ok(Some((Operand::Scalar(self.ptr(b, h, v)?), 0)));
        }
        // Right-align the operand's shape with the output's.
        let mut full = vec![1u64; out.len() - s.len()];
        full.extend(&s);
        let r = out.len();
        let last = full[r - 1];
        let lead_ones = full[..r - 1].iter().all(|&d| d == 1);
        if lead_ones && last == cols {
            return Ok(Some((Operand::Row(self.ptr(b, h, v)?), 0)));
        }
        let per_matrix = rows * cols;
        if full == out {
            let ptr = self.ptr(b, h, v)?;
            return Ok(Some((Operand::Mat { ptr, ld: i(cols) }, i(per_matrix))));
        }
        if last == 1 && full[..r - 1] == out[..r - 1] && cols == out[r - 1] {
            return Ok(Some((Operand::Col(self.ptr(b, h, v)?), i(rows))));
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        x: ValueId,
        w: ValueId,
        c: Option<ValueId>,
        out: ValueId,
        mut epi: Vec<EpiOp<P>>,
        a_trans: bool,
        b_trans: bool,
        alpha: f64,
    ) -> Res<bool> {
        let g = src.g;
        let (Some(xs), Some(ws), Some(os)) = (shape(g, x), shape(g, w), shape(g, out)) else {
            return Ok(false);
        };
        if xs.len() < 2 || ws.len() < 2 || os.len() < 2 {
            return Ok(false);
        }
        let (m, k) = if a_trans {
            (xs[xs.len() - 1], xs[xs.len() - 2])
        } else {
            (xs[xs.len() - 2], xs[xs.len() - 1])
        };
        let n = os[os.len() - 1];
        if m == 0 || n == 0 {
            return Ok(false);
        }
        let out_batch: u64 = os[..os.len() - 2].iter().product();
        let x_batch: u64 = xs[..xs.len() - 2].iter().product();
        let w_batch: u64 = ws[..ws.len() - 2].iter().product();
        // Batches: a 2-D B folds A's batch into rows; otherwise each operand
        // has the output's batches or one shared matrix.
        let (rows, batch, a_stride, b_stride) = if w_batch == 1 && !a_trans && x_batch == out_batch
        {
            (m * x_batch, 1, 0, 0)
        } else {
            let whole = |bt: u64, ms: u64| -> Option<i64> {
                if bt == out_batch {
                    Some(i(ms))
                } else if bt == 1 {
                    Some(0)
                } else {
                    None
                }
            };
            // Partial broadcasts (one operand [1, H, ..] against [B, H, ..])
            // need a stride per batch dim: left to the island.
            let shapes_agree = |s: &[u64]| {
                s.len() == os.len() && s[..s.len() - 2] == os[..os.len() - 2]
                    || s[..s.len() - 2].iter().all(|&d| d == 1)
            };
            if !shapes_agree(&xs) || !shapes_agree(&ws) {
                return Ok(false);
            }
            match (whole(x_batch, m * k), whole(w_batch, k * n)) {
                (Some(sa), Some(sb)) => (m, out_batch, sa, sb),
                _ => return Ok(false),
            }
        };
        let (b_ptr, b_format, ldb, b_stride) = match src.packed_constant(w) {
            Some((p, cst))
                if p.layout == PackLayout::GemmB
                    && p.block == self.variant.nr() as u64
                    && !b_trans
                    && batch == 1 =>
            {
                (self.ptr(b, h, cst)?, BFormat::Packed, 0, 0)
            }
            _ if b_trans => (self.ptr(b, h, w)?, BFormat::Transposed, i(k), b_stride),
            _ => (self.ptr(b, h, w)?, BFormat::RowMajor, i(n), b_stride),
        };
        if alpha != 1.0 {
            epi.insert(
                0,
                EpiOp::Binary {
                    op: Binary::Mul,
                    operand: Operand::Imm(alpha as f32),
                    batch_stride: 0,
                },
            );
        }
        if let Some(c) = c {
            let view = OutView {
                shape: &os,
                rows,
                cols: n,
            };
            let Some((operand, bs)) = self.epi_operand(b, h, src, c, view)? else {
                return Ok(false);
            };
            let at = usize::from(alpha != 1.0);
            epi.insert(
                at,
                EpiOp::Binary {
                    op: Binary::Add,
                    operand,
                    batch_stride: if batch == 1 { 0 } else { bs },
                },
            );
        }
        let Ok(epilogue) = Epilogue::new(epi) else {
            return Ok(false);
        };
        let a_ptr = self.ptr(b, h, x)?;
        let c_ptr = self.ptr(b, h, out)?;
        let mut args = GemmArgs {
            a: a_ptr,
            lda: i(if a_trans { m } else { k }),
            a_trans,
            a_batch_stride: a_stride,
            b: b_ptr,
            ldb,
            b_format,
            b_batch_stride: b_stride,
            c: c_ptr,
            ldc: i(n),
            c_batch_stride: i(m * n),
            m: i(rows),
            n: i(n),
            k: i(k),
            batch: i(batch),
            kc: 0,
            nc: 0,
            scratch: None,
            epilogue,
        };
        let need = args.scratch_bytes(self.variant);
        if need > 0 {
            args.scratch = Some(self.scratch(b, h, need)?);
        }
        self.call(b, Kernel::Gemm, &args);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    /// A `quant.conv` (possibly an epilogue's head) with constant codes,
    /// scales and zero points (f32, E8M0 or E4M3 scales): the conv2d kernel
    /// dequantizes one panel block at a time as it reads the codes.
    #[allow(clippy::too_many_arguments)]
    fn qconv(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
        a: &InferCtx<'_>,
        out: ValueId,
        epi: Vec<EpiOp<P>>,
    ) -> Res<bool> {
        let g = src.g;
        let Ok(sh) = kiln_ir::ops::qconv_shape(a) else {
            return Ok(false);
        };
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(w), Some(s)) = (operand(0), operand(1), operand(2)) else {
            return Ok(false);
        };
        let z = operand(3);
        let is_const = |v: ValueId| g.constant_weight(src.defs, v).is_some();
        let panels = src.quant_panels(w, s, z);
        if !is_f32(g, x)
            || (panels.is_none()
                && (!is_const(w) || !is_const(s) || z.is_some_and(|z| !is_const(z))))
        {
            return Ok(false);
        }
        let Some((code, scale_code)) = quant_codes(g, w, s) else {
            return Ok(false);
        };
        if panels.is_some() {
            let (bits, k) = (g.value(w).ty.dtype.bits(), sh.w.k);
            let block = sh.w.block;
            if !(bits == 8 || (bits == 4 && (block >= k || block.is_multiple_of(8)))) {
                return Err(format!(
                    "quant.conv reads panel-packed weights only of 8-bit codes or of 4-bit \
                     codes in blocks of a multiple of 8 ({} codes, block {block})",
                    g.value(w).ty.dtype
                ));
            }
        }
        // The kernel's scratch holds a decoded panel block per task: taps
        // beyond a few hundred (never in practice) keep the tensor program.
        let taps = sh.kernel[0] * sh.kernel[1];
        if taps > QCONV_MAX_TAPS {
            return Ok(false);
        }
        // The logical [C_out, zero point columns], packed or not.
        let (cw, cs, cz) = panels.unwrap_or((w, s, z));
        let zp = match (z, cz) {
            (Some(z), Some(cz)) => {
                let cols = shape(g, z).and_then(|s| s.get(1).copied()).unwrap_or(0);
                Some((self.ptr(b, h, cz)?, i(cols)))
            }
            _ => None,
        };
        let quant = ConvQuant {
            code,
            kw: i(sh.w.kw),
            scales: self.ptr(b, h, cs)?,
            scale_code,
            zp,
            block: i(sh.w.block),
            nblocks: i(sh.w.blocks),
            panels: if panels.is_some() { abi::QG_PANEL } else { 0 },
            block_floats: abi::qconv_block_floats(i(taps), i(sh.cin_g), self.variant),
        };
        let weights = ConvWeights::Quant(sh, cw, quant);
        self.conv(b, h, src, a, x, weights, operand(4), out, epi)
    }

    /// A 2-D NHWC convolution of `x` by `weights` (packed f32 or quantized
    /// codes), with `bias` and `epi`, writing `out`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        a: &InferCtx<'_>,
        x: ValueId,
        weights: ConvWeights<P>,
        bias: Option<ValueId>,
        out: ValueId,
        mut epi: Vec<EpiOp<P>>,
    ) -> Res<bool> {
        let g = src.g;
        if DataLayout::read(a).map_err(super::attr_err)? != DataLayout::Nhwc {
            return Ok(false);
        }
        let (Some(xs), Some(os)) = (shape(g, x), shape(g, out)) else {
            return Ok(false);
        };
        let kernel: Vec<u64> = match &weights {
            ConvWeights::Packed(p, _) if p.logical.len() == 4 => p.logical[2..].to_vec(),
            ConvWeights::Packed(..) => return Ok(false),
            ConvWeights::Quant(sh, ..) => sh.kernel.to_vec(),
        };
        if xs.len() != 4 || os.len() != 4 {
            return Ok(false);
        }
        let (n, hh, ww, cin) = (xs[0], xs[1], xs[2], xs[3]);
        let (oh, ow, cout) = (os[1], os[2], os[3]);
        let groups = a.int("group").map_err(super::attr_err)?.max(1) as u64;
        let win = kiln_ir::ops::Window::read(a, 2, Some(kernel)).map_err(super::attr_err)?;
        let (pt, pb) = win.resolved_pads(0, hh);
        let (pl, pr) = win.resolved_pads(1, ww);
        let window = Window {
            kh: i(win.kernel[0]),
            kw: i(win.kernel[1]),
            stride_h: i(win.strides[0]),
            stride_w: i(win.strides[1]),
            dil_h: i(win.dilations[0]),
            dil_w: i(win.dilations[1]),
            pad_top: i(pt),
            pad_left: i(pl),
            pad_bottom: i(pb),
            pad_right: i(pr),
        };
        if let Some(bias) = bias {
            epi.insert(
                0,
                EpiOp::Binary {
                    op: Binary::Add,
                    operand: Operand::Row(self.ptr(b, h, bias)?),
                    batch_stride: 0,
                },
            );
        }
        let Ok(epilogue) = Epilogue::new(epi) else {
            return Ok(false);
        };
        let nr = self.variant.nr() as u64;
        let (layout, cst, quant) = match weights {
            ConvWeights::Packed(p, cst) => {
                let depthwise = groups == cin && cout == cin && p.logical[1] == 1;
                match p.layout {
                    PackLayout::DwConvNhwc if depthwise => (PackLayout::DwConvNhwc, cst, None),
                    PackLayout::ConvNhwc if p.block == nr && p.groups == groups => {
                        (PackLayout::ConvNhwc, cst, None)
                    }
                    _ => return Ok(false),
                }
            }
            ConvWeights::Quant(_, codes, q) => (PackLayout::ConvNhwc, codes, Some(q)),
        };
        if layout == PackLayout::DwConvNhwc {
            let args = DwConvArgs {
                x: Nhwc::dense(self.ptr(b, h, x)?, i(cin)),
                n: i(n),
                h: i(hh),
                w: i(ww),
                c: i(cin),
                weights: self.ptr(b, h, cst)?,
                y: self.conv_out(b, h, out, cout)?,
                oh: i(oh),
                ow: i(ow),
                window,
                epilogue,
            };
            self.call(b, Kernel::DwConv2d, &args);
            self.stored(h, out);
            return Ok(true);
        }
        let wino_tiles = if self.winograd && quant.is_none() {
            abi::wino_chunk_tiles(
                i(n),
                i(oh),
                i(ow),
                i(cin),
                i(cout),
                &window,
                i(groups),
                self.variant,
            )
        } else {
            0
        };
        let mut args = ConvArgs {
            x: Nhwc::dense(self.ptr(b, h, x)?, i(cin)),
            n: i(n),
            h: i(hh),
            w: i(ww),
            cin: i(cin),
            weights: self.ptr(b, h, cst)?,
            y: self.conv_out(b, h, out, cout)?,
            oh: i(oh),
            ow: i(ow),
            cout: i(cout),
            window,
            groups: i(groups),
            kc: 0,
            nc: 0,
            wino_tiles,
            scratch: None,
            quant,
            epilogue,
        };
        let need = args.scratch_bytes(self.variant);
        if need > 0 {
            args.scratch = Some(self.scratch(b, h, need)?);
        }
        self.call(b, Kernel::Conv2d, &args);
        self.stored(h, out);
        Ok(true)
    }

    /// Where a convolution stores its result `out` (`cout` channels): its
    /// home, or its channels of the concat it may be stored into in place.
    fn conv_out(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        out: ValueId,
        cout: u64,
    ) -> Res<Nhwc<P>> {
        Ok(match h.concat_slot(out) {
            Some(slot) => Nhwc {
                ptr: self.ptr(b, h, slot.concat)?,
                stride: slot.channels,
                offset: slot.offset,
            },
            None => Nhwc::dense(self.ptr(b, h, out)?, i(cout)),
        })
    }

    /// Records a convolution's store into its concat slot, if it has one.
    fn stored(&mut self, h: &mut dyn Homes, out: ValueId) {
        if h.concat_slot(out).is_some() {
            h.wrote_in_place(out);
        }
    }

    /// A fused epilogue: the body's contraction, then a chain of ops each
    /// applied to the previous value.
    fn fused(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
    ) -> Res<bool> {
        let Some(body) = &node.body else {
            return Ok(false);
        };
        let g = src.g;
        if node.outputs.len() != 1 || body.outputs.len() != 1 {
            return Ok(false);
        }
        // Body inputs are the node's operands.
        let outer: HashMap<ValueId, ValueId> = body
            .inputs
            .iter()
            .zip(&node.inputs)
            .filter_map(|(&bi, o)| o.map(|o| (bi, o)))
            .collect();
        let Some(head) = body.nodes.first() else {
            return Ok(false);
        };
        let mut chain = &body.nodes[1..];
        let mut start = head.outputs.first().copied();
        // An integer product's epilogue starts with its conversion to f32.
        if head.op == OpKind::QMatMulInteger {
            match chain.first() {
                Some(c) if c.op == OpKind::Cast && c.outputs.len() == 1 => {
                    if c.inputs.first().copied().flatten() != start
                        || body.value(c.outputs[0]).ty.dtype != DType::F32
                    {
                        return Ok(false);
                    }
                    start = Some(c.outputs[0]);
                    chain = &chain[1..];
                }
                _ => return Ok(false),
            }
        } else if !matches!(
            head.op,
            OpKind::MatMul | OpKind::Gemm | OpKind::Conv | OpKind::QConv
        ) || head.outputs.len() != 1
        {
            return self.fused_elementwise(b, h, src, node, body, &outer);
        }
        let out = node.outputs[0];
        let Some(os) = shape(g, out) else {
            return Ok(false);
        };
        let (rows, cols) = matrix_of(&os, head.op);
        let Some(start) = start else {
            return Ok(false);
        };
        let Some(ops) = self.chain_ops(
            b,
            h,
            src,
            body,
            &outer,
            start,
            chain,
            OutView {
                shape: &os,
                rows,
                cols,
            },
        )?
        else {
            return Ok(false);
        };
        // The head node, read through the body: its operands are outer values.
        let mapped = Node {
            inputs: head
                .inputs
                .iter()
                .map(|v| v.and_then(|v| outer.get(&v).copied()))
                .collect(),
            ..head.clone()
        };
        if mapped
            .inputs
            .iter()
            .zip(&head.inputs)
            .any(|(m, o)| m.is_none() && o.is_some())
        {
            return Ok(false);
        }
        let tys: Vec<Option<&kiln_ir::TensorType>> = mapped
            .inputs
            .iter()
            .map(|v| v.map(|v| &g.value(v).ty))
            .collect();
        let ctx = InferCtx::of_node(head, &tys);
        if head.op == OpKind::QMatMulInteger {
            return self.igemm(b, h, src, &mapped, out, Some(ops));
        }
        self.contraction(b, h, src, &mapped, &ctx, out, ops)
    }

    /// `nn.reduce_max` / `nn.reduce_min` of an f32 tensor down to one value (what
    /// DynamicQuantizeLinear's range is).
    fn reduce_all(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
    ) -> Res<bool> {
        let (Some(x), [y]) = (
            node.inputs.first().copied().flatten(),
            node.outputs.as_slice(),
        ) else {
            return Ok(false);
        };
        let (Some(xs), Some(ys)) = (shape(g, x), shape(g, *y)) else {
            return Ok(false);
        };
        let n: u64 = xs.iter().product();
        if !is_f32(g, x) || n == 0 || ys.iter().product::<u64>() != 1 || node.inputs.len() > 1 {
            return Ok(false);
        }
        let args = RMinMaxArgs {
            x: self.ptr(b, h, x)?,
            n: i(n),
            y: self.ptr(b, h, *y)?,
            min: node.op == OpKind::ReduceMin,
        };
        self.call(b, Kernel::RMinMax, &args);
        Ok(true)
    }

    /// Per-tensor `quant.quantize_linear` of f32 into u8/i8 (one scale, one zero point,
    /// the default f32 division).
    fn quantize(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(s), [y]) = (operand(0), operand(1), node.outputs.as_slice()) else {
            return Ok(false);
        };
        let z = operand(2);
        let numel = |v: ValueId| shape(g, v).map(|s| s.iter().product::<u64>());
        let ydt = g.value(*y).ty.dtype;
        let plain = a.int("block_size").map_err(super::attr_err)? == 0
            && a.dtype("precision").map_err(super::attr_err)?.is_none();
        if !plain
            || !is_f32(g, x)
            || !is_f32(g, s)
            || !matches!(ydt, DType::U8 | DType::I8)
            || numel(s) != Some(1)
            || z.is_some_and(|z| numel(z) != Some(1) || g.value(z).ty.dtype != ydt)
        {
            return Ok(false);
        }
        let Some(n) = numel(x) else {
            return Ok(false);
        };
        let zp = match z {
            Some(z) => Some(self.ptr(b, h, z)?),
            None => None,
        };
        let args = QuantizeArgs {
            x: self.ptr(b, h, x)?,
            n: i(n),
            y: self.ptr(b, h, *y)?,
            scale: self.ptr(b, h, s)?,
            zp,
            signed: ydt == DType::I8,
        };
        self.call(b, Kernel::Quantize, &args);
        Ok(true)
    }

    /// `quant.conv_integer` (2-D NCHW, the weight's zero point one value or one per output
    /// channel, requantization scales one value or one per output channel) as an `iconv` call.
    fn iconv(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(w), [y]) = (operand(0), operand(1), node.outputs.as_slice()) else {
            return Ok(false);
        };
        if DataLayout::read(a).map_err(super::attr_err)? != DataLayout::Nchw {
            return Ok(false);
        }
        let (Some(xs), Some(ws), Some(ys)) = (shape(g, x), shape(g, w), shape(g, *y)) else {
            return Ok(false);
        };
        if xs.len() != 4 || ws.len() != 4 || ys.len() != 4 || ys.contains(&0) {
            return Ok(false);
        }
        let numel = |v: ValueId| shape(g, v).map(|s| s.iter().product::<u64>());
        let m = ws[0];
        // One value, or (per_ok) one per output channel: Some(per_channel).
        let per = |v: ValueId, per_ok: bool| match numel(v) {
            Some(1) => Some(false),
            Some(k) if per_ok && k == m => Some(true),
            _ => None,
        };
        let signed = |v: ValueId| g.value(v).ty.dtype == DType::I8;
        let zx = match operand(2) {
            Some(z) if per(z, false).is_none() => return Ok(false),
            Some(z) => Some((self.ptr(b, h, z)?, false)),
            None => None,
        };
        let zw = match operand(3) {
            Some(z) => match per(z, true) {
                Some(pc) => Some((self.ptr(b, h, z)?, pc)),
                None => return Ok(false),
            },
            None => None,
        };
        let bias = match operand(4) {
            Some(v) => Some(self.ptr(b, h, v)?),
            None => None,
        };
        let requantize = match (operand(5), operand(6)) {
            (None, None) => None,
            (Some(s), z) => {
                let (Some(pc), true) = (per(s, true), is_f32(g, s)) else {
                    return Ok(false);
                };
                let zero = match z {
                    Some(z) if per(z, false).is_none() => return Ok(false),
                    Some(z) => Some(self.ptr(b, h, z)?),
                    None => None,
                };
                Some(abi::Requantize {
                    scale: self.ptr(b, h, s)?,
                    per_channel: pc,
                    zero,
                    signed: g.value(*y).ty.dtype == DType::I8,
                })
            }
            (None, Some(_)) => return Ok(false),
        };
        let groups = a.int("group").map_err(super::attr_err)?.max(1) as u64;
        let win =
            kiln_ir::ops::Window::read(a, 2, Some(ws[2..].to_vec())).map_err(super::attr_err)?;
        let (pt, _) = win.resolved_pads(0, xs[2]);
        let (pl, _) = win.resolved_pads(1, xs[3]);
        let mut args = abi::IConvArgs {
            x: Int8Operand {
                ptr: self.ptr(b, h, x)?,
                packed: false,
                ld: 0,
                signed: signed(x),
                zero: zx,
            },
            w: Int8Operand {
                ptr: self.ptr(b, h, w)?,
                packed: false,
                ld: 0,
                signed: signed(w),
                zero: zw,
            },
            bias,
            y: self.ptr(b, h, *y)?,
            input: [i(xs[0]), i(xs[1]), i(xs[2]), i(xs[3])],
            m: i(m),
            out: [i(ys[2]), i(ys[3])],
            kernel: [i(win.kernel[0]), i(win.kernel[1])],
            strides: [i(win.strides[0]), i(win.strides[1])],
            dilations: [i(win.dilations[0]), i(win.dilations[1])],
            pads: [i(pt), i(pl)],
            groups: i(groups),
            scratch: String::new(),
            requantize,
        };
        let need = args.scratch_bytes(self.variant);
        args.scratch = self.scratch(b, h, need)?;
        let kernel = if self.int8_dot {
            Kernel::IConvVnni
        } else {
            Kernel::IConv
        };
        self.call(b, kernel, &args);
        Ok(true)
    }

    /// `quant.matmul_integer` (2-D B; A's leading dims folded into rows) as an `igemm` call:
    /// an int32 result, or (`epi` given: the head of a fused epilogue whose chain starts with
    /// the cast to f32) an f32 result through the epilogue. Zero points one value, per row of
    /// an unbatched A, or per column of B.
    fn igemm(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
        out: ValueId,
        epi: Option<Vec<EpiOp<P>>>,
    ) -> Res<bool> {
        let g = src.g;
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(w)) = (operand(0), operand(1)) else {
            return Ok(false);
        };
        let (Some(xs), Some(ws)) = (shape(g, x), shape(g, w)) else {
            return Ok(false);
        };
        if xs.len() < 2 || ws.len() != 2 {
            return Ok(false);
        }
        let is8 = |v: ValueId| matches!(g.value(v).ty.dtype, DType::I8 | DType::U8);
        let signed = |v: ValueId| g.value(v).ty.dtype == DType::I8;
        if !is8(x) || !is8(w) {
            return Ok(false);
        }
        let (k, n) = (ws[0], ws[1]);
        let m_batch = xs[xs.len() - 2];
        let rows: u64 = xs[..xs.len() - 1].iter().product();
        if xs[xs.len() - 1] != k || rows == 0 || n == 0 || k == 0 {
            return Ok(false);
        }
        // B packed at compile time is read directly: pack-weights' int8_gemm_b by igemmv (VNNI),
        // its int8_gemm_b_narrow (values within [-64, 64], checked when packed) by igemmp
        // (pmaddubsw pairs, exact for them) or igemmv.
        let (packed, kernel) = match src.packed_constant(w) {
            Some((p, cst)) if p.block == self.variant.nr() as u64 => match p.layout {
                PackLayout::Int8GemmB | PackLayout::Int8GemmBNarrow if self.int8_dot => {
                    (Some(cst), Kernel::IGemmVnni)
                }
                PackLayout::Int8GemmBNarrow if self.int8_pairs => (Some(cst), Kernel::IGemmPairs),
                _ => (None, Kernel::IGemm),
            },
            _ if self.int8_dot => (None, Kernel::IGemmVnni),
            _ => (None, Kernel::IGemm),
        };
        // A zero point: (pointer, one per row/column), or None where the kernel cannot read it.
        let zero = |s: &mut Self,
                    b: &mut Builder,
                    h: &mut dyn Homes,
                    z: Option<ValueId>,
                    per: u64,
                    ok_per: bool|
         -> Res<Option<Option<(P, bool)>>> {
            let Some(z) = z else {
                return Ok(Some(None));
            };
            let Some(zs) = shape(g, z) else {
                return Ok(None);
            };
            let numel: u64 = zs.iter().product();
            if numel == 1 {
                return Ok(Some(Some((s.ptr(b, h, z)?, false))));
            }
            if zs.len() == 1 && numel == per && ok_per {
                return Ok(Some(Some((s.ptr(b, h, z)?, true))));
            }
            Ok(None)
        };
        let Some(za) = zero(self, b, h, operand(2), m_batch, rows == m_batch)? else {
            return Ok(false);
        };
        let Some(zb) = zero(self, b, h, operand(3), n, true)? else {
            return Ok(false);
        };
        let c_f32 = epi.is_some();
        // Epilogue operands were placed for the output seen as [.., M, N]; the kernel sees all
        // rows at once, the same memory for row, column, scalar and full operands.
        let ops = epi.unwrap_or_default();
        let Ok(epilogue) = Epilogue::new(ops) else {
            return Ok(false);
        };
        let need = abi::igemm_scratch_bytes(i(rows), i(n), i(k), self.variant, packed.is_some());
        let args = IGemmArgs {
            a: Int8Operand {
                ptr: self.ptr(b, h, x)?,
                packed: false,
                ld: i(k),
                signed: signed(x),
                zero: za,
            },
            b: Int8Operand {
                ptr: self.ptr(b, h, packed.unwrap_or(w))?,
                packed: packed.is_some(),
                ld: i(n),
                signed: signed(w),
                zero: zb,
            },
            c: Matrix {
                ptr: self.ptr(b, h, out)?,
                ld: i(n),
            },
            c_f32,
            m: i(rows),
            n: i(n),
            k: i(k),
            scratch: self.scratch(b, h, need)?,
            epilogue,
        };
        self.call(b, kernel, &args);
        Ok(true)
    }

    /// The epilogue ops of a chain of body nodes starting from value `start`;
    /// `None` if the chain is not a simple one.
    #[allow(clippy::too_many_arguments)]
    fn chain_ops(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        body: &Graph,
        outer: &HashMap<ValueId, ValueId>,
        start: ValueId,
        chain: &[Node],
        view: OutView<'_>,
    ) -> Res<Option<Vec<EpiOp<P>>>> {
        let mut cur = start;
        let mut ops = Vec::new();
        let mut k = 0;
        let attr_f = |n: &Node, name: &str, d: f64| -> f64 {
            match n.attrs.get(name) {
                Some(Attr::Float(v)) => *v,
                Some(Attr::Int(v)) => *v as f64,
                _ => d,
            }
        };
        while k < chain.len() {
            let n = &chain[k];
            if n.outputs.len() != 1 || !n.operands().any(|v| v == cur) {
                return Ok(None);
            }
            let next = n.outputs[0];
            // x * sigmoid(x): SiLU.
            if n.op == OpKind::Sigmoid {
                if let Some(m) = chain.get(k + 1) {
                    let ins: Vec<ValueId> = m.operands().collect();
                    if m.op == OpKind::Mul
                        && ins.len() == 2
                        && ins.contains(&cur)
                        && ins.contains(&next)
                    {
                        ops.push(EpiOp::Unary(Unary::Silu));
                        cur = m.outputs[0];
                        k += 2;
                        continue;
                    }
                }
            }
            let other: Vec<ValueId> = n.operands().filter(|&v| v != cur).collect();
            let unary = |u: Unary| Some(EpiOp::Unary(u));
            let op = match n.op {
                OpKind::Relu => unary(Unary::Relu),
                OpKind::Sigmoid => unary(Unary::Sigmoid),
                OpKind::Tanh => unary(Unary::Tanh),
                OpKind::Exp => unary(Unary::Exp),
                OpKind::Erf => unary(Unary::Erf),
                OpKind::Neg => unary(Unary::Neg),
                OpKind::Abs => unary(Unary::Abs),
                OpKind::Sqrt => unary(Unary::Sqrt),
                OpKind::Log => unary(Unary::Log),
                OpKind::HardSwish => unary(Unary::HardSwish),
                // recognize-norms writes SiLU as nn.swish.
                OpKind::Swish if attr_f(n, "alpha", 1.0) == 1.0 => unary(Unary::Silu),
                OpKind::Gelu => match n.attrs.get("approximate") {
                    Some(Attr::Str(s)) if GeluApprox::parse(s) == Some(GeluApprox::Tanh) => {
                        unary(Unary::GeluTanh)
                    }
                    _ => unary(Unary::GeluErf),
                },
                OpKind::LeakyRelu => unary(Unary::LeakyRelu {
                    alpha: attr_f(n, "alpha", 0.01) as f32,
                }),
                OpKind::Elu => unary(Unary::Elu {
                    alpha: attr_f(n, "alpha", 1.0) as f32,
                }),
                OpKind::HardSigmoid => unary(Unary::HardSigmoid {
                    alpha: attr_f(n, "alpha", 0.2) as f32,
                    beta: attr_f(n, "beta", 0.5) as f32,
                }),
                OpKind::Clip => {
                    // Bounds must be constants (body inputs bound to them).
                    let bound = |idx: usize, d: f32| -> Option<f32> {
                        match n.inputs.get(idx).copied().flatten() {
                            None => Some(d),
                            Some(v) => src.scalar_constant(*outer.get(&v)?),
                        }
                    };
                    match (bound(1, f32::NEG_INFINITY), bound(2, f32::INFINITY)) {
                        (Some(lo), Some(hi))
                            if n.inputs.first().copied().flatten() == Some(cur) =>
                        {
                            unary(Unary::Clip { lo, hi })
                        }
                        _ => None,
                    }
                }
                OpKind::Add
                | OpKind::Sub
                | OpKind::Mul
                | OpKind::Div
                | OpKind::Max
                | OpKind::Min
                    if other.len() == 1 && n.operands().count() == 2 =>
                {
                    let first_is_cur = n.inputs.first().copied().flatten() == Some(cur);
                    let Some(&x) = outer.get(&other[0]) else {
                        return Ok(None);
                    };
                    // The operand must not be larger than the output.
                    let Some((operand, bs)) = self.epi_operand(b, h, src, x, view)? else {
                        return Ok(None);
                    };
                    let op = match (n.op, first_is_cur) {
                        (OpKind::Add, _) => Binary::Add,
                        (OpKind::Mul, _) => Binary::Mul,
                        (OpKind::Max, _) => Binary::Max,
                        (OpKind::Min, _) => Binary::Min,
                        (OpKind::Sub, true) => Binary::Sub,
                        (OpKind::Sub, false) => Binary::Rsub,
                        (OpKind::Div, true) => Binary::Div,
                        _ => Binary::Rdiv,
                    };
                    Some(EpiOp::Binary {
                        op,
                        operand,
                        batch_stride: bs,
                    })
                }
                _ => None,
            };
            let Some(op) = op else {
                return Ok(None);
            };
            // Every step keeps the output's shape (no broadcast of `cur`).
            if body.value(next).ty != body.value(start).ty {
                return Ok(None);
            }
            ops.push(op);
            cur = next;
            k += 1;
        }
        if body.outputs.first() != Some(&cur) || ops.len() > abi::EPI_MAX_OPS {
            return Ok(None);
        }
        Ok(Some(ops))
    }

    /// A fused elementwise chain through the elementwise executor: one full
    /// input, every op applied to the previous value.
    fn fused_elementwise(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
        body: &Graph,
        outer: &HashMap<ValueId, ValueId>,
    ) -> Res<bool> {
        let g = src.g;
        let out = node.outputs[0];
        let Some(os) = shape(g, out) else {
            return Ok(false);
        };
        let Some(first) = body.nodes.first() else {
            return Ok(false);
        };
        // The chain starts at a body input of the output's shape.
        let Some(start) = first
            .operands()
            .find(|v| body.inputs.contains(v) && shape(body, *v).as_deref() == Some(&os[..]))
        else {
            return Ok(false);
        };
        let Some(&x) = outer.get(&start) else {
            return Ok(false);
        };
        // Operands all of the output's shape (or one element) allow any
        // matrix view: a wider one than the last dim when that is narrow.
        let dense = body.inputs.iter().all(|v| {
            outer
                .get(v)
                .and_then(|&o| shape(g, o))
                .is_some_and(|s| s == os || s.iter().product::<u64>() == 1)
        });
        let (rows, cols) = if dense {
            dense_rows_cols(&os)
        } else {
            rows_cols(&os)
        };
        let Some(ops) = self.chain_ops(
            b,
            h,
            src,
            body,
            outer,
            start,
            &body.nodes,
            OutView {
                shape: &os,
                rows,
                cols,
            },
        )?
        else {
            return Ok(false);
        };
        self.eltwise(b, h, x, out, rows, cols, ops)
    }

    /// One elementwise op whose scalar code would call libm (erf, tanh, ...)
    /// or that ends a chain: through the executor's vectorized math.
    fn single_elementwise(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        src: &Source<'_>,
        node: &Node,
    ) -> Res<bool> {
        let g = src.g;
        let transcendental = matches!(
            node.op,
            OpKind::Erf
                | OpKind::Tanh
                | OpKind::Sigmoid
                | OpKind::Gelu
                | OpKind::Swish
                | OpKind::Exp
                | OpKind::Log
                | OpKind::Elu
        );
        if !transcendental || node.outputs.len() != 1 {
            return Ok(false);
        }
        let Some(x) = node.inputs.first().copied().flatten() else {
            return Ok(false);
        };
        let out = node.outputs[0];
        let (Some(xs), Some(os)) = (shape(g, x), shape(g, out)) else {
            return Ok(false);
        };
        if xs != os || !is_f32(g, x) {
            return Ok(false);
        }
        let empty = HashMap::new();
        let (rows, cols) = dense_rows_cols(&os);
        // The node as a one-op chain over its own operand.
        let mut one = Graph::new("one");
        let xi = one.add_input("x", g.value(x).ty.clone());
        one.add_node(
            node.op,
            vec![Some(xi)],
            node.attrs.clone(),
            vec![("y".into(), g.value(out).ty.clone())],
        );
        one.outputs = vec![one.nodes[0].outputs[0]];
        let Some(ops) = self.chain_ops(
            b,
            h,
            src,
            &one,
            &empty,
            xi,
            &one.nodes,
            OutView {
                shape: &os,
                rows,
                cols,
            },
        )?
        else {
            return Ok(false);
        };
        self.eltwise(b, h, x, out, rows, cols, ops)
    }

    #[allow(clippy::too_many_arguments)]
    fn eltwise(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        x: ValueId,
        out: ValueId,
        rows: u64,
        cols: u64,
        ops: Vec<EpiOp<P>>,
    ) -> Res<bool> {
        if rows * cols == 0 {
            return Ok(false);
        }
        let Ok(epilogue) = Epilogue::new(ops) else {
            return Ok(false);
        };
        let args = EltwiseArgs {
            x: Matrix {
                ptr: self.ptr(b, h, x)?,
                ld: i(cols),
            },
            y: Matrix {
                ptr: self.ptr(b, h, out)?,
                ld: i(cols),
            },
            rows: i(rows),
            cols: i(cols),
            epilogue,
        };
        self.call(b, Kernel::Eltwise, &args);
        Ok(true)
    }

    /// Concat, split and transpose as strided copies (one kernel call per
    /// operand of a concat, per result of a split): every value is a dense
    /// row-major box, so each call is a box of the smaller tensor at an
    /// offset along the axis of the larger one.
    fn data_movement(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let Some(plan) = copy_plan(g, node, a)? else {
            if node.operands().any(|v| h.was_written_in_place(v)) {
                return Err(format!(
                    "internal: {} has operands stored in place but no copy plan",
                    node.describe()
                ));
            }
            return Ok(false);
        };
        for c in plan {
            // Operands a convolution already stored into the concat.
            if node.op == OpKind::Concat && h.was_written_in_place(c.x) {
                continue;
            }
            let (x, y) = (self.ptr(b, h, c.x)?, self.ptr(b, h, c.y)?);
            let args = CopyArgs::new(
                x,
                c.x_offset,
                y,
                c.y_offset,
                &c.dims,
                &c.x_strides,
                &c.y_strides,
            )
            .expect("copy_plan checked the box");
            self.call(b, Kernel::Copy, &args);
        }
        Ok(true)
    }

    fn softmax(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let x = node.inputs[0].expect("softmax has an operand");
        let out = node.outputs[0];
        let Some(s) = shape(g, x) else {
            return Ok(false);
        };
        let axis = a.int("axis").map_err(super::attr_err)?;
        let last = s.len() as i64 - 1;
        if s.is_empty() || (axis != -1 && axis != last) || s.contains(&0) {
            return Ok(false);
        }
        let (rows, cols) = rows_cols(&s);
        let args = SoftmaxArgs {
            x: Matrix {
                ptr: self.ptr(b, h, x)?,
                ld: i(cols),
            },
            y: Matrix {
                ptr: self.ptr(b, h, out)?,
                ld: i(cols),
            },
            rows: i(rows),
            cols: i(cols),
            log: node.op == OpKind::LogSoftmax,
            epilogue: Epilogue::none(),
        };
        self.call(b, Kernel::Softmax, &args);
        Ok(true)
    }

    fn norm(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(x), Some(gamma)) = (operand(0), operand(1)) else {
            return Ok(false);
        };
        let Some(s) = shape(g, x) else {
            return Ok(false);
        };
        let r = s.len() as i64;
        let axis = a.int("axis").map_err(super::attr_err)?;
        let axis = if axis < 0 { axis + r } else { axis };
        if r == 0 || axis < 0 || axis >= r || s.contains(&0) {
            return Ok(false);
        }
        let rows: u64 = s[..axis as usize].iter().product();
        let cols: u64 = s[axis as usize..].iter().product();
        let full = |v: ValueId| {
            shape(g, v).is_some_and(|t| t.iter().product::<u64>() == cols) && is_f32(g, v)
        };
        let beta = operand(2);
        if !full(gamma) || beta.is_some_and(|v| !full(v)) {
            return Ok(false);
        }
        let stat = |k: usize| node.outputs.get(k).copied();
        let mut ptr_opt = |b: &mut Builder, v: Option<ValueId>| -> Res<Option<P>> {
            v.map(|v| self.ptr(b, h, v)).transpose()
        };
        let beta_p = ptr_opt(b, beta)?;
        let mean_p = ptr_opt(b, stat(1))?;
        let rstd_p = ptr_opt(b, stat(2))?;
        let args = NormArgs {
            x: Matrix {
                ptr: self.ptr(b, h, x)?,
                ld: i(cols),
            },
            y: Matrix {
                ptr: self.ptr(b, h, node.outputs[0])?,
                ld: i(cols),
            },
            rows: i(rows),
            cols: i(cols),
            gamma: self.ptr(b, h, gamma)?,
            beta: beta_p,
            epsilon: a.float("epsilon").map_err(super::attr_err)? as f32,
            rms: node.op == OpKind::RmsNorm,
            mean: mean_p,
            rstd: rstd_p,
            epilogue: Epilogue::none(),
        };
        self.call(b, Kernel::Norm, &args);
        Ok(true)
    }

    fn pool(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        if DataLayout::read(a).map_err(super::attr_err)? != DataLayout::Nhwc
            || node.outputs.len() != 1
        {
            return Ok(false);
        }
        let x = node.inputs[0].expect("a pool has an operand");
        let out = node.outputs[0];
        let (Some(xs), Some(os)) = (shape(g, x), shape(g, out)) else {
            return Ok(false);
        };
        if xs.len() != 4 {
            return Ok(false);
        }
        let win = kiln_ir::ops::Window::read(a, 2, None).map_err(super::attr_err)?;
        let (pt, pb) = win.resolved_pads(0, xs[1]);
        let (pl, pr) = win.resolved_pads(1, xs[2]);
        let count_include_pad = node.op == OpKind::AveragePool
            && a.bool("count_include_pad").map_err(super::attr_err)?;
        let c = xs[3];
        let args = PoolArgs {
            x: self.ptr(b, h, x)?,
            n: i(xs[0]),
            h: i(xs[1]),
            w: i(xs[2]),
            c: i(c),
            x_stride: i(c),
            y: self.ptr(b, h, out)?,
            oh: i(os[1]),
            ow: i(os[2]),
            y_stride: i(c),
            window: Window {
                kh: i(win.kernel[0]),
                kw: i(win.kernel[1]),
                stride_h: i(win.strides[0]),
                stride_w: i(win.strides[1]),
                dil_h: i(win.dilations[0]),
                dil_w: i(win.dilations[1]),
                pad_top: i(pt),
                pad_left: i(pl),
                pad_bottom: i(pb),
                pad_right: i(pr),
            },
            kind: if node.op == OpKind::MaxPool {
                PoolKind::Max
            } else {
                PoolKind::Average
            },
            count_include_pad,
        };
        self.call(b, Kernel::Pool2d, &args);
        Ok(true)
    }

    fn global_pool(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        if DataLayout::read(a).map_err(super::attr_err)? != DataLayout::Nhwc {
            return Ok(false);
        }
        let x = node.inputs[0].expect("a pool has an operand");
        let Some(xs) = shape(g, x) else {
            return Ok(false);
        };
        if xs.len() < 3 {
            return Ok(false);
        }
        let c = xs[xs.len() - 1];
        let hw: u64 = xs[1..xs.len() - 1].iter().product();
        let args = GlobalPoolArgs {
            x: self.ptr(b, h, x)?,
            n: i(xs[0]),
            hw: i(hw),
            c: i(c),
            x_stride: i(c),
            y: self.ptr(b, h, node.outputs[0])?,
            y_stride: i(c),
            kind: if node.op == OpKind::GlobalMaxPool {
                PoolKind::Max
            } else {
                PoolKind::Average
            },
        };
        self.call(b, Kernel::GlobalPool, &args);
        Ok(true)
    }

    fn attention(
        &mut self,
        b: &mut Builder,
        h: &mut dyn Homes,
        g: &Graph,
        node: &Node,
        a: &InferCtx<'_>,
    ) -> Res<bool> {
        let operand = |k: usize| node.inputs.get(k).copied().flatten();
        let (Some(q), Some(k), Some(v)) = (operand(0), operand(1), operand(2)) else {
            return Ok(false);
        };
        let plain = node.outputs.len() == 1
            && (4..7).all(|k| operand(k).is_none())
            && a.float("softcap").map_err(super::attr_err)? == 0.0
            && a.int("left_window_size").map_err(super::attr_err)? < 0
            && a.int("right_window_size").map_err(super::attr_err)? < 0
            && a.int("qk_matmul_output_mode").map_err(super::attr_err)? == 0
            && [q, k, v].iter().all(|&t| is_f32(g, t));
        if !plain {
            return Ok(false);
        }
        let (Some(qs), Some(ks), Some(vs), Some(os)) = (
            shape(g, q),
            shape(g, k),
            shape(g, v),
            shape(g, node.outputs[0]),
        ) else {
            return Ok(false);
        };
        // [B, H, S, D] as strides, from a 4-D or a 3-D [B, S, H*D] tensor
        // (kiln-ir's HeadView rule).
        let heads_of = |name: &str| a.opt_int(name).ok().flatten();
        let view = |s: &[u64], name: &str| -> Option<([u64; 4], [i64; 4])> {
            let h = kiln_ir::ops::attention::HeadView::resolve(s, heads_of(name), "", name).ok()?;
            let st = h.strides();
            Some((
                [h.batch, h.heads, h.seq, h.head_size],
                [i(st[0]), i(st[1]), i(st[2]), i(st[3])],
            ))
        };
        let (Some((qd, qst)), Some((kd, kst)), Some((vd, vst)), Some((od, ost))) = (
            view(&qs, "q_num_heads"),
            view(&ks, "kv_num_heads"),
            view(&vs, "kv_num_heads"),
            view(&os, "q_num_heads"),
        ) else {
            return Ok(false);
        };
        let (bsz, hq, sq, d) = (qd[0], qd[1], qd[2], qd[3]);
        let (hkv, sk, dv) = (kd[1], kd[2], vd[3]);
        if hkv == 0 || hq % hkv != 0 || od != [bsz, hq, sq, dv] || sk == 0 || sq == 0 {
            return Ok(false);
        }
        // Without a KV cache ONNX aligns the causal mask top-left (key j
        // visible to query i when j <= i); the kernel aligns it bottom-right
        // (j <= i + sk - sq), the same only for square scores.
        let causal = a.bool("is_causal").map_err(super::attr_err)?;
        if causal && sq != sk {
            return Ok(false);
        }
        let mask = match operand(3) {
            None => None,
            Some(m) => {
                let Some(ms) = shape(g, m) else {
                    return Ok(false);
                };
                if !is_f32(g, m) || ms.len() > 4 || ms.last() != Some(&sk) {
                    return Ok(false);
                }
                let mut full = vec![1u64; 4 - ms.len()];
                full.extend(&ms);
                let dense = [full[1] * full[2] * full[3], full[2] * full[3], full[3], 1];
                let strides: [i64; 4] = std::array::from_fn(|k| {
                    if full[k] == 1 && k < 3 {
                        0
                    } else {
                        i(dense[k])
                    }
                });
                Some(Strided4 {
                    ptr: self.ptr(b, h, m)?,
                    strides,
                })
            }
        };
        let scale = match a.attrs.get("scale") {
            Some(Attr::Float(s)) => *s as f32,
            _ => (1.0 / (d as f64).sqrt()) as f32,
        };
        let need = abi::attention_scratch_bytes(i(d), i(dv), self.variant);
        let args = AttentionArgs {
            q: Strided4 {
                ptr: self.ptr(b, h, q)?,
                strides: qst,
            },
            k: Strided4 {
                ptr: self.ptr(b, h, k)?,
                strides: kst,
            },
            v: Strided4 {
                ptr: self.ptr(b, h, v)?,
                strides: vst,
            },
            o: Strided4 {
                ptr: self.ptr(b, h, node.outputs[0])?,
                strides: ost,
            },
            mask,
            b: i(bsz),
            hq: i(hq),
            hkv: i(hkv),
            sq: i(sq),
            sk: i(sk),
            d: i(d),
            dv: i(dv),
            scale,
            causal,
            scratch: self.scratch(b, h, need)?,
        };
        self.call(b, Kernel::Attention, &args);
        Ok(true)
    }
}

/// An output seen by an epilogue: its shape, and the `[rows, cols]` matrix
/// (per batch) the kernel's epilogue indexes.
#[derive(Clone, Copy)]
struct OutView<'a> {
    shape: &'a [u64],
    rows: u64,
    cols: u64,
}

/// `[rows, cols]` of a tensor viewed as a matrix over its last dim.
/// One strided copy of a data-movement node: a box of `dims` from value `x`
/// (at `x_offset`, `x_strides`) to value `y`, in elements.
struct CopyBox {
    x: ValueId,
    x_offset: i64,
    x_strides: Vec<i64>,
    y: ValueId,
    y_offset: i64,
    y_strides: Vec<i64>,
    dims: Vec<i64>,
}

/// Row-major strides of `shape`.
fn dense_strides(shape: &[u64]) -> Vec<i64> {
    let mut st = vec![1i64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1] as i64;
    }
    st
}

/// The copies that carry out a concat, split or transpose, or `None` when
/// the node is left to a tensor island (an empty box, a box that needs more
/// than the kernel's dims, a malformed permutation).
fn copy_plan(g: &Graph, node: &Node, a: &InferCtx<'_>) -> Res<Option<Vec<CopyBox>>> {
    let operands: Vec<ValueId> = node.operands().collect();
    let dims_of = |v: ValueId| shape(g, v).unwrap_or_default();
    let axis_of = |rank: usize| -> Res<Option<usize>> {
        let ax = a.int("axis").map_err(super::attr_err)?;
        let ax = if ax < 0 { ax + rank as i64 } else { ax };
        Ok((0..rank as i64).contains(&ax).then_some(ax as usize))
    };
    let mut boxes = Vec::new();
    match node.op {
        // Each part is a dense box at an offset along the axis of the whole.
        OpKind::Concat | OpKind::Split => {
            let concat = node.op == OpKind::Concat;
            let (whole, parts) = if concat {
                (node.outputs[0], operands.clone())
            } else {
                (operands[0], node.outputs.clone())
            };
            let ws = dims_of(whole);
            let Some(axis) = axis_of(ws.len())? else {
                return Ok(None);
            };
            let st = dense_strides(&ws);
            let mut at = 0i64;
            for part in parts {
                let ps = dims_of(part);
                if ps.len() != ws.len() {
                    return Ok(None);
                }
                let (whole_side, part_side) = (
                    (whole, at * st[axis], st.clone()),
                    (part, 0, dense_strides(&ps)),
                );
                let ((x, x_offset, x_strides), (y, y_offset, y_strides)) = if concat {
                    (part_side, whole_side)
                } else {
                    (whole_side, part_side)
                };
                boxes.push(CopyBox {
                    x,
                    x_offset,
                    x_strides,
                    y,
                    y_offset,
                    y_strides,
                    dims: ps.iter().map(|&d| d as i64).collect(),
                });
                at += ps[axis] as i64;
            }
        }
        OpKind::Transpose => {
            let (x, y) = (operands[0], node.outputs[0]);
            let (xs, ys) = (dims_of(x), dims_of(y));
            let rank = xs.len();
            let perm: Vec<i64> = match a.ints("perm").map_err(super::attr_err)? {
                Some(p) => p,
                None => (0..rank as i64).rev().collect(),
            };
            let mut seen = vec![false; rank];
            for &p in &perm {
                if p < 0 || p as usize >= rank || std::mem::replace(&mut seen[p as usize], true) {
                    return Ok(None);
                }
            }
            if perm.len() != rank || ys.len() != rank {
                return Ok(None);
            }
            let st = dense_strides(&xs);
            boxes.push(CopyBox {
                x,
                x_offset: 0,
                x_strides: perm.iter().map(|&p| st[p as usize]).collect(),
                y,
                y_offset: 0,
                y_strides: dense_strides(&ys),
                dims: ys.iter().map(|&d| d as i64).collect(),
            });
        }
        _ => return Ok(None),
    }
    // Every box must fit the kernel; an empty one copies nothing (islands
    // handle empty tensors).
    let fits = |c: &CopyBox| {
        CopyArgs::new(
            (),
            c.x_offset,
            (),
            c.y_offset,
            &c.dims,
            &c.x_strides,
            &c.y_strides,
        )
        .is_some()
    };
    if boxes.is_empty() || !boxes.iter().all(fits) {
        return Ok(None);
    }
    Ok(Some(boxes))
}

/// `[rows, cols]` of a tensor whose every element is computed alike (no
/// operand broadcast along some dims only): the last dims merged into
/// `cols` until it is at least [`DENSE_COLS`] wide, so narrow last dims (3
/// channels in NHWC) do not leave the vector lanes mostly empty.
fn dense_rows_cols(s: &[u64]) -> (u64, u64) {
    let mut cols = 1;
    let mut k = s.len();
    while k > 0 && (cols < DENSE_COLS || k == s.len()) {
        k -= 1;
        cols *= s[k];
    }
    (s[..k].iter().product(), cols)
}

/// The width [`dense_rows_cols`] merges dims up to.
const DENSE_COLS: u64 = 256;

/// The `KILN_QCODE_*`s of a quantized product's codes `w` and scales `s`,
/// where the kernels decode them (f32, E8M0 or E4M3 scales).
fn quant_codes(g: &Graph, w: ValueId, s: ValueId) -> Option<(i64, i64)> {
    let sdt = g.value(s).ty.dtype;
    let scale_ok = matches!(sdt, DType::F32 | DType::F8E8M0 | DType::F8E4M3FN);
    let code = abi::qcode(g.value(w).ty.dtype).filter(|&c| c != 0)?;
    Some((code, abi::qcode(sdt).filter(|_| scale_ok)?))
}

/// The weights a convolution kernel call reads.
enum ConvWeights<P> {
    /// f32 weights packed by `pack-weights` (`conv_nhwc` or `dwconv_nhwc`)
    /// and the packed constant.
    Packed(Packing, ValueId),
    /// A `quant.conv`'s shapes, its constant codes and their quantization.
    Quant(kiln_ir::ops::QConvShape, ValueId, ConvQuant<P>),
}

/// Most taps of a `quant.conv` the conv2d kernel takes (its decoded panel
/// block, taps x channel block x NR floats, is on the stack).
const QCONV_MAX_TAPS: u64 = 256;

fn rows_cols(s: &[u64]) -> (u64, u64) {
    match s.split_last() {
        Some((&c, rest)) => (rest.iter().product(), c),
        None => (1, 1),
    }
}

/// The epilogue matrix of a contraction's output: a GEMM's `[M, N]` (per
/// batch: the caller folds batches), a convolution's `[N*OH*OW, COUT]`.
fn matrix_of(out: &[u64], op: OpKind) -> (u64, u64) {
    match op {
        OpKind::Conv | OpKind::QConv => rows_cols(out),
        _ => match out.len() {
            0 | 1 => (1, out.first().copied().unwrap_or(1)),
            r => (out[r - 2], out[r - 1]),
        },
    }
}
