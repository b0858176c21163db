//! The argument blocks of the kernels: the Rust mirror of `kernels/kiln_kernels.h`.
//!
//! Every kernel takes one pointer to a block of 64-bit slots. A `*Args` struct here holds one
//! kernel's arguments and [`KernelArgs::slots`] lays them out as [`Slot`]s, generic over what a
//! pointer is (`P`): the lowering uses MLIR SSA value names, the tests real addresses. Slot
//! indices are the constants of the `layout` modules ([`gemm`], [`conv`], ...), which the unit
//! test `header_matches_rust` checks against every `#define` of the header, so the two sides
//! cannot drift.
//!
//! Conventions: strides, leading dimensions and offsets count f32 elements; floats travel as the
//! bits of an f64; absent optional pointers are 0.
//!
//! Scratch: kernels never allocate. [`GemmArgs::scratch_bytes`] and
//! [`AttentionArgs::scratch_bytes`] give the bytes the caller must provide (64-byte aligned);
//! per-thread scratch is sized for [`MAX_SLOTS`] threads (a kernel never uses more slots, even
//! on a larger pool).

use super::Variant;

/// One 64-bit argument slot.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot<P> {
    /// An integer (sizes, strides, flags).
    Int(i64),
    /// A float, passed as the bits of an f64.
    Float(f64),
    /// A pointer.
    Ptr(P),
}

impl<P> Slot<P> {
    /// The slot's 64-bit value, with `ptr` giving the address of a pointer.
    pub fn to_bits(&self, ptr: impl Fn(&P) -> i64) -> i64 {
        match self {
            Slot::Int(v) => *v,
            Slot::Float(f) => f.to_bits() as i64,
            Slot::Ptr(p) => ptr(p),
        }
    }
}

/// Arguments of one kernel.
pub trait KernelArgs<P> {
    /// The argument block.
    fn slots(&self) -> Vec<Slot<P>>;
}

/// Why an argument block could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// An epilogue has more ops than a kernel applies ([`EPI_MAX_OPS`]).
    #[error("an epilogue holds at most {max} ops, not {got}")]
    TooManyEpilogueOps {
        /// The limit.
        max: usize,
        /// What was asked for.
        got: usize,
    },
}

/// Declares the slot indices of one kernel: constants, plus their `(name, index)` list for the
/// header check.
macro_rules! layout {
    ($(#[$doc:meta])* $module:ident = $prefix:literal { $($(#[$fdoc:meta])* $field:ident = $index:literal,)* }) => {
        $(#[$doc])*
        pub mod $module {
            $($(#[$fdoc])* pub const $field: usize = $index;)*
            /// `(name, index)` of every slot, for the header check.
            pub const FIELDS: &[(&str, usize)] = &[$((stringify!($field), $index)),*];
            /// The `#define` prefix of these slots in `kiln_kernels.h`.
            pub const PREFIX: &str = $prefix;
        }
    };
}

/// Most per-thread scratch slots a kernel uses (`KILN_MAX_SLOTS`).
pub const MAX_SLOTS: usize = 64;
/// Most ops in one epilogue (`KILN_EPI_MAX_OPS`).
pub const EPI_MAX_OPS: usize = 8;

/// The GEMM register tile `(mr, nr)` of a variant (`KILN_<VARIANT>_MR/NR`).
pub fn variant_tile(v: Variant) -> (usize, usize) {
    match v {
        Variant::W4R16 => (6, 8),
        Variant::W8R16 => (6, 16),
        Variant::W16R32 => (6, 64),
        Variant::W4R32 => (8, 12),
    }
}

layout!(
    /// Slots of one epilogue op, relative to its start (`KILN_EPI_OP_*`).
    epi_op = "KILN_EPI_OP_" {
        CODE = 0,
        KIND = 1,
        PTR = 2,
        LD = 3,
        BATCH_STRIDE = 4,
        P0 = 5,
        P1 = 6,
    }
);
/// Slots per epilogue op (`KILN_EPI_OP_SLOTS`).
pub const EPI_OP_SLOTS: usize = 7;

/// A unary epilogue op (`KILN_EPI_*` codes 16 and up).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `max(x, 0)` (NaN stays NaN).
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    GeluErf,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `max(0, min(1, alpha x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * max(0, min(1, x / 6 + 1 / 2))`.
    HardSwish,
    /// `x < 0 ? alpha (exp(x) - 1) : x`.
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
    /// `exp(x)`.
    Exp,
    /// `erf(x)`.
    Erf,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `sqrt(x)`.
    Sqrt,
    /// `log(x)`.
    Log,
}

impl Unary {
    /// `(code, p0, p1)` of the op.
    pub fn encode(self) -> (i64, f32, f32) {
        match self {
            Unary::Relu => (EPI_CODES[8].1, 0.0, 0.0),
            Unary::Clip { lo, hi } => (EPI_CODES[9].1, lo, hi),
            Unary::LeakyRelu { alpha } => (EPI_CODES[10].1, alpha, 0.0),
            Unary::Sigmoid => (EPI_CODES[11].1, 0.0, 0.0),
            Unary::Tanh => (EPI_CODES[12].1, 0.0, 0.0),
            Unary::GeluErf => (EPI_CODES[13].1, 0.0, 0.0),
            Unary::GeluTanh => (EPI_CODES[14].1, 0.0, 0.0),
            Unary::Silu => (EPI_CODES[15].1, 0.0, 0.0),
            Unary::HardSigmoid { alpha, beta } => (EPI_CODES[16].1, alpha, beta),
            Unary::HardSwish => (EPI_CODES[17].1, 0.0, 0.0),
            Unary::Elu { alpha } => (EPI_CODES[18].1, alpha, 0.0),
            Unary::Exp => (EPI_CODES[19].1, 0.0, 0.0),
            Unary::Erf => (EPI_CODES[20].1, 0.0, 0.0),
            Unary::Neg => (EPI_CODES[21].1, 0.0, 0.0),
            Unary::Abs => (EPI_CODES[22].1, 0.0, 0.0),
            Unary::Sqrt => (EPI_CODES[23].1, 0.0, 0.0),
            Unary::Log => (EPI_CODES[24].1, 0.0, 0.0),
        }
    }
}

/// A binary epilogue op; `c` is the value computed so far, `x` the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `c + x`
    Add,
    /// `c - x`
    Sub,
    /// `x - c`
    Rsub,
    /// `c * x`
    Mul,
    /// `c / x`
    Div,
    /// `x / c`
    Rdiv,
    /// `max(c, x)`, NaN if either is NaN.
    Max,
    /// `min(c, x)`, NaN if either is NaN.
    Min,
}

impl Binary {
    /// The op's code.
    pub fn code(self) -> i64 {
        let i = match self {
            Binary::Add => 0,
            Binary::Sub => 1,
            Binary::Rsub => 2,
            Binary::Mul => 3,
            Binary::Div => 4,
            Binary::Rdiv => 5,
            Binary::Max => 6,
            Binary::Min => 7,
        };
        EPI_CODES[i].1
    }
}

/// `(name, code)` of every epilogue op (`KILN_EPI_<name>`), binary ops first, in the order of
/// [`Binary`] and [`Unary`].
pub const EPI_CODES: [(&str, i64); 25] = [
    ("ADD", 1),
    ("SUB", 2),
    ("RSUB", 3),
    ("MUL", 4),
    ("DIV", 5),
    ("RDIV", 6),
    ("MAX", 7),
    ("MIN", 8),
    ("RELU", 16),
    ("CLIP", 17),
    ("LEAKY_RELU", 18),
    ("SIGMOID", 19),
    ("TANH", 20),
    ("GELU_ERF", 21),
    ("GELU_TANH", 22),
    ("SILU", 23),
    ("HARD_SIGMOID", 24),
    ("HARD_SWISH", 25),
    ("ELU", 26),
    ("EXP", 27),
    ("ERF", 28),
    ("NEG", 29),
    ("ABS", 30),
    ("SQRT", 31),
    ("LOG", 32),
];

/// `(name, code)` of the operand kinds (`KILN_OPND_<name>`).
pub const OPERAND_KINDS: [(&str, i64); 5] = [
    ("IMM", 0),
    ("SCALAR", 1),
    ("ROW", 2),
    ("COL", 3),
    ("MAT", 4),
];

/// The operand of a binary epilogue op, positioned by output (row, column).
#[derive(Clone, Debug, PartialEq)]
pub enum Operand<P> {
    /// A constant.
    Imm(f32),
    /// One f32 in memory.
    Scalar(P),
    /// `ptr[column]`: a bias.
    Row(P),
    /// `ptr[row]`.
    Col(P),
    /// `ptr[row * ld + column]`: a residual.
    Mat {
        /// The matrix.
        ptr: P,
        /// Its leading dimension.
        ld: i64,
    },
}

/// One epilogue op.
#[derive(Clone, Debug, PartialEq)]
pub enum EpiOp<P> {
    /// A unary op.
    Unary(Unary),
    /// A binary op with its operand; `batch_stride` advances the operand per batch of a
    /// batched GEMM (0: the same operand for every batch).
    Binary {
        /// The op.
        op: Binary,
        /// The operand.
        operand: Operand<P>,
        /// Elements between the operands of consecutive batches.
        batch_stride: i64,
    },
}

/// Up to [`EPI_MAX_OPS`] ops applied, in order, to each output element while its tile is in
/// registers or L1.
#[derive(Clone, Debug, PartialEq)]
pub struct Epilogue<P> {
    ops: Vec<EpiOp<P>>,
}

impl<P> Default for Epilogue<P> {
    fn default() -> Self {
        Epilogue { ops: Vec::new() }
    }
}

impl<P: Clone> Epilogue<P> {
    /// No ops.
    pub fn none() -> Self {
        Self::default()
    }

    /// An epilogue of `ops`, refused above [`EPI_MAX_OPS`].
    pub fn new(ops: Vec<EpiOp<P>>) -> Result<Self, AbiError> {
        if ops.len() > EPI_MAX_OPS {
            return Err(AbiError::TooManyEpilogueOps {
                max: EPI_MAX_OPS,
                got: ops.len(),
            });
        }
        Ok(Epilogue { ops })
    }

    /// The ops.
    pub fn ops(&self) -> &[EpiOp<P>] {
        &self.ops
    }

    /// Appends the epilogue block: the count, then [`EPI_OP_SLOTS`] slots per op.
    pub fn push_slots(&self, out: &mut Vec<Slot<P>>) {
        out.push(Slot::Int(self.ops.len() as i64));
        for op in &self.ops {
            let mut s: Vec<Slot<P>> = vec![Slot::Int(0); EPI_OP_SLOTS];
            match op {
                EpiOp::Unary(u) => {
                    let (code, p0, p1) = u.encode();
                    s[epi_op::CODE] = Slot::Int(code);
                    s[epi_op::P0] = Slot::Float(f64::from(p0));
                    s[epi_op::P1] = Slot::Float(f64::from(p1));
                }
                EpiOp::Binary {
                    op,
                    operand,
                    batch_stride,
                } => {
                    s[epi_op::CODE] = Slot::Int(op.code());
                    s[epi_op::BATCH_STRIDE] = Slot::Int(*batch_stride);
                    let (kind, ptr, ld, p0) = match operand {
                        Operand::Imm(v) => (0, None, 0, f64::from(*v)),
                        Operand::Scalar(p) => (1, Some(p), 0, 0.0),
                        Operand::Row(p) => (2, Some(p), 0, 0.0),
                        Operand::Col(p) => (3, Some(p), 0, 0.0),
                        Operand::Mat { ptr, ld } => (4, Some(ptr), *ld, 0.0),
                    };
                    s[epi_op::KIND] = Slot::Int(OPERAND_KINDS[kind].1);
                    if let Some(p) = ptr {
                        s[epi_op::PTR] = Slot::Ptr(p.clone());
                    }
                    s[epi_op::LD] = Slot::Int(ld);
                    s[epi_op::P0] = Slot::Float(p0);
                }
            }
            out.extend(s);
        }
    }
}

fn ptr_or_null<P: Clone>(p: &Option<P>) -> Slot<P> {
    p.as_ref().map_or(Slot::Int(0), |p| Slot::Ptr(p.clone()))
}

/// Builds a fixed part of `len` slots (all 0) and lets `fill` set them.
fn block<P: Clone>(len: usize, fill: impl FnOnce(&mut Vec<Slot<P>>)) -> Vec<Slot<P>> {
    let mut s = vec![Slot::Int(0); len];
    fill(&mut s);
    s
}

// ---------------------------------------------------------------------------------------------
// gemm

layout!(
    /// Slots of [`GemmArgs`] (`KILN_GEMM_*`).
    gemm = "KILN_GEMM_" {
        A = 0,
        LDA = 1,
        A_TRANS = 2,
        A_BATCH_STRIDE = 3,
        B = 4,
        LDB = 5,
        B_FORMAT = 6,
        B_BATCH_STRIDE = 7,
        C = 8,
        LDC = 9,
        C_BATCH_STRIDE = 10,
        M = 11,
        N = 12,
        K = 13,
        BATCH = 14,
        KC = 15,
        NC = 16,
        SCRATCH = 17,
        EPILOGUE = 18,
    }
);

/// How the B operand of a GEMM is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BFormat {
    /// Packed `gemm_b` with the variant's NR: `[ceil(N/NR), K, NR]`.
    Packed,
    /// Row-major `B[k * ldb + n]` (packed into scratch by the kernel).
    RowMajor,
    /// Transposed, `B[n * ldb + k]` (packed into scratch by the kernel).
    Transposed,
}

/// `C[M,N] = epilogue(A[M,K] . B[K,N])`, `batch` times.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmArgs<P> {
    /// A; element `(i, k)` at `a[i*lda + k]`, or `a[k*lda + i]` when `a_trans`.
    pub a: P,
    /// Leading dimension of A.
    pub lda: i64,
    /// A is stored transposed (`[K, M]`).
    pub a_trans: bool,
    /// Elements between the A matrices of consecutive batches (0: shared).
    pub a_batch_stride: i64,
    /// B, in `b_format`.
    pub b: P,
    /// Leading dimension of a runtime B (unused when packed).
    pub ldb: i64,
    /// How B is stored.
    pub b_format: BFormat,
    /// Elements between the B matrices of consecutive batches (packed: between packed
    /// matrices; 0: shared).
    pub b_batch_stride: i64,
    /// C.
    pub c: P,
    /// Leading dimension of C.
    pub ldc: i64,
    /// Elements between the C matrices of consecutive batches.
    pub c_batch_stride: i64,
    /// Rows of A and C.
    pub m: i64,
    /// Columns of B and C.
    pub n: i64,
    /// The reduction.
    pub k: i64,
    /// Number of GEMMs.
    pub batch: i64,
    /// K block (0: the variant's default; x86: 256 for w8r16, 512 for w16r32).
    pub kc: i64,
    /// Column block, a multiple of NR (0: the variant's default).
    pub nc: i64,
    /// Scratch of [`GemmArgs::scratch_bytes`] bytes (64-byte aligned) when B is not packed.
    pub scratch: Option<P>,
    /// Applied to C.
    pub epilogue: Epilogue<P>,
}

