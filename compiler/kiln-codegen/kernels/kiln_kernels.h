/*
 * kiln_kernels.h - the ABI of Kiln's CPU kernel library.
 *
 * Every kernel is `void kiln_k_<name>_<variant>(const int64_t *args)` with
 * hidden visibility. `args` is a block of 64-bit slots; this header names the
 * slot of every argument. Pointers and integers are stored as int64_t, floats
 * as the bits of an f64 (the kernel rounds them to f32). Every stride, leading
 * dimension and offset counts f32 elements, not bytes. Outputs must not
 * overlap inputs, except where a kernel says so (eltwise, softmax and norm
 * may run in place), and never an epilogue operand: GEMM and convolution
 * store partial sums of K blocks into their output before the epilogue
 * reads its operands.
 *
 * The Rust mirror is src/kernels/abi.rs; a unit test parses the #defines
 * below and checks them against it, so the two cannot drift. Keep every
 * define on one line: `#define KILN_<KERNEL>_<FIELD> <integer>`.
 *
 * Variants (the `<variant>` suffix) are register budgets, not ISAs: the same
 * C source is compiled for the artifact's CPU, so a variant only fixes the
 * vector width W and the GEMM register tile MR x NR:
 *   w4r16  W=4,  MR=6,  NR=8   16 vector registers of 128 bits (x86-64 SSE2)
 *   w8r16  W=8,  MR=6,  NR=16  16 registers of 256 bits (AVX2 + FMA)
 *   w16r32 W=16, MR=see KILN_W16R32_MR, NR=see KILN_W16R32_NR (AVX-512)
 *   w4r32  W=4,  MR=8,  NR=12  32 registers of 128 bits (AArch64 NEON)
 * Packed B operands (`gemm_b`, `conv_nhwc`) use the NR of the variant.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

/* ---- Variants: GEMM register tile (rows x columns) ---- */
#define KILN_W4R16_MR 6
#define KILN_W4R16_NR 8
#define KILN_W8R16_MR 6
#define KILN_W8R16_NR 16
#define KILN_W16R32_MR 6
#define KILN_W16R32_NR 64
#define KILN_W4R32_MR 8
#define KILN_W4R32_NR 12

/* Most per-thread scratch slots a kernel uses (scratch formulas assume it). */
#define KILN_MAX_SLOTS 64

/* ---- Epilogue: up to KILN_EPI_MAX_OPS ops applied to each output tile ----
 * An epilogue block is 1 + n * KILN_EPI_OP_SLOTS slots: the count n, then
 * per op: */
#define KILN_EPI_MAX_OPS 8
#define KILN_EPI_OP_SLOTS 7
#define KILN_EPI_OP_CODE 0         /* KILN_EPI_<op> */
#define KILN_EPI_OP_KIND 1         /* KILN_OPND_<kind>, binary ops only */
#define KILN_EPI_OP_PTR 2          /* operand pointer (f32) */
#define KILN_EPI_OP_LD 3           /* leading dimension of a MAT operand */
#define KILN_EPI_OP_BATCH_STRIDE 4 /* per batch of a batched GEMM (0 = same) */
#define KILN_EPI_OP_P0 5           /* f64 bits: IMM value, clip lo, alpha */
#define KILN_EPI_OP_P1 6           /* f64 bits: clip hi, hard_sigmoid beta */

