//! Shape-inference tests for the pool, reduce, norm, shape, attention and
//! quant families: per family a static case, a symbolic case and a rejected
//! case. Expected shapes were computed with `onnx.shape_inference` (onnx
//! 1.23, opset 24) or by hand from the ONNX operator spec, never from Kiln.

use super::infer::{ConstOperand, InferCtx};
use super::OpKind;
use crate::attr::{Attr, Attrs};
use crate::blob::Blob;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

/// Parses `2x?x{b}xf32` (and `f32` for a scalar) into a tensor type.
fn ty(s: &str) -> TensorType {
    let parts: Vec<&str> = s.split('x').collect();
    let (dt, dims) = parts.split_last().expect("non-empty type");
    let dims = dims
        .iter()
        .map(|d| match *d {
            "?" => Dim::Unknown,
            d if d.starts_with('{') => Dim::sym(d.trim_matches(['{', '}'])),
            d => Dim::Static(d.parse().expect("dim")),
        })
        .collect();
    TensorType::new(DType::from_name(dt).expect("dtype"), dims)
}

/// Data of a constant operand.
enum C {
    /// Integers, encoded in the operand's integer dtype.
    I(Vec<i64>),
    /// Floats, encoded as f32.
    F(Vec<f32>),
}

/// Runs `op`'s inference. `ins` are operand types (`""` for an absent
/// optional operand); `consts` give the data of constant operands. Returns
/// the result types joined by ", ", or the error message.
fn infer_n(
    op: OpKind,
    num_outputs: usize,
    ins: &[&str],
    attrs: &[(&str, Attr)],
    consts: &[(usize, C)],
) -> Result<String, String> {
    let types: Vec<Option<TensorType>> =
        ins.iter().map(|s| (!s.is_empty()).then(|| ty(s))).collect();
    let blobs: Vec<Option<Blob>> = (0..ins.len())
        .map(|i| {
            let (_, c) = consts.iter().find(|(j, _)| *j == i)?;
            let t = types[i].as_ref().expect("constant operand has a type");
            let bytes: Vec<u8> = match (c, t.dtype) {
                (C::I(v), DType::I32) => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
                (C::I(v), _) => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
                (C::F(v), _) => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
            };
            Some(Blob::from_vec(bytes))
        })
        .collect();
    let inputs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    let consts: Vec<Option<ConstOperand<'_>>> = types
        .iter()
        .zip(&blobs)
        .map(|(t, b)| {
            Some(ConstOperand {
                ty: t.as_ref()?,
                data: b.as_ref()?,
            })
        })
        .collect();
    let attrs: Attrs = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let ctx = InferCtx {
        def: op.def(),
        inputs: &inputs,
        attrs: &attrs,
        consts: &consts,
        num_outputs,
        weight_ty: None,
        body: None,
    };
    (op.def().infer)(&ctx)
        .map(|ts| {
            ts.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .map_err(|e| e.0)
}

/// [`infer_n`] with the op's fewest results.
fn infer(
    op: OpKind,
    ins: &[&str],
    attrs: &[(&str, Attr)],
    consts: &[(usize, C)],
) -> Result<String, String> {
    infer_n(op, op.def().outputs.min.max(1), ins, attrs, consts)
}

/// Asserts success and returns the result types.
fn ok(r: Result<String, String>) -> String {
    r.unwrap_or_else(|e| panic!("inference failed: {e}"))
}

/// Asserts failure with a message containing `needle`.
fn err(r: Result<String, String>, needle: &str) {
    match r {
        Ok(t) => panic!("expected an error containing {needle:?}, got {t}"),
        Err(e) => assert!(
            e.contains(needle),
            "error {e:?} does not contain {needle:?}"
        ),
    }
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

fn s(v: &str) -> Attr {
    Attr::Str(v.to_string())
}

// ---- pool ----

#[test]
fn max_pool_static_with_indices() {
    let a = [
        ("kernel_shape", ints(&[3, 3])),
        ("strides", ints(&[2, 2])),
        ("pads", ints(&[1, 1, 1, 1])),
    ];
    assert_eq!(
        ok(infer(OpKind::MaxPool, &["1x3x32x32xf32"], &a, &[])),
        "tensor<1x3x16x16xf32>, tensor<1x3x16x16xi64>"
    );
}

#[test]
fn pools_ceil_mode_same_and_dilation() {
    // onnx.shape_inference: 7x7, k2 s2 ceil -> 4x4; SAME_UPPER k3 s2 -> 4x4;
    // 1-D k3 dilation 2 over 10 -> 6; 32x32 k3 s2 ceil -> 16x16.
    let ceil = [
        ("kernel_shape", ints(&[2, 2])),
        ("strides", ints(&[2, 2])),
        ("ceil_mode", Attr::Int(1)),
    ];
    assert_eq!(
        ok(infer(OpKind::AveragePool, &["1x3x7x7xf32"], &ceil, &[])),
        "tensor<1x3x4x4xf32>"
    );
    let same = [
        ("kernel_shape", ints(&[3, 3])),
        ("strides", ints(&[2, 2])),
        ("auto_pad", s("SAME_UPPER")),
    ];
    assert_eq!(
        ok(infer(OpKind::AveragePool, &["1x3x7x7xf32"], &same, &[])),
        "tensor<1x3x4x4xf32>"
    );
    let dil = [("kernel_shape", ints(&[3])), ("dilations", ints(&[2]))];
    assert_eq!(
        ok(infer(OpKind::LpPool, &["2x4x10xf32"], &dil, &[])),
        "tensor<2x4x6xf32>"
    );
    let ceil3 = [
        ("kernel_shape", ints(&[3, 3])),
        ("strides", ints(&[2, 2])),
        ("ceil_mode", Attr::Bool(true)),
    ];
    assert_eq!(
        ok(infer(OpKind::MaxPool, &["1x3x32x32xf32"], &ceil3, &[])),
        "tensor<1x3x16x16xf32>, tensor<1x3x16x16xi64>"
    );
}

#[test]
fn pools_symbolic() {
    let a = [("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))];
    assert_eq!(
        ok(infer(OpKind::AveragePool, &["{n}x8x?x6xf32"], &a, &[])),
        "tensor<{n}x8x?x3xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::GlobalAveragePool,
            &["{n}x8x{h}x{w}xf32"],
            &[],
            &[]
        )),
        "tensor<{n}x8x1x1xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::GlobalMaxPool, &["2x8x5xf16"], &[], &[])),
        "tensor<2x8x1xf16>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Lrn,
            &["{n}x8x5x5xf32"],
            &[("size", Attr::Int(3))],
            &[]
        )),
        "tensor<{n}x8x5x5xf32>"
    );
}

#[test]
fn pools_rejected() {
    err(
        infer(OpKind::MaxPool, &["1x3x32x32xf32"], &[], &[]),
        "'kernel_shape' is required",
    );
    err(
        infer(
            OpKind::MaxPool,
            &["1x3x32xf32"],
            &[("kernel_shape", ints(&[3, 3]))],
            &[],
        ),
        "kernel has 2 dims, expected 1",
    );
    err(
        infer(
            OpKind::AveragePool,
            &["3x32xf32"],
            &[("kernel_shape", ints(&[3]))],
            &[],
        ),
        "rank >= 3",
    );
    err(
        infer(
            OpKind::AveragePool,
            &["1x1x2xf32"],
            &[("kernel_shape", ints(&[3]))],
            &[],
        ),
        "smaller than the kernel",
    );
    err(
        infer(
            OpKind::Lrn,
            &["1x3x4x4xf32"],
            &[("size", Attr::Int(0))],
            &[],
        ),
        "size must be positive",
    );
    err(
        infer(OpKind::Lrn, &["1x3x4x4xf32"], &[], &[]),
        "'size' is required",
    );
    // Hostile attributes give errors, not overflows.
    let huge = [
        ("kernel_shape", ints(&[i64::MAX])),
        ("dilations", ints(&[3])),
    ];
    err(
        infer(OpKind::MaxPool, &["1x1x4xf32"], &huge, &[]),
        "overflows",
    );
}

// ---- reduce ----

#[test]
fn reduce_static() {
    let i = [(1, C::I(vec![0, -1]))];
    let nokeep = [("keepdims", Attr::Int(0))];
    assert_eq!(
        ok(infer(
            OpKind::ReduceSum,
            &["2x3x4xf32", "2xi64"],
            &nokeep,
            &i
        )),
        "tensor<3xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::ReduceMax, &["2x3x4xf32", "2xi64"], &[], &i)),
        "tensor<1x3x1xf32>"
    );
    // No axes: reduce everything, or nothing with noop_with_empty_axes.
    assert_eq!(
        ok(infer(OpKind::ReduceL2, &["2x3xf32"], &nokeep, &[])),
        "tensor<f32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::ReduceProd,
            &["2x3xi32"],
            &[("noop_with_empty_axes", Attr::Int(1))],
            &[]
        )),
        "tensor<2x3xi32>"
    );
    let am = [("axis", Attr::Int(-1)), ("keepdims", Attr::Int(0))];
    assert_eq!(
        ok(infer(OpKind::ArgMax, &["2x3x4xf32"], &am, &[])),
        "tensor<2x3xi64>"
    );
    assert_eq!(
        ok(infer(OpKind::ArgMin, &["2x3x4xf32"], &[], &[])),
        "tensor<1x3x4xi64>"
    );
    assert_eq!(
        ok(infer(
            OpKind::TopK,
            &["2x10xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![3]))]
        )),
        "tensor<2x3xf32>, tensor<2x3xi64>"
    );
    assert_eq!(
        ok(infer(
            OpKind::CumSum,
            &["2x3xf32", "i32"],
            &[],
            &[(1, C::I(vec![1]))]
        )),
        "tensor<2x3xf32>"
    );
}