impl<P> GemmArgs<P> {
    /// Scratch bytes for `variant`: one packed copy of B when B is a runtime matrix, else 0.
    pub fn scratch_bytes(&self, variant: Variant) -> u64 {
        match self.b_format {
            BFormat::Packed => 0,
            BFormat::RowMajor | BFormat::Transposed => packed_b_floats(self.k, self.n, variant) * 4,
        }
    }
}

/// Floats of a packed `gemm_b` operand `[ceil(N/NR), K, NR]`.
pub fn packed_b_floats(k: i64, n: i64, variant: Variant) -> u64 {
    let nr = variant.nr() as u64;
    let (k, n) = (k.max(0) as u64, n.max(0) as u64);
    n.div_ceil(nr) * nr * k
}

impl<P: Clone> KernelArgs<P> for GemmArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(gemm::EPILOGUE, |s| {
            s[gemm::A] = Slot::Ptr(self.a.clone());
            s[gemm::LDA] = Slot::Int(self.lda);
            s[gemm::A_TRANS] = Slot::Int(i64::from(self.a_trans));
            s[gemm::A_BATCH_STRIDE] = Slot::Int(self.a_batch_stride);
            s[gemm::B] = Slot::Ptr(self.b.clone());
            s[gemm::LDB] = Slot::Int(self.ldb);
            s[gemm::B_FORMAT] = Slot::Int(match self.b_format {
                BFormat::Packed => 0,
                BFormat::RowMajor => 1,
                BFormat::Transposed => 2,
            });
            s[gemm::B_BATCH_STRIDE] = Slot::Int(self.b_batch_stride);
            s[gemm::C] = Slot::Ptr(self.c.clone());
            s[gemm::LDC] = Slot::Int(self.ldc);
            s[gemm::C_BATCH_STRIDE] = Slot::Int(self.c_batch_stride);
            s[gemm::M] = Slot::Int(self.m);
            s[gemm::N] = Slot::Int(self.n);
            s[gemm::K] = Slot::Int(self.k);
            s[gemm::BATCH] = Slot::Int(self.batch);
            s[gemm::KC] = Slot::Int(self.kc);
            s[gemm::NC] = Slot::Int(self.nc);
            s[gemm::SCRATCH] = ptr_or_null(&self.scratch);
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// conv2d

layout!(
    /// Slots of [`ConvArgs`] (`KILN_CONV_*`).
    conv = "KILN_CONV_" {
        X = 0,
        N = 1,
        H = 2,
        W = 3,
        CIN = 4,
        X_STRIDE = 5,
        X_OFFSET = 6,
        WEIGHTS = 7,
        Y = 8,
        OH = 9,
        OW = 10,
        COUT = 11,
        Y_STRIDE = 12,
        Y_OFFSET = 13,
        KH = 14,
        KW = 15,
        STRIDE_H = 16,
        STRIDE_W = 17,
        DIL_H = 18,
        DIL_W = 19,
        PAD_TOP = 20,
        PAD_LEFT = 21,
        PAD_BOTTOM = 22,
        PAD_RIGHT = 23,
        GROUPS = 24,
        KC = 25,
        NC = 26,
        WINO_TILES = 27,
        SCRATCH = 28,
        Q_KW = 29,
        Q_CODE = 30,
        Q_SCALES = 31,
        Q_SCALE_CODE = 32,
        Q_ZP = 33,
        Q_ZP_COLS = 34,
        Q_BLOCK = 35,
        Q_NBLOCKS = 36,
        Q_PANELS = 37,
        Q_BLOCK_FLOATS = 38,
        EPILOGUE = 39,
    }
);

/// The geometry of a 2-D sliding window (convolution or pooling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Window {
    /// Kernel height.
    pub kh: i64,
    /// Kernel width.
    pub kw: i64,
    /// Stride along H.
    pub stride_h: i64,
    /// Stride along W.
    pub stride_w: i64,
    /// Dilation along H.
    pub dil_h: i64,
    /// Dilation along W.
    pub dil_w: i64,
    /// Padding above.
    pub pad_top: i64,
    /// Padding left.
    pub pad_left: i64,
    /// Padding below.
    pub pad_bottom: i64,
    /// Padding right.
    pub pad_right: i64,
}

impl Window {
    /// A `k x k` window with stride `stride` along both axes, dilation 1 and `pad` on every
    /// side.
    pub fn square(k: i64, stride: i64, pad: i64) -> Window {
        Window {
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            dil_h: 1,
            dil_w: 1,
            pad_top: pad,
            pad_left: pad,
            pad_bottom: pad,
            pad_right: pad,
        }
    }
}

/// An NHWC activation tensor inside a possibly wider buffer: pixel `(n, h, w)`, channel `c` at
/// `ptr[((n*H + h)*W + w) * stride + offset + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nhwc<P> {
    /// The buffer.
    pub ptr: P,
    /// Elements between consecutive pixels (the buffer's channel count).
    pub stride: i64,
    /// First channel of this tensor in the buffer.
    pub offset: i64,
}

impl<P> Nhwc<P> {
    /// A tensor that is its whole buffer: `channels` per pixel from channel 0.
    pub fn dense(ptr: P, channels: i64) -> Nhwc<P> {
        Nhwc {
            ptr,
            stride: channels,
            offset: 0,
        }
    }
}

