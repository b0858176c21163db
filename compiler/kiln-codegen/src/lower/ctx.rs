//! The text builder every emitter writes through: SSA naming, MLIR type and
//! literal spelling, and the few structured ops (`tensor.empty`,
//! `linalg.fill`, `linalg.generic`, reshapes) that the emitters compose.
//!
//! Invariants:
//! - one counter names every SSA value, including those inside `linalg.generic`
//!   bodies, so nested regions never redefine an outer name;
//! - every emitted tensor has a fully static type (`Val::shape`);
//! - float literals are spelled as hexadecimal bit patterns, so they are exact.

use kiln_ir::DType;
use std::fmt::Write as _;

/// Why an emitter gave up on a node (becomes `LowerError::Unsupported`).
pub(crate) type Reason = String;

/// Result of an emitter step.
pub(crate) type Res<T> = Result<T, Reason>;

/// A lowered tensor value: its SSA name and static type.
#[derive(Clone, Debug)]
pub(crate) struct Val {
    pub ssa: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
}

impl Val {
    pub fn ty(&self) -> String {
        tensor_ty(self.dtype, &self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The MLIR element type a dtype is computed in inside the function.
/// Integers are signless (signedness is carried by the Kiln dtype and picks
/// the arith op); bool is `i1`, which LLVM stores as one byte, matching
/// Kiln's storage. The storage-only dtypes have a wider compute type (see
/// [`super::storage`]): the small float formats are held as `f32` values on
/// their grid, `i4`/`u4`/`i2`/`u2` as their `i8` value and `nf4` as its `i8`
/// code;
/// their boundary layout is given by [`super::storage::raw`].
pub(crate) fn elem(dtype: DType) -> Res<&'static str> {
    Ok(match dtype {
        DType::F64 => "f64",
        DType::F32
        | DType::F8E4M3FN
        | DType::F8E5M2
        | DType::F8E4M3FNUZ
        | DType::F8E5M2FNUZ
        | DType::F4E2M1
        | DType::F8E8M0 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I64 | DType::U64 => "i64",
        DType::I32 | DType::U32 => "i32",
        DType::I16 | DType::U16 => "i16",
        DType::I8 | DType::U8 | DType::I4 | DType::U4 | DType::I2 | DType::U2 | DType::NF4 => "i8",
        DType::Bool => "i1",
    })
}

/// `tensor<2x3xf32>`; the dtype must have passed [`elem`].
pub(crate) fn tensor_ty(dtype: DType, shape: &[u64]) -> String {
    shaped("tensor", dtype, shape)
}

/// `memref<2x3xf32>`; the dtype must have passed [`elem`].
pub(crate) fn memref_ty(dtype: DType, shape: &[u64]) -> String {
    shaped("memref", dtype, shape)
}

fn shaped(kind: &str, dtype: DType, shape: &[u64]) -> String {
    let mut s = format!("{kind}<");
    for d in shape {
        let _ = write!(s, "{d}x");
    }
    s.push_str(elem(dtype).unwrap_or("none"));
    s.push('>');
    s
}

/// `affine_map<(d0, d1) -> (results)>` over `n` loop dims.
pub(crate) fn affine_map(n: usize, results: &[String]) -> String {
    let dims: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    format!(
        "affine_map<({}) -> ({})>",
        dims.join(", "),
        results.join(", ")
    )
}

/// The identity map over `n` dims.
pub(crate) fn identity_map(n: usize) -> String {
    affine_map(n, &(0..n).map(|i| format!("d{i}")).collect::<Vec<_>>())
}

/// The map reading an operand of shape `shape` inside an iteration space of
/// shape `out` under NumPy broadcasting (right-aligned; size-1 dims that are
/// broadcast read index 0).
pub(crate) fn broadcast_map(shape: &[u64], out: &[u64]) -> String {
    let off = out.len() - shape.len();
    let res: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d == 1 && out[off + i] != 1 {
                "0".to_string()
            } else {
                format!("d{}", off + i)
            }
        })
        .collect();
    affine_map(out.len(), &res)
}

/// Hexadecimal literal of `v` rounded to `dtype` (f64 or f32 storage). f16
/// and bf16 literals are produced by truncating an f32 (see `Body::float`).
fn float_hex(v: f64, dtype: DType) -> String {
    match dtype {
        DType::F64 => format!("0x{:016X}", v.to_bits()),
        _ => format!("0x{:08X}", (v as f32).to_bits()),
    }
}