#[test]
fn reduce_symbolic_and_dynamic_axes() {
    assert_eq!(
        ok(infer(
            OpKind::ReduceMean,
            &["{b}x3x4xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![1]))]
        )),
        "tensor<{b}x1x4xf32>"
    );
    // Non-constant axes: keepdims keeps the rank; a static axes length gives it.
    assert_eq!(
        ok(infer(
            OpKind::ReduceSum,
            &["{b}x1x4xf32", "1xi64"],
            &[],
            &[]
        )),
        "tensor<?x1x?xf32>"
    );
    let nokeep = [("keepdims", Attr::Bool(false))];
    assert_eq!(
        ok(infer(
            OpKind::ReduceSum,
            &["{b}x3x4xf32", "2xi64"],
            &nokeep,
            &[]
        )),
        "tensor<?xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::TopK, &["{b}x10xf32", "1xi64"], &[], &[])),
        "tensor<{b}x?xf32>, tensor<{b}x?xi64>"
    );
}

#[test]
fn reduce_rejected() {
    err(
        infer(
            OpKind::ReduceSum,
            &["2x3xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![2]))],
        ),
        "axis 2 is out of range for rank 2",
    );
    err(
        infer(
            OpKind::ReduceSum,
            &["2x3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![1, -1]))],
        ),
        "given twice",
    );
    err(
        infer(
            OpKind::ReduceSum,
            &["2x3xf32", "?xi64"],
            &[("keepdims", Attr::Int(0))],
            &[],
        ),
        "static length",
    );
    err(
        infer(OpKind::ReduceLogSum, &["2x3xi32"], &[], &[]),
        "float dtype",
    );
    err(infer(OpKind::ReduceSum, &["2x3xbool"], &[], &[]), "numeric");
    err(
        infer(
            OpKind::TopK,
            &["2x10xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![11]))],
        ),
        "exceeds the extent 10",
    );
    err(
        infer(OpKind::TopK, &["2x10xf32", "2xi64"], &[], &[]),
        "exactly one value",
    );
    err(
        infer(
            OpKind::CumSum,
            &["2x3xf32", "i64"],
            &[],
            &[(1, C::I(vec![-3]))],
        ),
        "out of range",
    );
}

// ---- norm ----

#[test]
fn norm_static() {
    assert_eq!(
        ok(infer_n(
            OpKind::LayerNorm,
            3,
            &["2x5x8xf32", "8xf32"],
            &[],
            &[]
        )),
        "tensor<2x5x8xf32>, tensor<2x5x1xf32>, tensor<2x5x1xf32>"
    );
    assert_eq!(
        ok(infer_n(
            OpKind::LayerNorm,
            3,
            &["2x5x8xf16", "5x8xf16", "8xf16"],
            &[("axis", Attr::Int(1))],
            &[]
        )),
        "tensor<2x5x8xf16>, tensor<2x1x1xf32>, tensor<2x1x1xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::Softmax, &["2x5xf32"], &[], &[])),
        "tensor<2x5xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::RmsNorm, &["2x5x8xbf16", "8xbf16"], &[], &[])),
        "tensor<2x5x8xbf16>"
    );
    let bn = ["1x3x4x4xf32", "3xf32", "3xf32", "3xf32", "3xf32"];
    assert_eq!(
        ok(infer(OpKind::BatchNorm, &bn, &[], &[])),
        "tensor<1x3x4x4xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::MeanVarianceNormalization,
            &["1x3x4x4xf32"],
            &[],
            &[]
        )),
        "tensor<1x3x4x4xf32>"
    );
}

#[test]
fn norm_symbolic() {
    assert_eq!(
        ok(infer_n(
            OpKind::LayerNorm,
            3,
            &["{b}x{s}x768xf32", "768xf32", "768xf32"],
            &[],
            &[]
        )),
        "tensor<{b}x{s}x768xf32>, tensor<{b}x{s}x1xf32>, tensor<{b}x{s}x1xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::InstanceNorm,
            &["{n}x3x?xf32", "3xf32", "3xf32"],
            &[],
            &[]
        )),
        "tensor<{n}x3x?xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::LogSoftmax,
            &["{b}x?xf32"],
            &[("axis", Attr::Int(0))],
            &[]
        )),
        "tensor<{b}x?xf32>"
    );
}

#[test]
fn norm_rejected() {
    err(
        infer(
            OpKind::Softmax,
            &["2x5xf32"],
            &[("axis", Attr::Int(2))],
            &[],
        ),
        "out of range",
    );
    err(
        infer(OpKind::Hardmax, &["2x5xi32"], &[], &[]),
        "float dtype",
    );
    err(
        infer(OpKind::LayerNorm, &["2x5x8xf32", "7xf32"], &[], &[]),
        "do not broadcast",
    );
    err(
        infer(
            OpKind::LayerNorm,
            &["2x5x8xf32", "8xf32"],
            &[("stash_type", Attr::Int(7))],
            &[],
        ),
        "stash_type 7",
    );
    let bn = ["1x3x4x4xf32", "4xf32", "4xf32", "4xf32", "4xf32"];
    err(
        infer(OpKind::BatchNorm, &bn, &[], &[]),
        "scale length vs channels",
    );
    err(
        infer(OpKind::MeanVarianceNormalization, &["3x4xf32"], &[], &[]),
        "out of range for rank 2",
    );
}