/// NHWC convolution: `Y = epilogue(conv(X, W))`, weights packed as `conv_nhwc` with the
/// variant's NR. Epilogue rows are output pixels, columns output channels.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvArgs<P> {
    /// Input `[N, H, W, CIN]`.
    pub x: Nhwc<P>,
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Input channels (all groups).
    pub cin: i64,
    /// Packed weights `[G, ceil((COUT/G)/NR), KH*KW*(CIN/G), NR]`.
    pub weights: P,
    /// Output `[N, OH, OW, COUT]`.
    pub y: Nhwc<P>,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Output channels (all groups).
    pub cout: i64,
    /// Kernel, strides, dilations, pads.
    pub window: Window,
    /// Groups (CIN and COUT multiples of it).
    pub groups: i64,
    /// K block (0: default).
    pub kc: i64,
    /// Column block (0: default).
    pub nc: i64,
    /// Winograd F(2x2, 3x3) in chunks of this many 2x2 output tiles ([`wino_chunk_tiles`]);
    /// 0 runs the direct kernel. Only 3x3, stride 1, dilation 1, one group.
    pub wino_tiles: i64,
    /// Scratch of [`ConvArgs::scratch_bytes`] bytes (64-byte aligned), with `wino_tiles`.
    pub scratch: Option<P>,
    /// Block-quantized weights (`quant.conv`): `weights` then holds the codes, `COUT` rows
    /// of `kw` codes in window order (tap-major, channels fastest), dequantized a panel
    /// block at a time as the kernel reads them. `None`: packed f32 weights.
    pub quant: Option<ConvQuant<P>>,
    /// Applied to Y.
    pub epilogue: Epilogue<P>,
}

/// A block-quantized weight as the kernels read it: the quantization of a convolution's
/// weights ([`ConvArgs::quant`], `quant.conv`) and the weight fields of [`QGemmArgs`]; both
/// kernels take them in eight slots of the same order (`KW` .. `NBLOCKS`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvQuant<P> {
    /// `KILN_QCODE_*` of the codes.
    pub code: i64,
    /// Codes per row (`>= KH*KW*CIN/GROUPS`).
    pub kw: i64,
    /// The scales `[COUT, nblocks]`.
    pub scales: P,
    /// `KILN_QCODE_*` of the scales (`F32`, `E8M0`, `F8E4M3FN`).
    pub scale_code: i64,
    /// Zero points (rows packed like the codes) and their codes per row.
    pub zp: Option<(P, i64)>,
    /// Values per block along a row.
    pub block: i64,
    /// Blocks per row.
    pub nblocks: i64,
    /// 0: codes, scales and zero points as stored (rows). [`QG_PANEL`]: codes and zero
    /// points packed as `row_panels_k8` and scales as `row_panels`, that block (written
    /// to conv2d's `Q_PANELS` slot; qgemm takes its own `PANELS`).
    pub panels: i64,
    /// Floats of one decoded panel block (conv2d's `Q_BLOCK_FLOATS`,
    /// [`qconv_block_floats`]): the kernel's scratch holds [`MAX_SLOTS`] of them.
    pub block_floats: i64,
}

impl<P> ConvArgs<P> {
    /// Scratch bytes for `variant`: with quantized weights [`MAX_SLOTS`] decoded panel blocks
    /// of [`ConvQuant::block_floats`] (each 64-byte aligned); 0 for the direct kernel; else
    /// [`wino_scratch_bytes`].
    pub fn scratch_bytes(&self, variant: Variant) -> u64 {
        if let Some(q) = &self.quant {
            return MAX_SLOTS as u64 * (q.block_floats.max(0) as u64 * 4).next_multiple_of(64);
        }
        if self.wino_tiles <= 0 {
            return 0;
        }
        let tiles = wino_tiles(self.n, self.oh, self.ow);
        wino_scratch_bytes(self.cin, self.cout, self.wino_tiles, tiles, variant)
    }
}

/// Most products per output channel (taps x input channels) in a decoded panel block of a
/// quantized convolution: ResNet's 3x3 layers of 512 channels decode blocks of 64 channels,
/// as they would without the bound.
pub const QCONV_BLOCK_K: i64 = 576;

/// Floats of the panel block a quantized convolution (`quant.conv`) decodes at a time, for
/// `taps` window positions and `cin_g` input channels per group: `taps` x channel block x NR,
/// the block at most [`QCONV_BLOCK_K`] / `taps` channels rounded down to whole steps of 8 (at
/// least 8, at most all the channels rounded up to 8). The kernel shrinks its channel block
/// to fit.
pub fn qconv_block_floats(taps: i64, cin_g: i64, variant: Variant) -> i64 {
    let taps = taps.max(1);
    let cb = (QCONV_BLOCK_K / taps / 8 * 8)
        .max(8)
        .min((cin_g.max(1) + 7) / 8 * 8);
    taps * cb * variant.nr() as i64
}

/// The 2x2 output tiles of a Winograd convolution of `n` images of `oh x ow` outputs.
pub fn wino_tiles(n: i64, oh: i64, ow: i64) -> i64 {
    n * ((oh + 1) / 2) * ((ow + 1) / 2)
}

/// Most Winograd chunks in flight at once (`KILN_WINO_SLOTS`).
pub const WINO_SLOTS: i64 = 8;

/// Winograd scratch (`kernels/wino.h`) for chunks of `chunk` of `tiles` 2x2 output tiles:
/// the 16 transformed weight operands, then per slot (one per chunk in flight, at most
/// [`WINO_SLOTS`]) the chunk's transformed input (channels rounded up to the vector width)
/// and its 16 products (whole panels), each part rounded up to 64 bytes.
pub fn wino_scratch_bytes(cin: i64, cout: i64, chunk: i64, tiles: i64, variant: Variant) -> u64 {
    let (nr, vw) = (variant.nr() as u64, variant.lanes() as u64);
    let (cin, cout) = (cin.max(0) as u64, cout.max(0) as u64);
    let chunk = chunk.max(1);
    let slots = ((tiles.max(1) + chunk - 1) / chunk).min(WINO_SLOTS) as u64;
    let chunk = chunk as u64;
    let np = cout.div_ceil(nr);
    let round = |floats: u64| floats.div_ceil(16) * 16;
    let u = round(16 * np * cin * nr);
    let v = round(16 * chunk * cin.div_ceil(vw) * vw);
    let m = round(16 * chunk * np * nr);
    4 * (u + slots * (v + m))
}

/// Smallest number of 2x2 output tiles for which Winograd pays off over the direct kernel
/// when a target enables it (`CpuConfig::winograd`).
pub const WINO_MIN_TILES: i64 = 48;
/// Bytes of transformed input and products one Winograd chunk aims at: within one core's L2
/// (the chunk's products are read back by its output transform while still cached).
pub const WINO_CHUNK_BYTES: i64 = 3 << 18;

/// Tiles per Winograd chunk for a convolution, or 0 where the direct kernel is used: a 3x3,
/// stride-1, undilated, ungrouped convolution of at least [`WINO_MIN_TILES`] output tiles
/// and at least 16 input and output channels. Chunks of about [`WINO_CHUNK_BYTES`], an even
/// number of them (two threads get equal shares) where chunks keep at least 4 row tiles.
#[allow(clippy::too_many_arguments)]
pub fn wino_chunk_tiles(
    n: i64,
    oh: i64,
    ow: i64,
    cin: i64,
    cout: i64,
    window: &Window,
    groups: i64,
    variant: Variant,
) -> i64 {
    let w = window;
    let eligible = w.kh == 3
        && w.kw == 3
        && w.stride_h == 1
        && w.stride_w == 1
        && w.dil_h == 1
        && w.dil_w == 1
        && groups == 1
        && cin >= 16
        && cout >= 16;
    let tiles = wino_tiles(n, oh, ow);
    if !eligible || tiles < WINO_MIN_TILES {
        return 0;
    }
    let (nr, vw, mr) = (
        variant.nr() as i64,
        variant.lanes() as i64,
        variant.mr() as i64,
    );
    let up = |x: i64, m: i64| (x + m - 1) / m * m;
    let per_tile = 16 * 4 * (up(cin, vw) + up(cout, nr));
    let least = 4 * mr;
    let most = (WINO_CHUNK_BYTES / per_tile).max(least);
    let mut chunks = (tiles + most - 1) / most;
    if chunks > 1 {
        chunks = up(chunks, 2);
    }
    // Not at the cost of chunks under `least` tiles: each chunk reads all 16 transformed
    // weight operands again (ResNet-50's 14x14x256 layers: 2 chunks of 25, not 4 of 13).
    while chunks > 1 && tiles / chunks < least {
        chunks -= if chunks > 2 { 2 } else { 1 };
    }
    (tiles + chunks - 1) / chunks
}

fn window_slots<P>(s: &mut [Slot<P>], w: &Window, base: usize) {
    let v = [
        w.kh,
        w.kw,
        w.stride_h,
        w.stride_w,
        w.dil_h,
        w.dil_w,
        w.pad_top,
        w.pad_left,
        w.pad_bottom,
        w.pad_right,
    ];
    for (i, x) in v.into_iter().enumerate() {
        s[base + i] = Slot::Int(x);
    }
}

impl<P: Clone> ConvQuant<P> {
    /// Writes the eight weight slots from `kw` (qgemm's `KW`, conv2d's `Q_KW`) on.
    fn put(&self, s: &mut [Slot<P>], kw: usize) {
        s[kw] = Slot::Int(self.kw);
        s[kw + 1] = Slot::Int(self.code);
        s[kw + 2] = Slot::Ptr(self.scales.clone());
        s[kw + 3] = Slot::Int(self.scale_code);
        if let Some((p, cols)) = &self.zp {
            s[kw + 4] = Slot::Ptr(p.clone());
            s[kw + 5] = Slot::Int(*cols);
        }
        s[kw + 6] = Slot::Int(self.block);
        s[kw + 7] = Slot::Int(self.nblocks);
    }
}