/* Binary ops: c = the value being computed, x = the operand. */
#define KILN_EPI_ADD 1   /* c + x */
#define KILN_EPI_SUB 2   /* c - x */
#define KILN_EPI_RSUB 3  /* x - c */
#define KILN_EPI_MUL 4   /* c * x */
#define KILN_EPI_DIV 5   /* c / x */
#define KILN_EPI_RDIV 6  /* x / c */
#define KILN_EPI_MAX 7   /* max(c, x), NaN if either is NaN */
#define KILN_EPI_MIN 8   /* min(c, x), NaN if either is NaN */
/* Unary ops (p0, p1 as noted). */
#define KILN_EPI_RELU 16
#define KILN_EPI_CLIP 17         /* min(max(c, p0), p1) */
#define KILN_EPI_LEAKY_RELU 18   /* c < 0 ? p0 * c : c */
#define KILN_EPI_SIGMOID 19
#define KILN_EPI_TANH 20
#define KILN_EPI_GELU_ERF 21
#define KILN_EPI_GELU_TANH 22
#define KILN_EPI_SILU 23
#define KILN_EPI_HARD_SIGMOID 24 /* max(0, min(1, p0 * c + p1)) */
#define KILN_EPI_HARD_SWISH 25   /* c * max(0, min(1, c / 6 + 1 / 2)) */
#define KILN_EPI_ELU 26          /* c < 0 ? p0 * (exp(c) - 1) : c */
#define KILN_EPI_EXP 27
#define KILN_EPI_ERF 28
#define KILN_EPI_NEG 29
#define KILN_EPI_ABS 30
#define KILN_EPI_SQRT 31
#define KILN_EPI_LOG 32

/* Operand kinds of binary ops. */
#define KILN_OPND_IMM 0    /* the constant p0 */
#define KILN_OPND_SCALAR 1 /* *ptr */
#define KILN_OPND_ROW 2    /* ptr[column] (a bias, indexed by output column) */
#define KILN_OPND_COL 3    /* ptr[row] (indexed by output row) */
#define KILN_OPND_MAT 4    /* ptr[row * ld + column] (a residual) */

/* ---- gemm: C[M,N] = epilogue(A[M,K] . B[K,N]), `batch` times ----
 * A: element (i, k) at A[i*lda + k], or A[k*lda + i] with A_TRANS = 1.
 * B_FORMAT 0: packed `gemm_b` [ceil(N/NR), K, NR] (LDB unused);
 *          1: row-major B[k*ldb + n]; 2: transposed, B[n*ldb + k].
 *          Formats 1 and 2 are packed into SCRATCH first.
 * Batch b uses A + b*A_BATCH_STRIDE, B + b*B_BATCH_STRIDE (packed: between
 * packed matrices), C + b*C_BATCH_STRIDE, operands + b*their batch stride.
 * KC, NC: cache blocks (0 = the variant's default). */
#define KILN_GEMM_A 0
#define KILN_GEMM_LDA 1
#define KILN_GEMM_A_TRANS 2
#define KILN_GEMM_A_BATCH_STRIDE 3
#define KILN_GEMM_B 4
#define KILN_GEMM_LDB 5
#define KILN_GEMM_B_FORMAT 6
#define KILN_GEMM_B_BATCH_STRIDE 7
#define KILN_GEMM_C 8
#define KILN_GEMM_LDC 9
#define KILN_GEMM_C_BATCH_STRIDE 10
#define KILN_GEMM_M 11
#define KILN_GEMM_N 12
#define KILN_GEMM_K 13
#define KILN_GEMM_BATCH 14
#define KILN_GEMM_KC 15
#define KILN_GEMM_NC 16
#define KILN_GEMM_SCRATCH 17
#define KILN_GEMM_EPILOGUE 18

/* ---- conv2d: NHWC convolution, weights packed as `conv_nhwc` ----
 * Input pixel (n, h, w) channel c at X[((n*H + h)*W + w)*X_STRIDE + X_OFFSET + c],
 * output likewise with Y_STRIDE / Y_OFFSET. CIN and COUT count all groups.
 * Epilogue rows are output pixels (n*OH + oh)*OW + ow, columns output
 * channels (0..COUT); a MAT operand (residual) is indexed row*ld + column.
 * WINO_TILES > 0 (3x3, stride 1, dilation 1, one group only) runs Winograd
 * F(2x2, 3x3) in chunks of that many 2x2 output tiles, with SCRATCH of
 * `wino_scratch_bytes` (64-byte aligned; kernels/wino.h); 0: the direct
 * kernel. Q_CODE != 0 (a KILN_QCODE_*, `quant.conv`): WEIGHTS holds block-
 * quantized codes, COUT rows of Q_KW codes in window order (tap-major,
 * channels fastest), with Q_SCALES [COUT, Q_NBLOCKS] (Q_SCALE_CODE), Q_ZP
 * (null or rows of Q_ZP_COLS codes) and blocks of Q_BLOCK along a row, as
 * the qgemm slots KW .. NBLOCKS (the same order); the kernel dequantizes
 * one panel block at a time (no Winograd) into SCRATCH: KILN_MAX_SLOTS
 * slots of Q_BLOCK_FLOATS floats, each 64-byte aligned (`ConvArgs::
 * scratch_bytes`), the channel block shrunk so that KH*KW x block x NR fits
 * a slot. Q_PANELS = KILN_QG_PANEL (4-bit codes in blocks of a multiple of
 * 8 or one per row, or 8-bit codes): 4-bit codes and zero points packed as
 * `row_panels_k8`, 8-bit ones and the scales as `row_panels`, with that
 * block, as qgemm's PANELS. */