// ---- shape ----

#[test]
fn reshape_cases() {
    let sh = |v: Vec<i64>| [(1, C::I(v))];
    assert_eq!(
        ok(infer(
            OpKind::Reshape,
            &["2x3x4xf32", "3xi64"],
            &[],
            &sh(vec![0, -1, 2])
        )),
        "tensor<2x6x2xf32>"
    );
    // Symbolic dims cancel: [b, 3, 4] -> [0, -1] is [b, 12].
    assert_eq!(
        ok(infer(
            OpKind::Reshape,
            &["{b}x3x4xf32", "2xi64"],
            &[],
            &sh(vec![0, -1])
        )),
        "tensor<{b}x12xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Reshape,
            &["{b}x12xf32", "3xi64"],
            &[],
            &sh(vec![-1, 3, 4])
        )),
        "tensor<{b}x3x4xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Reshape,
            &["{b}x{s}xf32", "1xi64"],
            &[],
            &sh(vec![-1])
        )),
        "tensor<?xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Reshape,
            &["2x0xf32", "2xi64"],
            &[("allowzero", Attr::Int(1))],
            &sh(vec![0, 5])
        )),
        "tensor<0x5xf32>"
    );
    // A non-constant shape of static length gives the rank.
    assert_eq!(
        ok(infer(OpKind::Reshape, &["2x3xf32", "3xi64"], &[], &[])),
        "tensor<?x?x?xf32>"
    );
    err(
        infer(
            OpKind::Reshape,
            &["2x3x4xf32", "2xi64"],
            &[],
            &sh(vec![5, -1]),
        ),
        "not divisible by 5",
    );
    err(
        infer(
            OpKind::Reshape,
            &["2x3xf32", "2xi64"],
            &[],
            &sh(vec![-1, -1]),
        ),
        "more than one -1",
    );
    err(
        infer(OpKind::Reshape, &["2x3xf32", "2xi64"], &[], &sh(vec![4, 2])),
        "cannot reshape 6 elements into 8",
    );
    err(
        infer(OpKind::Reshape, &["2x3xf32", "?xi64"], &[], &[]),
        "static length",
    );
}

#[test]
fn slice_cases() {
    // onnx.shape_inference: [10, 20, 30], starts [1, -1], ends [1000, -1000],
    // axes [0, 2], steps [3, -2] -> [3, 20, 15].
    let c = [
        (1, C::I(vec![1, -1])),
        (2, C::I(vec![1000, -1000])),
        (3, C::I(vec![0, 2])),
        (4, C::I(vec![3, -2])),
    ];
    assert_eq!(
        ok(infer(
            OpKind::Slice,
            &["10x20x30xf32", "2xi64", "2xi64", "2xi64", "2xi64"],
            &[],
            &c
        )),
        "tensor<3x20x15xf32>"
    );
    let whole = [
        (1, C::I(vec![0])),
        (2, C::I(vec![i64::MAX])),
        (3, C::I(vec![1])),
    ];
    assert_eq!(
        ok(infer(
            OpKind::Slice,
            &["{b}x{s}xf32", "1xi64", "1xi64", "1xi64"],
            &[],
            &whole
        )),
        "tensor<{b}x{s}xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Slice,
            &["{b}x4xf32", "1xi64", "1xi64"],
            &[],
            &[]
        )),
        "tensor<?x4xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Slice,
            &["0x4xf32", "1xi64", "1xi64", "", "1xi64"],
            &[],
            &[
                (1, C::I(vec![-1])),
                (2, C::I(vec![i64::MIN])),
                (4, C::I(vec![-1]))
            ]
        )),
        "tensor<0x4xf32>"
    );
    err(
        infer(
            OpKind::Slice,
            &["4xf32", "1xi64", "1xi64", "", "1xi64"],
            &[],
            &[(4, C::I(vec![0]))],
        ),
        "non-zero",
    );
    err(
        infer(
            OpKind::Slice,
            &["4xf32", "2xi64", "1xi64"],
            &[],
            &[(1, C::I(vec![0, 0])), (2, C::I(vec![1]))],
        ),
        "starts has 2 entries but ends has 1",
    );
}

#[test]
fn shape_family_static() {
    assert_eq!(
        ok(infer(OpKind::Transpose, &["2x3x4xf32"], &[], &[])),
        "tensor<4x3x2xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Transpose,
            &["2x3x4xf32"],
            &[("perm", ints(&[1, 0, 2]))],
            &[]
        )),
        "tensor<3x2x4xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Concat,
            &["2x3xf32", "2x5xf32", "2x1xf32"],
            &[("axis", Attr::Int(-1))],
            &[]
        )),
        "tensor<2x9xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Gather,
            &["5x6x7xf32", "2x3xi64"],
            &[("axis", Attr::Int(1))],
            &[]
        )),
        "tensor<5x2x3x7xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::GatherElements,
            &["5x6xf32", "5x2xi32"],
            &[("axis", Attr::Int(1))],
            &[]
        )),
        "tensor<5x2xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::GatherNd,
            &["2x3x4x5xf32", "2x6x2xi64"],
            &[("batch_dims", Attr::Int(1))],
            &[]
        )),
        "tensor<2x6x5xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::ScatterNd,
            &["4x5xf32", "3x1xi64", "3x5xf32"],
            &[],
            &[]
        )),
        "tensor<4x5xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::ScatterElements,
            &["4x5xf32", "2x5xi64", "2x5xf32"],
            &[("reduction", s("add"))],
            &[]
        )),
        "tensor<4x5xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Flatten,
            &["2x3x4x5xf32"],
            &[("axis", Attr::Int(2))],
            &[]
        )),
        "tensor<6x20xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Flatten,
            &["2x3xf32"],
            &[("axis", Attr::Int(0))],
            &[]
        )),
        "tensor<1x6xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Expand,
            &["3x1xf32", "3xi64"],
            &[],
            &[(1, C::I(vec![2, 1, 6]))]
        )),
        "tensor<2x3x6xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Tile,
            &["2x3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![3, 1]))]
        )),
        "tensor<6x3xf32>"
    );
    // onnx.shape_inference: pads [1, -1, 2, 0] on axes [2, 3] of 1x3x4x4 -> 1x3x7x3.
    let pad = [(1, C::I(vec![1, -1, 2, 0])), (3, C::I(vec![2, 3]))];
    assert_eq!(
        ok(infer(
            OpKind::Pad,
            &["1x3x4x4xf32", "4xi64", "", "2xi64"],
            &[],
            &pad
        )),
        "tensor<1x3x7x3xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Shape,
            &["2x3x4x5xf32"],
            &[("start", Attr::Int(-3)), ("end", Attr::Int(-1))],
            &[]
        )),
        "tensor<2xi64>"
    );
    assert_eq!(
        ok(infer(OpKind::Size, &["2x3xf32"], &[], &[])),
        "tensor<i64>"
    );
    assert_eq!(
        ok(infer(OpKind::NonZero, &["2x3xf32"], &[], &[])),
        "tensor<2x?xi64>"
    );
    assert_eq!(
        ok(infer(
            OpKind::DepthToSpace,
            &["1x8x2x3xf32"],
            &[("blocksize", Attr::Int(2))],
            &[]
        )),
        "tensor<1x2x4x6xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::SpaceToDepth,
            &["1x2x4x6xf32"],
            &[("blocksize", Attr::Int(2))],
            &[]
        )),
        "tensor<1x8x2x3xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::OneHot,
            &["2x3xi64", "i64", "2xf32"],
            &[("axis", Attr::Int(1))],
            &[(1, C::I(vec![5]))]
        )),
        "tensor<2x5x3xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::EyeLike,
            &["3x4xf32"],
            &[("dtype", Attr::DType(DType::I32))],
            &[]
        )),
        "tensor<3x4xi32>"
    );
    assert_eq!(
        ok(infer(OpKind::Trilu, &["2x3x3xf32", "i64"], &[], &[])),
        "tensor<2x3x3xf32>"
    );
    assert_eq!(
        ok(infer_n(OpKind::Dropout, 2, &["2x3xf32"], &[], &[])),
        "tensor<2x3xf32>, tensor<2x3xbool>"
    );
}

