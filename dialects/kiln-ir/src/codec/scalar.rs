//! The scalar arithmetic the codecs are written against.
//!
//! A codec is written once, as a function generic over [`Scalar32`]; the
//! interpreter runs it on real `f32`/`i32` values ([`Exact`]) and the
//! lowering runs it on MLIR SSA names, emitting one `arith`/`math` op per
//! call. Every method therefore names exactly one MLIR operation on `f32` or
//! `i32` (documented on the method), so the two executions agree bit for bit
//! as long as each MLIR op means what the Rust operation means.

/// Integer comparison predicates (`arith.cmpi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ICmp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `slt`
    Slt,
    /// `sgt`
    Sgt,
}

impl ICmp {
    /// The `arith.cmpi` predicate name.
    pub fn mlir(self) -> &'static str {
        match self {
            ICmp::Eq => "eq",
            ICmp::Ne => "ne",
            ICmp::Slt => "slt",
            ICmp::Sgt => "sgt",
        }
    }
}

/// Float comparison predicates (`arith.cmpf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FCmp {
    /// `ogt`: ordered greater than (false when either is NaN).
    Ogt,
    /// `uno`: unordered (either is NaN).
    Uno,
}

impl FCmp {
    /// The `arith.cmpf` predicate name.
    pub fn mlir(self) -> &'static str {
        match self {
            FCmp::Ogt => "ogt",
            FCmp::Uno => "uno",
        }
    }
}

/// `f32` and `i32` scalar operations, one MLIR op each.
pub trait Scalar32 {
    /// An `f32` value.
    type F: Clone;
    /// An `i32` value (two's complement; shifts say whether they are logical).
    type I: Clone;
    /// An `i1` value.
    type B: Clone;

    /// `arith.constant v : f32`.
    fn fconst(&mut self, v: f32) -> Self::F;
    /// `arith.constant v : i32`.
    fn iconst(&mut self, v: i32) -> Self::I;
    /// `arith.bitcast : f32 to i32`.
    fn to_bits(&mut self, x: &Self::F) -> Self::I;
    /// `arith.bitcast : i32 to f32`.
    fn bits_to_f(&mut self, x: &Self::I) -> Self::F;
    /// `arith.andi`.
    fn and(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.ori`.
    fn or(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.xori`.
    fn xor(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.shli` (`b` in `0..32`).
    fn shl(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.shrui`, a logical shift (`b` in `0..32`).
    fn shru(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.addi` (wrapping).
    fn add(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.subi` (wrapping).
    fn sub(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.maxsi`.
    fn smax(&mut self, a: &Self::I, b: &Self::I) -> Self::I;
    /// `arith.cmpi`.
    fn icmp(&mut self, p: ICmp, a: &Self::I, b: &Self::I) -> Self::B;
    /// `arith.cmpf`.
    fn fcmp(&mut self, p: FCmp, a: &Self::F, b: &Self::F) -> Self::B;
    /// `arith.andi` on `i1`.
    fn band(&mut self, a: &Self::B, b: &Self::B) -> Self::B;
    /// `arith.ori` on `i1`.
    fn bor(&mut self, a: &Self::B, b: &Self::B) -> Self::B;
    /// `arith.select` on `i32`.
    fn isel(&mut self, c: &Self::B, t: &Self::I, f: &Self::I) -> Self::I;
    /// `arith.select` on `f32`.
    fn fsel(&mut self, c: &Self::B, t: &Self::F, f: &Self::F) -> Self::F;
    /// `math.absf`.
    fn fabs(&mut self, a: &Self::F) -> Self::F;
    /// `arith.mulf`.
    fn fmul(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// `arith.divf`.
    fn fdiv(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// `math.roundeven`.
    fn round_even(&mut self, a: &Self::F) -> Self::F;
    /// `arith.fptosi` (only applied to small exact integers here).
    fn ftoi(&mut self, a: &Self::F) -> Self::I;
    /// `arith.sitofp`.
    fn itof(&mut self, a: &Self::I) -> Self::F;
}

/// [`Scalar32`] on real values: what the interpreter and compile-time
/// quantization run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exact;

impl Scalar32 for Exact {
    type F = f32;
    type I = i32;
    type B = bool;

    fn fconst(&mut self, v: f32) -> f32 {
        v
    }
    fn iconst(&mut self, v: i32) -> i32 {
        v
    }
    fn to_bits(&mut self, x: &f32) -> i32 {
        x.to_bits() as i32
    }
    fn bits_to_f(&mut self, x: &i32) -> f32 {
        f32::from_bits(*x as u32)
    }
    fn and(&mut self, a: &i32, b: &i32) -> i32 {
        a & b
    }
    fn or(&mut self, a: &i32, b: &i32) -> i32 {
        a | b
    }
    fn xor(&mut self, a: &i32, b: &i32) -> i32 {
        a ^ b
    }
    fn shl(&mut self, a: &i32, b: &i32) -> i32 {
        a.wrapping_shl(*b as u32)
    }
    fn shru(&mut self, a: &i32, b: &i32) -> i32 {
        ((*a as u32) >> (*b as u32)) as i32
    }
    fn add(&mut self, a: &i32, b: &i32) -> i32 {
        a.wrapping_add(*b)
    }
    fn sub(&mut self, a: &i32, b: &i32) -> i32 {
        a.wrapping_sub(*b)
    }
    fn smax(&mut self, a: &i32, b: &i32) -> i32 {
        *a.max(b)
    }
    fn icmp(&mut self, p: ICmp, a: &i32, b: &i32) -> bool {
        match p {
            ICmp::Eq => a == b,
            ICmp::Ne => a != b,
            ICmp::Slt => a < b,
            ICmp::Sgt => a > b,
        }
    }
    fn fcmp(&mut self, p: FCmp, a: &f32, b: &f32) -> bool {
        match p {
            FCmp::Ogt => a > b,
            FCmp::Uno => a.is_nan() || b.is_nan(),
        }
    }
    fn band(&mut self, a: &bool, b: &bool) -> bool {
        *a && *b
    }
    fn bor(&mut self, a: &bool, b: &bool) -> bool {
        *a || *b
    }
    fn isel(&mut self, c: &bool, t: &i32, f: &i32) -> i32 {
        if *c {
            *t
        } else {
            *f
        }
    }
    fn fsel(&mut self, c: &bool, t: &f32, f: &f32) -> f32 {
        if *c {
            *t
        } else {
            *f
        }
    }
    fn fabs(&mut self, a: &f32) -> f32 {
        a.abs()
    }
    fn fmul(&mut self, a: &f32, b: &f32) -> f32 {
        a * b
    }
    fn fdiv(&mut self, a: &f32, b: &f32) -> f32 {
        a / b
    }
    fn round_even(&mut self, a: &f32) -> f32 {
        a.round_ties_even()
    }
    fn ftoi(&mut self, a: &f32) -> i32 {
        *a as i32
    }
    fn itof(&mut self, a: &i32) -> f32 {
        *a as f32
    }
}