#define KILN_CONV_X 0
#define KILN_CONV_N 1
#define KILN_CONV_H 2
#define KILN_CONV_W 3
#define KILN_CONV_CIN 4
#define KILN_CONV_X_STRIDE 5
#define KILN_CONV_X_OFFSET 6
#define KILN_CONV_WEIGHTS 7
#define KILN_CONV_Y 8
#define KILN_CONV_OH 9
#define KILN_CONV_OW 10
#define KILN_CONV_COUT 11
#define KILN_CONV_Y_STRIDE 12
#define KILN_CONV_Y_OFFSET 13
#define KILN_CONV_KH 14
#define KILN_CONV_KW 15
#define KILN_CONV_STRIDE_H 16
#define KILN_CONV_STRIDE_W 17
#define KILN_CONV_DIL_H 18
#define KILN_CONV_DIL_W 19
#define KILN_CONV_PAD_TOP 20
#define KILN_CONV_PAD_LEFT 21
#define KILN_CONV_PAD_BOTTOM 22
#define KILN_CONV_PAD_RIGHT 23
#define KILN_CONV_GROUPS 24
#define KILN_CONV_KC 25
#define KILN_CONV_NC 26
#define KILN_CONV_WINO_TILES 27
#define KILN_CONV_SCRATCH 28
#define KILN_CONV_Q_KW 29
#define KILN_CONV_Q_CODE 30
#define KILN_CONV_Q_SCALES 31
#define KILN_CONV_Q_SCALE_CODE 32
#define KILN_CONV_Q_ZP 33
#define KILN_CONV_Q_ZP_COLS 34
#define KILN_CONV_Q_BLOCK 35
#define KILN_CONV_Q_NBLOCKS 36
#define KILN_CONV_Q_PANELS 37
#define KILN_CONV_Q_BLOCK_FLOATS 38
#define KILN_CONV_EPILOGUE 39
/* Most Winograd chunks in flight at once (slots of its scratch). */
#define KILN_WINO_SLOTS 8

/* ---- dwconv2d: depthwise NHWC convolution (groups = C, one filter per
 * channel), weights packed as `dwconv_nhwc` [KH, KW, C]. Layout fields as
 * for conv2d; the epilogue's columns are channels. */
#define KILN_DWCONV_X 0
#define KILN_DWCONV_N 1
#define KILN_DWCONV_H 2
#define KILN_DWCONV_W 3
#define KILN_DWCONV_C 4
#define KILN_DWCONV_X_STRIDE 5
#define KILN_DWCONV_X_OFFSET 6
#define KILN_DWCONV_WEIGHTS 7
#define KILN_DWCONV_Y 8
#define KILN_DWCONV_OH 9
#define KILN_DWCONV_OW 10
#define KILN_DWCONV_Y_STRIDE 11
#define KILN_DWCONV_Y_OFFSET 12
#define KILN_DWCONV_KH 13
#define KILN_DWCONV_KW 14
#define KILN_DWCONV_STRIDE_H 15
#define KILN_DWCONV_STRIDE_W 16
#define KILN_DWCONV_DIL_H 17
#define KILN_DWCONV_DIL_W 18
#define KILN_DWCONV_PAD_TOP 19
#define KILN_DWCONV_PAD_LEFT 20
#define KILN_DWCONV_PAD_BOTTOM 21
#define KILN_DWCONV_PAD_RIGHT 22
#define KILN_DWCONV_EPILOGUE 23