#[test]
fn split_squeeze_unsqueeze() {
    // onnx.shape_inference: 6 into 4 gives 2, 2, 2, 0; 7 into 3 gives 3, 3, 1.
    assert_eq!(
        ok(infer_n(
            OpKind::Split,
            4,
            &["4x6xf32"],
            &[("axis", Attr::Int(1)), ("num_outputs", Attr::Int(4))],
            &[]
        )),
        "tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x0xf32>"
    );
    assert_eq!(
        ok(infer_n(OpKind::Split, 3, &["7xf32"], &[], &[])),
        "tensor<3xf32>, tensor<3xf32>, tensor<1xf32>"
    );
    assert_eq!(
        ok(infer_n(
            OpKind::Split,
            2,
            &["{b}x7xf32", "2xi64"],
            &[("axis", Attr::Int(1))],
            &[(1, C::I(vec![3, 4]))]
        )),
        "tensor<{b}x3xf32>, tensor<{b}x4xf32>"
    );
    assert_eq!(
        ok(infer_n(OpKind::Split, 2, &["{b}xf32"], &[], &[])),
        "tensor<?xf32>, tensor<?xf32>"
    );
    err(
        infer_n(OpKind::Split, 4, &["5xf32"], &[], &[]),
        "cannot be split into 4 chunks",
    );
    err(
        infer_n(
            OpKind::Split,
            2,
            &["7xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![3, 3]))],
        ),
        "sum to 6",
    );
    err(
        infer_n(
            OpKind::Split,
            2,
            &["7xf32"],
            &[("num_outputs", Attr::Int(3))],
            &[],
        ),
        "num_outputs is 3",
    );

    assert_eq!(
        ok(infer(OpKind::Squeeze, &["1x3x1xf32"], &[], &[])),
        "tensor<3xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Squeeze,
            &["{b}x1x?xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![-2]))]
        )),
        "tensor<{b}x?xf32>"
    );
    err(
        infer(
            OpKind::Squeeze,
            &["2x3xf32", "1xi64"],
            &[],
            &[(1, C::I(vec![0]))],
        ),
        "cannot squeeze axis 0 of extent 2",
    );
    err(
        infer(OpKind::Squeeze, &["{b}x1xf32"], &[], &[]),
        "static input shape",
    );
    assert_eq!(
        ok(infer(
            OpKind::Unsqueeze,
            &["{b}x3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![0, -1]))]
        )),
        "tensor<1x{b}x3x1xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Unsqueeze,
            &["3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![0, 2]))]
        )),
        "tensor<1x3x1xf32>"
    );
    err(
        infer(
            OpKind::Unsqueeze,
            &["3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![0, 3]))],
        ),
        "out of range for rank 3",
    );
}

#[test]
fn shape_family_symbolic() {
    assert_eq!(
        ok(infer(
            OpKind::Concat,
            &["{b}x3xf32", "?x5xf32"],
            &[("axis", Attr::Int(1))],
            &[]
        )),
        "tensor<{b}x8xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Concat,
            &["{b}x3xf32", "{c}x3xf32"],
            &[("axis", Attr::Int(0))],
            &[]
        )),
        "tensor<?x3xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::Flatten, &["{b}x3x4xf32"], &[], &[])),
        "tensor<{b}x12xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::Expand, &["3x1xf32", "2xi64"], &[], &[])),
        "tensor<3x?xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Tile,
            &["{b}x3xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![1, 2]))]
        )),
        "tensor<{b}x6xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Pad,
            &["{b}x4xf32", "4xi64"],
            &[],
            &[(1, C::I(vec![0, 1, 0, 1]))]
        )),
        "tensor<{b}x6xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::Range, &["i64", "i64", "i64"], &[], &[])),
        "tensor<?xi64>"
    );
    // onnx.shape_inference: Range(10, 1, -3) has 3 elements.
    let r = [(0, C::I(vec![10])), (1, C::I(vec![1])), (2, C::I(vec![-3]))];
    assert_eq!(
        ok(infer(OpKind::Range, &["i64", "i64", "i64"], &[], &r)),
        "tensor<3xi64>"
    );
    let rf = [
        (0, C::F(vec![0.0])),
        (1, C::F(vec![1.0])),
        (2, C::F(vec![0.3])),
    ];
    assert_eq!(
        ok(infer(OpKind::Range, &["f32", "f32", "f32"], &[], &rf)),
        "tensor<4xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::ConstantOfShape,
            &["2xi64"],
            &[],
            &[(0, C::I(vec![2, 3]))]
        )),
        "tensor<2x3xf32>"
    );
    let cs = [
        ("value_dtype", Attr::DType(DType::I64)),
        ("value", Attr::Float(7.0)),
    ];
    assert_eq!(
        ok(infer(OpKind::ConstantOfShape, &["3xi64"], &cs, &[])),
        "tensor<?x?x?xi64>"
    );
    assert_eq!(
        ok(infer(
            OpKind::DepthToSpace,
            &["{n}x8x{h}x3xf32"],
            &[("blocksize", Attr::Int(2))],
            &[]
        )),
        "tensor<{n}x2x?x6xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Gather,
            &["{v}x64xf32", "{b}x{s}xi64"],
            &[],
            &[]
        )),
        "tensor<{b}x{s}x64xf32>"
    );
}

