//! The context shape inference functions see, and helpers shared by op
//! families (broadcasting, attribute access with schema defaults, reading
//! constant operands).
//!
//! Inference is total over valid input: it returns an [`InferError`] (never
//! panics) for any operand types or attributes the op does not accept, so it
//! doubles as the op-specific half of the verifier.

use super::{AttrDefault, OpDef};
use crate::attr::{Attr, AttrEnum, Attrs};
use crate::blob::Blob;
use crate::dtype::DType;
use crate::graph::{Graph, Node};
use crate::types::{Dim, TensorType};
use thiserror::Error;

/// Why an op rejected its operands or attributes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InferError(pub String);

/// Shorthand: `Err(InferError(format!(...)))`.
#[macro_export]
macro_rules! infer_bail {
    ($($t:tt)*) => { return Err($crate::ops::InferError(format!($($t)*))) };
}
pub use infer_bail as bail;

/// The data of a constant operand.
#[derive(Clone, Copy, Debug)]
pub struct ConstOperand<'a> {
    /// Its static type.
    pub ty: &'a TensorType,
    /// Its bytes in Kiln storage layout.
    pub data: &'a Blob,
}

/// What an op's inference function may look at.
pub struct InferCtx<'a> {
    /// The op's definition (for attribute defaults).
    pub def: &'static OpDef,
    /// Operand types; `None` for an absent optional operand.
    pub inputs: &'a [Option<&'a TensorType>],
    /// The node's attributes.
    pub attrs: &'a Attrs,
    /// Data of operands that are compile-time constants, where known.
    pub consts: &'a [Option<ConstOperand<'a>>],
    /// Number of results the node declares (ops with a variable number of
    /// results, like `nn.split`, need it).
    pub num_outputs: usize,
    /// The type of the weight a `Weight` attribute refers to, if any.
    pub weight_ty: Option<&'a TensorType>,
    /// The body of a node that holds one (`nn.fused`).
    pub body: Option<&'a Graph>,
}