/// Loop iterator kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Iter {
    Par,
    Red,
}

/// Scalar code inside a `linalg.generic` body.
pub(crate) struct Body<'a> {
    text: &'a mut String,
    next: &'a mut usize,
}

impl Body<'_> {
    /// Emits `%bN = rhs` and returns `%bN`.
    pub fn op(&mut self, rhs: impl AsRef<str>) -> String {
        let name = format!("%b{}", *self.next);
        *self.next += 1;
        let _ = writeln!(self.text, "      {name} = {}", rhs.as_ref());
        name
    }

    /// A float constant of `dtype`.
    pub fn float(&mut self, v: f64, dtype: DType) -> Res<String> {
        match dtype {
            DType::F64 | DType::F32 => Ok(self.op(format!(
                "arith.constant {} : {}",
                float_hex(v, dtype),
                elem(dtype)?
            ))),
            DType::F16 | DType::BF16 => {
                let c = self.op(format!("arith.constant {} : f32", float_hex(v, DType::F32)));
                Ok(self.op(format!("arith.truncf {c} : f32 to {}", elem(dtype)?)))
            }
            other => Err(format!(
                "a float constant of dtype {other} is not supported"
            )),
        }
    }

    /// An integer (or bool) constant of `dtype`.
    pub fn int(&mut self, v: i64, dtype: DType) -> Res<String> {
        let e = elem(dtype)?;
        if dtype == DType::Bool {
            return Ok(self.op(format!("arith.constant {} : i1", i32::from(v != 0))));
        }
        Ok(self.op(format!("arith.constant {v} : {e}")))
    }

    /// A constant of any numeric `dtype` with value `v`.
    pub fn num(&mut self, v: f64, dtype: DType) -> Res<String> {
        if dtype.is_float() {
            self.float(v, dtype)
        } else {
            self.int(v as i64, dtype)
        }
    }

    /// An `index` constant.
    pub fn index(&mut self, v: i64) -> String {
        self.op(format!("arith.constant {v} : index"))
    }

    /// `linalg.index d`.
    pub fn loop_index(&mut self, d: usize) -> String {
        self.op(format!("linalg.index {d} : index"))
    }

    /// `tensor.extract v[idx]` (any SSA tensor captured from the function).
    pub fn extract(&mut self, v: &Val, idx: &[String]) -> String {
        self.op(format!(
            "tensor.extract {}[{}] : {}",
            v.ssa,
            idx.join(", "),
            v.ty()
        ))
    }

    /// `arith.index_cast` of an integer scalar of dtype `dt` to `index`
    /// (unsigned dtypes zero-extend).
    pub fn index_of(&mut self, x: &str, dt: DType) -> Res<String> {
        let e = elem(dt)?;
        let op = if dt.is_signed() {
            "index_cast"
        } else {
            "index_castui"
        };
        Ok(self.op(format!("arith.{op} {x} : {e} to index")))
    }

    /// An index wrapped once when negative (`i + n`), then clamped to
    /// `[0, n - 1]` so a bad index never reads outside a tensor.
    pub fn wrap_clamp(&mut self, i: &str, n: u64) -> String {
        let z = self.index(0);
        let ext = self.index(n as i64);
        let last = self.index((n as i64 - 1).max(0));
        let neg = self.op(format!("arith.cmpi slt, {i}, {z} : index"));
        let wrapped = self.op(format!("arith.addi {i}, {ext} : index"));
        let w = self.op(format!("arith.select {neg}, {wrapped}, {i} : index"));
        let lo = self.op(format!("arith.maxsi {w}, {z} : index"));
        self.op(format!("arith.minsi {lo}, {last} : index"))
    }

    /// `scf.for iv = lo to hi` carrying `inits` (value, type); `f` gets the
    /// induction variable and the carried values and returns the next ones.
    /// Returns the final carried values.
    pub fn for_loop(
        &mut self,
        lo: &str,
        hi: &str,
        inits: &[(String, &str)],
        f: impl FnOnce(&mut Body<'_>, &str, &[String]) -> Res<Vec<String>>,
    ) -> Res<Vec<String>> {
        let step = self.index(1);
        let name = format!("%b{}", *self.next);
        *self.next += 1;
        let iv = format!("%b{}", *self.next);
        *self.next += 1;
        let args: Vec<String> = inits
            .iter()
            .map(|_| {
                let a = format!("%b{}", *self.next);
                *self.next += 1;
                a
            })
            .collect();
        let tys: Vec<&str> = inits.iter().map(|(_, t)| *t).collect();
        let iter_args: Vec<String> = args
            .iter()
            .zip(inits)
            .map(|(a, (v, _))| format!("{a} = {v}"))
            .collect();
        let n = inits.len();
        let lhs = if n == 1 {
            name.clone()
        } else {
            format!("{name}:{n}")
        };
        let _ = writeln!(
            self.text,
            "      {lhs} = scf.for {iv} = {lo} to {hi} step {step} iter_args({}) -> ({}) {{",
            iter_args.join(", "),
            tys.join(", ")
        );
        let ys = f(self, &iv, &args)?;
        let _ = writeln!(
            self.text,
            "      scf.yield {} : {}\n      }}",
            ys.join(", "),
            tys.join(", ")
        );
        Ok(if n == 1 {
            vec![name]
        } else {
            (0..n).map(|i| format!("{name}#{i}")).collect()
        })
    }

    /// `tensor.insert x into t[idx]`.
    pub fn insert(&mut self, x: &str, t: &str, ty: &str, idx: &[String]) -> String {
        self.op(format!(
            "tensor.insert {x} into {t}[{}] : {ty}",
            idx.join(", ")
        ))
    }

    /// `arith.select c, t, f` of element type `ty`.
    pub fn select(&mut self, c: &str, t: &str, f: &str, ty: &str) -> String {
        self.op(format!("arith.select {c}, {t}, {f} : {ty}"))
    }
}