#[test]
fn shape_family_rejected() {
    err(
        infer(
            OpKind::Transpose,
            &["2x3xf32"],
            &[("perm", ints(&[0, 0]))],
            &[],
        ),
        "given twice",
    );
    err(
        infer(
            OpKind::Concat,
            &["2x3xf32", "3x3xf32"],
            &[("axis", Attr::Int(1))],
            &[],
        ),
        "dimensions differ (2 vs 3)",
    );
    err(
        infer(
            OpKind::Concat,
            &["2x3xf32", "2x3xf16"],
            &[("axis", Attr::Int(0))],
            &[],
        ),
        "dtype",
    );
    err(
        infer(OpKind::Concat, &["2x3xf32"], &[], &[]),
        "'axis' is required",
    );
    err(
        infer(OpKind::Gather, &["5x6xf32", "2xf32"], &[], &[]),
        "i32 or i64",
    );
    err(
        infer(OpKind::GatherNd, &["2x3xf32", "2x?xi64"], &[], &[]),
        "must be static",
    );
    err(
        infer(
            OpKind::ScatterElements,
            &["4x5xf32", "2x5xi64", "2x5xf32"],
            &[("reduction", s("sum"))],
            &[],
        ),
        "attribute 'reduction' has unknown value \"sum\"",
    );
    err(
        infer(
            OpKind::ScatterNd,
            &["4x5xf32", "3x1xi64", "3x4xf32"],
            &[],
            &[],
        ),
        "updates shape",
    );
    err(
        infer(
            OpKind::Expand,
            &["3x2xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![3, 4]))],
        ),
        "do not broadcast",
    );
    err(
        infer(OpKind::Tile, &["2x3xf32", "1xi64"], &[], &[]),
        "repeats has 1 entries for rank 2",
    );
    err(
        infer(
            OpKind::Pad,
            &["4xf32", "2xi64"],
            &[],
            &[(1, C::I(vec![-3, -2]))],
        ),
        "gives extent -1",
    );
    err(
        infer(
            OpKind::Pad,
            &["4xf32", "2xi64"],
            &[("mode", s("mirror"))],
            &[],
        ),
        "attribute 'mode' has unknown value \"mirror\"",
    );
    err(
        infer(
            OpKind::Range,
            &["i64", "i64", "i64"],
            &[],
            &[(0, C::I(vec![0])), (1, C::I(vec![1])), (2, C::I(vec![0]))],
        ),
        "non-zero delta",
    );
    err(
        infer(
            OpKind::ConstantOfShape,
            &["1xi64"],
            &[
                ("value_dtype", Attr::DType(DType::I32)),
                ("value", Attr::Float(0.5)),
            ],
            &[],
        ),
        "not an integer",
    );
    err(
        infer(
            OpKind::ConstantOfShape,
            &["1xi64"],
            &[],
            &[(0, C::I(vec![-2]))],
        ),
        "non-negative",
    );
    err(
        infer(
            OpKind::DepthToSpace,
            &["1x6x2x2xf32"],
            &[("blocksize", Attr::Int(2))],
            &[],
        ),
        "not divisible by blocksize^2 = 4",
    );
    err(
        infer(
            OpKind::SpaceToDepth,
            &["1x2x5x4xf32"],
            &[("blocksize", Attr::Int(2))],
            &[],
        ),
        "not divisible by blocksize 2",
    );
    err(
        infer(OpKind::OneHot, &["2xi64", "i64", "3xf32"], &[], &[]),
        "[off, on]",
    );
    err(infer(OpKind::EyeLike, &["3xf32"], &[], &[]), "matrix");
    err(infer(OpKind::Trilu, &["3xf32"], &[], &[]), "rank >= 2");
    err(
        infer(OpKind::Reshape, &["2x3xf32", "2x1xi64"], &[], &[]),
        "1-D",
    );
}

#[test]
fn resize_cases() {
    // onnx.shape_inference: scales [1, 1, 1.5, 0.33] on 1x3x10x10 -> 1x3x15x3;
    // sizes [15, 15] on axes [2, 3] of 1x3x10x20 with not_larger -> 1x3x8x15.
    let sc = [(2, C::F(vec![1.0, 1.0, 1.5, 0.33]))];
    assert_eq!(
        ok(infer(
            OpKind::Resize,
            &["1x3x10x10xf32", "", "4xf32"],
            &[],
            &sc
        )),
        "tensor<1x3x15x3xf32>"
    );
    let a = [
        ("axes", ints(&[2, 3])),
        ("keep_aspect_ratio_policy", s("not_larger")),
    ];
    let sz = [(3, C::I(vec![15, 15]))];
    assert_eq!(
        ok(infer(
            OpKind::Resize,
            &["1x3x10x20xf32", "", "", "2xi64"],
            &a,
            &sz
        )),
        "tensor<1x3x8x15xf32>"
    );
    let sc1 = [(2, C::F(vec![1.0, 1.0, 2.0, 2.0]))];
    assert_eq!(
        ok(infer(
            OpKind::Resize,
            &["{n}x3x{h}x8xf32", "", "4xf32"],
            &[],
            &sc1
        )),
        "tensor<{n}x3x?x16xf32>"
    );
    // An empty scales operand next to sizes counts as absent.
    assert_eq!(
        ok(infer(
            OpKind::Resize,
            &["1x3x4x4xf32", "", "0xf32", "4xi64"],
            &[],
            &[]
        )),
        "tensor<?x?x?x?xf32>"
    );
    err(
        infer(
            OpKind::Resize,
            &["1x3x4x4xf32", "", "4xf32", "4xi64"],
            &[],
            &[],
        ),
        "either scales or sizes",
    );
    err(
        infer(
            OpKind::Resize,
            &["1x3x4x4xf32", "", "4xf32"],
            &[("mode", s("area"))],
            &[],
        ),
        "attribute 'mode' has unknown value \"area\"",
    );
    err(
        infer(
            OpKind::Resize,
            &["1x3x4x4xf32", "", "4xf32"],
            &[],
            &[(2, C::F(vec![1.0, 1.0, -2.0, 2.0]))],
        ),
        "positive",
    );
}

// ---- attention ----

#[test]
fn attention_3d_with_cache_and_gqa() {
    // onnx.shape_inference (opset 24): Q 2x10x64 (4 heads), K 2x12x32 and
    // V 2x12x48 (2 heads), past 2x2x5x{16,24} -> Y 2x10x96, present 17 long.
    let a = [
        ("q_num_heads", Attr::Int(4)),
        ("kv_num_heads", Attr::Int(2)),
    ];
    let ins = [
        "2x10x64xf32",
        "2x12x32xf32",
        "2x12x48xf32",
        "",
        "2x2x5x16xf32",
        "2x2x5x24xf32",
    ];
    assert_eq!(
        ok(infer_n(OpKind::Attention, 4, &ins, &a, &[])),
        "tensor<2x10x96xf32>, tensor<2x2x17x16xf32>, tensor<2x2x17x24xf32>, tensor<2x4x10x17xf32>"
    );
}

#[test]
fn attention_4d_symbolic() {
    let ins = [
        "{b}x8x{s}x64xf16",
        "{b}x8x{t}x64xf16",
        "{b}x8x{t}x64xf16",
        "{s}x{t}xbool",
    ];
    assert_eq!(
        ok(infer(OpKind::Attention, &ins, &[("is_causal", Attr::Int(1))], &[])),
        "tensor<{b}x8x{s}x64xf16>, tensor<{b}x8x{t}x64xf16>, tensor<{b}x8x{t}x64xf16>, tensor<{b}x8x{s}x{t}xf16>"
    );
    let rope = ["{b}x{s}x256xf32", "{p}x16xf32", "{p}x16xf32", "{b}x{s}xi64"];
    let ra = [("num_heads", Attr::Int(8))];
    assert_eq!(
        ok(infer(OpKind::RotaryEmbedding, &rope, &ra, &[])),
        "tensor<{b}x{s}x256xf32>"
    );
    let rope4 = ["2x4x7x64xf32", "2x7x16xf32", "2x7x16xf32"];
    assert_eq!(
        ok(infer(
            OpKind::RotaryEmbedding,
            &rope4,
            &[("rotary_embedding_dim", Attr::Int(32))],
            &[]
        )),
        "tensor<2x4x7x64xf32>"
    );
}

#[test]
fn attention_rejected() {
    err(
        infer(
            OpKind::Attention,
            &["2x10x64xf32", "2x12x64xf32", "2x12x64xf32"],
            &[],
            &[],
        ),
        "q_num_heads attribute is required",
    );
    let a = [
        ("q_num_heads", Attr::Int(3)),
        ("kv_num_heads", Attr::Int(2)),
    ];
    err(
        infer(
            OpKind::Attention,
            &["2x10x48xf32", "2x12x32xf32", "2x12x32xf32"],
            &a,
            &[],
        ),
        "multiple of kv_num_heads",
    );
    err(
        infer(
            OpKind::Attention,
            &["2x8x10x64xf32", "2x8x12x32xf32", "2x8x12x64xf32"],
            &[],
            &[],
        ),
        "head size of Q vs K",
    );
    err(
        infer(
            OpKind::Attention,
            &[
                "2x8x10x64xf32",
                "2x8x12x64xf32",
                "2x8x12x64xf32",
                "",
                "2x8x5x64xf32",
            ],
            &[],
            &[],
        ),
        "together",
    );
    err(
        infer(
            OpKind::Attention,
            &[
                "2x8x10x64xf32",
                "2x8x12x64xf32",
                "2x8x12x64xf32",
                "2x1x10x13xbool",
            ],
            &[],
            &[],
        ),
        "covers 13 keys",
    );
    err(
        infer(
            OpKind::RotaryEmbedding,
            &["2x7x64xf32", "7x16xf32", "7x16xf32"],
            &[],
            &[],
        ),
        "num_heads attribute is required",
    );
    err(
        infer(
            OpKind::RotaryEmbedding,
            &["2x4x7x64xf32", "2x7x16xf32", "2x7x16xf32"],
            &[],
            &[],
        ),
        "rotary dim / 2",
    );
}

// ---- quant ----

#[test]
fn quant_static() {
    assert_eq!(
        ok(infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "f32"],
            &[],
            &[]
        )),
        "tensor<4x64xu8>"
    );
    assert_eq!(
        ok(infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "f32", "i8"],
            &[],
            &[]
        )),
        "tensor<4x64xi8>"
    );
    // onnx.shape_inference: blocked int4, axis 1, block 32 -> 4x64 int4.
    let blk = [("axis", Attr::Int(1)), ("block_size", Attr::Int(32))];
    assert_eq!(
        ok(infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "4x2xf32", "4x2xi4"],
            &blk,
            &[]
        )),
        "tensor<4x64xi4>"
    );
    let f8 = [("output_dtype", Attr::DType(DType::F8E4M3FN))];
    assert_eq!(
        ok(infer(
            OpKind::QuantizeLinear,
            &["4x64xf16", "64xf16"],
            &f8,
            &[]
        )),
        "tensor<4x64xf8e4m3fn>"
    );
    assert_eq!(
        ok(infer(
            OpKind::DequantizeLinear,
            &["4x64xi8", "4xf32", "4xi8"],
            &[("axis", Attr::Int(0))],
            &[]
        )),
        "tensor<4x64xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Nf4Dequantize,
            &["128x256xnf4", "128x4xf32"],
            &[],
            &[]
        )),
        "tensor<128x256xf32>"
    );
}