impl<'a> InferCtx<'a> {
    /// A context for reading `node`'s attributes (with their defaults) and
    /// its operand types `inputs`: no constant operands, no weight, no body.
    pub fn of_node(node: &'a Node, inputs: &'a [Option<&'a TensorType>]) -> InferCtx<'a> {
        InferCtx {
            def: node.op.def(),
            inputs,
            attrs: &node.attrs,
            consts: &[],
            num_outputs: node.outputs.len(),
            weight_ty: None,
            body: None,
        }
    }

    /// Number of operand slots (present or absent).
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The type of operand `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a TensorType, InferError> {
        match self.inputs.get(i) {
            Some(Some(t)) => Ok(t),
            _ => Err(InferError(format!("operand #{i} is required"))),
        }
    }

    /// The type of operand `i` if present.
    pub fn opt_input(&self, i: usize) -> Option<&'a TensorType> {
        self.inputs.get(i).copied().flatten()
    }

    fn raw(&self, name: &str) -> Result<Option<&Attr>, InferError> {
        if let Some(a) = self.attrs.get(name) {
            return Ok(Some(a));
        }
        match self.def.attr_spec(name) {
            Some(s) if matches!(s.default, AttrDefault::Required) => {
                Err(InferError(format!("attribute '{name}' is required")))
            }
            Some(_) => Ok(None),
            None => Err(InferError(format!(
                "internal: {} has no attribute '{name}' in its schema",
                self.def.name
            ))),
        }
    }

    fn default(&self, name: &str) -> AttrDefault {
        self.def
            .attr_spec(name)
            .map_or(AttrDefault::Absent, |s| s.default)
    }

    /// An integer attribute, falling back to its schema default.
    pub fn int(&self, name: &str) -> Result<i64, InferError> {
        match (self.raw(name)?, self.default(name)) {
            (Some(Attr::Int(v)), _) => Ok(*v),
            (Some(Attr::Bool(b)), _) => Ok(i64::from(*b)),
            (None, AttrDefault::Int(v)) => Ok(v),
            (None, AttrDefault::Bool(b)) => Ok(i64::from(b)),
            _ => Err(InferError(format!("attribute '{name}' must be an integer"))),
        }
    }

    /// An optional integer attribute (no default).
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, InferError> {
        match self.raw(name)? {
            None => match self.default(name) {
                AttrDefault::Int(v) => Ok(Some(v)),
                _ => Ok(None),
            },
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(_) => Err(InferError(format!("attribute '{name}' must be an integer"))),
        }
    }

    /// A boolean attribute (integers 0/1 are accepted too).
    pub fn bool(&self, name: &str) -> Result<bool, InferError> {
        match (self.raw(name)?, self.default(name)) {
            (Some(Attr::Bool(b)), _) => Ok(*b),
            (Some(Attr::Int(v)), _) => Ok(*v != 0),
            (None, AttrDefault::Bool(b)) => Ok(b),
            (None, AttrDefault::Int(v)) => Ok(v != 0),
            _ => Err(InferError(format!("attribute '{name}' must be a bool"))),
        }
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> Result<f64, InferError> {
        match (self.raw(name)?, self.default(name)) {
            (Some(Attr::Float(v)), _) => Ok(*v),
            (Some(Attr::Int(v)), _) => Ok(*v as f64),
            (None, AttrDefault::Float(v)) => Ok(v),
            _ => Err(InferError(format!("attribute '{name}' must be a float"))),
        }
    }

    /// A string attribute.
    pub fn str(&self, name: &str) -> Result<&str, InferError> {
        match (self.raw(name)?, self.default(name)) {
            (Some(Attr::Str(s)), _) => Ok(s),
            (None, AttrDefault::Str(s)) => Ok(s),
            _ => Err(InferError(format!("attribute '{name}' must be a string"))),
        }
    }

    /// A closed-set string attribute read as its [`AttrEnum`], falling back
    /// to its schema default.
    pub fn enum_attr<T: AttrEnum>(&self, name: &str) -> Result<T, InferError> {
        T::read(name, self.str(name)?).map_err(InferError)
    }

    /// An integer-list attribute; `None` when absent without a default.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, InferError> {
        match (self.raw(name)?, self.default(name)) {
            (Some(Attr::Ints(v)), _) => Ok(Some(v.clone())),
            (None, AttrDefault::Ints(v)) => Ok(Some(v.to_vec())),
            (None, _) => Ok(None),
            _ => Err(InferError(format!(
                "attribute '{name}' must be an integer list"
            ))),
        }
    }

    /// A float-list attribute; `None` when absent.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f64>>, InferError> {
        match self.raw(name)? {
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(Attr::Ints(v)) if v.is_empty() => Ok(Some(Vec::new())),
            None => Ok(None),
            _ => Err(InferError(format!(
                "attribute '{name}' must be a float list"
            ))),
        }
    }

    /// A dtype attribute.
    pub fn dtype(&self, name: &str) -> Result<Option<DType>, InferError> {
        match self.raw(name)? {
            Some(Attr::DType(d)) => Ok(Some(*d)),
            None => Ok(None),
            _ => Err(InferError(format!("attribute '{name}' must be a dtype"))),
        }
    }

    /// The data of constant operand `i`, if it is a known constant.
    pub fn const_operand(&self, i: usize) -> Option<ConstOperand<'a>> {
        self.consts.get(i).copied().flatten()
    }

    /// Integer contents of constant operand `i` (i64/i32/u8... widened), if
    /// it is a known integer constant.
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        let c = self.const_operand(i)?;
        ints_of(c.ty.dtype, c.data.bytes())
    }

    /// Float contents of constant operand `i` (f32/f64 only), if known.
    pub fn const_floats(&self, i: usize) -> Option<Vec<f64>> {
        let c = self.const_operand(i)?;
        let b = c.data.bytes();
        match c.ty.dtype {
            DType::F32 => Some(
                b.chunks_exact(4)
                    .map(|x| f64::from(f32::from_le_bytes([x[0], x[1], x[2], x[3]])))
                    .collect(),
            ),
            DType::F64 => Some(
                b.chunks_exact(8)
                    .map(|x| f64::from_le_bytes(x.try_into().expect("chunk of 8")))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Decodes integer tensor bytes (any whole-byte integer dtype or bool) into
/// i64s; `None` for other dtypes.
pub fn ints_of(dtype: DType, b: &[u8]) -> Option<Vec<i64>> {
    macro_rules! dec {
        ($t:ty, $n:literal) => {
            b.chunks_exact($n)
                .map(|x| <$t>::from_le_bytes(x.try_into().unwrap()) as i64)
                .collect()
        };
    }
    Some(match dtype {
        DType::I64 => dec!(i64, 8),
        DType::I32 => dec!(i32, 4),
        DType::I16 => dec!(i16, 2),
        DType::I8 => dec!(i8, 1),
        DType::U64 => dec!(u64, 8),
        DType::U32 => dec!(u32, 4),
        DType::U16 => dec!(u16, 2),
        DType::U8 | DType::Bool => dec!(u8, 1),
        _ => return None,
    })
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, InferError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// Like [`norm_axis`] but allows `axis == rank` (insert positions).
pub fn norm_axis_incl(axis: i64, rank: usize) -> Result<usize, InferError> {
    let r = rank as i64;
    if axis < -(r + 1) || axis > r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(if axis < 0 {
        (axis + r + 1) as usize
    } else {
        axis as usize
    })
}

/// Broadcasts two dimensions under NumPy rules.
pub fn broadcast_dim(a: &Dim, b: &Dim) -> Result<Dim, InferError> {
    Ok(match (a, b) {
        (Dim::Static(1), d) | (d, Dim::Static(1)) => d.clone(),
        (Dim::Static(x), Dim::Static(y)) if x == y => Dim::Static(*x),
        (Dim::Static(x), Dim::Static(y)) => bail!("dimensions {x} and {y} do not broadcast"),
        (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
        (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// Broadcasts a list of shapes under NumPy rules.
pub fn broadcast_shapes<'t>(
    shapes: impl IntoIterator<Item = &'t [Dim]>,
) -> Result<Vec<Dim>, InferError> {
    let mut out: Vec<Dim> = Vec::new();
    for s in shapes {
        if s.len() > out.len() {
            let mut grown = vec![Dim::Static(1); s.len() - out.len()];
            grown.append(&mut out);
            out = grown;
        }
        let off = out.len() - s.len();
        for (i, d) in s.iter().enumerate() {
            out[off + i] = broadcast_dim(&out[off + i], d)?;
        }
    }
    Ok(out)
}

/// Checks that all present operands share one dtype and returns it.
pub fn same_dtype(ctx: &InferCtx<'_>) -> Result<DType, InferError> {
    let mut dt = None;
    for (i, t) in ctx.inputs.iter().enumerate() {
        if let Some(t) = t {
            match dt {
                None => dt = Some(t.dtype),
                Some(d) if d == t.dtype => {}
                Some(d) => bail!("operand #{i} has dtype {} but operand #0 has {d}", t.dtype),
            }
        }
    }
    dt.ok_or_else(|| InferError("at least one operand is required".into()))
}

/// Requires a float dtype.
pub fn require_float(d: DType, what: &str) -> Result<(), InferError> {
    if !d.is_float() {
        bail!("{what} must have a float dtype, got {d}");
    }
    Ok(())
}

/// Requires a dtype from a list.
pub fn require_one_of(d: DType, allowed: &[DType], what: &str) -> Result<(), InferError> {
    if !allowed.contains(&d) {
        let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
        bail!("{what} has dtype {d}; expected one of {}", names.join(", "));
    }
    Ok(())
}

// ---- Helpers shared by the pool, reduce, norm, shape, attention and quant
// families. ----

/// Requires that two dims agree where both are static.
pub fn check_dims_agree(a: &Dim, b: &Dim, what: &str) -> Result<(), InferError> {
    if let (Dim::Static(x), Dim::Static(y)) = (a, b) {
        if x != y {
            bail!("{what}: dimensions differ ({x} vs {y})");
        }
    }
    Ok(())
}

/// The more informative of two dims that must describe the same extent
/// (static beats symbolic beats unknown); errors when two static extents
/// differ.
pub fn unify_dim(a: &Dim, b: &Dim, what: &str) -> Result<Dim, InferError> {
    check_dims_agree(a, b, what)?;
    Ok(match (a, b) {
        (Dim::Static(_), _) | (Dim::Sym(_), Dim::Unknown | Dim::Sym(_)) => a.clone(),
        _ => b.clone(),
    })
}

/// Requires a numeric dtype: not bool and not a code-book type.
pub fn require_numeric(d: DType, what: &str) -> Result<(), InferError> {
    if d == DType::Bool || d == DType::NF4 {
        bail!("{what} has dtype {d}; expected a numeric type");
    }
    Ok(())
}

/// Normalizes a list of possibly negative axes against `rank`, rejecting
/// duplicates. Keeps the given order.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, InferError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            bail!("axis {a} is given twice");
        }
        out.push(n);
    }
    Ok(out)
}

/// Validates a shape-like operand (a 1-D, or with `allow_scalar` a 0-D,
/// integer tensor such as Reshape's `shape` or Slice's `starts`) and
/// returns its values when it is a compile-time constant.
pub fn int_list_operand(
    ctx: &InferCtx<'_>,
    i: usize,
    what: &str,
    allow_scalar: bool,
) -> Result<Option<Vec<i64>>, InferError> {
    let t = ctx.input(i)?;
    if !matches!(t.dtype, DType::I64 | DType::I32) {
        bail!("{what} must be an i64 or i32 tensor, got {t}");
    }
    if t.rank() > 1 || (t.rank() == 0 && !allow_scalar) {
        bail!("{what} must be a 1-D tensor, got {t}");
    }
    let v = ctx.const_ints(i);
    if let (Some(v), Some(n)) = (&v, t.numel()) {
        if v.len() as u64 != n {
            bail!("{what} holds {} values but its type {t} has {n}", v.len());
        }
    }
    Ok(v)
}

/// Converts a non-negative i64 into a static dim.
pub fn dim_of(v: i64, what: &str) -> Result<Dim, InferError> {
    if v < 0 {
        bail!("{what} must be non-negative, got {v}");
    }
    Ok(Dim::Static(v as u64))
}
