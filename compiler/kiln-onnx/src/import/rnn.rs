//! Import of the recurrent operators RNN, GRU and LSTM (versions 7, 14
//! and 22) by unrolling them over the sequence axis.
//!
//! Kiln's IR has no loops and no recurrent op, so a recurrent node becomes
//! plain Kiln ops: one input projection per direction, then one group of
//! ops per time step. That costs graph size proportional to the sequence
//! length, but every op is one the interpreter, the passes and the code
//! generator already handle, and a static step count lets the compiler
//! see the whole computation.
//!
//! Invariants:
//! - The sequence length (X's axis 0, or 1 with `layout = 1`) is static,
//!   non-zero and at most [`MAX_UNROLL`]; otherwise the node is refused as
//!   unsupported. The hidden size is static too (from `hidden_size` or R).
//! - The input projection `X·Wᵀ + Wb + Rb` of all time steps is one MatMul
//!   per direction; each step adds only the recurrent term `H·Rᵀ`. GRU's
//!   `Rbh` stays in the step when `linear_before_reset = 1`, because there
//!   it is scaled by the reset gate.
//! - Absent initial states are zero, and the terms they would feed (`H·Rᵀ`,
//!   peepholes, `f ⊙ C`) are left out rather than computed on zeros.
//! - `sequence_lens` that is absent, or a constant equal to the sequence
//!   length everywhere, needs nothing. Any other `sequence_lens` masks per
//!   batch entry: step `t` updates entry `b` only while
//!   `t < sequence_lens[b]`, Y is zero past the end, and Y_h/Y_c hold the
//!   last updated state. The reverse direction runs `t = seq-1 .. 0`, so
//!   masking first skips an entry's padding and then walks its own
//!   sequence backwards, which is what ONNX specifies.
//! - Activations are matched case-insensitively; `activation_alpha` and
//!   `activation_beta` are consumed in order by the activations that take
//!   them, missing ones defaulting to the ONNX operator's default (as ONNX
//!   Runtime does). Each is built from existing Kiln ops.
//! - `clip` bounds the inputs of the gate activations (f and g); LSTM's
//!   `h(C)` is not clipped, matching ONNX Runtime.
//! - A malformed node (wrong ranks, extents, dtypes or attribute values)
//!   is refused with an invalid-input error naming the problem; nothing
//!   here panics on model data.

use super::NodeCtx;
use crate::error::OnnxError;
use crate::model::OnnxAttr;
use kiln_ir::{Attr, Attrs, DType, Dim, OpKind, ValueId};
use std::collections::HashMap;

type R = Result<Vec<Option<ValueId>>, OnnxError>;
type V = Result<ValueId, OnnxError>;

/// Most time steps a recurrent node is unrolled into (the same bound as
/// control flow's).
use super::control::MAX_UNROLL;

/// Largest hidden size accepted; keeps every derived extent and slice
/// bound far from overflowing.
const MAX_HIDDEN: u64 = 1 << 32;

/// Imports ONNX RNN.
pub(super) fn rnn(c: &mut NodeCtx<'_, '_>) -> R {
    import(c, Cell::Rnn)
}

/// Imports ONNX GRU.
pub(super) fn gru(c: &mut NodeCtx<'_, '_>) -> R {
    import(c, Cell::Gru)
}

/// Imports ONNX LSTM.
pub(super) fn lstm(c: &mut NodeCtx<'_, '_>) -> R {
    import(c, Cell::Lstm)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

impl Cell {
    /// Gates stacked in W, R and each half of B.
    fn gates(self) -> u64 {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// Default activations of one direction (their count is the number
    /// each direction takes).
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }

    fn max_inputs(self) -> usize {
        match self {
            Cell::Lstm => 8,
            _ => 6,
        }
    }

    fn max_outputs(self) -> usize {
        match self {
            Cell::Lstm => 3,
            _ => 2,
        }
    }

    /// Attributes this importer understands (all the ONNX schema has
    /// from version 7 on).
    fn known_attrs(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &[
                "activation_alpha",
                "activation_beta",
                "activations",
                "clip",
                "direction",
                "hidden_size",
                "layout",
            ],
            Cell::Gru => &[
                "activation_alpha",
                "activation_beta",
                "activations",
                "clip",
                "direction",
                "hidden_size",
                "layout",
                "linear_before_reset",
            ],
            Cell::Lstm => &[
                "activation_alpha",
                "activation_beta",
                "activations",
                "clip",
                "direction",
                "hidden_size",
                "input_forget",
                "layout",
            ],
        }
    }
}