#[test]
fn quant_symbolic() {
    assert_eq!(
        ok(infer(
            OpKind::QuantizeLinear,
            &["{b}x64xf32", "64xf32", "64xu8"],
            &[],
            &[]
        )),
        "tensor<{b}x64xu8>"
    );
    let blk = [("axis", Attr::Int(0)), ("block_size", Attr::Int(16))];
    assert_eq!(
        ok(infer(
            OpKind::DequantizeLinear,
            &["?x{k}xu4", "?x{k}xf16"],
            &blk,
            &[]
        )),
        "tensor<?x{k}xf16>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Nf4Dequantize,
            &["{n}x100xnf4", "{n}x2xf16"],
            &[("block_size", Attr::Int(64))],
            &[]
        )),
        "tensor<{n}x100xf32>"
    );
}

#[test]
fn quant_rejected() {
    err(
        infer(OpKind::QuantizeLinear, &["4x64xf32", "63xf32"], &[], &[]),
        "per-axis scale length vs axis 1",
    );
    err(
        infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "4x3xf32"],
            &[("block_size", Attr::Int(32))],
            &[],
        ),
        "needs 2",
    );
    err(
        infer(OpKind::QuantizeLinear, &["4x64xf32", "4x2xf32"], &[], &[]),
        "blocked with block_size > 0",
    );
    err(
        infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "f32", "i32"],
            &[],
            &[],
        ),
        "expected one of",
    );
    let both = [("output_dtype", Attr::DType(DType::U8))];
    err(
        infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "f32", "i8"],
            &both,
            &[],
        ),
        "differs from output_dtype",
    );
    err(
        infer(
            OpKind::QuantizeLinear,
            &["4x64xf32", "64xf32", "63xu8"],
            &[],
            &[],
        ),
        "zero point",
    );
    err(
        infer(OpKind::DequantizeLinear, &["4x64xf32", "f32"], &[], &[]),
        "quantized input",
    );
    err(
        infer(
            OpKind::DequantizeLinear,
            &["4x64xi8", "f32", "u8"],
            &[],
            &[],
        ),
        "zero point dtype u8",
    );
    err(
        infer(
            OpKind::Nf4Dequantize,
            &["128x256xu8", "128x4xf32"],
            &[],
            &[],
        ),
        "must be nf4",
    );
    err(
        infer(
            OpKind::Nf4Dequantize,
            &["128x256xnf4", "128x8xf32"],
            &[],
            &[],
        ),
        "needs 4",
    );
    err(
        infer(
            OpKind::Nf4Dequantize,
            &["128x256xnf4", "128x4xf32"],
            &[("block_size", Attr::Int(0))],
            &[],
        ),
        "positive and even",
    );
}

