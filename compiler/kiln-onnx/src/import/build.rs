//! Builder conveniences for importers that compose several Kiln ops
//! (control flow, stateful sequence ops, losses, ...).
//!
//! Every helper emits an internal node through [`NodeCtx::emit_internal`],
//! so results get fresh names, inferred types, and are folded when their
//! operands are constants. Shape-like operands (axes, shapes, indices) are
//! always i64 constants, which is what the Kiln ops' `static_operands`
//! need to stay compilable.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_interp::Tensor;
use kiln_ir::{Attr, Attrs, Blob, DType, OpKind, TensorType, ValueId};

type V = Result<ValueId, OnnxError>;

impl NodeCtx<'_, '_> {
    /// Refuses any attribute not in `known` (an importer must handle or
    /// refuse every attribute, never ignore one).
    pub fn check_attrs(&self, known: &[&str]) -> Result<(), OnnxError> {
        match self
            .node
            .attrs
            .keys()
            .find(|k| !known.contains(&k.as_str()))
        {
            Some(k) => Err(self.unsupported(format!("attribute '{k}' is not supported"))),
            None => Ok(()),
        }
    }

    /// A string attribute with a default.
    pub fn attr_str(&self, name: &str, default: &str) -> Result<String, OnnxError> {
        match self.attr(name) {
            None => Ok(default.to_string()),
            Some(a) => a
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.invalid(format!("attribute '{name}' must be a STRING"))),
        }
    }

    /// `op` applied to `inputs`, without attributes.
    pub fn op(&mut self, op: OpKind, inputs: &[ValueId]) -> V {
        self.op_with(op, inputs, &[])
    }

    /// `op` applied to `inputs` with attributes.
    pub fn op_with(&mut self, op: OpKind, inputs: &[ValueId], attrs: &[(&str, Attr)]) -> V {
        let attrs: Attrs = attrs
            .iter()
            .map(|(k, a)| (k.to_string(), a.clone()))
            .collect();
        self.emit_internal(op, inputs.iter().copied().map(Some).collect(), attrs)
    }

    /// `x` with the i64 constant `consts` as its second operand (axes,
    /// shape, ...).
    fn with_ints(&mut self, op: OpKind, x: ValueId, consts: &[i64]) -> V {
        let c = self.const_i64(consts, false);
        self.op(op, &[x, c])
    }

    /// Element `index` of `axis`, which is removed.
    pub fn take(&mut self, x: ValueId, axis: i64, index: u64) -> V {
        let i = self.const_i64(&[index as i64], true);
        self.op_with(OpKind::Gather, &[x, i], &[("axis", Attr::Int(axis))])
    }

    /// `x` with new unit axes.
    pub fn unsqueeze(&mut self, x: ValueId, axes: &[i64]) -> V {
        self.with_ints(OpKind::Unsqueeze, x, axes)
    }

    /// `x` without the given unit axes.
    pub fn squeeze(&mut self, x: ValueId, axes: &[i64]) -> V {
        self.with_ints(OpKind::Squeeze, x, axes)
    }

    /// `x` reshaped (ONNX rules: 0 copies, -1 infers).
    pub fn reshape(&mut self, x: ValueId, shape: &[i64]) -> V {
        self.with_ints(OpKind::Reshape, x, shape)
    }

    /// `x` broadcast to `shape`.
    pub fn expand(&mut self, x: ValueId, shape: &[i64]) -> V {
        self.with_ints(OpKind::Expand, x, shape)
    }

    /// `x` with its axes permuted.
    pub fn transpose(&mut self, x: ValueId, perm: &[i64]) -> V {
        self.op_with(
            OpKind::Transpose,
            &[x],
            &[("perm", Attr::Ints(perm.to_vec()))],
        )
    }

    /// `x` converted to `to` (a no-op node is not emitted).
    pub fn cast(&mut self, x: ValueId, to: DType) -> V {
        if self.ty(x).dtype == to {
            return Ok(x);
        }
        self.op_with(OpKind::Cast, &[x], &[("to", Attr::DType(to))])
    }

    /// The values joined along `axis` (a single value is returned as is).
    pub fn concat(&mut self, xs: &[ValueId], axis: i64) -> V {
        if let [x] = xs {
            return Ok(*x);
        }
        self.op_with(OpKind::Concat, xs, &[("axis", Attr::Int(axis))])
    }

    /// Elements `start..end` of `axis`.
    pub fn slice(&mut self, x: ValueId, axis: i64, start: i64, end: i64) -> V {
        let s = self.const_i64(&[start], false);
        let e = self.const_i64(&[end], false);
        let a = self.const_i64(&[axis], false);
        self.op(OpKind::Slice, &[x, s, e, a])
    }

    /// Equally typed values stacked along a new axis `axis` (in range for
    /// the result's rank).
    pub fn stack(&mut self, xs: &[ValueId], axis: i64) -> V {
        let parts = xs
            .iter()
            .map(|&x| self.unsqueeze(x, &[axis]))
            .collect::<Result<Vec<_>, _>>()?;
        self.concat(&parts, axis)
    }

    /// A constant of `dtype` and `shape` holding `values` (row-major),
    /// rounded or wrapped to `dtype` as the interpreter does.
    pub fn const_f64(&mut self, dtype: DType, shape: &[u64], values: Vec<f64>) -> V {
        let t = if dtype.is_float() {
            Tensor::from_f64(dtype, shape.to_vec(), values)
        } else {
            Tensor::from_ints(
                dtype,
                shape.to_vec(),
                values.iter().map(|&x| x as i128).collect(),
            )
        };
        let name = format!("{}_const", self.hint());
        Ok(self.b.add_constant_blob(
            &name,
            TensorType::fixed(dtype, shape),
            Blob::from_vec(t.to_bytes()),
        ))
    }

    /// The value of `v` if it is a compile-time constant.
    pub fn known(&self, v: ValueId) -> Option<Tensor> {
        self.b.known(v)
    }

    /// The error for an operand whose value must be known at compile time
    /// and is not: it names the graph inputs it depends on, if any.
    pub fn needs_value(&self, v: ValueId, what: &str) -> OnnxError {
        self.b.not_known(self.node, v, what)
    }

    /// A zero-filled tensor of `dtype` and static `shape`.
    pub fn zeros(&mut self, dtype: DType, shape: &[u64]) -> V {
        let z = self.const_scalar(dtype, 0.0)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        self.expand(z, &dims)
    }
}