/* ---- eltwise: Y[r, c] = epilogue(X[r, c]) over a [ROWS, COLS] view ---- */
#define KILN_ELTWISE_X 0
#define KILN_ELTWISE_LDX 1
#define KILN_ELTWISE_Y 2
#define KILN_ELTWISE_LDY 3
#define KILN_ELTWISE_ROWS 4
#define KILN_ELTWISE_COLS 5
#define KILN_ELTWISE_EPILOGUE 6

/* ---- copy: Y = X over a 4-D box [D0, D1, D2, D3] ----
 * Element (i0, i1, i2, i3) of X at X[X_OFFSET + i0*XS0 + i1*XS1 + i2*XS2 +
 * i3*XS3], of Y likewise with Y_OFFSET and YS0..YS3 (concat, split, slice and
 * transpose are such boxes). Y must not overlap X. */
#define KILN_COPY_X 0
#define KILN_COPY_X_OFFSET 1
#define KILN_COPY_Y 2
#define KILN_COPY_Y_OFFSET 3
#define KILN_COPY_D0 4
#define KILN_COPY_D1 5
#define KILN_COPY_D2 6
#define KILN_COPY_D3 7
#define KILN_COPY_XS0 8
#define KILN_COPY_XS1 9
#define KILN_COPY_XS2 10
#define KILN_COPY_XS3 11
#define KILN_COPY_YS0 12
#define KILN_COPY_YS1 13
#define KILN_COPY_YS2 14
#define KILN_COPY_YS3 15

/* ---- softmax: Y = epilogue(softmax(X)) (or log-softmax) over each row ---- */
#define KILN_SOFTMAX_X 0
#define KILN_SOFTMAX_LDX 1
#define KILN_SOFTMAX_Y 2
#define KILN_SOFTMAX_LDY 3
#define KILN_SOFTMAX_ROWS 4
#define KILN_SOFTMAX_COLS 5
#define KILN_SOFTMAX_LOG 6
#define KILN_SOFTMAX_EPILOGUE 7

/* ---- norm: layer-norm (RMS = 0) or RMS-norm (RMS = 1) over each row ----
 * Y = epilogue((X - mean) * rstd * GAMMA[c] + BETA[c]), mean = 0 for RMS;
 * BETA, MEAN and RSTD may be 0 (absent); MEAN/RSTD receive one value per row. */
#define KILN_NORM_X 0
#define KILN_NORM_LDX 1
#define KILN_NORM_Y 2
#define KILN_NORM_LDY 3
#define KILN_NORM_ROWS 4
#define KILN_NORM_COLS 5
#define KILN_NORM_GAMMA 6
#define KILN_NORM_BETA 7
#define KILN_NORM_EPSILON 8
#define KILN_NORM_RMS 9
#define KILN_NORM_MEAN 10
#define KILN_NORM_RSTD 11
#define KILN_NORM_EPILOGUE 12

/* ---- pool2d: NHWC max or average pooling ----
 * KIND: 0 max, 1 average. OH/OW come from the caller (ceil mode included);
 * windows are clipped to the input, and with COUNT_INCLUDE_PAD the average
 * divides by the window's size clipped to the padded input
 * [-PAD_TOP, H + PAD_BOTTOM) x [-PAD_LEFT, W + PAD_RIGHT). */