/// Every op's inference is total: it answers (Ok or Err) without panicking
/// on odd inputs: scalars, empty dims, absent operands, extreme constants.
#[test]
fn inference_never_panics() {
    let shapes = [
        "f32",
        "i64",
        "0xf32",
        "1xi64",
        "2x3xf32",
        "?x{b}x1x0xf32",
        "3xi64",
        "2xnf4",
        "4xf32",
        "1x1x1x1x1xf32",
    ];
    let int_data = |n: usize, k: usize| -> Vec<i64> {
        let pool = [i64::MIN, i64::MAX, -1, 0, 1, 3];
        (0..n).map(|j| pool[(j + k) % pool.len()]).collect()
    };
    let float_data = |k: usize| -> Vec<f32> {
        let pool = [f32::INFINITY, f32::NAN, -0.0, 1e30, 0.5, -2.0];
        (0..4).map(|j| pool[(j + k) % pool.len()]).collect()
    };
    let attr_sets: [Vec<(&str, Attr)>; 3] = [
        vec![],
        vec![
            ("axis", Attr::Int(i64::MIN)),
            ("kernel_shape", ints(&[i64::MAX])),
            ("block_size", Attr::Int(i64::MAX)),
        ],
        vec![
            ("axis", Attr::Int(-1)),
            ("kernel_shape", ints(&[1])),
            ("strides", ints(&[i64::MAX])),
            ("blocksize", Attr::Int(i64::MAX)),
        ],
    ];
    for &op in OpKind::ALL {
        let max_in = op.def().inputs.max.min(7);
        for n in op.def().inputs.min..=max_in {
            for first in 0..shapes.len() {
                for k in 0..6 {
                    let ins: Vec<&str> = (0..n)
                        .map(|i| shapes[(first + i * (k + 1)) % shapes.len()])
                        .collect();
                    let consts: Vec<(usize, C)> = ins
                        .iter()
                        .enumerate()
                        .filter_map(|(i, t)| match *t {
                            "i64" | "1xi64" => Some((i, C::I(int_data(1, k + i)))),
                            "3xi64" => Some((i, C::I(int_data(3, k + i)))),
                            "4xf32" => Some((i, C::F(float_data(k + i)))),
                            _ => None,
                        })
                        .collect();
                    for attrs in &attr_sets {
                        let _ = infer_n(op, 3, &ins, attrs, &consts);
                    }
                }
            }
        }
    }
}

// ---- elementwise: inverse hyperbolics, celu, shrink, bitwise ----

#[test]
fn unary_extras_keep_type_and_check_dtype() {
    for op in [OpKind::Acosh, OpKind::Asinh, OpKind::Atanh, OpKind::Celu] {
        assert_eq!(ok(infer(op, &["2x{b}xf32"], &[], &[])), "tensor<2x{b}xf32>");
        assert_eq!(ok(infer(op, &["f16"], &[], &[])), "tensor<f16>");
        err(infer(op, &["3xi32"], &[], &[]), "float");
    }
    // Shrink takes any numeric type, ints included (ONNX Shrink-9).
    let shrink = [("bias", Attr::Float(1.5)), ("lambd", Attr::Float(0.5))];
    assert_eq!(
        ok(infer(OpKind::Shrink, &["4x?xi8"], &shrink, &[])),
        "tensor<4x?xi8>"
    );
    assert_eq!(
        ok(infer(OpKind::Shrink, &["5xf64"], &[], &[])),
        "tensor<5xf64>"
    );
    err(infer(OpKind::Shrink, &["5xbool"], &[], &[]), "numeric");
    // BitwiseNot takes integers only.
    assert_eq!(
        ok(infer(OpKind::BitwiseNot, &["3x4xu16"], &[], &[])),
        "tensor<3x4xu16>"
    );
    err(infer(OpKind::BitwiseNot, &["3xf32"], &[], &[]), "integer");
    err(infer(OpKind::BitwiseNot, &["3xbool"], &[], &[]), "integer");
}

#[test]
fn bitwise_binary_broadcast() {
    for op in [OpKind::BitwiseAnd, OpKind::BitwiseOr, OpKind::BitwiseXor] {
        // Shapes as in the ONNX node tests (bcast_4v3d, bcast_3v1d).
        assert_eq!(
            ok(infer(op, &["3x4x5x6xu8", "4x5x6xu8"], &[], &[])),
            "tensor<3x4x5x6xu8>"
        );
        assert_eq!(
            ok(infer(op, &["3x4x5xu64", "5xu64"], &[], &[])),
            "tensor<3x4x5xu64>"
        );
        assert_eq!(
            ok(infer(op, &["{n}x1xi32", "1x7xi32"], &[], &[])),
            "tensor<{n}x7xi32>"
        );
        err(infer(op, &["3xf32", "3xf32"], &[], &[]), "integer");
        err(infer(op, &["3xi32", "3xi64"], &[], &[]), "dtype");
        err(infer(op, &["3xi32", "4xi32"], &[], &[]), "broadcast");
    }
}

#[test]
fn cumprod_like_cumsum() {
    assert_eq!(
        ok(infer(
            OpKind::CumProd,
            &["2x{n}xi32", "i64"],
            &[],
            &[(1, C::I(vec![-1]))]
        )),
        "tensor<2x{n}xi32>"
    );
    // A dynamic axis still gives the operand's type.
    assert_eq!(
        ok(infer(OpKind::CumProd, &["5xf32", "i32"], &[], &[])),
        "tensor<5xf32>"
    );
    err(
        infer(
            OpKind::CumProd,
            &["2x3xf32", "i64"],
            &[],
            &[(1, C::I(vec![2]))],
        ),
        "axis",
    );
    err(
        infer(OpKind::CumProd, &["f32", "i64"], &[], &[]),
        "nn.cumprod needs",
    );
    err(infer(OpKind::CumProd, &["3xbool", "i64"], &[], &[]), "bool");
}

#[test]
fn lp_normalization_and_global_lp_pool() {
    let p1 = [("p", Attr::Int(1)), ("axis", Attr::Int(0))];
    assert_eq!(
        ok(infer(OpKind::LpNormalization, &["3x{n}xf32"], &p1, &[])),
        "tensor<3x{n}xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::LpNormalization, &["2x3xf16"], &[], &[])),
        "tensor<2x3xf16>"
    );
    err(
        infer(
            OpKind::LpNormalization,
            &["2x3xf32"],
            &[("p", Attr::Int(3))],
            &[],
        ),
        "p must be 1 or 2",
    );
    err(
        infer(
            OpKind::LpNormalization,
            &["2x3xf32"],
            &[("axis", Attr::Int(2))],
            &[],
        ),
        "axis",
    );
    err(
        infer(OpKind::LpNormalization, &["2x3xi32"], &[], &[]),
        "float",
    );
    // Shapes as onnx.shape_inference gives for GlobalLpPool.
    assert_eq!(
        ok(infer(
            OpKind::GlobalLpPool,
            &["2x3x5x7xf32"],
            &[("p", Attr::Int(3))],
            &[]
        )),
        "tensor<2x3x1x1xf32>"
    );
    assert_eq!(
        ok(infer(OpKind::GlobalLpPool, &["{n}x4x?xf64"], &[], &[])),
        "tensor<{n}x4x1xf64>"
    );
    err(
        infer(
            OpKind::GlobalLpPool,
            &["1x3x4xf32"],
            &[("p", Attr::Int(0))],
            &[],
        ),
        "p must be positive",
    );
    err(infer(OpKind::GlobalLpPool, &["3x4xf32"], &[], &[]), "rank");
}

// ---- grid_sample, bit_cast, dft, stft ----

#[test]
fn grid_sample_cases() {
    // ONNX GridSample: Y is [N, C, grid spatial..].
    assert_eq!(
        ok(infer(
            OpKind::GridSample,
            &["{n}x3x10x12xf32", "{n}x5x7x2xf32"],
            &[],
            &[]
        )),
        "tensor<{n}x3x5x7xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::GridSample,
            &["2x1x4x4x4xf16", "2x3x4x5x3xf32"],
            &[("mode", s("cubic")), ("padding_mode", s("reflection"))],
            &[]
        )),
        "tensor<2x1x3x4x5xf16>"
    );
    // Nearest takes integers; interpolation does not.
    ok(infer(
        OpKind::GridSample,
        &["1x1x4x4xi32", "1x2x2x2xf32"],
        &[("mode", s("nearest"))],
        &[],
    ));
    err(
        infer(
            OpKind::GridSample,
            &["1x1x4x4xi32", "1x2x2x2xf32"],
            &[],
            &[],
        ),
        "not supported",
    );
    err(
        infer(
            OpKind::GridSample,
            &["1x1x4x4xf32", "1x2x2x3xf32"],
            &[],
            &[],
        ),
        "spatial rank",
    );
    err(
        infer(
            OpKind::GridSample,
            &["1x1x4x4xf32", "1x2x2x2xf32"],
            &[("mode", s("bilinear"))],
            &[],
        ),
        "attribute 'mode' has unknown value \"bilinear\"",
    );
    err(
        infer(
            OpKind::GridSample,
            &["2x1x4x4xf32", "3x2x2x2xf32"],
            &[],
            &[],
        ),
        "batch",
    );
}