impl<P: Clone> KernelArgs<P> for ConvArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(conv::EPILOGUE, |s| {
            s[conv::X] = Slot::Ptr(self.x.ptr.clone());
            s[conv::N] = Slot::Int(self.n);
            s[conv::H] = Slot::Int(self.h);
            s[conv::W] = Slot::Int(self.w);
            s[conv::CIN] = Slot::Int(self.cin);
            s[conv::X_STRIDE] = Slot::Int(self.x.stride);
            s[conv::X_OFFSET] = Slot::Int(self.x.offset);
            s[conv::WEIGHTS] = Slot::Ptr(self.weights.clone());
            s[conv::Y] = Slot::Ptr(self.y.ptr.clone());
            s[conv::OH] = Slot::Int(self.oh);
            s[conv::OW] = Slot::Int(self.ow);
            s[conv::COUT] = Slot::Int(self.cout);
            s[conv::Y_STRIDE] = Slot::Int(self.y.stride);
            s[conv::Y_OFFSET] = Slot::Int(self.y.offset);
            window_slots(s, &self.window, conv::KH);
            s[conv::GROUPS] = Slot::Int(self.groups);
            s[conv::KC] = Slot::Int(self.kc);
            s[conv::NC] = Slot::Int(self.nc);
            s[conv::WINO_TILES] = Slot::Int(self.wino_tiles);
            s[conv::SCRATCH] = ptr_or_null(&self.scratch);
            if let Some(q) = &self.quant {
                q.put(s, conv::Q_KW);
                s[conv::Q_PANELS] = Slot::Int(q.panels);
                s[conv::Q_BLOCK_FLOATS] = Slot::Int(q.block_floats);
            }
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

/// Floats of packed `conv_nhwc` weights for `variant`.
pub fn packed_conv_floats(
    cout: i64,
    cin: i64,
    kh: i64,
    kw: i64,
    groups: i64,
    variant: Variant,
) -> u64 {
    let g = groups.max(1);
    let k = kh * kw * (cin / g);
    g as u64 * packed_b_floats(k, cout / g, variant)
}

// ---------------------------------------------------------------------------------------------
// dwconv2d

layout!(
    /// Slots of [`DwConvArgs`] (`KILN_DWCONV_*`).
    dwconv = "KILN_DWCONV_" {
        X = 0,
        N = 1,
        H = 2,
        W = 3,
        C = 4,
        X_STRIDE = 5,
        X_OFFSET = 6,
        WEIGHTS = 7,
        Y = 8,
        OH = 9,
        OW = 10,
        Y_STRIDE = 11,
        Y_OFFSET = 12,
        KH = 13,
        KW = 14,
        STRIDE_H = 15,
        STRIDE_W = 16,
        DIL_H = 17,
        DIL_W = 18,
        PAD_TOP = 19,
        PAD_LEFT = 20,
        PAD_BOTTOM = 21,
        PAD_RIGHT = 22,
        EPILOGUE = 23,
    }
);

/// Depthwise NHWC convolution (one filter per channel), weights `dwconv_nhwc` `[KH, KW, C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DwConvArgs<P> {
    /// Input `[N, H, W, C]`.
    pub x: Nhwc<P>,
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Channels.
    pub c: i64,
    /// Weights `[KH, KW, C]`.
    pub weights: P,
    /// Output `[N, OH, OW, C]`.
    pub y: Nhwc<P>,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Kernel, strides, dilations, pads.
    pub window: Window,
    /// Applied to Y (rows: output pixels, columns: channels).
    pub epilogue: Epilogue<P>,
}

impl<P: Clone> KernelArgs<P> for DwConvArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(dwconv::EPILOGUE, |s| {
            s[dwconv::X] = Slot::Ptr(self.x.ptr.clone());
            s[dwconv::N] = Slot::Int(self.n);
            s[dwconv::H] = Slot::Int(self.h);
            s[dwconv::W] = Slot::Int(self.w);
            s[dwconv::C] = Slot::Int(self.c);
            s[dwconv::X_STRIDE] = Slot::Int(self.x.stride);
            s[dwconv::X_OFFSET] = Slot::Int(self.x.offset);
            s[dwconv::WEIGHTS] = Slot::Ptr(self.weights.clone());
            s[dwconv::Y] = Slot::Ptr(self.y.ptr.clone());
            s[dwconv::OH] = Slot::Int(self.oh);
            s[dwconv::OW] = Slot::Int(self.ow);
            s[dwconv::Y_STRIDE] = Slot::Int(self.y.stride);
            s[dwconv::Y_OFFSET] = Slot::Int(self.y.offset);
            window_slots(s, &self.window, dwconv::KH);
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// eltwise, softmax, norm

layout!(
    /// Slots of [`EltwiseArgs`] (`KILN_ELTWISE_*`).
    eltwise = "KILN_ELTWISE_" {
        X = 0,
        LDX = 1,
        Y = 2,
        LDY = 3,
        ROWS = 4,
        COLS = 5,
        EPILOGUE = 6,
    }
);

/// A `[rows, cols]` matrix view: element `(r, c)` at `ptr[r * ld + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<P> {
    /// The buffer.
    pub ptr: P,
    /// Leading dimension.
    pub ld: i64,
}

/// Writes X, LDX, Y, LDY, ROWS and COLS, the first six slots of every row-wise kernel
/// (eltwise, softmax, norm: checked by `row_kernels_share_their_first_slots`).
fn matrix_slots<P: Clone>(s: &mut [Slot<P>], x: &Matrix<P>, y: &Matrix<P>, rows: i64, cols: i64) {
    s[eltwise::X] = Slot::Ptr(x.ptr.clone());
    s[eltwise::LDX] = Slot::Int(x.ld);
    s[eltwise::Y] = Slot::Ptr(y.ptr.clone());
    s[eltwise::LDY] = Slot::Int(y.ld);
    s[eltwise::ROWS] = Slot::Int(rows);
    s[eltwise::COLS] = Slot::Int(cols);
}

/// `Y[r, c] = epilogue(X[r, c])`: a fused elementwise chain. Y may be X (in place).
#[derive(Clone, Debug, PartialEq)]
pub struct EltwiseArgs<P> {
    /// Input.
    pub x: Matrix<P>,
    /// Output.
    pub y: Matrix<P>,
    /// Rows.
    pub rows: i64,
    /// Columns.
    pub cols: i64,
    /// The chain.
    pub epilogue: Epilogue<P>,
}

impl<P: Clone> KernelArgs<P> for EltwiseArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(eltwise::EPILOGUE, |s| {
            matrix_slots(s, &self.x, &self.y, self.rows, self.cols);
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// copy

layout!(
    /// Slots of [`CopyArgs`] (`KILN_COPY_*`).
    copy = "KILN_COPY_" {
        X = 0,
        X_OFFSET = 1,
        Y = 2,
        Y_OFFSET = 3,
        D0 = 4,
        D1 = 5,
        D2 = 6,
        D3 = 7,
        XS0 = 8,
        XS1 = 9,
        XS2 = 10,
        XS3 = 11,
        YS0 = 12,
        YS1 = 13,
        YS2 = 14,
        YS3 = 15,
    }
);

/// Dims of the box a copy kernel call moves (after [`CopyArgs::new`] simplifies it).
pub const COPY_DIMS: usize = 4;

/// `Y = X` over a strided box: element `i` (a multi-index) of X at
/// `x[x_offset + sum(i[d] * x_strides[d])]`, of Y likewise. Y must not overlap X.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyArgs<P> {
    /// Source buffer.
    pub x: P,
    /// First element of the box in X.
    pub x_offset: i64,
    /// Destination buffer.
    pub y: P,
    /// First element of the box in Y.
    pub y_offset: i64,
    /// Extents, outermost first.
    pub dims: [i64; COPY_DIMS],
    /// Strides of X per dim.
    pub x_strides: [i64; COPY_DIMS],
    /// Strides of Y per dim.
    pub y_strides: [i64; COPY_DIMS],
}

impl<P> CopyArgs<P> {
    /// The copy of a box with `dims` (any rank) and per-dim strides: dims of extent 1 are
    /// dropped and neighbours contiguous in both X and Y merged, then the box is padded to
    /// [`COPY_DIMS`] dims with leading 1s. `None` when it still has more dims than that, or
    /// is empty.
    pub fn new(
        x: P,
        x_offset: i64,
        y: P,
        y_offset: i64,
        dims: &[i64],
        x_strides: &[i64],
        y_strides: &[i64],
    ) -> Option<CopyArgs<P>> {
        if dims.iter().any(|&d| d <= 0) {
            return None;
        }
        let mut b: Vec<(i64, i64, i64)> = Vec::new();
        for ((&d, &xs), &ys) in dims.iter().zip(x_strides).zip(y_strides) {
            if d == 1 {
                continue;
            }
            match b.last_mut() {
                Some(last) if last.1 == xs * d && last.2 == ys * d => {
                    *last = (last.0 * d, xs, ys);
                }
                _ => b.push((d, xs, ys)),
            }
        }
        if b.len() > COPY_DIMS {
            return None;
        }
        let mut args = CopyArgs {
            x,
            x_offset,
            y,
            y_offset,
            dims: [1; COPY_DIMS],
            x_strides: [0; COPY_DIMS],
            y_strides: [0; COPY_DIMS],
        };
        let pad = COPY_DIMS - b.len();
        for (k, (d, xs, ys)) in b.into_iter().enumerate() {
            args.dims[pad + k] = d;
            args.x_strides[pad + k] = xs;
            args.y_strides[pad + k] = ys;
        }
        // A lone unit box (every dim 1) still copies its one element.
        if pad == COPY_DIMS {
            args.x_strides[COPY_DIMS - 1] = 1;
            args.y_strides[COPY_DIMS - 1] = 1;
        }
        Some(args)
    }
}

impl<P: Clone> KernelArgs<P> for CopyArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(copy::YS3 + 1, |s| {
            s[copy::X] = Slot::Ptr(self.x.clone());
            s[copy::X_OFFSET] = Slot::Int(self.x_offset);
            s[copy::Y] = Slot::Ptr(self.y.clone());
            s[copy::Y_OFFSET] = Slot::Int(self.y_offset);
            for d in 0..COPY_DIMS {
                s[copy::D0 + d] = Slot::Int(self.dims[d]);
                s[copy::XS0 + d] = Slot::Int(self.x_strides[d]);
                s[copy::YS0 + d] = Slot::Int(self.y_strides[d]);
            }
        })
    }
}

layout!(
    /// Slots of [`SoftmaxArgs`] (`KILN_SOFTMAX_*`).
    softmax = "KILN_SOFTMAX_" {
        X = 0,
        LDX = 1,
        Y = 2,
        LDY = 3,
        ROWS = 4,
        COLS = 5,
        LOG = 6,
        EPILOGUE = 7,
    }
);

/// Softmax (or log-softmax) of each row, then the epilogue. Y may be X.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxArgs<P> {
    /// Input.
    pub x: Matrix<P>,
    /// Output.
    pub y: Matrix<P>,
    /// Rows.
    pub rows: i64,
    /// Columns (the softmax axis).
    pub cols: i64,
    /// Log-softmax.
    pub log: bool,
    /// Applied to the result.
    pub epilogue: Epilogue<P>,
}