#define KILN_POOL_X 0
#define KILN_POOL_N 1
#define KILN_POOL_H 2
#define KILN_POOL_W 3
#define KILN_POOL_C 4
#define KILN_POOL_X_STRIDE 5
#define KILN_POOL_Y 6
#define KILN_POOL_OH 7
#define KILN_POOL_OW 8
#define KILN_POOL_Y_STRIDE 9
#define KILN_POOL_KH 10
#define KILN_POOL_KW 11
#define KILN_POOL_STRIDE_H 12
#define KILN_POOL_STRIDE_W 13
#define KILN_POOL_DIL_H 14
#define KILN_POOL_DIL_W 15
#define KILN_POOL_PAD_TOP 16
#define KILN_POOL_PAD_LEFT 17
#define KILN_POOL_PAD_BOTTOM 18
#define KILN_POOL_PAD_RIGHT 19
#define KILN_POOL_KIND 20
#define KILN_POOL_COUNT_INCLUDE_PAD 21

/* ---- gpool: global pooling, Y[n, c] over the HW pixels of image n ----
 * X[(n*HW + p)*X_STRIDE + c], Y[n*Y_STRIDE + c]; KIND 0 max, 1 average. */
#define KILN_GPOOL_X 0
#define KILN_GPOOL_N 1
#define KILN_GPOOL_HW 2
#define KILN_GPOOL_C 3
#define KILN_GPOOL_X_STRIDE 4
#define KILN_GPOOL_Y 5
#define KILN_GPOOL_Y_STRIDE 6
#define KILN_GPOOL_KIND 7

/* ---- attention: O = softmax(SCALE * Q K^T + MASK) V per (batch, head) ----
 * Q [B, HQ, SQ, D], K [B, HKV, SK, D], V [B, HKV, SK, DV], O [B, HQ, SQ, DV],
 * each with a stride per dim (element (b, h, s, d) of Q at
 * Q[b*Q_SB + h*Q_SH + s*Q_SS + d*Q_SD]). Query head h reads key/value head
 * h / (HQ / HKV). MASK (0 = none) is added to the scaled scores, element
 * (b, h, i, j) at MASK[b*M_SB + h*M_SH + i*M_SQ + j*M_SK] (stride 0 =
 * broadcast). CAUSAL = 1 masks key j > i + SK - SQ. Scratch: see abi.rs. */
#define KILN_ATTN_Q 0
#define KILN_ATTN_Q_SB 1
#define KILN_ATTN_Q_SH 2
#define KILN_ATTN_Q_SS 3
#define KILN_ATTN_Q_SD 4
#define KILN_ATTN_K 5
#define KILN_ATTN_K_SB 6
#define KILN_ATTN_K_SH 7
#define KILN_ATTN_K_SS 8
#define KILN_ATTN_K_SD 9
#define KILN_ATTN_V 10
#define KILN_ATTN_V_SB 11
#define KILN_ATTN_V_SH 12
#define KILN_ATTN_V_SS 13
#define KILN_ATTN_V_SD 14
#define KILN_ATTN_O 15
#define KILN_ATTN_O_SB 16
#define KILN_ATTN_O_SH 17
#define KILN_ATTN_O_SS 18
#define KILN_ATTN_O_SD 19
#define KILN_ATTN_MASK 20
#define KILN_ATTN_M_SB 21
#define KILN_ATTN_M_SH 22
#define KILN_ATTN_M_SQ 23
#define KILN_ATTN_M_SK 24
#define KILN_ATTN_B 25
#define KILN_ATTN_HQ 26
#define KILN_ATTN_HKV 27
#define KILN_ATTN_SQ 28
#define KILN_ATTN_SK 29
#define KILN_ATTN_D 30
#define KILN_ATTN_DV 31
#define KILN_ATTN_SCALE 32
#define KILN_ATTN_CAUSAL 33
#define KILN_ATTN_SCRATCH 34