#[test]
fn bit_cast_cases() {
    let to = |d| [("to", Attr::DType(d))];
    assert_eq!(
        ok(infer(OpKind::BitCast, &["2x{b}xf32"], &to(DType::I32), &[])),
        "tensor<2x{b}xi32>"
    );
    assert_eq!(
        ok(infer(OpKind::BitCast, &["3xbool"], &to(DType::U8), &[])),
        "tensor<3xu8>"
    );
    assert_eq!(
        ok(infer(OpKind::BitCast, &["3xi4"], &to(DType::U4), &[])),
        "tensor<3xu4>"
    );
    err(
        infer(OpKind::BitCast, &["3xf32"], &to(DType::F64), &[]),
        "one bit width",
    );
    err(
        infer(OpKind::BitCast, &["3xu4"], &to(DType::NF4), &[]),
        "not supported",
    );
}

#[test]
fn dft_cases() {
    // onnx.shape_inference (DFT-20): axis 1 of 1x10x10x1, onesided -> 1x6x10x2;
    // inverse onesided -> real 1x10x10x1 from 1x6x10x2.
    let axis = |a| (2, C::I(vec![a]));
    assert_eq!(
        ok(infer(
            OpKind::Dft,
            &["1x10x10x1xf32", "", "i64"],
            &[("onesided", Attr::Bool(true))],
            &[axis(1)]
        )),
        "tensor<1x6x10x2xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Dft,
            &["1x6x10x2xf32", "", "i64"],
            &[
                ("inverse", Attr::Bool(true)),
                ("onesided", Attr::Bool(true))
            ],
            &[axis(1)]
        )),
        "tensor<1x10x10x1xf32>"
    );
    // Default axis -2, dft_length pads.
    assert_eq!(
        ok(infer(
            OpKind::Dft,
            &["{b}x8x2xf32", "i64"],
            &[],
            &[(1, C::I(vec![12]))]
        )),
        "tensor<{b}x12x2xf32>"
    );
    // A run-time axis keeps the shape when nothing resizes it.
    assert_eq!(
        ok(infer(OpKind::Dft, &["4x8x1xf32", "", "i64"], &[], &[])),
        "tensor<4x8x2xf32>"
    );
    err(
        infer(OpKind::Dft, &["4x8x2xf32", "", "i64"], &[], &[axis(-1)]),
        "trailing",
    );
    err(
        infer(OpKind::Dft, &["4x8x3xf32"], &[], &[]),
        "1 (real) or 2",
    );
    err(
        infer(
            OpKind::Dft,
            &["4x8x2xf32", "i64"],
            &[],
            &[(1, C::I(vec![0]))],
        ),
        "positive",
    );
    err(
        infer(OpKind::Dft, &["4x8x2xi32"], &[], &[]),
        "expected one of",
    );
}

#[test]
fn stft_cases() {
    // onnx.shape_inference (STFT-17): signal 1x128x1, step 8, window 16,
    // onesided -> 1x15x9x2.
    assert_eq!(
        ok(infer(
            OpKind::Stft,
            &["1x128x1xf32", "i64", "16xf32"],
            &[],
            &[(1, C::I(vec![8]))]
        )),
        "tensor<1x15x9x2xf32>"
    );
    assert_eq!(
        ok(infer(
            OpKind::Stft,
            &["2x21x2xf32", "i64", "", "i64"],
            &[("onesided", Attr::Bool(false))],
            &[(1, C::I(vec![4])), (3, C::I(vec![7]))]
        )),
        "tensor<2x4x7x2xf32>"
    );
    err(
        infer(
            OpKind::Stft,
            &["1x128x1xf32", "i64", "16xf32", "i64"],
            &[],
            &[(1, C::I(vec![8])), (3, C::I(vec![15]))],
        ),
        "differs from the window",
    );
    err(
        infer(
            OpKind::Stft,
            &["1x8x1xf32", "i64", "16xf32"],
            &[],
            &[(1, C::I(vec![8]))],
        ),
        "does not fit",
    );
}

#[test]
fn grid_geometry_matches_the_reference() {
    use super::resample::{Exact, GridAxis, GridMode, GridPadding};
    // Values from onnx/reference/ops/op_grid_sample.py (onnx 1.23):
    // _gs_reflect(-1.7, -0.5, 3.5) = 0.7, _gs_reflect(9.2, -0.5, 3.5) =
    // 1.2 (an odd number of ranges away), _gs_reflect(-9.0, -0.5, 3.5) = 0,
    // _gs_reflect(4.0, 0, 3) = 2.
    let r = |x: f64, lo, hi| GridAxis::reflect(&mut Exact, &x, lo, hi);
    assert!((r(-1.7, -0.5, 3.5) - 0.7).abs() < 1e-12);
    assert!((r(9.2, -0.5, 3.5) - 1.2).abs() < 1e-12);
    assert!(r(-9.0, -0.5, 3.5).abs() < 1e-12);
    assert_eq!(r(4.0, 0.0, 3.0), 2.0);
    assert_eq!(r(1.25, 0.0, 3.0), 1.25);
    // Unnormalize: align_corners maps -1..1 onto 0..d-1, else -0.5..d-0.5.
    let ax = |align_corners, mode, padding| GridAxis {
        extent: 4,
        mode,
        padding,
        align_corners,
        f32_grid: true,
    };
    let a = ax(true, GridMode::Linear, GridPadding::Zeros);
    assert_eq!(a.unnormalize(&mut Exact, &1.0), 3.0);
    let a = ax(false, GridMode::Linear, GridPadding::Zeros);
    assert_eq!(a.unnormalize(&mut Exact, &-1.0), -0.5);
    // Linear at x = -0.5 with zeros padding: taps -1 (outside) and 0.
    let t = a.taps(&mut Exact, &-1.0);
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].weight, t[0].inside), (0.5, Some(false)));
    assert_eq!(
        (t[1].index, t[1].weight, t[1].inside),
        (0.0, 0.5, Some(true))
    );
    // Nearest rounds half to even: x = 0.5 -> 0, x = 1.5 -> 2.
    let a = ax(false, GridMode::Nearest, GridPadding::Border);
    assert_eq!(a.taps(&mut Exact, &-0.5)[0].index, 0.0);
    assert_eq!(a.taps(&mut Exact, &0.0)[0].index, 2.0);
    // Cubic weights sum to one.
    let a = ax(true, GridMode::Cubic, GridPadding::Border);
    let w: f64 = a.taps(&mut Exact, &0.3).iter().map(|t| t.weight).sum();
    assert!((w - 1.0).abs() < 1e-12);
}