impl<P: Clone> KernelArgs<P> for SoftmaxArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(softmax::EPILOGUE, |s| {
            matrix_slots(s, &self.x, &self.y, self.rows, self.cols);
            s[softmax::LOG] = Slot::Int(i64::from(self.log));
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

layout!(
    /// Slots of [`NormArgs`] (`KILN_NORM_*`).
    norm = "KILN_NORM_" {
        X = 0,
        LDX = 1,
        Y = 2,
        LDY = 3,
        ROWS = 4,
        COLS = 5,
        GAMMA = 6,
        BETA = 7,
        EPSILON = 8,
        RMS = 9,
        MEAN = 10,
        RSTD = 11,
        EPILOGUE = 12,
    }
);

/// Layer-norm or RMS-norm of each row: `Y = epilogue((X - mean) * rstd * gamma + beta)`.
#[derive(Clone, Debug, PartialEq)]
pub struct NormArgs<P> {
    /// Input.
    pub x: Matrix<P>,
    /// Output (may be X).
    pub y: Matrix<P>,
    /// Rows.
    pub rows: i64,
    /// Columns (the normalized axis).
    pub cols: i64,
    /// Scale, `cols` floats.
    pub gamma: P,
    /// Bias, `cols` floats, or none.
    pub beta: Option<P>,
    /// Added to the variance (mean square for RMS).
    pub epsilon: f32,
    /// RMS-norm (no mean subtracted) instead of layer-norm.
    pub rms: bool,
    /// Receives each row's mean (layer-norm), or none.
    pub mean: Option<P>,
    /// Receives each row's `1 / sqrt(var + eps)`, or none.
    pub rstd: Option<P>,
    /// Applied to Y.
    pub epilogue: Epilogue<P>,
}

impl<P: Clone> KernelArgs<P> for NormArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(norm::EPILOGUE, |s| {
            matrix_slots(s, &self.x, &self.y, self.rows, self.cols);
            s[norm::GAMMA] = Slot::Ptr(self.gamma.clone());
            s[norm::BETA] = ptr_or_null(&self.beta);
            s[norm::EPSILON] = Slot::Float(f64::from(self.epsilon));
            s[norm::RMS] = Slot::Int(i64::from(self.rms));
            s[norm::MEAN] = ptr_or_null(&self.mean);
            s[norm::RSTD] = ptr_or_null(&self.rstd);
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// pools

layout!(
    /// Slots of [`PoolArgs`] (`KILN_POOL_*`).
    pool = "KILN_POOL_" {
        X = 0,
        N = 1,
        H = 2,
        W = 3,
        C = 4,
        X_STRIDE = 5,
        Y = 6,
        OH = 7,
        OW = 8,
        Y_STRIDE = 9,
        KH = 10,
        KW = 11,
        STRIDE_H = 12,
        STRIDE_W = 13,
        DIL_H = 14,
        DIL_W = 15,
        PAD_TOP = 16,
        PAD_LEFT = 17,
        PAD_BOTTOM = 18,
        PAD_RIGHT = 19,
        KIND = 20,
        COUNT_INCLUDE_PAD = 21,
    }
);

/// Max or average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum (NaN if any input of the window is NaN).
    Max,
    /// Average.
    Average,
}

impl PoolKind {
    fn code(self) -> i64 {
        match self {
            PoolKind::Max => 0,
            PoolKind::Average => 1,
        }
    }
}

/// NHWC 2-D pooling. `oh`/`ow` come from the caller (ceil mode included); windows are clipped
/// to the input; with `count_include_pad` the divisor is the window clipped to the padded input.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolArgs<P> {
    /// Input `[N, H, W, C]`: pixel stride `x_stride`.
    pub x: P,
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Channels.
    pub c: i64,
    /// Elements between input pixels.
    pub x_stride: i64,
    /// Output `[N, OH, OW, C]`.
    pub y: P,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Elements between output pixels.
    pub y_stride: i64,
    /// Kernel, strides, dilations, pads.
    pub window: Window,
    /// Max or average.
    pub kind: PoolKind,
    /// Average pooling counts padding.
    pub count_include_pad: bool,
}

impl<P: Clone> KernelArgs<P> for PoolArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(pool::COUNT_INCLUDE_PAD + 1, |s| {
            s[pool::X] = Slot::Ptr(self.x.clone());
            s[pool::N] = Slot::Int(self.n);
            s[pool::H] = Slot::Int(self.h);
            s[pool::W] = Slot::Int(self.w);
            s[pool::C] = Slot::Int(self.c);
            s[pool::X_STRIDE] = Slot::Int(self.x_stride);
            s[pool::Y] = Slot::Ptr(self.y.clone());
            s[pool::OH] = Slot::Int(self.oh);
            s[pool::OW] = Slot::Int(self.ow);
            s[pool::Y_STRIDE] = Slot::Int(self.y_stride);
            window_slots(s, &self.window, pool::KH);
            s[pool::KIND] = Slot::Int(self.kind.code());
            s[pool::COUNT_INCLUDE_PAD] = Slot::Int(i64::from(self.count_include_pad));
        })
    }
}

layout!(
    /// Slots of [`GlobalPoolArgs`] (`KILN_GPOOL_*`).
    gpool = "KILN_GPOOL_" {
        X = 0,
        N = 1,
        HW = 2,
        C = 3,
        X_STRIDE = 4,
        Y = 5,
        Y_STRIDE = 6,
        KIND = 7,
    }
);

/// Global pooling of NHWC images: `Y[n, c]` over the `hw` pixels of image `n`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalPoolArgs<P> {
    /// Input: pixel `p` of image `n` at `x[(n*hw + p) * x_stride + c]`.
    pub x: P,
    /// Images.
    pub n: i64,
    /// Pixels per image.
    pub hw: i64,
    /// Channels.
    pub c: i64,
    /// Elements between input pixels.
    pub x_stride: i64,
    /// Output: `y[n * y_stride + c]`.
    pub y: P,
    /// Elements between output images.
    pub y_stride: i64,
    /// Max or average.
    pub kind: PoolKind,
}

impl<P: Clone> KernelArgs<P> for GlobalPoolArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(gpool::KIND + 1, |s| {
            s[gpool::X] = Slot::Ptr(self.x.clone());
            s[gpool::N] = Slot::Int(self.n);
            s[gpool::HW] = Slot::Int(self.hw);
            s[gpool::C] = Slot::Int(self.c);
            s[gpool::X_STRIDE] = Slot::Int(self.x_stride);
            s[gpool::Y] = Slot::Ptr(self.y.clone());
            s[gpool::Y_STRIDE] = Slot::Int(self.y_stride);
            s[gpool::KIND] = Slot::Int(self.kind.code());
        })
    }
}

// ---------------------------------------------------------------------------------------------
// attention

layout!(
    /// Slots of [`AttentionArgs`] (`KILN_ATTN_*`).
    attn = "KILN_ATTN_" {
        Q = 0,
        Q_SB = 1,
        Q_SH = 2,
        Q_SS = 3,
        Q_SD = 4,
        K = 5,
        K_SB = 6,
        K_SH = 7,
        K_SS = 8,
        K_SD = 9,
        V = 10,
        V_SB = 11,
        V_SH = 12,
        V_SS = 13,
        V_SD = 14,
        O = 15,
        O_SB = 16,
        O_SH = 17,
        O_SS = 18,
        O_SD = 19,
        MASK = 20,
        M_SB = 21,
        M_SH = 22,
        M_SQ = 23,
        M_SK = 24,
        B = 25,
        HQ = 26,
        HKV = 27,
        SQ = 28,
        SK = 29,
        D = 30,
        DV = 31,
        SCALE = 32,
        CAUSAL = 33,
        SCRATCH = 34,
    }
);

/// A rank-4 tensor with a stride per dim: element `(b, h, s, d)` at
/// `ptr[b*strides[0] + h*strides[1] + s*strides[2] + d*strides[3]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Strided4<P> {
    /// The buffer.
    pub ptr: P,
    /// Strides of (batch, head, sequence, feature); 0 broadcasts.
    pub strides: [i64; 4],
}

/// `O = softmax(scale * Q K^T + mask) V` per (batch, query head), streaming over keys with an
/// online softmax. Query head `h` reads key/value head `h / (hq / hkv)` (GQA).
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionArgs<P> {
    /// Q `[B, HQ, SQ, D]`.
    pub q: Strided4<P>,
    /// K `[B, HKV, SK, D]`.
    pub k: Strided4<P>,
    /// V `[B, HKV, SK, DV]`.
    pub v: Strided4<P>,
    /// O `[B, HQ, SQ, DV]`.
    pub o: Strided4<P>,
    /// Additive f32 mask, element `(b, h, i, j)` (strides of batch, head, query, key; 0
    /// broadcasts), or none.
    pub mask: Option<Strided4<P>>,
    /// Batch.
    pub b: i64,
    /// Query heads.
    pub hq: i64,
    /// Key/value heads (divides `hq`).
    pub hkv: i64,
    /// Queries.
    pub sq: i64,
    /// Keys.
    pub sk: i64,
    /// Q/K feature size.
    pub d: i64,
    /// V feature size.
    pub dv: i64,
    /// Score scale (usually `1 / sqrt(d)`).
    pub scale: f32,
    /// Mask key `j > i + sk - sq` (ONNX Attention's convention).
    pub causal: bool,
    /// Scratch of [`AttentionArgs::scratch_bytes`] bytes, 64-byte aligned.
    pub scratch: P,
}

/// Query rows per attention block (`KV_ATTN_BQ` in `attention.h`).
pub const ATTN_BLOCK_Q: i64 = 32;
/// Keys per attention block (`KV_ATTN_BK` in `attention.h`).
pub const ATTN_BLOCK_K: i64 = 64;

impl<P> AttentionArgs<P> {
    /// Scratch bytes for `variant`: per slot ([`MAX_SLOTS`] of them) a packed K^T block
    /// (`ceil(BK/NR)*NR x D`), a packed V block (`ceil(DV/NR)*NR x BK`), a score block
    /// (`BQ x ceil(BK/NR)*NR`), an output accumulator (`BQ x ceil(DV/NR)*NR`) and `2 BQ` row
    /// statistics, each rounded up to 64 bytes ([`ATTN_BLOCK_Q`] = BQ, [`ATTN_BLOCK_K`] = BK).
    pub fn scratch_bytes(&self, variant: Variant) -> u64 {
        attention_scratch_bytes(self.d, self.dv, variant)
    }
}