/* ---- qgemm: C[M,N] = A[M,K] . W'^T with W' the dequantized weight of a
 * quant.matmul, decoded where it is read (no f32 copy of W exists) ----
 * W: N rows of KW codes (format CODE: KILN_QCODE_*), packed: row n starts at
 * byte n*KW*bits/8, code k of a row in bits bits*(k % (8/bits)) upwards of
 * byte k/(8/bits). Block b = k / BLOCK of row n has scale SCALES[n*NBLOCKS + b]
 * (f32 with SCALE_CODE = KILN_QCODE_F32, else one byte of that format) and,
 * with ZP non-null, the zero point code n*ZP_COLS + b of ZP (packed like W):
 * W'[n][k] = (v(code) - v(zero point)) * scale, in f32. LDA, LDC in floats.
 * PANELS = KILN_QG_PANEL (16; M = 1, 4-bit codes): W, SCALES and ZP
 * re-laid out in panels of 16 rows: code k of row n in element ((n/16 *
 * ceil(KW/8) + k/8) * 16 + n%16) * 8 + k%8 (runs of 8 codes, 4 bytes, per
 * row: kiln_ir's `row_panels_k8`; zero points the same with ZP_COLS for
 * KW), scale b of row n at ((n/16) * NBLOCKS + b) * 16 + n%16
 * (`row_panels`); 0: as above. */
#define KILN_QG_PANEL 16
#define KILN_QGEMM_A 0
#define KILN_QGEMM_LDA 1
#define KILN_QGEMM_W 2
#define KILN_QGEMM_KW 3
#define KILN_QGEMM_CODE 4
#define KILN_QGEMM_SCALES 5
#define KILN_QGEMM_SCALE_CODE 6
#define KILN_QGEMM_ZP 7
#define KILN_QGEMM_ZP_COLS 8
#define KILN_QGEMM_BLOCK 9
#define KILN_QGEMM_NBLOCKS 10
#define KILN_QGEMM_C 11
#define KILN_QGEMM_LDC 12
#define KILN_QGEMM_M 13
#define KILN_QGEMM_N 14
#define KILN_QGEMM_K 15
#define KILN_QGEMM_PANELS 16

/* ---- igemm / igemmv: exact 8-bit integer product (quant.matmul_integer) ----
 * C[M,N] = sum_k (A[m,k] - za) * (B[k,n] - zb) in int32. A: bytes, element
 * (i, k) at A[i*LDA + k] (LDA in bytes), i8 if A_SIGNED else u8; ZA (0 =
 * none): one byte, or one per row with ZA_PER_ROW. B: bytes, row-major
 * B[k*LDB + n], i8 if B_SIGNED else u8; ZB (0 = none): one byte, or one per
 * column with ZB_PER_COL. C: int32 (C_F32 = 0, no epilogue) or f32 (C_F32 =
 * 1: the exact int32 sum converted, then the epilogue), C[i*LDC + n].
 * B_PACKED = 1 (igemmv only): B is i8 packed as `int8_gemm_b` with the
 * variant's NR (kiln_ir::ops::layout), LDB unused.
 * SCRATCH: see abi.rs (IGemmArgs::scratch_bytes). igemmv is the dot-product
 * path (x86 w16r32 with AVX512-VNNI, w8r16 with AVX-VNNI, AArch64 with SDOT;
 * the portable one elsewhere): call it only for such a target CPU. */
#define KILN_IGEMM_A 0
#define KILN_IGEMM_LDA 1
#define KILN_IGEMM_A_SIGNED 2
#define KILN_IGEMM_ZA 3
#define KILN_IGEMM_ZA_PER_ROW 4
#define KILN_IGEMM_B 5
#define KILN_IGEMM_LDB 6
#define KILN_IGEMM_B_SIGNED 7
#define KILN_IGEMM_ZB 8
#define KILN_IGEMM_ZB_PER_COL 9
#define KILN_IGEMM_C 10
#define KILN_IGEMM_LDC 11
#define KILN_IGEMM_C_F32 12
#define KILN_IGEMM_M 13
#define KILN_IGEMM_N 14
#define KILN_IGEMM_K 15
#define KILN_IGEMM_SCRATCH 16
#define KILN_IGEMM_B_PACKED 17
#define KILN_IGEMM_EPILOGUE 18