/// An activation function of the recurrent ops, with its parameters.
#[derive(Clone, Copy, Debug)]
enum Act {
    Relu,
    Tanh,
    Sigmoid,
    /// `alpha * x + beta`.
    Affine(f64, f64),
    LeakyRelu(f64),
    ThresholdedRelu(f64),
    /// `alpha * tanh(beta * x)`.
    ScaledTanh(f64, f64),
    HardSigmoid(f64, f64),
    Elu(f64),
    Softsign,
    Softplus,
}

const ACT_NAMES: &str = "Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, \
                         HardSigmoid, Elu, Softsign, Softplus";

/// The activations of all directions, `per direction × directions` long.
fn parse_activations(c: &NodeCtx<'_, '_>, cell: Cell, dirs: usize) -> Result<Vec<Act>, OnnxError> {
    let per = cell.default_activations().len();
    let mut names: Vec<String> = match c.attr("activations") {
        None => cell
            .default_activations()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(OnnxAttr::Strings(v)) => v
            .iter()
            .map(|s| {
                std::str::from_utf8(s).map(str::to_string).map_err(|_| {
                    c.invalid("attribute 'activations' holds a name that is not UTF-8")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(a) => {
            return Err(c.invalid(format!(
                "attribute 'activations' must be STRINGS, got {}",
                a.kind_name()
            )))
        }
    };
    // One direction's list serves both directions of a bidirectional node.
    if names.len() == per && dirs == 2 {
        names.extend(names.clone());
    }
    if names.len() != per * dirs {
        return Err(c.invalid(format!(
            "attribute 'activations' has {} names; {} with {dirs} direction(s) takes {}",
            names.len(),
            c.node.op_type,
            per * dirs
        )));
    }
    let floats = |name: &str| -> Result<Vec<f64>, OnnxError> {
        match c.attr(name) {
            None => Ok(Vec::new()),
            Some(OnnxAttr::Floats(v)) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            Some(a) => Err(c.invalid(format!(
                "attribute '{name}' must be FLOATS, got {}",
                a.kind_name()
            ))),
        }
    };
    let alphas = floats("activation_alpha")?;
    let betas = floats("activation_beta")?;
    let (mut ai, mut bi) = (alphas.into_iter(), betas.into_iter());
    let mut acts = Vec::with_capacity(names.len());
    for name in &names {
        let lower = name.to_ascii_lowercase();
        let mut alpha = |default: Option<f64>| {
            ai.next().or(default).ok_or_else(|| {
                c.unsupported(format!(
                    "activation {name} without an activation_alpha value is not supported"
                ))
            })
        };
        let act = match lower.as_str() {
            "relu" => Act::Relu,
            "tanh" => Act::Tanh,
            "sigmoid" => Act::Sigmoid,
            "softsign" => Act::Softsign,
            "softplus" => Act::Softplus,
            "leakyrelu" => Act::LeakyRelu(alpha(Some(0.01))?),
            "thresholdedrelu" => Act::ThresholdedRelu(alpha(Some(1.0))?),
            "elu" => Act::Elu(alpha(Some(1.0))?),
            "affine" | "scaledtanh" | "hardsigmoid" => {
                let (da, db) = match lower.as_str() {
                    "affine" => (Some(1.0), Some(0.0)),
                    "hardsigmoid" => (Some(0.2), Some(0.5)),
                    // ScaledTanh has no documented defaults.
                    _ => (None, None),
                };
                let a = alpha(da)?;
                let b = bi.next().or(db).ok_or_else(|| {
                    c.unsupported(format!(
                        "activation {name} without an activation_beta value is not supported"
                    ))
                })?;
                match lower.as_str() {
                    "affine" => Act::Affine(a, b),
                    "hardsigmoid" => Act::HardSigmoid(a, b),
                    _ => Act::ScaledTanh(a, b),
                }
            }
            _ => {
                return Err(c.unsupported(format!(
                    "activation '{name}' is not supported (supported: {ACT_NAMES})"
                )))
            }
        };
        acts.push(act);
    }
    Ok(acts)
}

/// Everything decided from the node before any op is built.
struct Cfg {
    cell: Cell,
    seq: u64,
    hidden: u64,
    /// 0: time-major (`[seq, batch, ...]`), 1: batch-major.
    layout: i64,
    linear_before_reset: bool,
    input_forget: bool,
    clip: Option<f64>,
    /// `per direction × directions` activations.
    acts: Vec<Act>,
    /// Whether each direction runs backwards in time.
    reverse: Vec<bool>,
}

/// The node's operands.
struct Ins {
    x: ValueId,
    w: ValueId,
    r: ValueId,
    b: Option<ValueId>,
    /// `sequence_lens` when it needs masking (see the module doc).
    lens: Option<ValueId>,
    h0: Option<ValueId>,
    c0: Option<ValueId>,
    p: Option<ValueId>,
}

fn import(c: &mut NodeCtx<'_, '_>, cell: Cell) -> R {
    let op = c.node.op_type.clone();
    if c.inputs.len() > cell.max_inputs() {
        return Err(c.invalid(format!(
            "has {} inputs; {op} takes at most {}",
            c.inputs.len(),
            cell.max_inputs()
        )));
    }
    if c.node.outputs.len() > cell.max_outputs() {
        return Err(c.invalid(format!(
            "has {} outputs; {op} produces at most {}",
            c.node.outputs.len(),
            cell.max_outputs()
        )));
    }
    if let Some(name) = c
        .node
        .attrs
        .keys()
        .find(|k| !cell.known_attrs().contains(&k.as_str()))
    {
        return Err(c.unsupported(format!("attribute '{name}' is not supported")));
    }
    let cfg = parse_cfg(c, cell)?;
    let ins = check_operands(c, &cfg)?;
    let dirs = cfg.reverse.len();
    let want = |i: usize| matches!(c.node.outputs.get(i), Some(Some(_)));
    let (want_y, want_h, want_c) = (want(0), want(1), want(2));

    let mut em = Emitter::new(c, &ins);
    let mut ys = Vec::with_capacity(dirs);
    let mut hs = Vec::with_capacity(dirs);
    let mut cs = Vec::with_capacity(dirs);
    for d in 0..dirs {
        let run = direction(&mut em, &cfg, &ins, d, want_y)?;
        // Y per direction: [seq, 1, batch, H] (layout 0) or [batch, seq, 1, H].
        if want_y {
            let (axes, axis): (&[i64], i64) = if cfg.layout == 0 {
                (&[0, 1], 0)
            } else {
                (&[1, 2], 1)
            };
            let mut steps = Vec::with_capacity(run.ys.len());
            for y in run.ys {
                steps.push(em.unsqueeze(y, axes)?);
            }
            ys.push(if dirs == 1 {
                em.concat_named(&steps, axis)?
            } else {
                em.concat(&steps, axis)?
            });
        }
        // Y_h and Y_c per direction: [1, batch, H] (layout 0) or [batch, 1, H].
        let state_axes: &[i64] = if cfg.layout == 0 { &[0] } else { &[1] };
        if want_h {
            hs.push(em.unsqueeze(run.h, state_axes)?);
        }
        if want_c {
            let cl = run
                .c
                .ok_or_else(|| em.c.invalid("only LSTM has a cell state output"))?;
            cs.push(em.unsqueeze(cl, state_axes)?);
        }
    }
    let y = if want_y {
        Some(if dirs == 1 {
            ys[0]
        } else {
            em.concat_named(&ys, if cfg.layout == 0 { 1 } else { 2 })?
        })
    } else {
        None
    };
    let state_axis = if cfg.layout == 0 { 0 } else { 1 };
    let yh = if want_h {
        Some(em.concat(&hs, state_axis)?)
    } else {
        None
    };
    let yc = if want_c {
        Some(em.concat(&cs, state_axis)?)
    } else {
        None
    };
    Ok(vec![y, yh, yc][..cell.max_outputs()].to_vec())
}

/// Reads and checks the attributes.
fn parse_cfg(c: &NodeCtx<'_, '_>, cell: Cell) -> Result<Cfg, OnnxError> {
    let direction = match c.attr("direction") {
        None => "forward",
        Some(a) => a
            .as_str()
            .ok_or_else(|| c.invalid("attribute 'direction' must be a UTF-8 STRING"))?,
    };
    let reverse = match direction {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => {
            return Err(c.invalid(format!(
                "direction '{other}' is not one of forward, reverse, bidirectional"
            )))
        }
    };
    if c.version < 14 && c.attr("layout").is_some() {
        return Err(c.invalid(format!(
            "attribute 'layout' exists from {}-14 on; this node is version {}",
            c.node.op_type, c.version
        )));
    }
    let layout = c.attr_int("layout", 0)?;
    if layout != 0 && layout != 1 {
        return Err(c.invalid(format!("layout {layout} is not 0 or 1")));
    }
    let clip = match c.attr("clip") {
        None => None,
        Some(_) => {
            let v = c.attr_float("clip", 0.0)?;
            if v.is_nan() || v < 0.0 {
                return Err(c.invalid(format!("clip {v} is not a non-negative threshold")));
            }
            Some(f64::from(v))
        }
    };
    let flag = |name: &str| -> Result<bool, OnnxError> {
        match c.attr_int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(c.invalid(format!("attribute '{name}' is {v}, not 0 or 1"))),
        }
    };
    let linear_before_reset = cell == Cell::Gru && flag("linear_before_reset")?;
    let input_forget = cell == Cell::Lstm && flag("input_forget")?;
    let acts = parse_activations(c, cell, reverse.len())?;

    let x = c.input(0)?;
    let xt = c.ty(x).clone();
    if xt.rank() != 3 {
        return Err(c.invalid(format!("X must have rank 3, got {xt}")));
    }
    let seq = match xt.dims[layout as usize] {
        Dim::Static(n) => n,
        _ => {
            return Err(c.unsupported(format!(
                "{} needs a static sequence length (X is {xt})",
                c.node.op_type
            )))
        }
    };
    if seq == 0 {
        return Err(c.unsupported("an empty sequence (length 0) is not supported"));
    }
    if seq > MAX_UNROLL {
        return Err(c.unsupported(format!(
            "sequence length {seq} exceeds the unroll limit of {MAX_UNROLL} steps"
        )));
    }
    let r = c.input(2)?;
    let rt = c.ty(r).clone();
    if rt.rank() != 3 {
        return Err(c.invalid(format!("R must have rank 3, got {rt}")));
    }
    let hidden = match (c.attr("hidden_size"), &rt.dims[2]) {
        (Some(_), d) => {
            let h = c.attr_int("hidden_size", 0)?;
            if h <= 0 {
                return Err(c.invalid(format!("hidden_size {h} is not positive")));
            }
            if let Dim::Static(n) = d {
                if *n != h as u64 {
                    return Err(c.invalid(format!(
                        "hidden_size is {h} but R is {rt} (its last extent is the hidden size)"
                    )));
                }
            }
            h as u64
        }
        (None, Dim::Static(n)) if *n > 0 => *n,
        _ => {
            return Err(c.unsupported(format!(
                "{} needs a static hidden size (hidden_size or R's last extent; R is {rt})",
                c.node.op_type
            )))
        }
    };
    // Extents derived from the hidden size (8·H at most) must not overflow.
    if hidden > MAX_HIDDEN {
        return Err(c.invalid(format!(
            "hidden size {hidden} exceeds the limit of {MAX_HIDDEN}"
        )));
    }
    Ok(Cfg {
        cell,
        seq,
        hidden,
        layout,
        linear_before_reset,
        input_forget,
        clip,
        acts,
        reverse,
    })
}

/// Checks the operands' ranks, extents and dtypes against the node's
/// configuration, and decides whether `sequence_lens` needs masking.
fn check_operands(c: &NodeCtx<'_, '_>, cfg: &Cfg) -> Result<Ins, OnnxError> {
    let x = c.input(0)?;
    let w = c.input(1)?;
    let r = c.input(2)?;
    let xt = c.ty(x).clone();
    let dt = xt.dtype;
    if !dt.is_float() {
        return Err(c.invalid(format!("X must be a float tensor, got {xt}")));
    }
    let nd = cfg.reverse.len() as u64;
    let gh = cfg.cell.gates() * cfg.hidden;
    let batch = xt.dims[1 - cfg.layout as usize].clone();
    let input_size = xt.dims[2].clone();
    let h = cfg.hidden;
    // Expected extents; `None` accepts anything (the batch when X's is not static).
    let known = |d: &Dim| match d {
        Dim::Static(n) => Some(*n),
        _ => None,
    };
    let state = if cfg.layout == 0 {
        vec![Some(nd), known(&batch), Some(h)]
    } else {
        vec![known(&batch), Some(nd), Some(h)]
    };
    let check = |name: &str, v: ValueId, want: &[Option<u64>]| -> Result<(), OnnxError> {
        let t = c.ty(v);
        if t.dtype != dt {
            return Err(c.invalid(format!(
                "{name} has element type {} but X has {}",
                t.dtype.name(),
                dt.name()
            )));
        }
        let fits = t.rank() == want.len()
            && t.dims.iter().zip(want).all(|(d, w)| match (d, w) {
                (Dim::Static(a), Some(b)) => a == b,
                _ => true,
            });
        if !fits {
            let shape: Vec<String> = want
                .iter()
                .map(|w| w.map_or("?".to_string(), |n| n.to_string()))
                .collect();
            return Err(c.invalid(format!(
                "{name} is {t}; expected shape [{}]",
                shape.join(", ")
            )));
        }
        Ok(())
    };
    check("W", w, &[Some(nd), Some(gh), known(&input_size)])?;
    check("R", r, &[Some(nd), Some(gh), Some(h)])?;
    let b = c.opt_input(3);
    if let Some(b) = b {
        check("B", b, &[Some(nd), Some(2 * gh)])?;
    }
    let h0 = c.opt_input(5);
    if let Some(v) = h0 {
        check("initial_h", v, &state)?;
    }
    let (c0, p) = if cfg.cell == Cell::Lstm {
        (c.opt_input(6), c.opt_input(7))
    } else {
        (None, None)
    };
    if let Some(v) = c0 {
        check("initial_c", v, &state)?;
    }
    if let Some(v) = p {
        check("P", v, &[Some(nd), Some(3 * h)])?;
    }
    let lens = match c.opt_input(4) {
        None => None,
        Some(l) => {
            let t = c.ty(l);
            let batch_ok = match (&t.dims.first(), known(&batch)) {
                (Some(Dim::Static(a)), Some(b)) => *a == b,
                _ => true,
            };
            if !t.dtype.is_int() || t.rank() != 1 || !batch_ok {
                return Err(c.invalid(format!(
                    "sequence_lens must be a 1-D integer tensor of batch extent, got {t}"
                )));
            }
            match constant_ints(c, l) {
                Some(v) if v.iter().all(|&n| n == cfg.seq as i128) => None,
                Some(v) if v.iter().any(|&n| n < 0 || n > cfg.seq as i128) => {
                    return Err(c.invalid(format!(
                        "sequence_lens holds a length outside 0..={}",
                        cfg.seq
                    )))
                }
                _ => Some(l),
            }
        }
    };
    Ok(Ins {
        x,
        w,
        r,
        b,
        lens,
        h0,
        c0,
        p,
    })
}

/// The elements of an integer constant operand, if it is one.
fn constant_ints(c: &NodeCtx<'_, '_>, v: ValueId) -> Option<Vec<i128>> {
    c.known(v)?.ints().map(<[i128]>::to_vec)
}

/// What one direction produces: its hidden state at every time step (in
/// time order, empty unless Y is wanted) and its final states.
struct Run {
    ys: Vec<ValueId>,
    h: ValueId,
    c: Option<ValueId>,
}

/// Unrolls direction `d`.
fn direction(
    em: &mut Emitter<'_, '_, '_>,
    cfg: &Cfg,
    ins: &Ins,
    d: usize,
    want_y: bool,
) -> Result<Run, OnnxError> {
    let hs = cfg.hidden;
    let g = cfg.cell.gates();
    let du = d as u64;
    let per = cfg.cell.default_activations().len();
    let acts = &cfg.acts[d * per..(d + 1) * per];
    let gru_lbr = cfg.cell == Cell::Gru && cfg.linear_before_reset;

    // Input projection of all steps at once: [seq, batch, gH] or [batch, seq, gH].
    let w = em.gather(ins.w, du, 0)?;
    let wt = em.transpose(w)?;
    let mut xw = em.op(OpKind::MatMul, &[ins.x, wt])?;
    let mut rbh = None;
    if let Some(b) = ins.b {
        let bd = em.gather(b, du, 0)?;
        let wb = em.slice(bd, 0, g * hs)?;
        let rb = em.slice(bd, g * hs, g * hs)?;
        let bias = if gru_lbr {
            // Rbh is scaled by the reset gate, so it stays in the step.
            let wzr = em.slice(wb, 0, 2 * hs)?;
            let rzr = em.slice(rb, 0, 2 * hs)?;
            let zr = em.op(OpKind::Add, &[wzr, rzr])?;
            let wh = em.slice(wb, 2 * hs, hs)?;
            rbh = Some(em.slice(rb, 2 * hs, hs)?);
            em.concat(&[zr, wh], 0)?
        } else {
            em.op(OpKind::Add, &[wb, rb])?
        };
        xw = em.op(OpKind::Add, &[xw, bias])?;
    }

    // Recurrence weights, transposed once: [H, gH] (GRU without
    // linear_before_reset applies R_h to r ⊙ H, so it is kept apart).
    let r = em.gather(ins.r, du, 0)?;
    let (rt, rt_h) = if cfg.cell == Cell::Gru && !gru_lbr {
        let rzr = em.slice_axis(r, 0, 2 * hs, 0)?;
        let rh = em.slice_axis(r, 2 * hs, hs, 0)?;
        (em.transpose(rzr)?, Some(em.transpose(rh)?))
    } else {
        (em.transpose(r)?, None)
    };
    // Peepholes i, o, f.
    let peep = match ins.p {
        Some(p) => {
            let pd = em.gather(p, du, 0)?;
            Some([
                em.slice(pd, 0, hs)?,
                em.slice(pd, hs, hs)?,
                em.slice(pd, 2 * hs, hs)?,
            ])
        }
        None => None,
    };
    let state_axis = if cfg.layout == 0 { 0 } else { 1 };
    let mut h = match ins.h0 {
        Some(v) => Some(em.gather(v, du, state_axis)?),
        None => None,
    };
    let mut cell_state = match ins.c0 {
        Some(v) => Some(em.gather(v, du, state_axis)?),
        None => None,
    };
    let step_axis = cfg.layout;
    let zero = match ins.lens {
        Some(_) => Some(em.scalar(0.0)?),
        None => None,
    };
    let mut ys: Vec<Option<ValueId>> = vec![None; if want_y { cfg.seq as usize } else { 0 }];
    for k in 0..cfg.seq {
        let t = if cfg.reverse[d] { cfg.seq - 1 - k } else { k };
        let xt = em.gather(xw, t, step_axis)?;
        let (h_new, c_new) = match cfg.cell {
            Cell::Rnn => {
                let pre = em.add_recurrent(xt, h, rt)?;
                let pre = em.clip(pre, cfg.clip)?;
                (em.act(acts[0], pre)?, None)
            }
            Cell::Gru => {
                let xzr = em.slice(xt, 0, 2 * hs)?;
                let xh = em.slice(xt, 2 * hs, hs)?;
                let (zr, hr) = match h {
                    Some(hp) => {
                        let m = em.op(OpKind::MatMul, &[hp, rt])?;
                        if gru_lbr {
                            let mzr = em.slice(m, 0, 2 * hs)?;
                            let mh = em.slice(m, 2 * hs, hs)?;
                            (em.op(OpKind::Add, &[xzr, mzr])?, Some(mh))
                        } else {
                            (em.op(OpKind::Add, &[xzr, m])?, None)
                        }
                    }
                    None => (xzr, None),
                };
                let z = em.slice(zr, 0, hs)?;
                let z = em.clip(z, cfg.clip)?;
                let z = em.act(acts[0], z)?;
                let rg = em.slice(zr, hs, hs)?;
                let rg = em.clip(rg, cfg.clip)?;
                let rg = em.act(acts[0], rg)?;
                let pre = if gru_lbr {
                    // h̃ = g(x·Whᵀ + Wbh + r ⊙ (H·Rhᵀ + Rbh))
                    let inner = match (hr, rbh) {
                        (Some(a), Some(b)) => Some(em.op(OpKind::Add, &[a, b])?),
                        (a, b) => a.or(b),
                    };
                    match inner {
                        Some(v) => {
                            let s = em.op(OpKind::Mul, &[rg, v])?;
                            em.op(OpKind::Add, &[xh, s])?
                        }
                        None => xh,
                    }
                } else {
                    // h̃ = g(x·Whᵀ + (r ⊙ H)·Rhᵀ + Wbh + Rbh)
                    match (h, rt_h) {
                        (Some(hp), Some(rth)) => {
                            let rh = em.op(OpKind::Mul, &[rg, hp])?;
                            let m = em.op(OpKind::MatMul, &[rh, rth])?;
                            em.op(OpKind::Add, &[xh, m])?
                        }
                        _ => xh,
                    }
                };
                let pre = em.clip(pre, cfg.clip)?;
                let cand = em.act(acts[1], pre)?;
                // H = (1 - z) ⊙ h̃ + z ⊙ H_prev = h̃ + z ⊙ (H_prev - h̃)
                let hn = match h {
                    Some(hp) => {
                        let diff = em.op(OpKind::Sub, &[hp, cand])?;
                        let s = em.op(OpKind::Mul, &[z, diff])?;
                        em.op(OpKind::Add, &[cand, s])?
                    }
                    None => {
                        let s = em.op(OpKind::Mul, &[z, cand])?;
                        em.op(OpKind::Sub, &[cand, s])?
                    }
                };
                (hn, None)
            }
            Cell::Lstm => {
                let gates = em.add_recurrent(xt, h, rt)?;
                let mut gi = em.slice(gates, 0, hs)?;
                let mut go = em.slice(gates, hs, hs)?;
                let mut gf = em.slice(gates, 2 * hs, hs)?;
                let gc = em.slice(gates, 3 * hs, hs)?;
                if let (Some(pp), Some(cp)) = (&peep, cell_state) {
                    let pi = em.op(OpKind::Mul, &[pp[0], cp])?;
                    gi = em.op(OpKind::Add, &[gi, pi])?;
                    let pf = em.op(OpKind::Mul, &[pp[2], cp])?;
                    gf = em.op(OpKind::Add, &[gf, pf])?;
                }
                let gi = em.clip(gi, cfg.clip)?;
                let i = em.act(acts[0], gi)?;
                let gc = em.clip(gc, cfg.clip)?;
                let cand = em.act(acts[1], gc)?;
                let mut cn = em.op(OpKind::Mul, &[i, cand])?;
                // The forget gate only matters with a previous cell state.
                if let Some(cp) = cell_state {
                    let f = if cfg.input_forget {
                        let one = em.scalar(1.0)?;
                        em.op(OpKind::Sub, &[one, i])?
                    } else {
                        let gf = em.clip(gf, cfg.clip)?;
                        em.act(acts[0], gf)?
                    };
                    let fc = em.op(OpKind::Mul, &[f, cp])?;
                    cn = em.op(OpKind::Add, &[cn, fc])?;
                }
                if let Some(pp) = &peep {
                    let po = em.op(OpKind::Mul, &[pp[1], cn])?;
                    go = em.op(OpKind::Add, &[go, po])?;
                }
                let go = em.clip(go, cfg.clip)?;
                let o = em.act(acts[0], go)?;
                let hc = em.act(acts[2], cn)?;
                (em.op(OpKind::Mul, &[o, hc])?, Some(cn))
            }
        };
        let (h_next, c_next, y) = match (ins.lens, zero) {
            (Some(lens), Some(zero)) => {
                // Entries whose sequence has ended keep their state and output zeros.
                let lt = em.c.ty(lens).dtype;
                let tc = em.c.const_scalar(lt, t as f64)?;
                let m = em.op(OpKind::Less, &[tc, lens])?;
                let m = em.unsqueeze(m, &[1])?;
                let keep_h = em.op(OpKind::Where, &[m, h_new, h.unwrap_or(zero)])?;
                let keep_c = match c_new {
                    Some(cn) => Some(em.op(OpKind::Where, &[m, cn, cell_state.unwrap_or(zero)])?),
                    None => None,
                };
                let y = if want_y {
                    Some(em.op(OpKind::Where, &[m, h_new, zero])?)
                } else {
                    None
                };
                (keep_h, keep_c, y)
            }
            _ => (h_new, c_new, Some(h_new)),
        };
        if let (Some(slot), Some(y)) = (ys.get_mut(t as usize), y) {
            *slot = Some(y);
        }
        h = Some(h_next);
        cell_state = c_next;
    }
    let h = h.ok_or_else(|| em.c.invalid("the sequence is empty"))?;
    Ok(Run {
        ys: ys.into_iter().flatten().collect(),
        h,
        c: cell_state,
    })
}

/// Builds the Kiln ops of one node, sharing constants between steps.
struct Emitter<'a, 'b, 'm> {
    c: &'a mut NodeCtx<'b, 'm>,
    dtype: DType,
    ints: HashMap<(Vec<i64>, bool), ValueId>,
    scalars: HashMap<u64, ValueId>,
}

impl<'a, 'b, 'm> Emitter<'a, 'b, 'm> {
    fn new(c: &'a mut NodeCtx<'b, 'm>, ins: &Ins) -> Self {
        let dtype = c.ty(ins.x).dtype;
        Emitter {
            c,
            dtype,
            ints: HashMap::new(),
            scalars: HashMap::new(),
        }
    }

    fn op(&mut self, op: OpKind, inputs: &[ValueId]) -> V {
        self.op_with(op, inputs, Attrs::new())
    }

    fn op_with(&mut self, op: OpKind, inputs: &[ValueId], attrs: Attrs) -> V {
        self.c
            .emit_internal(op, inputs.iter().map(|&v| Some(v)).collect(), attrs)
    }

    fn ints(&mut self, values: &[i64], scalar: bool) -> ValueId {
        let key = (values.to_vec(), scalar);
        if let Some(&v) = self.ints.get(&key) {
            return v;
        }
        let v = self.c.const_i64(values, scalar);
        self.ints.insert(key, v);
        v
    }

    /// A scalar of the node's float type.
    fn scalar(&mut self, value: f64) -> V {
        if let Some(&v) = self.scalars.get(&value.to_bits()) {
            return Ok(v);
        }
        let v = self.c.const_scalar(self.dtype, value)?;
        self.scalars.insert(value.to_bits(), v);
        Ok(v)
    }

    /// `x[index]` along `axis` (the axis goes away).
    fn gather(&mut self, x: ValueId, index: u64, axis: i64) -> V {
        let i = self.ints(&[index as i64], true);
        self.op_with(OpKind::Gather, &[x, i], attrs(&[("axis", Attr::Int(axis))]))
    }

    /// `len` elements from `start` along the last axis.
    fn slice(&mut self, x: ValueId, start: u64, len: u64) -> V {
        self.slice_axis(x, start, len, -1)
    }

    /// `len` elements from `start` along `axis`.
    fn slice_axis(&mut self, x: ValueId, start: u64, len: u64, axis: i64) -> V {
        let s = self.ints(&[start as i64], false);
        let e = self.ints(&[(start + len) as i64], false);
        let a = self.ints(&[axis], false);
        self.op(OpKind::Slice, &[x, s, e, a])
    }

    /// Transpose of a matrix.
    fn transpose(&mut self, x: ValueId) -> V {
        self.op_with(
            OpKind::Transpose,
            &[x],
            attrs(&[("perm", Attr::Ints(vec![1, 0]))]),
        )
    }

    fn unsqueeze(&mut self, x: ValueId, axes: &[i64]) -> V {
        let a = self.ints(axes, false);
        self.op(OpKind::Unsqueeze, &[x, a])
    }

    fn concat(&mut self, xs: &[ValueId], axis: i64) -> V {
        if let [x] = xs {
            return Ok(*x);
        }
        self.op_with(OpKind::Concat, xs, attrs(&[("axis", Attr::Int(axis))]))
    }

    /// Concat whose result is the node's first output (Y), taking its ONNX
    /// name and declared type.
    fn concat_named(&mut self, xs: &[ValueId], axis: i64) -> V {
        self.c.emit1(
            OpKind::Concat,
            xs.iter().map(|&v| Some(v)).collect(),
            attrs(&[("axis", Attr::Int(axis))]),
        )
    }

    /// `x + h·rt`, or `x` when the state is zero.
    fn add_recurrent(&mut self, x: ValueId, h: Option<ValueId>, rt: ValueId) -> V {
        match h {
            Some(h) => {
                let m = self.op(OpKind::MatMul, &[h, rt])?;
                self.op(OpKind::Add, &[x, m])
            }
            None => Ok(x),
        }
    }

    fn clip(&mut self, x: ValueId, clip: Option<f64>) -> V {
        match clip {
            Some(t) => {
                let lo = self.scalar(-t)?;
                let hi = self.scalar(t)?;
                self.op(OpKind::Clip, &[x, lo, hi])
            }
            None => Ok(x),
        }
    }

    fn act(&mut self, act: Act, x: ValueId) -> V {
        let alpha = |a: f64| attrs(&[("alpha", Attr::Float(a))]);
        match act {
            Act::Relu => self.op(OpKind::Relu, &[x]),
            Act::Tanh => self.op(OpKind::Tanh, &[x]),
            Act::Sigmoid => self.op(OpKind::Sigmoid, &[x]),
            Act::Softsign => self.op(OpKind::Softsign, &[x]),
            Act::Softplus => self.op(OpKind::Softplus, &[x]),
            Act::LeakyRelu(a) => self.op_with(OpKind::LeakyRelu, &[x], alpha(a)),
            Act::ThresholdedRelu(a) => self.op_with(OpKind::ThresholdedRelu, &[x], alpha(a)),
            Act::Elu(a) => self.op_with(OpKind::Elu, &[x], alpha(a)),
            Act::HardSigmoid(a, b) => self.op_with(
                OpKind::HardSigmoid,
                &[x],
                attrs(&[("alpha", Attr::Float(a)), ("beta", Attr::Float(b))]),
            ),
            Act::Affine(a, b) => {
                let sa = self.scalar(a)?;
                let sb = self.scalar(b)?;
                let m = self.op(OpKind::Mul, &[x, sa])?;
                self.op(OpKind::Add, &[m, sb])
            }
            Act::ScaledTanh(a, b) => {
                let sa = self.scalar(a)?;
                let sb = self.scalar(b)?;
                let m = self.op(OpKind::Mul, &[x, sb])?;
                let t = self.op(OpKind::Tanh, &[m])?;
                self.op(OpKind::Mul, &[t, sa])
            }
        }
    }
}

fn attrs(list: &[(&str, Attr)]) -> Attrs {
    let mut a = Attrs::new();
    for (k, v) in list {
        a.insert((*k).to_string(), v.clone());
    }
    a
}