/// [`AttentionArgs::scratch_bytes`] from the feature sizes alone.
pub fn attention_scratch_bytes(d: i64, dv: i64, variant: Variant) -> u64 {
    let nr = variant.nr() as u64;
    let (d, dv) = (d.max(1) as u64, dv.max(1) as u64);
    let (bq, bk) = (ATTN_BLOCK_Q as u64, ATTN_BLOCK_K as u64);
    let round = |floats: u64| (floats * 4).div_ceil(64) * 64;
    let kt = round(bk.div_ceil(nr) * nr * d);
    let vb = round(dv.div_ceil(nr) * nr * bk);
    let s = round(bq * bk.div_ceil(nr) * nr);
    let o = round(bq * dv.div_ceil(nr) * nr);
    let stats = round(2 * bq);
    MAX_SLOTS as u64 * (kt + vb + s + o + stats)
}

impl<P: Clone> KernelArgs<P> for AttentionArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(attn::SCRATCH + 1, |s| {
            let mut put = |base: usize, t: &Strided4<P>| {
                s[base] = Slot::Ptr(t.ptr.clone());
                for (i, st) in t.strides.iter().enumerate() {
                    s[base + 1 + i] = Slot::Int(*st);
                }
            };
            put(attn::Q, &self.q);
            put(attn::K, &self.k);
            put(attn::V, &self.v);
            put(attn::O, &self.o);
            if let Some(m) = &self.mask {
                put(attn::MASK, m);
            }
            s[attn::B] = Slot::Int(self.b);
            s[attn::HQ] = Slot::Int(self.hq);
            s[attn::HKV] = Slot::Int(self.hkv);
            s[attn::SQ] = Slot::Int(self.sq);
            s[attn::SK] = Slot::Int(self.sk);
            s[attn::D] = Slot::Int(self.d);
            s[attn::DV] = Slot::Int(self.dv);
            s[attn::SCALE] = Slot::Float(f64::from(self.scale));
            s[attn::CAUSAL] = Slot::Int(i64::from(self.causal));
            s[attn::SCRATCH] = Slot::Ptr(self.scratch.clone());
        })
    }
}

// ---------------------------------------------------------------------------------------------
// qgemm

layout!(
    /// Slots of [`QGemmArgs`] (`KILN_QGEMM_*`).
    qgemm = "KILN_QGEMM_" {
        A = 0,
        LDA = 1,
        W = 2,
        KW = 3,
        CODE = 4,
        SCALES = 5,
        SCALE_CODE = 6,
        ZP = 7,
        ZP_COLS = 8,
        BLOCK = 9,
        NBLOCKS = 10,
        C = 11,
        LDC = 12,
        M = 13,
        N = 14,
        K = 15,
        PANELS = 16,
    }
);

/// Rows per panel of the 4-bit GEMV's panel-packed weights (`qg_gemvp`;
/// `KILN_QG_PANEL`, the value of `KILN_QGEMM_PANELS` when they are packed):
/// one 16-lane vector of output columns.
pub const QG_PANEL: i64 = 16;

/// Code formats of quantized weights and scales (`KILN_QCODE_*`), in
/// code order.
pub const QCODES: [(&str, kiln_ir::DType); 14] = [
    ("F32", kiln_ir::DType::F32),
    ("I8", kiln_ir::DType::I8),
    ("U8", kiln_ir::DType::U8),
    ("I4", kiln_ir::DType::I4),
    ("U4", kiln_ir::DType::U4),
    ("I2", kiln_ir::DType::I2),
    ("U2", kiln_ir::DType::U2),
    ("NF4", kiln_ir::DType::NF4),
    ("F8E4M3FN", kiln_ir::DType::F8E4M3FN),
    ("F8E4M3FNUZ", kiln_ir::DType::F8E4M3FNUZ),
    ("F8E5M2", kiln_ir::DType::F8E5M2),
    ("F8E5M2FNUZ", kiln_ir::DType::F8E5M2FNUZ),
    ("F4E2M1", kiln_ir::DType::F4E2M1),
    ("E8M0", kiln_ir::DType::F8E8M0),
];

/// The `KILN_QCODE_*` code of a weight or scale dtype, if qgemm reads it.
pub fn qcode(dt: kiln_ir::DType) -> Option<i64> {
    QCODES.iter().position(|&(_, d)| d == dt).map(|i| i as i64)
}

/// `C = A . W'^T` with W' the dequantized block-quantized weight of a
/// `quant.matmul` (no epilogue, no scratch).
#[derive(Clone, Debug, PartialEq)]
pub struct QGemmArgs<P> {
    /// A `[M, K]`, leading dimension in floats.
    pub a: Matrix<P>,
    /// The packed codes, `N` rows of `kw` codes.
    pub w: P,
    /// Codes per row.
    pub kw: i64,
    /// `KILN_QCODE_*` of the codes.
    pub code: i64,
    /// The scales `[N, nblocks]`.
    pub scales: P,
    /// `KILN_QCODE_*` of the scales (`F32`, `E8M0`, `F8E4M3FN`).
    pub scale_code: i64,
    /// Zero points (packed like the codes) and their codes per row.
    pub zp: Option<(P, i64)>,
    /// Values per block along K.
    pub block: i64,
    /// Blocks per row.
    pub nblocks: i64,
    /// C `[M, N]`.
    pub c: Matrix<P>,
    /// Rows of A and C.
    pub m: i64,
    /// Columns of C.
    pub n: i64,
    /// The contraction length.
    pub k: i64,
    /// 0: codes, scales and zero points as stored (rows of `W`).
    /// [`QG_PANEL`] (one row of A, 4-bit codes): codes and zero points
    /// packed as `row_panels_k8` and scales as `row_panels`, all with that
    /// block.
    pub panels: i64,
}

impl<P: Clone> KernelArgs<P> for QGemmArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(qgemm::PANELS + 1, |s| {
            s[qgemm::A] = Slot::Ptr(self.a.ptr.clone());
            s[qgemm::LDA] = Slot::Int(self.a.ld);
            s[qgemm::W] = Slot::Ptr(self.w.clone());
            ConvQuant {
                code: self.code,
                kw: self.kw,
                scales: self.scales.clone(),
                scale_code: self.scale_code,
                zp: self.zp.clone(),
                block: self.block,
                nblocks: self.nblocks,
                panels: self.panels,
                block_floats: 0,
            }
            .put(s, qgemm::KW);
            s[qgemm::C] = Slot::Ptr(self.c.ptr.clone());
            s[qgemm::LDC] = Slot::Int(self.c.ld);
            s[qgemm::M] = Slot::Int(self.m);
            s[qgemm::N] = Slot::Int(self.n);
            s[qgemm::K] = Slot::Int(self.k);
            s[qgemm::PANELS] = Slot::Int(self.panels);
        })
    }
}

// ---------------------------------------------------------------------------------------------
// igemm

layout!(
    /// Slots of [`IGemmArgs`] (`KILN_IGEMM_*`).
    igemm = "KILN_IGEMM_" {
        A = 0,
        LDA = 1,
        A_SIGNED = 2,
        ZA = 3,
        ZA_PER_ROW = 4,
        B = 5,
        LDB = 6,
        B_SIGNED = 7,
        ZB = 8,
        ZB_PER_COL = 9,
        C = 10,
        LDC = 11,
        C_F32 = 12,
        M = 13,
        N = 14,
        K = 15,
        SCRATCH = 16,
        B_PACKED = 17,
        EPILOGUE = 18,
    }
);

/// An 8-bit operand of [`IGemmArgs`] and its zero point.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Operand<P> {
    /// The bytes; leading dimension `ld` in bytes. For B with `packed`: i8 `int8_gemm_b`
    /// panels of the variant's NR (`igemmv` only).
    pub ptr: P,
    /// B is packed (`int8_gemm_b`); never for A.
    pub packed: bool,
    /// Leading dimension (bytes).
    pub ld: i64,
    /// i8 (else u8).
    pub signed: bool,
    /// The zero point (one byte of the operand's type) and whether it holds one value per
    /// row (A) / column (B) instead of one.
    pub zero: Option<(P, bool)>,
}

/// `C = sum_k (A - za)(B - zb)` exactly in int32, stored as int32 or (with `c_f32`) converted
/// to f32 and passed through `epilogue`.
#[derive(Clone, Debug, PartialEq)]
pub struct IGemmArgs<P> {
    /// A `[M, K]`.
    pub a: Int8Operand<P>,
    /// B `[K, N]`, row-major.
    pub b: Int8Operand<P>,
    /// C `[M, N]`, leading dimension in elements.
    pub c: Matrix<P>,
    /// C is f32 (the epilogue applies), else int32 (no epilogue).
    pub c_f32: bool,
    /// Rows of A and C.
    pub m: i64,
    /// Columns of B and C.
    pub n: i64,
    /// The reduction.
    pub k: i64,
    /// Scratch of [`IGemmArgs::scratch_bytes`] bytes, 64-byte aligned.
    pub scratch: P,
    /// Applied to an f32 C.
    pub epilogue: Epilogue<P>,
}

impl<P> IGemmArgs<P> {
    /// Scratch bytes for `variant` (both paths): the packed B panels (unless B is packed
    /// already) and A rows (as int16 at most), and per-column and per-row sums; the order and
    /// rounding of `igemm.h`.
    pub fn scratch_bytes(&self, variant: Variant) -> u64 {
        igemm_scratch_bytes(self.m, self.n, self.k, variant, self.b.packed)
    }
}

/// [`IGemmArgs::scratch_bytes`] of an `m x k . k x n` product (no room for B's panels when
/// B is packed already).
pub fn igemm_scratch_bytes(m: i64, n: i64, k: i64, variant: Variant, b_packed: bool) -> u64 {
    let (mr, nr) = variant_tile(variant);
    let (m, n, k) = (m.max(0) as u64, n.max(0) as u64, k.max(1) as u64);
    let up = |x: u64| x.next_multiple_of(64);
    let kp = k.next_multiple_of(4);
    let cols = n.div_ceil(nr as u64) * nr as u64;
    let rows = m.next_multiple_of(mr as u64);
    let b = if b_packed { 0 } else { up(cols * kp * 2) };
    b + 2 * up(cols * 4) + up(rows * kp * 2) + 2 * up(rows * 4)
}