/// A `linalg.generic` operand: SSA name, static type and indexing map.
pub(crate) struct Operand {
    pub ssa: String,
    pub ty: String,
    pub elem: &'static str,
    pub map: String,
}

impl Operand {
    /// `v` read through `map`.
    pub fn of(v: &Val, map: String) -> Operand {
        Operand {
            ssa: v.ssa.clone(),
            ty: v.ty(),
            elem: elem(v.dtype).unwrap_or("none"),
            map,
        }
    }
}

/// The innermost body of [`Builder::loop_nest`]: induction variables and the
/// carried tensor to the next tensor.
type LoopBody<'f> = Box<dyn FnOnce(&mut Body<'_>, &[String], &str) -> Res<String> + 'f>;

/// Accumulates the body of `@kiln_main`.
pub(crate) struct Builder {
    text: String,
    next: usize,
    /// Reductions of more elements than this per result run in two stages
    /// ([`LowerOptions::split_reductions_above`](super::LowerOptions)).
    split_reductions_above: Option<u64>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            text: String::new(),
            next: 0,
            split_reductions_above: None,
        }
    }

    /// A builder whose reductions split as `opts` says.
    pub fn for_options(opts: &super::LowerOptions) -> Builder {
        Builder {
            split_reductions_above: opts.split_reductions_above,
            ..Builder::new()
        }
    }

    /// Above how many elements per result a reduction runs in two stages.
    pub fn split_reductions_above(&self) -> Option<u64> {
        self.split_reductions_above
    }

    pub fn into_text(self) -> String {
        self.text
    }

    /// A fresh SSA name.
    pub fn fresh(&mut self) -> String {
        let n = format!("%v{}", self.next);
        self.next += 1;
        n
    }

    /// Emits one line of the function body.
    pub fn line(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.text, "  {}", s.as_ref());
    }

    /// Emits `%vN = rhs` and returns `%vN`.
    pub fn op(&mut self, rhs: impl AsRef<str>) -> String {
        let name = self.fresh();
        self.line(format!("{name} = {}", rhs.as_ref()));
        name
    }

    /// An `index` constant.
    pub fn index(&mut self, v: u64) -> String {
        self.op(format!("arith.constant {v} : index"))
    }

    /// Nested `scf.for` loops over `extents` at function level, carrying a
    /// tensor from `init`: `f` gets the induction variables and the carried
    /// tensor and returns the next one (typically a `tensor.insert`). The
    /// scatters use this: a `linalg.generic` cannot write data-dependent
    /// positions, and loops over empty extents simply run zero times.
    pub fn loop_nest(
        &mut self,
        extents: &[u64],
        init: &Val,
        f: impl FnOnce(&mut Body<'_>, &[String], &str) -> Res<String>,
    ) -> Res<Val> {
        fn nest<'f>(
            b: &mut Body<'_>,
            extents: &[u64],
            mut idx: Vec<String>,
            acc: String,
            ty: &str,
            f: LoopBody<'f>,
        ) -> Res<String> {
            let Some((&n, rest)) = extents.split_first() else {
                return f(b, &idx, &acc);
            };
            let lo = b.index(0);
            let hi = b.index(n as i64);
            let r = b.for_loop(&lo, &hi, &[(acc, ty)], move |b, iv, c| {
                idx.push(iv.to_string());
                Ok(vec![nest(b, rest, idx, c[0].clone(), ty, f)?])
            })?;
            Ok(r[0].clone())
        }
        let ty = init.ty();
        let mut text = String::new();
        let ssa = {
            let mut b = Body {
                text: &mut text,
                next: &mut self.next,
            };
            nest(
                &mut b,
                extents,
                Vec::new(),
                init.ssa.clone(),
                &ty,
                Box::new(f),
            )?
        };
        for l in text.lines() {
            self.line(l.trim_start());
        }
        Ok(Val {
            ssa,
            ..init.clone()
        })
    }

    /// A fresh copy of `v` (a `linalg.generic` into a new tensor), so that
    /// in-place updates never write to an input or a weight.
    pub fn copy(&mut self, v: &Val) -> Res<Val> {
        let shape = v.shape.clone();
        self.map(&[v], v.dtype, &shape, |_, a| Ok(a[0].clone()))
    }

    /// `tensor.empty` of the given type.
    pub fn empty(&mut self, dtype: DType, shape: &[u64]) -> Res<Val> {
        elem(dtype)?;
        let ssa = self.op(format!("tensor.empty() : {}", tensor_ty(dtype, shape)));
        Ok(Val {
            ssa,
            dtype,
            shape: shape.to_vec(),
        })
    }

    /// A tensor of `shape` filled with `v`.
    pub fn filled(&mut self, v: f64, dtype: DType, shape: &[u64]) -> Res<Val> {
        let init = self.empty(dtype, shape)?;
        let c = self.scalar_const(v, dtype)?;
        let ty = init.ty();
        let ssa = self.op(format!(
            "linalg.fill ins({c} : {}) outs({} : {ty}) -> {ty}",
            elem(dtype)?,
            init.ssa
        ));
        Ok(Val { ssa, ..init })
    }

    /// A scalar constant at function level.
    pub fn scalar_const(&mut self, v: f64, dtype: DType) -> Res<String> {
        let mut body = String::new();
        let r = {
            let mut b = Body {
                text: &mut body,
                next: &mut self.next,
            };
            b.num(v, dtype)?
        };
        for l in body.lines() {
            self.line(l.trim_start());
        }
        Ok(r)
    }

    /// Emits a `linalg.generic` over `iters`, with `ins` and one result per
    /// entry of `outs` (init tensor + map). `body` receives the block
    /// arguments (inputs then outputs) and returns the yielded values.
    pub fn generic(
        &mut self,
        iters: &[Iter],
        ins: &[Operand],
        outs: &[(Val, String)],
        body: impl FnOnce(&mut Body<'_>, &[String]) -> Res<Vec<String>>,
    ) -> Res<Vec<Val>> {
        let maps: Vec<&str> = ins
            .iter()
            .map(|o| o.map.as_str())
            .chain(outs.iter().map(|(_, m)| m.as_str()))
            .collect();
        let its: Vec<&str> = iters
            .iter()
            .map(|i| match i {
                Iter::Par => "\"parallel\"",
                Iter::Red => "\"reduction\"",
            })
            .collect();
        let mut args = Vec::new();
        let mut arg_decls = Vec::new();
        for o in ins {
            let a = format!("%a{}", self.next);
            self.next += 1;
            arg_decls.push(format!("{a}: {}", o.elem));
            args.push(a);
        }
        for (v, _) in outs {
            let a = format!("%a{}", self.next);
            self.next += 1;
            arg_decls.push(format!("{a}: {}", elem(v.dtype)?));
            args.push(a);
        }
        let mut text = String::new();
        let yielded = {
            let mut b = Body {
                text: &mut text,
                next: &mut self.next,
            };
            body(&mut b, &args)?
        };
        let results: Vec<String> = outs.iter().map(|_| self.fresh()).collect();
        let out_tys: Vec<String> = outs.iter().map(|(v, _)| v.ty()).collect();
        let mut s = String::new();
        if !results.is_empty() {
            let _ = write!(s, "{} = ", results.join(", "));
        }
        let _ = write!(
            s,
            "linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}}",
            maps.join(", "),
            its.join(", ")
        );
        if !ins.is_empty() {
            let names: Vec<&str> = ins.iter().map(|o| o.ssa.as_str()).collect();
            let tys: Vec<&str> = ins.iter().map(|o| o.ty.as_str()).collect();
            let _ = write!(s, " ins({} : {})", names.join(", "), tys.join(", "));
        }
        let names: Vec<&str> = outs.iter().map(|(v, _)| v.ssa.as_str()).collect();
        let _ = write!(
            s,
            " outs({} : {}) {{\n  ^bb0({}):\n{}",
            names.join(", "),
            out_tys.join(", "),
            arg_decls.join(", "),
            text
        );
        let ytys: Vec<&str> = outs
            .iter()
            .map(|(v, _)| elem(v.dtype).unwrap_or("none"))
            .collect();
        let res_tys = if out_tys.len() == 1 {
            out_tys.join(", ")
        } else {
            format!("({})", out_tys.join(", "))
        };
        let _ = write!(
            s,
            "      linalg.yield {} : {}\n  }} -> {res_tys}",
            yielded.join(", "),
            ytys.join(", "),
        );
        self.line(s);
        Ok(outs
            .iter()
            .zip(results)
            .map(|((v, _), ssa)| Val {
                ssa,
                dtype: v.dtype,
                shape: v.shape.clone(),
            })
            .collect())
    }

    /// A NumPy-broadcasting elementwise `linalg.generic` producing `out_dtype`
    /// of shape `out_shape` from `ins`.
    pub fn map(
        &mut self,
        ins: &[&Val],
        out_dtype: DType,
        out_shape: &[u64],
        body: impl FnOnce(&mut Body<'_>, &[String]) -> Res<String>,
    ) -> Res<Val> {
        let n = out_shape.len();
        let ops: Vec<Operand> = ins
            .iter()
            .map(|v| Operand::of(v, broadcast_map(&v.shape, out_shape)))
            .collect();
        let init = self.empty(out_dtype, out_shape)?;
        let r = self.generic(
            &vec![Iter::Par; n],
            &ops,
            &[(init, identity_map(n))],
            |b, a| Ok(vec![body(b, a)?]),
        )?;
        Ok(r.into_iter().next().expect("one result"))
    }

    /// A `linalg.generic` over `out_shape` that reads `x` at the affine
    /// expressions `map` of the output dims (`d0`, `d1`, ...) and yields the
    /// element: tiles, slices and depth/space rearrangements. The reads are
    /// `tensor.extract` at `affine.apply` positions rather than an indexing
    /// map, because linalg infers loop bounds from every operand and these
    /// maps are not onto.
    pub fn read_through(&mut self, x: &Val, map: &[String], out_shape: &[u64]) -> Res<Val> {
        let r = out_shape.len();
        let x = x.clone();
        self.tabulate(x.dtype, out_shape, |b, idx| {
            let subs: Vec<String> = map
                .iter()
                .map(|m| {
                    b.op(format!(
                        "affine.apply {}({})",
                        affine_map(r, std::slice::from_ref(m)),
                        idx.join(", ")
                    ))
                })
                .collect();
            Ok(b.extract(&x, &subs))
        })
    }

    /// A `linalg.generic` over `out_shape` with no operands: `body` gets the
    /// loop indices and returns the element.
    pub fn tabulate(
        &mut self,
        dtype: DType,
        out_shape: &[u64],
        body: impl FnOnce(&mut Body<'_>, &[String]) -> Res<String>,
    ) -> Res<Val> {
        let r = out_shape.len();
        let init = self.empty(dtype, out_shape)?;
        let y = self.generic(
            &vec![Iter::Par; r],
            &[],
            &[(init, identity_map(r))],
            |b, _| {
                let idx: Vec<String> = (0..r).map(|j| b.loop_index(j)).collect();
                Ok(vec![body(b, &idx)?])
            },
        )?;
        Ok(y.into_iter().next().expect("one result"))
    }

    /// The same elements viewed with another static shape (row-major).
    pub fn reshape(&mut self, v: &Val, shape: &[u64]) -> Res<Val> {
        if v.shape == shape {
            return Ok(v.clone());
        }
        let numel: u64 = shape.iter().product();
        if numel != v.numel() {
            return Err(format!(
                "cannot reshape {} elements into {shape:?}",
                v.numel()
            ));
        }
        // Collapse to 1-D (or rank 0), then expand: always a valid pair of
        // reassociations, and bufferizes to views without copies.
        let flat = if v.rank() <= 1 || shape.is_empty() {
            v.clone()
        } else {
            let all: Vec<String> = (0..v.rank()).map(|i| i.to_string()).collect();
            let to = tensor_ty(v.dtype, &[v.numel()]);
            let ssa = self.op(format!(
                "tensor.collapse_shape {} [[{}]] : {} into {to}",
                v.ssa,
                all.join(", "),
                v.ty()
            ));
            Val {
                ssa,
                dtype: v.dtype,
                shape: vec![v.numel()],
            }
        };
        let to = tensor_ty(v.dtype, shape);
        if shape.is_empty() {
            let ssa = self.op(format!(
                "tensor.collapse_shape {} [] : {} into {to}",
                flat.ssa,
                flat.ty()
            ));
            return Ok(Val {
                ssa,
                dtype: v.dtype,
                shape: vec![],
            });
        }
        if flat.shape.is_empty() {
            let ssa = self.op(format!(
                "tensor.expand_shape {} [] output_shape [{}] : {} into {to}",
                flat.ssa,
                join_u64(shape),
                flat.ty()
            ));
            return Ok(Val {
                ssa,
                dtype: v.dtype,
                shape: shape.to_vec(),
            });
        }
        if shape.len() == 1 {
            return Ok(flat);
        }
        let all: Vec<String> = (0..shape.len()).map(|i| i.to_string()).collect();
        let ssa = self.op(format!(
            "tensor.expand_shape {} [[{}]] output_shape [{}] : {} into {to}",
            flat.ssa,
            all.join(", "),
            join_u64(shape),
            flat.ty()
        ));
        Ok(Val {
            ssa,
            dtype: v.dtype,
            shape: shape.to_vec(),
        })
    }

    /// Pads with a constant value; `lo`/`hi` per dim. Written as a
    /// `linalg.generic` reading clamped positions and selecting the pad value
    /// outside the source, rather than `tensor.pad`, whose bufferization
    /// copies into a strided subview and so calls the `memrefCopy` runtime
    /// helper that Kiln artifacts do not link.
    pub fn pad(&mut self, v: &Val, lo: &[u64], hi: &[u64], value: f64) -> Res<Val> {
        if lo.iter().chain(hi).all(|&p| p == 0) {
            return Ok(v.clone());
        }
        let shape: Vec<u64> = v
            .shape
            .iter()
            .zip(lo.iter().zip(hi))
            .map(|(d, (l, h))| d + l + h)
            .collect();
        let r = v.rank();
        let (src, src_ty, dt) = (v.ssa.clone(), v.ty(), v.dtype);
        let e = elem(dt)?;
        let init = self.empty(dt, &shape)?;
        let res = self.generic(
            &vec![Iter::Par; r],
            &[],
            &[(init, identity_map(r))],
            |b, _| {
                let mut subs = Vec::new();
                let mut inside: Option<String> = None;
                for j in 0..r {
                    let i = b.loop_index(j);
                    if lo[j] == 0 && hi[j] == 0 {
                        subs.push(i);
                        continue;
                    }
                    let l = b.index(lo[j] as i64);
                    let s = b.op(format!("arith.subi {i}, {l} : index"));
                    let z = b.index(0);
                    let last = b.index(v.shape[j] as i64 - 1);
                    let ge = b.op(format!("arith.cmpi sge, {s}, {z} : index"));
                    let le = b.op(format!("arith.cmpi sle, {s}, {last} : index"));
                    let ok = b.op(format!("arith.andi {ge}, {le} : i1"));
                    inside = Some(match inside {
                        None => ok,
                        Some(p) => b.op(format!("arith.andi {p}, {ok} : i1")),
                    });
                    let c0 = b.op(format!("arith.maxsi {s}, {z} : index"));
                    subs.push(b.op(format!("arith.minsi {c0}, {last} : index")));
                }
                let x = b.op(format!(
                    "tensor.extract {src}[{}] : {src_ty}",
                    subs.join(", ")
                ));
                let p = b.num(value, dt)?;
                let inside = inside.expect("some dim is padded");
                Ok(vec![b.op(format!("arith.select {inside}, {x}, {p} : {e}"))])
            },
        )?;
        Ok(res.into_iter().next().expect("one result"))
    }
}

/// `1, 2, 3`.
pub(crate) fn join_u64(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}