/* ---- iconv / iconvv: quant.conv_integer, 2-D NCHW, on igemm's product ----
 * Y[n, m, oy, ox] = BIAS[m] + sum over the group's channels and taps of
 * (X - ZX) * (W[m] - ZW), padding taps adding 0. X: bytes [N, C, H, W_IN],
 * i8 if X_SIGNED else u8, ZX one byte of its type (0 = none). W: bytes
 * [M, C/GROUPS, KH, KW], i8 if W_SIGNED; ZW (0 = none) one byte or, with
 * ZW_PER_CH, one per output channel. BIAS: int32 [M] or 0. Window: strides
 * SH/SW, dilations DH/DW, begin pads PH/PW, result [N, M, OH, OW]. Y: int32
 * when RQ_SCALE is 0; else bytes (i8 if Y_SIGNED, else u8) of
 * clamp(rint(f32(acc) * RQ_SCALE[m]) + *RQ_ZP) (one f32 scale, or one per
 * output channel with RQ_PER_CH; RQ_ZP 0 = zero). SCRATCH: igemm's for
 * M/GROUPS x (OH*OW) x (C/GROUPS*KH*KW). iconvv: igemmv's dot products
 * (call it only where igemmv may be called). */
#define KILN_ICONV_X 0
#define KILN_ICONV_X_SIGNED 1
#define KILN_ICONV_ZX 2
#define KILN_ICONV_W 3
#define KILN_ICONV_W_SIGNED 4
#define KILN_ICONV_ZW 5
#define KILN_ICONV_ZW_PER_CH 6
#define KILN_ICONV_BIAS 7
#define KILN_ICONV_Y 8
#define KILN_ICONV_N 9
#define KILN_ICONV_C 10
#define KILN_ICONV_H 11
#define KILN_ICONV_W_IN 12
#define KILN_ICONV_M 13
#define KILN_ICONV_OH 14
#define KILN_ICONV_OW 15
#define KILN_ICONV_KH 16
#define KILN_ICONV_KW 17
#define KILN_ICONV_SH 18
#define KILN_ICONV_SW 19
#define KILN_ICONV_DH 20
#define KILN_ICONV_DW 21
#define KILN_ICONV_PH 22
#define KILN_ICONV_PW 23
#define KILN_ICONV_GROUPS 24
#define KILN_ICONV_SCRATCH 25
#define KILN_ICONV_RQ_SCALE 26
#define KILN_ICONV_RQ_PER_CH 27
#define KILN_ICONV_RQ_ZP 28
#define KILN_ICONV_Y_SIGNED 29

/* ---- rminmax: Y[0] = max (MIN = 0) or min (MIN = 1) of X[0 .. N), N >= 1,
 * NaN if any element is NaN ---- */
#define KILN_RMINMAX_X 0
#define KILN_RMINMAX_N 1
#define KILN_RMINMAX_Y 2
#define KILN_RMINMAX_MIN 3

/* ---- quantize: per-tensor QuantizeLinear of f32 X[0 .. N) into bytes Y
 * (i8 with SIGNED, else u8): clamp(roundeven(X / *SCALE) + *ZP) with a NaN
 * quotient as 0; ZP (one byte of Y's type) may be 0 (absent). ---- */
#define KILN_QUANTIZE_X 0
#define KILN_QUANTIZE_N 1
#define KILN_QUANTIZE_Y 2
#define KILN_QUANTIZE_SCALE 3
#define KILN_QUANTIZE_ZP 4
#define KILN_QUANTIZE_SIGNED 5

/* Code formats of qgemm weights and scales (kiln_ir::codec). */
#define KILN_QCODE_F32 0
#define KILN_QCODE_I8 1
#define KILN_QCODE_U8 2
#define KILN_QCODE_I4 3
#define KILN_QCODE_U4 4
#define KILN_QCODE_I2 5
#define KILN_QCODE_U2 6
#define KILN_QCODE_NF4 7
#define KILN_QCODE_F8E4M3FN 8
#define KILN_QCODE_F8E4M3FNUZ 9
#define KILN_QCODE_F8E5M2 10
#define KILN_QCODE_F8E5M2FNUZ 11
#define KILN_QCODE_F4E2M1 12
#define KILN_QCODE_E8M0 13

#endif