impl<P: Clone> KernelArgs<P> for IGemmArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        let mut s = block(igemm::EPILOGUE, |s| {
            s[igemm::A] = Slot::Ptr(self.a.ptr.clone());
            s[igemm::LDA] = Slot::Int(self.a.ld);
            s[igemm::A_SIGNED] = Slot::Int(i64::from(self.a.signed));
            if let Some((p, per)) = &self.a.zero {
                s[igemm::ZA] = Slot::Ptr(p.clone());
                s[igemm::ZA_PER_ROW] = Slot::Int(i64::from(*per));
            }
            s[igemm::B] = Slot::Ptr(self.b.ptr.clone());
            s[igemm::LDB] = Slot::Int(self.b.ld);
            s[igemm::B_SIGNED] = Slot::Int(i64::from(self.b.signed));
            if let Some((p, per)) = &self.b.zero {
                s[igemm::ZB] = Slot::Ptr(p.clone());
                s[igemm::ZB_PER_COL] = Slot::Int(i64::from(*per));
            }
            s[igemm::C] = Slot::Ptr(self.c.ptr.clone());
            s[igemm::LDC] = Slot::Int(self.c.ld);
            s[igemm::C_F32] = Slot::Int(i64::from(self.c_f32));
            s[igemm::M] = Slot::Int(self.m);
            s[igemm::N] = Slot::Int(self.n);
            s[igemm::K] = Slot::Int(self.k);
            s[igemm::SCRATCH] = Slot::Ptr(self.scratch.clone());
            s[igemm::B_PACKED] = Slot::Int(i64::from(self.b.packed));
        });
        self.epilogue.push_slots(&mut s);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// iconv

layout!(
    /// Slots of [`IConvArgs`] (`KILN_ICONV_*`).
    iconv = "KILN_ICONV_" {
        X = 0,
        X_SIGNED = 1,
        ZX = 2,
        W = 3,
        W_SIGNED = 4,
        ZW = 5,
        ZW_PER_CH = 6,
        BIAS = 7,
        Y = 8,
        N = 9,
        C = 10,
        H = 11,
        W_IN = 12,
        M = 13,
        OH = 14,
        OW = 15,
        KH = 16,
        KW = 17,
        SH = 18,
        SW = 19,
        DH = 20,
        DW = 21,
        PH = 22,
        PW = 23,
        GROUPS = 24,
        SCRATCH = 25,
        RQ_SCALE = 26,
        RQ_PER_CH = 27,
        RQ_ZP = 28,
        Y_SIGNED = 29,
    }
);

/// Requantization of an [`IConvArgs`] result to bytes: `clamp(rint(f32(acc) * scale[m]) +
/// zp)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Requantize<P> {
    /// f32 scales: one, or one per output channel (`per_channel`).
    pub scale: P,
    /// One scale per output channel.
    pub per_channel: bool,
    /// The zero point (one byte of the result's type), or none.
    pub zero: Option<P>,
    /// The result is i8 (else u8).
    pub signed: bool,
}

/// `quant.conv_integer` over NCHW 8-bit operands (2-D windows) on the int8 product: `x`
/// `[n, c, h, w]` with its zero point (per tensor) and `w` `[m, c / groups, kh, kw]` with its
/// zero point (per tensor or per output channel, `Int8Operand::zero`'s flag), an optional
/// int32 bias `[m]`; the result `[n, m, oh, ow]` is int32, or requantized bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IConvArgs<P> {
    /// The input (its `ld` unused).
    pub x: Int8Operand<P>,
    /// The weights (its `ld` unused).
    pub w: Int8Operand<P>,
    /// int32 per output channel.
    pub bias: Option<P>,
    /// The result.
    pub y: P,
    /// `[n, c, h, w]` of the input.
    pub input: [i64; 4],
    /// Output channels.
    pub m: i64,
    /// `[oh, ow]`.
    pub out: [i64; 2],
    /// `[kh, kw]`.
    pub kernel: [i64; 2],
    /// `[sh, sw]`.
    pub strides: [i64; 2],
    /// `[dh, dw]`.
    pub dilations: [i64; 2],
    /// Begin pads `[ph, pw]`.
    pub pads: [i64; 2],
    /// Groups.
    pub groups: i64,
    /// Scratch of [`IConvArgs::scratch_bytes`] bytes, 64-byte aligned.
    pub scratch: P,
    /// Requantization of the result (else int32).
    pub requantize: Option<Requantize<P>>,
}

impl<P> IConvArgs<P> {
    /// Scratch bytes for `variant`: one group's product (`igemm_scratch_bytes`).
    pub fn scratch_bytes(&self, variant: Variant) -> u64 {
        let g = self.groups.max(1);
        let [_, c, _, _] = self.input;
        let k = c / g * self.kernel[0] * self.kernel[1];
        igemm_scratch_bytes(self.m / g, self.out[0] * self.out[1], k, variant, false)
    }
}

impl<P: Clone> KernelArgs<P> for IConvArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(iconv::Y_SIGNED + 1, |s| {
            s[iconv::X] = Slot::Ptr(self.x.ptr.clone());
            s[iconv::X_SIGNED] = Slot::Int(i64::from(self.x.signed));
            if let Some((p, _)) = &self.x.zero {
                s[iconv::ZX] = Slot::Ptr(p.clone());
            }
            s[iconv::W] = Slot::Ptr(self.w.ptr.clone());
            s[iconv::W_SIGNED] = Slot::Int(i64::from(self.w.signed));
            if let Some((p, per)) = &self.w.zero {
                s[iconv::ZW] = Slot::Ptr(p.clone());
                s[iconv::ZW_PER_CH] = Slot::Int(i64::from(*per));
            }
            if let Some(p) = &self.bias {
                s[iconv::BIAS] = Slot::Ptr(p.clone());
            }
            s[iconv::Y] = Slot::Ptr(self.y.clone());
            let [n, c, h, w] = self.input;
            for (k, v) in [
                (iconv::N, n),
                (iconv::C, c),
                (iconv::H, h),
                (iconv::W_IN, w),
                (iconv::M, self.m),
                (iconv::OH, self.out[0]),
                (iconv::OW, self.out[1]),
                (iconv::KH, self.kernel[0]),
                (iconv::KW, self.kernel[1]),
                (iconv::SH, self.strides[0]),
                (iconv::SW, self.strides[1]),
                (iconv::DH, self.dilations[0]),
                (iconv::DW, self.dilations[1]),
                (iconv::PH, self.pads[0]),
                (iconv::PW, self.pads[1]),
                (iconv::GROUPS, self.groups),
            ] {
                s[k] = Slot::Int(v);
            }
            s[iconv::SCRATCH] = Slot::Ptr(self.scratch.clone());
            if let Some(r) = &self.requantize {
                s[iconv::RQ_SCALE] = Slot::Ptr(r.scale.clone());
                s[iconv::RQ_PER_CH] = Slot::Int(i64::from(r.per_channel));
                if let Some(z) = &r.zero {
                    s[iconv::RQ_ZP] = Slot::Ptr(z.clone());
                }
                s[iconv::Y_SIGNED] = Slot::Int(i64::from(r.signed));
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// rminmax, quantize

layout!(
    /// Slots of [`RMinMaxArgs`] (`KILN_RMINMAX_*`).
    rminmax = "KILN_RMINMAX_" {
        X = 0,
        N = 1,
        Y = 2,
        MIN = 3,
    }
);

/// `Y[0]` = the max (or min) of all `n` floats of `X`, NaN if any is NaN.
#[derive(Clone, Debug, PartialEq)]
pub struct RMinMaxArgs<P> {
    /// The floats.
    pub x: P,
    /// How many (at least 1).
    pub n: i64,
    /// The result (one float).
    pub y: P,
    /// The minimum instead of the maximum.
    pub min: bool,
}

impl<P: Clone> KernelArgs<P> for RMinMaxArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(rminmax::MIN + 1, |s| {
            s[rminmax::X] = Slot::Ptr(self.x.clone());
            s[rminmax::N] = Slot::Int(self.n);
            s[rminmax::Y] = Slot::Ptr(self.y.clone());
            s[rminmax::MIN] = Slot::Int(i64::from(self.min));
        })
    }
}

layout!(
    /// Slots of [`QuantizeArgs`] (`KILN_QUANTIZE_*`).
    quantize = "KILN_QUANTIZE_" {
        X = 0,
        N = 1,
        Y = 2,
        SCALE = 3,
        ZP = 4,
        SIGNED = 5,
    }
);

/// Per-tensor `quant.quantize_linear` of `n` floats into u8 or i8.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizeArgs<P> {
    /// The floats.
    pub x: P,
    /// How many.
    pub n: i64,
    /// The bytes written.
    pub y: P,
    /// The scale (one f32).
    pub scale: P,
    /// The zero point (one byte of the result's type), if any.
    pub zp: Option<P>,
    /// i8 result (else u8).
    pub signed: bool,
}

impl<P: Clone> KernelArgs<P> for QuantizeArgs<P> {
    fn slots(&self) -> Vec<Slot<P>> {
        block(quantize::SIGNED + 1, |s| {
            s[quantize::X] = Slot::Ptr(self.x.clone());
            s[quantize::N] = Slot::Int(self.n);
            s[quantize::Y] = Slot::Ptr(self.y.clone());
            s[quantize::SCALE] = Slot::Ptr(self.scale.clone());
            s[quantize::ZP] = ptr_or_null(&self.zp);
            s[quantize::SIGNED] = Slot::Int(i64::from(self.signed));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const HEADER: &str = include_str!("../../kernels/kiln_kernels.h");

    /// Every `#define KILN_<NAME> <integer>` of the header.
    fn header_defines() -> BTreeMap<String, i64> {
        HEADER
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                if w.next()? != "#define" {
                    return None;
                }
                let name = w.next()?;
                let value: i64 = w.next()?.parse().ok()?;
                Some((name.to_owned(), value))
            })
            .collect()
    }

    /// The same names, from the Rust side.
    fn rust_defines() -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        let layouts = [
            (epi_op::PREFIX, epi_op::FIELDS),
            (gemm::PREFIX, gemm::FIELDS),
            (conv::PREFIX, conv::FIELDS),
            (dwconv::PREFIX, dwconv::FIELDS),
            (eltwise::PREFIX, eltwise::FIELDS),
            (copy::PREFIX, copy::FIELDS),
            (softmax::PREFIX, softmax::FIELDS),
            (norm::PREFIX, norm::FIELDS),
            (pool::PREFIX, pool::FIELDS),
            (gpool::PREFIX, gpool::FIELDS),
            (attn::PREFIX, attn::FIELDS),
            (qgemm::PREFIX, qgemm::FIELDS),
            (igemm::PREFIX, igemm::FIELDS),
            (iconv::PREFIX, iconv::FIELDS),
            (rminmax::PREFIX, rminmax::FIELDS),
            (quantize::PREFIX, quantize::FIELDS),
        ];
        for (prefix, fields) in layouts {
            for (name, index) in fields {
                m.insert(format!("{prefix}{name}"), *index as i64);
            }
        }
        for (name, code) in EPI_CODES {
            m.insert(format!("KILN_EPI_{name}"), code);
        }
        for (name, code) in OPERAND_KINDS {
            m.insert(format!("KILN_OPND_{name}"), code);
        }
        for v in Variant::ALL {
            let (mr, nr) = variant_tile(v);
            let up = v.name().to_uppercase();
            m.insert(format!("KILN_{up}_MR"), mr as i64);
            m.insert(format!("KILN_{up}_NR"), nr as i64);
        }
        for (i, (name, _)) in QCODES.iter().enumerate() {
            m.insert(format!("KILN_QCODE_{name}"), i as i64);
        }
        m.insert("KILN_MAX_SLOTS".into(), MAX_SLOTS as i64);
        m.insert("KILN_WINO_SLOTS".into(), WINO_SLOTS);
        m.insert("KILN_EPI_MAX_OPS".into(), EPI_MAX_OPS as i64);
        m.insert("KILN_EPI_OP_SLOTS".into(), EPI_OP_SLOTS as i64);
        m.insert("KILN_QG_PANEL".into(), QG_PANEL);
        m
    }

    #[test]
    fn header_matches_rust() {
        let header = header_defines();
        let rust = rust_defines();
        for (name, value) in &header {
            assert_eq!(
                rust.get(name),
                Some(value),
                "{name} differs (header {value})"
            );
        }
        for (name, value) in &rust {
            assert_eq!(
                header.get(name),
                Some(value),
                "{name} differs (Rust {value})"
            );
        }
        // The parse must have found the whole header, not a few lines of it.
        assert!(header.len() > 200, "only {} defines parsed", header.len());
    }

    #[test]
    fn quantized_weights_take_the_same_slots_in_qgemm_and_conv2d() {
        let q = &qgemm::FIELDS[qgemm::KW..=qgemm::NBLOCKS];
        let c = &conv::FIELDS[conv::Q_KW..=conv::Q_NBLOCKS];
        let strip = |f: &(&str, usize)| f.0.trim_start_matches("Q_").to_string();
        assert_eq!(
            q.iter().map(strip).collect::<Vec<_>>(),
            c.iter().map(strip).collect::<Vec<_>>()
        );
    }

    #[test]
    fn row_kernels_share_their_first_slots() {
        assert_eq!(eltwise::FIELDS[..6], softmax::FIELDS[..6]);
        assert_eq!(eltwise::FIELDS[..6], norm::FIELDS[..6]);
    }

    #[test]
    fn codes_follow_enum_order() {
        assert_eq!(Binary::Max.code(), 7);
        assert_eq!(Unary::Relu.encode().0, 16);
        assert_eq!(Unary::Log.encode().0, 32);
        assert_eq!(Unary::Clip { lo: -1.0, hi: 6.0 }.encode(), (17, -1.0, 6.0));
    }

    #[test]
    fn epilogue_slots() {
        let e: Epilogue<u32> = Epilogue::new(vec![
            EpiOp::Binary {
                op: Binary::Add,
                operand: Operand::Mat { ptr: 7, ld: 64 },
                batch_stride: 3,
            },
            EpiOp::Unary(Unary::LeakyRelu { alpha: 0.5 }),
        ])
        .unwrap();
        let mut s = Vec::new();
        e.push_slots(&mut s);
        assert_eq!(s.len(), 1 + 2 * EPI_OP_SLOTS);
        assert_eq!(s[0], Slot::Int(2));
        assert_eq!(s[1 + epi_op::CODE], Slot::Int(1));
        assert_eq!(s[1 + epi_op::KIND], Slot::Int(4));
        assert_eq!(s[1 + epi_op::PTR], Slot::Ptr(7));
        assert_eq!(s[1 + epi_op::LD], Slot::Int(64));
        assert_eq!(s[1 + epi_op::BATCH_STRIDE], Slot::Int(3));
        let second = 1 + EPI_OP_SLOTS;
        assert_eq!(s[second + epi_op::CODE], Slot::Int(18));
        assert_eq!(s[second + epi_op::P0], Slot::Float(0.5));
        let nine = vec![EpiOp::<u32>::Unary(Unary::Relu); 9];
        assert_eq!(
            Epilogue::new(nine),
            Err(AbiError::TooManyEpilogueOps { max: 8, got: 9 })
        );
    }

    #[test]
    fn winograd_takes_large_3x3_stride_1_layers_in_balanced_chunks() {
        let same = |k: i64, s: i64, d: i64| Window {
            kh: k,
            kw: k,
            stride_h: s,
            stride_w: s,
            dil_h: d,
            dil_w: d,
            pad_top: d,
            pad_left: d,
            pad_bottom: d,
            pad_right: d,
        };
        let v = Variant::W16R32;
        let tiles =
            |n, hw, cin, cout, w: &Window, g| wino_chunk_tiles(n, hw, hw, cin, cout, w, g, v);
        // ResNet-50's 3x3 layers at batch 1: 784, 196 and 49 tiles; the 7x7 maps (16) stay direct.
        for (hw, c, total) in [(56, 64, 784), (28, 128, 196), (14, 256, 49)] {
            let tc = tiles(1, hw, c, c, &same(3, 1, 1), 1);
            assert!(tc > 0, "{hw}x{hw}x{c}");
            let chunks = (total + tc - 1) / tc;
            assert!(
                chunks == 1 || chunks % 2 == 0,
                "{hw}: {chunks} chunks of {tc}"
            );
            assert!(
                tc >= 4 * v.mr() as i64 || chunks == 1,
                "{hw}: chunks of {tc}"
            );
            let bytes = wino_scratch_bytes(c, c, tc, total, v);
            assert!(bytes > 0 && bytes < 16 << 20, "{hw}: {bytes} bytes");
        }
        assert_eq!(tiles(1, 14, 256, 256, &same(3, 1, 1), 1), 25);
        assert_eq!(tiles(1, 7, 512, 512, &same(3, 1, 1), 1), 0);
        assert_eq!(
            tiles(4, 7, 512, 512, &same(3, 1, 1), 1),
            32,
            "four images, 64 tiles: 2 chunks of 32"
        );
        for (w, g, cin) in [
            (same(3, 2, 1), 1, 64),
            (same(3, 1, 2), 1, 64),
            (same(5, 1, 1), 1, 64),
            (same(3, 1, 1), 2, 64),
            (same(3, 1, 1), 1, 8),
        ] {
            assert_eq!(
                tiles(1, 56, cin, 64, &w, g),
                0,
                "{w:?} groups {g} cin {cin}"
            );
        }
    }

    #[test]
    fn scratch_formulas() {
        let args = GemmArgs {
            a: 0u8,
            lda: 10,
            a_trans: false,
            a_batch_stride: 0,
            b: 0,
            ldb: 17,
            b_format: BFormat::RowMajor,
            b_batch_stride: 0,
            c: 0,
            ldc: 17,
            c_batch_stride: 0,
            m: 5,
            n: 17,
            k: 10,
            batch: 1,
            kc: 0,
            nc: 0,
            scratch: Some(0),
            epilogue: Epilogue::none(),
        };
        // 17 columns in panels of 16 (w8r16): 2 panels x 10 x 16 floats.
        assert_eq!(args.scratch_bytes(Variant::W8R16), 2 * 10 * 16 * 4);
        let packed = GemmArgs {
            b_format: BFormat::Packed,
            ..args
        };
        assert_eq!(packed.scratch_bytes(Variant::W8R16), 0);
        assert!(attention_scratch_bytes(64, 64, Variant::W16R32) > 0);
        // A quantized convolution's decoded panel blocks: 3x3 over 512 channels keeps blocks
        // of 64 (NR 64 on w16r32), a 7x7 window over 3 channels one step of 8, 1x1 over 1024
        // channels at most QCONV_BLOCK_K, a window past QCONV_BLOCK_K / 8 taps still 8.
        assert_eq!(qconv_block_floats(9, 512, Variant::W16R32), 9 * 64 * 64);
        assert_eq!(qconv_block_floats(49, 3, Variant::W16R32), 49 * 8 * 64);
        assert_eq!(qconv_block_floats(1, 1024, Variant::W8R16), 576 * 16);
        assert_eq!(qconv_block_floats(1, 20, Variant::W8R16), 24 * 16);
        assert_eq!(qconv_block_floats(121, 64, Variant::W4R16), 121 * 8 * 8);
    }

    #[test]
    fn copy_boxes_drop_unit_dims_and_merge_contiguous_ones() {
        // Concat input [1, 5, 7, 3] into channels 4..7 of [1, 5, 7, 10]: rows x channels.
        let a = CopyArgs::new(
            0u8,
            0,
            0,
            4,
            &[1, 5, 7, 3],
            &[105, 21, 3, 1],
            &[350, 70, 10, 1],
        )
        .unwrap();
        assert_eq!(a.dims, [1, 1, 35, 3]);
        assert_eq!(a.x_strides[2..], [3, 1]);
        assert_eq!(a.y_strides[2..], [10, 1]);
        // A dense copy is one run.
        let a = CopyArgs::new(0u8, 0, 0, 0, &[2, 3, 4], &[12, 4, 1], &[12, 4, 1]).unwrap();
        assert_eq!(a.dims, [1, 1, 1, 24]);
        // Channel shuffle [1, 6, 6, 2, 29] -> [1, 6, 6, 29, 2]: pixels x 29 x 2.
        let a = CopyArgs::new(
            0u8,
            0,
            0,
            0,
            &[1, 6, 6, 29, 2],
            &[2088, 348, 58, 1, 29],
            &[2088, 348, 58, 2, 1],
        )
        .unwrap();
        assert_eq!(a.dims, [1, 36, 29, 2]);
        assert_eq!(a.x_strides[1..], [58, 1, 29]);
        assert_eq!(a.y_strides[1..], [58, 2, 1]);
        // One element; an empty box; too many dims left after merging.
        let a = CopyArgs::new(0u8, 3, 0, 5, &[1, 1], &[1, 1], &[1, 1]).unwrap();
        assert_eq!((a.dims, a.x_strides[3], a.y_strides[3]), ([1; 4], 1, 1));
        assert!(CopyArgs::new(0u8, 0, 0, 0, &[2, 0], &[1, 1], &[1, 1]).is_none());
        let t = [2, 2, 2, 2, 2];
        let xs = [1, 2, 4, 8, 16];
        let ys = [16, 8, 4, 2, 1];
        assert!(CopyArgs::new(0u8, 0, 0, 0, &t, &xs, &ys).is_none());
    }
}
