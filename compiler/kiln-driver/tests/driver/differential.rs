//! Differential testing of compiled code against the reference interpreter,
//! in the spirit of NNSmith: random valid Kiln graphs of the ops the
//! optimizer fuses and tiles and the kernels implement (contractions,
//! convolutions, elementwise chains with broadcasting, reductions,
//! normalizations in op and decomposed form, attention), random shapes
//! (1, primes, tile sizes ± 1, a few with at least 10^6 elements), inputs
//! drawn from normal, uniform and heavy-tailed distributions, in f32, f16
//! and bf16. Each graph is compiled through the driver's entry point
//! ([`kiln_driver::compile`] with [`CompileOptions::set_level`], as
//! `kiln compile -O<n>` does) at -O0..-O3, run at 1, 2 and 4 threads with
//! `KILN_PARALLEL_MIN_US=0` (so parallel regions and kernels do split), and
//! compared with `kiln_interp::run_graph`.
//!
//! - `differential_graphs_match_the_interpreter` generates graphs for a
//!   time budget (`KILN_DIFFERENTIAL_SECONDS`, default 150) from a base
//!   seed (`KILN_DIFFERENTIAL_SEED`, default: from the clock, printed) and
//!   prints how many graphs it ran. A failing graph is written to
//!   `testdata/differential/<family>-<seed>.kir` (weights inline, the
//!   inputs' seed and distributions in the header) and the test fails;
//!   rename the file after what broke and keep it.
//! - `differential_regressions_still_match` replays every `.kir` there. A
//!   file with a `// known-bug:` line is a bug not fixed yet: the replay
//!   asserts that it still fails (so a fix is noticed: then delete the line).
//!
//! Tolerances fit the dtype: an element passes when
//! `|got - want| <= tol * max(|want| + rms(want), smallest normal)`, tol 2e-5 for f32 (a few
//! hundred ULPs, for summation order and vectorized transcendental
//! functions), 1.5e-2 for f16 and 6e-2 for bf16 (about 15 and 8 ULPs: the
//! interpreter rounds after every op, compiled code may keep wider
//! intermediates in fused regions, and chains of up to a dozen ops add up).
//! Measured over ~180 graphs: at most 1.9e-6, 4.7e-3 and 3.1e-2 (each run
//! prints its largest error per dtype).
//! NaN passes only against NaN; the generator keeps ops in their domains,
//! so none is expected.
//!
//! In f16 and bf16 the interpreter's result is one of the right answers:
//! rounding after every op is what the graph says, and a fused region
//! that keeps f32 intermediates (attention recognized from its parts,
//! an epilogue) is right too. So such graphs are also run widened to f32
//! (the same inputs, weights and ops, every f16/bf16 value f32), and an
//! element passes when `|got - want| <= tol * scale + |want32 - want|`:
//! between the two references, within the tolerance. (Found by the
//! generator: a bf16 attention whose output element cancels, 0.0079 per
//! op-rounded reference, 0.0003 compiled with f32 scores; see
//! `testdata/differential/attention-bf16-f32-scores.kir`.)

use super::root;
use kiln_driver::tensors::HostTensor;
use kiln_driver::{compile, CompileOptions, OptLevel, Session, SessionOptions, Target};
use kiln_interp::Tensor;
use kiln_ir::{
    Attr, Attrs, Blob, DType, Graph, Node, OpKind, TensorType, ValueId, Weight, WeightData,
};
use rand_core::{Rng as _, SeedableRng};
use rand_xorshift::XorShiftRng;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LEVELS: [OptLevel; 4] = [OptLevel::O0, OptLevel::O1, OptLevel::O2, OptLevel::O3];
/// Thread counts and runs at each, in order: the shim runs a parallel
/// region's first three executions serially to time them (`SAMPLES` in
/// `parallel/shim.c`), so the runs at 2 and 4 threads take the parallel
/// path (kernels split at once with the threshold at 0).
const THREADS: [(u32, usize); 3] = [(1, 3), (2, 1), (4, 1)];

// ---------------------------------------------------------------------------
// Randomness.
// ---------------------------------------------------------------------------

/// A seeded generator (xorshift128, whose output `rand_xorshift` keeps
/// stable across versions, so a seed in a regression file keeps its inputs).
struct Rng(XorShiftRng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(XorShiftRng::seed_from_u64(seed))
    }
    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// How an input's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dist {
    /// Normal with this mean and standard deviation.
    Normal(f64, f64),
    /// Uniform in `[lo, hi)`.
    Uniform(f64, f64),
    /// Student's t with 3 degrees of freedom, scaled: heavy tails.
    HeavyTail(f64),
}

impl Dist {
    fn sample(self, r: &mut Rng) -> f64 {
        match self {
            Dist::Normal(m, s) => m + s * r.normal(),
            Dist::Uniform(lo, hi) => lo + (hi - lo) * r.unit(),
            Dist::HeavyTail(s) => {
                let z = r.normal();
                let chi2: f64 = (0..3).map(|_| r.normal().powi(2)).sum();
                s * z / (chi2 / 3.0).sqrt()
            }
        }
    }
    fn random(r: &mut Rng) -> Dist {
        match r.below(6) {
            0..=2 => Dist::Normal(0.0, [0.5, 1.0, 2.0][r.below(3) as usize]),
            3 => Dist::Normal(r.normal(), 1.0),
            4 => Dist::Uniform(-2.0, 2.0),
            _ => Dist::HeavyTail(0.7),
        }
    }
    fn to_header(self) -> String {
        match self {
            Dist::Normal(m, s) => format!("normal {m:?} {s:?}"),
            Dist::Uniform(lo, hi) => format!("uniform {lo:?} {hi:?}"),
            Dist::HeavyTail(s) => format!("heavy-tail {s:?}"),
        }
    }
    fn from_header(s: &str) -> Option<Dist> {
        let w: Vec<&str> = s.split_whitespace().collect();
        let f = |i: usize| w.get(i)?.parse::<f64>().ok();
        Some(match *w.first()? {
            "normal" => Dist::Normal(f(1)?, f(2)?),
            "uniform" => Dist::Uniform(f(1)?, f(2)?),
            "heavy-tail" => Dist::HeavyTail(f(1)?),
            _ => return None,
        })
    }
}

/// Extents the kernels and tilings care about: 1, primes, and tile sizes
/// (vectors of 8, 16, 32 lanes; 6, 12, 14 rows) and their neighbours.
fn dim(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => 1,
        1..=3 => r.pick(&[2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]),
        4..=7 => r.pick(&[
            5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65,
        ]),
        8 => r.range(2, 48),
        _ => r.pick(&[61, 67, 97, 127, 128, 129]),
    }
}

/// A small extent for spatial dims and channel counts.
fn small_dim(r: &mut Rng) -> u64 {
    r.pick(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17])
}

// ---------------------------------------------------------------------------
// Graph building.
// ---------------------------------------------------------------------------

/// A graph under construction: inputs with their distributions, and typed
/// nodes (result types from the ops' own inference).
struct Gen {
    g: Graph,
    r: Rng,
    /// The compute dtype of float values.
    dt: DType,
    dists: Vec<Dist>,
    names: usize,
}

impl Gen {
    fn new(seed: u64, dt: DType) -> Gen {
        Gen {
            g: Graph::new("differential"),
            r: Rng::new(seed),
            dt,
            dists: Vec::new(),
            names: 0,
        }
    }

    fn name(&mut self, base: &str) -> String {
        self.names += 1;
        format!("{base}{}", self.names)
    }

    fn input(&mut self, shape: &[u64], dist: Dist) -> ValueId {
        let name = self.name("x");
        self.dists.push(dist);
        self.g.add_input(&name, TensorType::fixed(self.dt, shape))
    }

    /// An input with a random distribution.
    fn data(&mut self, shape: &[u64]) -> ValueId {
        let d = Dist::random(&mut self.r);
        self.input(shape, d)
    }

    fn constant(&mut self, t: Tensor) -> ValueId {
        let name = self.name("w");
        let ty = TensorType::fixed(t.dtype, &t.shape);
        self.g.add_constant(
            &name,
            Weight {
                name: name.clone(),
                ty,
                data: WeightData::Bytes(Blob::from_vec(t.to_bytes())),
                source: None,
            },
        )
    }

    /// A weight (an `nn.constant`) of normal values with this scale.
    fn weight(&mut self, shape: &[u64], scale: f64) -> ValueId {
        let n = shape.iter().product::<u64>() as usize;
        let v = (0..n).map(|_| scale * self.r.normal()).collect();
        let t = Tensor::from_f64(self.dt, shape.to_vec(), v);
        self.constant(t)
    }

    fn ints(&mut self, v: &[i64]) -> ValueId {
        let t = Tensor::from_ints(
            DType::I64,
            vec![v.len() as u64],
            v.iter().map(|&x| i128::from(x)).collect(),
        );
        self.constant(t)
    }

    fn scalar(&mut self, v: f64) -> ValueId {
        let t = Tensor::from_f64(self.dt, vec![], vec![v]);
        self.constant(t)
    }

    /// Adds `op` with its result types from the op's inference.
    fn op_n(
        &mut self,
        op: OpKind,
        ins: &[Option<ValueId>],
        attrs: &[(&str, Attr)],
        n: usize,
    ) -> Vec<ValueId> {
        let attrs: Attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let defs = self.g.defs();
        let node = Node {
            op,
            inputs: ins.to_vec(),
            outputs: Vec::new(),
            attrs: attrs.clone(),
            loc: None,
            body: None,
        };
        let types = kiln_ir::verify::infer_node(&self.g, &node, &defs)
            .unwrap_or_else(|e| panic!("generator built an invalid {}: {e}", op.def().name));
        let results = types
            .into_iter()
            .take(n)
            .map(|t| (format!("v{}", self.names + 1), t))
            .collect::<Vec<_>>();
        self.names += 1;
        self.g.add_node(op, ins.to_vec(), attrs, results)
    }

    fn op(&mut self, op: OpKind, ins: &[ValueId], attrs: &[(&str, Attr)]) -> ValueId {
        let ins: Vec<Option<ValueId>> = ins.iter().map(|&v| Some(v)).collect();
        self.op_n(op, &ins, attrs, 1)[0]
    }

    fn shape(&self, v: ValueId) -> Vec<u64> {
        self.g.value(v).ty.static_shape().expect("static shapes")
    }

    /// A random unary activation applied to `x` (each keeps finite inputs
    /// finite).
    fn activation(&mut self, x: ValueId) -> ValueId {
        use OpKind::*;
        let op = self.r.pick(&[
            Relu,
            Sigmoid,
            Tanh,
            Gelu,
            Erf,
            Abs,
            Neg,
            Softplus,
            Softsign,
            LeakyRelu,
            HardSigmoid,
            HardSwish,
            Elu,
            Mish,
            Clip,
        ]);
        match op {
            LeakyRelu => self.op(op, &[x], &[("alpha", Attr::Float(0.1))]),
            Clip => {
                let lo = self.scalar(-1.5);
                let hi = self.scalar(2.0);
                self.op(op, &[x, lo, hi], &[])
            }
            Gelu if self.r.chance(0.5) => {
                self.op(op, &[x], &[("approximate", Attr::Str("tanh".into()))])
            }
            _ => self.op(op, &[x], &[]),
        }
    }

    /// A shape `shape` broadcasts with: some leading dims dropped, some
    /// dims set to 1.
    fn broadcastable(&mut self, shape: &[u64]) -> Vec<u64> {
        let drop = self.r.below(shape.len() as u64 + 1) as usize;
        let drop = if self.r.chance(0.6) { 0 } else { drop };
        shape[drop..]
            .iter()
            .map(|&d| if self.r.chance(0.3) { 1 } else { d })
            .collect()
    }

    /// A second operand for a binary op with `x`: an input, a weight or a
    /// scalar, of a shape that broadcasts with `x`'s.
    fn operand_for(&mut self, x: ValueId) -> ValueId {
        let shape = self.shape(x);
        match self.r.below(6) {
            0 => {
                let c = self.r.normal();
                self.scalar(c)
            }
            1 | 2 => {
                let s = self.broadcastable(&shape);
                self.weight(&s, 1.0)
            }
            _ => {
                let s = self.broadcastable(&shape);
                self.data(&s)
            }
        }
    }

    /// A random binary op between `x` and `y`, kept in its domain.
    fn binary(&mut self, x: ValueId, y: ValueId) -> ValueId {
        use OpKind::*;
        match self.r.below(7) {
            0 => self.op(Add, &[x, y], &[]),
            1 => self.op(Sub, &[x, y], &[]),
            2 => self.op(Mul, &[x, y], &[]),
            3 => {
                // x / (|y| + 0.5): away from zero.
                let a = self.op(Abs, &[y], &[]);
                let h = self.scalar(0.5);
                let d = self.op(Add, &[a, h], &[]);
                self.op(Div, &[x, d], &[])
            }
            4 => self.op(Max, &[x, y], &[]),
            5 => self.op(Min, &[x, y], &[]),
            _ => {
                // (|x| + 0.5) ^ tanh(y): a positive base, a bounded exponent.
                let a = self.op(Abs, &[x], &[]);
                let h = self.scalar(0.5);
                let b = self.op(Add, &[a, h], &[]);
                let e = self.op(Tanh, &[y], &[]);
                self.op(Pow, &[b, e], &[])
            }
        }
    }

    /// An elementwise chain of `len` ops on `x`: activations and binary ops
    /// with broadcast operands.
    fn chain(&mut self, mut x: ValueId, len: usize) -> ValueId {
        for _ in 0..len {
            x = if self.r.chance(0.5) {
                self.activation(x)
            } else {
                let y = self.operand_for(x);
                // The result must keep x's shape for the chain to continue.
                let out = self.binary(x, y);
                if self.shape(out) == self.shape(x) {
                    out
                } else {
                    self.activation(x)
                }
            };
        }
        x
    }

    fn finish(mut self, outputs: &[ValueId]) -> (Graph, Vec<Dist>) {
        self.g.outputs = outputs.to_vec();
        kiln_ir::verify(&self.g).unwrap_or_else(|e| {
            panic!(
                "generator built a graph that does not verify: {e:?}\n{}",
                kiln_ir::text::print(&self.g)
            )
        });
        (self.g, self.dists)
    }
}

// ---------------------------------------------------------------------------
// Families.
// ---------------------------------------------------------------------------

/// The kinds of graph generated.
const FAMILIES: &[&str] = &[
    "matmul",
    "gemm",
    "conv",
    "elementwise",
    "reduce",
    "norm",
    "attention",
];

/// Builds graph number `seed` of `family`; `large` asks for at least 10^6
/// elements somewhere.
fn build(family: &str, seed: u64, dt: DType, large: bool) -> (Graph, Vec<Dist>) {
    let mut gen = Gen::new(seed, dt);
    let outputs = match family {
        "matmul" => matmul(&mut gen, large),
        "gemm" => gemm(&mut gen, large),
        "conv" => conv(&mut gen, large),
        "elementwise" => elementwise(&mut gen, large),
        "reduce" => reduce(&mut gen, large),
        "norm" => norm(&mut gen, large),
        "attention" => attention(&mut gen),
        _ => unreachable!("unknown family {family}"),
    };
    gen.finish(&outputs)
}

/// Optionally an epilogue on a contraction result: bias, activation,
/// residual; sometimes the contraction itself is an output too.
fn epilogue(gen: &mut Gen, y: ValueId) -> Vec<ValueId> {
    let len = gen.r.below(4) as usize;
    let z = gen.chain(y, len);
    if z != y && gen.r.chance(0.25) {
        vec![z, y]
    } else {
        vec![z]
    }
}

fn matmul(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    let r = &mut gen.r;
    let (m, k, n) = if large {
        (
            r.pick(&[1024, 1031, 2048]),
            r.pick(&[3, 8, 16]),
            r.pick(&[1024, 1000, 513]),
        )
    } else {
        (dim(r), dim(r), dim(r))
    };
    // Batch dims: none, or one/two with broadcasting between the operands.
    let batch: Vec<u64> = match if large { 0 } else { r.below(3) } {
        0 => vec![],
        1 => vec![small_dim(r)],
        _ => vec![small_dim(r), small_dim(r)],
    };
    let a_batch: Vec<u64> = batch
        .iter()
        .map(|&d| if r.chance(0.2) { 1 } else { d })
        .collect();
    let b_batch: Vec<u64> = if r.chance(0.5) {
        vec![]
    } else {
        batch
            .iter()
            .map(|&d| if r.chance(0.2) { 1 } else { d })
            .collect()
    };
    let a_shape: Vec<u64> = a_batch.iter().copied().chain([m, k]).collect();
    let b_shape: Vec<u64> = b_batch.iter().copied().chain([k, n]).collect();
    let a = gen.data(&a_shape);
    let b = if b_batch.is_empty() && gen.r.chance(0.6) {
        gen.weight(&b_shape, 1.0 / (k as f64).sqrt())
    } else {
        gen.data(&b_shape)
    };
    let y = gen.op(OpKind::MatMul, &[a, b], &[]);
    epilogue(gen, y)
}

fn gemm(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    let r = &mut gen.r;
    let (m, k, n) = if large {
        (
            r.pick(&[1024, 1031]),
            r.pick(&[4, 16]),
            r.pick(&[1024, 977]),
        )
    } else {
        (dim(r), dim(r), dim(r))
    };
    let (ta, tb) = (r.chance(0.5), r.chance(0.5));
    let alpha = r.pick(&[1.0, 0.5, -1.25]);
    let beta = r.pick(&[1.0, 0.0, 2.0]);
    let c_shape: Option<Vec<u64>> = match r.below(6) {
        0 => None,
        1 => Some(vec![n]),
        2 => Some(vec![1, n]),
        3 => Some(vec![m, 1]),
        4 => Some(vec![m, n]),
        _ => Some(vec![]),
    };
    let a = gen.data(&if ta { [k, m] } else { [m, k] });
    let b_shape = if tb { [n, k] } else { [k, n] };
    let b = if gen.r.chance(0.6) {
        gen.weight(&b_shape, 1.0 / (k as f64).sqrt())
    } else {
        gen.data(&b_shape)
    };
    let c = c_shape.map(|s| {
        if gen.r.chance(0.5) {
            gen.weight(&s, 1.0)
        } else {
            gen.data(&s)
        }
    });
    let attrs = [
        ("alpha", Attr::Float(alpha)),
        ("beta", Attr::Float(beta)),
        ("trans_a", Attr::Bool(ta)),
        ("trans_b", Attr::Bool(tb)),
    ];
    let y = gen.op_n(OpKind::Gemm, &[Some(a), Some(b), c], &attrs, 1)[0];
    epilogue(gen, y)
}

fn conv(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    let r = &mut gen.r;
    let batch = r.pick(&[1, 1, 2]);
    let cin = if large { 16 } else { small_dim(r) };
    // Groups: ordinary, depthwise, or a divisor of both channel counts.
    let (groups, cout) = match r.below(4) {
        0 => (cin, cin * r.pick(&[1, 1, 2])),
        1 => {
            // The largest proper divisor of cin (1 for a prime): grouped,
            // not depthwise.
            let g = (1..cin).rev().find(|x| cin % x == 0).unwrap_or(1);
            (g, g * r.range(1, 3))
        }
        _ => (1, small_dim(r)),
    };
    let rank2 = !r.chance(0.15);
    let spatial = if rank2 { 2 } else { 1 };
    let kernel: Vec<u64> = (0..spatial).map(|_| r.pick(&[1, 2, 3, 3, 5])).collect();
    let strides: Vec<i64> = (0..spatial).map(|_| r.pick(&[1, 1, 2, 3])).collect();
    let dilations: Vec<i64> = (0..spatial).map(|_| r.pick(&[1, 1, 1, 2])).collect();
    let pads: Vec<i64> = (0..2 * spatial).map(|_| r.pick(&[0, 0, 1, 2])).collect();
    let extent: Vec<u64> = (0..spatial)
        .map(|i| {
            let need = (kernel[i] - 1) * dilations[i] as u64 + 1;
            let base = if large {
                256
            } else {
                r.pick(&[5, 7, 8, 9, 13, 16, 17, 23])
            };
            base.max(need)
        })
        .collect();
    let x_shape: Vec<u64> = [batch, cin].into_iter().chain(extent).collect();
    let w_shape: Vec<u64> = [cout, cin / groups]
        .into_iter()
        .chain(kernel.clone())
        .collect();
    let x = gen.data(&x_shape);
    let fan_in = (cin / groups) * kernel.iter().product::<u64>();
    let w = gen.weight(&w_shape, (2.0 / fan_in as f64).sqrt());
    let b = if gen.r.chance(0.7) {
        Some(gen.weight(&[cout], 0.1))
    } else {
        None
    };
    let attrs = [
        ("group", Attr::Int(groups as i64)),
        (
            "kernel_shape",
            Attr::Ints(kernel.iter().map(|&k| k as i64).collect()),
        ),
        ("strides", Attr::Ints(strides)),
        ("dilations", Attr::Ints(dilations)),
        ("pads", Attr::Ints(pads)),
    ];
    let y = gen.op_n(OpKind::Conv, &[Some(x), Some(w), b], &attrs, 1)[0];
    let mut outs = epilogue(gen, y);
    if rank2 && gen.r.chance(0.3) {
        let z = outs[0];
        let s = gen.shape(z);
        let k = s[2].min(s[3]).min(3) as i64;
        let op = gen.r.pick(&[OpKind::MaxPool, OpKind::AveragePool]);
        let stride = gen.r.pick(&[1, 2]);
        outs[0] = gen.op(
            op,
            &[z],
            &[
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![stride, stride])),
            ],
        );
    }
    outs
}

fn random_shape(r: &mut Rng, large: bool) -> Vec<u64> {
    if large {
        return r
            .pick(&[
                &[1024u64, 1031][..],
                &[4, 256, 1025][..],
                &[1 << 20][..],
                &[2, 33, 127, 129][..],
            ])
            .to_vec();
    }
    let rank = r.range(1, 4);
    (0..rank).map(|_| dim(r)).collect()
}

fn elementwise(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    let shape = random_shape(&mut gen.r, large);
    let x = gen.data(&shape);
    let len = gen.r.range(2, 8) as usize;
    let y = gen.chain(x, len);
    // Two chains meeting again (a fused region with two inputs).
    if gen.r.chance(0.4) {
        let other = gen.data(&shape);
        let len = gen.r.range(1, 4) as usize;
        let z = gen.chain(other, len);
        let joined = gen.binary(y, z);
        vec![joined]
    } else {
        vec![y]
    }
}

fn reduce(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    use OpKind::*;
    let shape = random_shape(&mut gen.r, large);
    let rank = shape.len();
    let op = gen.r.pick(&[
        ReduceSum,
        ReduceMean,
        ReduceMax,
        ReduceMin,
        ReduceL1,
        ReduceL2,
        ReduceSumSquare,
        ReduceLogSumExp,
        ReduceProd,
        ArgMax,
    ]);
    // Products of many values under/overflow: keep them near 1.
    let x = if op == ReduceProd {
        gen.input(&shape, Dist::Uniform(0.9, 1.1))
    } else {
        gen.data(&shape)
    };
    let pre = if gen.r.chance(0.3) && op != ReduceProd {
        gen.activation(x)
    } else {
        x
    };
    let keep = gen.r.chance(0.5);
    if op == ArgMax {
        // Ties are improbable with continuous inputs; compared exactly.
        let axis =
            gen.r.below(rank as u64) as i64 - if gen.r.chance(0.5) { rank as i64 } else { 0 };
        return vec![gen.op(
            op,
            &[pre],
            &[("axis", Attr::Int(axis)), ("keepdims", Attr::Bool(keep))],
        )];
    }
    let mut axes: Vec<i64> = (0..rank as i64).filter(|_| gen.r.chance(0.5)).collect();
    if axes.is_empty() {
        axes.push(gen.r.below(rank as u64) as i64);
    }
    // Some axes negative, in any order.
    let axes: Vec<i64> = axes
        .into_iter()
        .rev()
        .map(|a| {
            if gen.r.chance(0.3) {
                a - rank as i64
            } else {
                a
            }
        })
        .collect();
    let axes_v = gen.ints(&axes);
    vec![gen.op(op, &[pre, axes_v], &[("keepdims", Attr::Bool(keep))])]
}

fn norm(gen: &mut Gen, large: bool) -> Vec<ValueId> {
    use OpKind::*;
    let shape = if large {
        random_shape(&mut gen.r, true)
    } else {
        let r = &mut gen.r;
        let rank = r.range(2, 4);
        (0..rank).map(|_| dim(r)).collect()
    };
    let rank = shape.len() as i64;
    let x = gen.data(&shape);
    let last = *shape.last().unwrap();
    let y = match gen.r.below(7) {
        0 | 1 => {
            let axis = gen.r.below(rank as u64) as i64 - if gen.r.chance(0.5) { rank } else { 0 };
            let op = gen.r.pick(&[Softmax, LogSoftmax]);
            gen.op(op, &[x], &[("axis", Attr::Int(axis))])
        }
        2 => {
            // Layer norm over the last 1 or 2 dims.
            let axis = if rank >= 3 && gen.r.chance(0.3) {
                -2
            } else {
                -1
            };
            let norm_shape: Vec<u64> = shape[(rank + axis) as usize..].to_vec();
            let g = gen.weight(&norm_shape, 1.0);
            let b = gen.weight(&norm_shape, 0.5);
            gen.op(
                LayerNorm,
                &[x, g, b],
                &[("axis", Attr::Int(axis)), ("epsilon", Attr::Float(1e-5))],
            )
        }
        3 => {
            let g = gen.weight(&[last], 1.0);
            gen.op(
                RmsNorm,
                &[x, g],
                &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-6))],
            )
        }
        4 => decomposed_layer_norm(gen, x, last),
        5 => decomposed_softmax(gen, x),
        _ => {
            // Decomposed GELU: 0.5 x (1 + erf(x / sqrt 2)).
            let c = gen.scalar(std::f64::consts::FRAC_1_SQRT_2);
            let s = gen.op(Mul, &[x, c], &[]);
            let e = gen.op(Erf, &[s], &[]);
            let one = gen.scalar(1.0);
            let p = gen.op(Add, &[e, one], &[]);
            let h = gen.scalar(0.5);
            let xh = gen.op(Mul, &[x, h], &[]);
            gen.op(Mul, &[xh, p], &[])
        }
    };
    vec![y]
}

/// `(x - mean) / sqrt(var + eps) * g + b` over the last axis, as PyTorch
/// exports it (what recognize-norms looks for).
fn decomposed_layer_norm(gen: &mut Gen, x: ValueId, last: u64) -> ValueId {
    use OpKind::*;
    let axes = gen.ints(&[-1]);
    let mean = gen.op(ReduceMean, &[x, axes], &[("keepdims", Attr::Bool(true))]);
    let d = gen.op(Sub, &[x, mean], &[]);
    let sq = gen.op(Mul, &[d, d], &[]);
    let axes = gen.ints(&[-1]);
    let var = gen.op(ReduceMean, &[sq, axes], &[("keepdims", Attr::Bool(true))]);
    let eps = gen.scalar(1e-5);
    let ve = gen.op(Add, &[var, eps], &[]);
    let sd = gen.op(Sqrt, &[ve], &[]);
    let n = gen.op(Div, &[d, sd], &[]);
    let g = gen.weight(&[last], 1.0);
    let b = gen.weight(&[last], 0.5);
    let s = gen.op(Mul, &[n, g], &[]);
    gen.op(Add, &[s, b], &[])
}

/// `exp(x - max(x)) / sum(exp(x - max(x)))` over the last axis.
fn decomposed_softmax(gen: &mut Gen, x: ValueId) -> ValueId {
    use OpKind::*;
    let axes = gen.ints(&[-1]);
    let m = gen.op(ReduceMax, &[x, axes], &[("keepdims", Attr::Bool(true))]);
    let d = gen.op(Sub, &[x, m], &[]);
    let e = gen.op(Exp, &[d], &[]);
    let axes = gen.ints(&[-1]);
    let s = gen.op(ReduceSum, &[e, axes], &[("keepdims", Attr::Bool(true))]);
    gen.op(Div, &[e, s], &[])
}

fn attention(gen: &mut Gen) -> Vec<ValueId> {
    use OpKind::*;
    let r = &mut gen.r;
    let b = r.pick(&[1, 1, 2]);
    let h = r.pick(&[1, 2, 3, 4]);
    let sq = dim(r).min(65);
    let sk = if r.chance(0.5) { sq } else { dim(r).min(65) };
    let d = r.pick(&[8, 16, 17, 32, 64]);
    let q = gen.input(&[b, h, sq, d], Dist::Normal(0.0, 1.0));
    let k = gen.input(&[b, h, sk, d], Dist::Normal(0.0, 1.0));
    let v = gen.data(&[b, h, sk, d]);
    let scale = 1.0 / (d as f64).sqrt();
    if gen.r.chance(0.5) {
        let causal = sq == sk && gen.r.chance(0.5);
        let attrs = [
            ("is_causal", Attr::Bool(causal)),
            ("scale", Attr::Float(scale)),
        ];
        return vec![gen.op_n(Attention, &[Some(q), Some(k), Some(v)], &attrs, 1)[0]];
    }
    // softmax(Q K^T * scale) V, as exported models spell it.
    let kt = gen.op(Transpose, &[k], &[("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
    let s = gen.op(MatMul, &[q, kt], &[]);
    let c = gen.scalar(scale);
    let s = gen.op(Mul, &[s, c], &[]);
    let p = gen.op(Softmax, &[s], &[("axis", Attr::Int(-1))]);
    vec![gen.op(MatMul, &[p, v], &[])]
}

// ---------------------------------------------------------------------------
// Running and comparing.
// ---------------------------------------------------------------------------

/// Per-dtype tolerance (see the module doc).
fn tolerance(dt: DType) -> f64 {
    match dt {
        DType::F16 => 1.5e-2,
        DType::BF16 => 6e-2,
        _ => 2e-5,
    }
}

/// The graph's inputs, drawn from `dists` with a generator seeded by
/// `seed`, in input order.
fn make_inputs(g: &Graph, dists: &[Dist], seed: u64) -> Vec<Tensor> {
    let mut r = Rng::new(seed ^ 0x5eed_1297_a4c3_0b11);
    g.inputs
        .iter()
        .zip(dists)
        .map(|(&v, &d)| {
            let ty = &g.value(v).ty;
            let shape = ty.static_shape().unwrap();
            let n = shape.iter().product::<u64>() as usize;
            let vals = (0..n).map(|_| d.sample(&mut r)).collect();
            Tensor::from_f64(ty.dtype, shape, vals)
        })
        .collect()
}

/// The smallest positive normal number of float dtype `dt`.
fn smallest_normal(dt: DType) -> f64 {
    match dt {
        DType::F16 => 6.103_515_625e-5,
        DType::F64 => f64::MIN_POSITIVE,
        _ => f64::from(f32::MIN_POSITIVE),
    }
}

/// `g` with every f16 and bf16 value and weight widened to f32 (the
/// weights' values exactly; casts keep their `to`), or `None` when it has
/// none.
fn widened(g: &Graph) -> Option<Graph> {
    let narrow = |d: DType| matches!(d, DType::F16 | DType::BF16);
    let mut w = g.clone();
    let mut changed = false;
    for i in 0..w.num_values() {
        let ty = w.value_ty_mut(ValueId(i as u32));
        if narrow(ty.dtype) {
            ty.dtype = DType::F32;
            changed = true;
        }
    }
    for n in 0..w.nodes.len() {
        let Some(Attr::Weight(id)) = w.nodes[n].attrs.get("value").cloned() else {
            continue;
        };
        let old = w.weight(id).clone();
        if w.nodes[n].op != OpKind::Constant || !narrow(old.ty.dtype) {
            continue;
        }
        let shape = old.ty.static_shape()?;
        let t = Tensor::from_bytes(old.ty.dtype, &shape, old.bytes()?.bytes()).ok()?;
        let wide = Tensor::from_f64(DType::F32, shape.clone(), t.to_f64_vec());
        let id = w.add_weight(Weight {
            name: format!("{}.f32", old.name),
            ty: TensorType::fixed(DType::F32, &shape),
            data: WeightData::Bytes(Blob::from_vec(wide.to_bytes())),
            source: None,
        });
        w.nodes[n].attrs.insert("value".into(), Attr::Weight(id));
    }
    if !changed {
        return None;
    }
    w.gc_weights();
    Some(w)
}

/// The largest element error (see the module doc) of a compiled result
/// that matches the interpreter's (`want`; in f16/bf16 also `wide`, the
/// widened graph's), or why it does not match.
fn compare(
    want: &Tensor,
    wide: Option<&Tensor>,
    got: &HostTensor,
    tol: f64,
) -> Result<f64, String> {
    if got.shape != want.shape || got.dtype != want.dtype {
        return Err(format!(
            "{} {:?}, expected {} {:?}",
            got.dtype.name(),
            got.shape,
            want.dtype.name(),
            want.shape
        ));
    }
    let w = want.to_f64_vec();
    // f32 directly: the generic decoding is slow in a debug build, and the
    // large cases are f32.
    let g = if got.dtype == DType::F32 {
        got.data
            .as_ref()
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    } else {
        got.to_f64().ok_or("undecodable output")?
    };
    if !want.dtype.is_float() {
        return match w.iter().zip(&g).position(|(a, b)| a != b) {
            None => Ok(0.0),
            Some(bad) => Err(format!("element {bad}: {} vs {}", g[bad], w[bad])),
        };
    }
    // How far the two right answers are apart, per element (0 without a
    // widened reference).
    let spread: Vec<f64> = match wide.map(Tensor::to_f64_vec) {
        Some(w32) if w32.len() == w.len() => w32
            .iter()
            .zip(&w)
            .map(|(a, b)| {
                let d = (a - b).abs();
                if d.is_finite() {
                    d
                } else {
                    0.0
                }
            })
            .collect(),
        _ => vec![0.0; w.len()],
    };
    let finite: Vec<f64> = w.iter().copied().filter(|v| v.is_finite()).collect();
    let rms = (finite.iter().map(|v| v * v).sum::<f64>() / finite.len().max(1) as f64).sqrt();
    let mut worst = (0.0f64, 0usize);
    for (i, (&wv, &gv)) in w.iter().zip(&g).enumerate() {
        if wv.is_nan() || gv.is_nan() {
            if wv.is_nan() != gv.is_nan() {
                return Err(format!("element {i}: {gv} vs {wv}"));
            }
            continue;
        }
        if wv.is_infinite() || gv.is_infinite() {
            if wv != gv {
                return Err(format!("element {i}: {gv} vs {wv}"));
            }
            continue;
        }
        // Below the dtype's smallest normal number the scale is that number:
        // a product that underflows may end as 0 or as a subnormal
        // depending on the order of operations, both right.
        let e = ((gv - wv).abs() - spread[i]).max(0.0)
            / (wv.abs() + rms).max(smallest_normal(want.dtype));
        if e > worst.0 {
            worst = (e, i);
        }
    }
    if worst.0 > tol {
        return Err(format!(
            "element {}: {} vs {} (error {:.3e} > {tol:e}, rms {rms:.3e})",
            worst.1, g[worst.1], w[worst.1], worst.0
        ));
    }
    Ok(worst.0)
}

/// What checking one graph found.
#[derive(Default)]
struct Outcome {
    compiles: usize,
    runs: usize,
    /// Seconds in the interpreter, compiling, and running compiled code.
    times: [f64; 3],
    /// The largest element error of a run that matched.
    worst: f64,
    /// The first mismatch or failure, with where it happened.
    failure: Option<String>,
}

/// Compiles `g` at every level and runs it at every thread count against
/// the interpreter on `inputs`.
fn check_graph(g: &Graph, inputs: &[Tensor], dir: &Path) -> Outcome {
    let mut out = Outcome::default();
    let t = Instant::now();
    let want = kiln_interp::run_graph(g, inputs);
    out.times[0] = t.elapsed().as_secs_f64();
    let want = match want {
        Ok(w) => w,
        Err(e) => {
            out.failure = Some(format!("the interpreter failed: {e}"));
            return out;
        }
    };
    let host: Vec<HostTensor> = g
        .inputs
        .iter()
        .zip(inputs)
        .map(|(&v, t)| HostTensor::from_interp(&g.value(v).name, t))
        .collect();
    let tol = g
        .inputs
        .first()
        .map_or(1e-4, |&v| tolerance(g.value(v).ty.dtype));
    // f16/bf16: the widened graph's result, on the same input values.
    let wide = widened(g).and_then(|wg| {
        let ins: Vec<Tensor> = inputs
            .iter()
            .map(|t| match t.dtype {
                DType::F16 | DType::BF16 => {
                    Tensor::from_f64(DType::F32, t.shape.clone(), t.to_f64_vec())
                }
                _ => t.clone(),
            })
            .collect();
        kiln_interp::run_graph(&wg, &ins).ok()
    });
    for level in LEVELS {
        let so = dir.join(format!("o{}.so", level.number()));
        let mut opts = CompileOptions::new(Target::host().unwrap(), Some(so.clone()));
        opts.set_level(level);
        out.compiles += 1;
        let t = Instant::now();
        let compiled = compile(g.clone(), &opts);
        out.times[1] += t.elapsed().as_secs_f64();
        if let Err(e) = compiled {
            out.failure = Some(format!("-O{}: compile failed: {e}", level.number()));
            return out;
        }
        let session = match Session::open(&so, &SessionOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                out.failure = Some(format!("-O{}: load failed: {e}", level.number()));
                return out;
            }
        };
        for (threads, runs) in THREADS {
            session.set_num_threads(threads).unwrap();
            for run in 0..runs {
                out.runs += 1;
                let t = Instant::now();
                let got = session.run(&host);
                out.times[2] += t.elapsed().as_secs_f64();
                let got = match got {
                    Ok(got) => got,
                    Err(e) => {
                        out.failure = Some(format!(
                            "-O{}, {threads} threads, run {run}: {e}",
                            level.number()
                        ));
                        return out;
                    }
                };
                if got.len() != want.len() {
                    out.failure = Some(format!("{} outputs, expected {}", got.len(), want.len()));
                    return out;
                }
                for (i, (w, gt)) in want.iter().zip(&got).enumerate() {
                    match compare(w, wide.as_ref().and_then(|x| x.get(i)), gt, tol) {
                        Ok(e) => out.worst = out.worst.max(e),
                        Err(why) => {
                            out.failure = Some(format!(
                                "-O{}, {threads} threads, run {run}, output {i}: {why}",
                                level.number()
                            ));
                            return out;
                        }
                    }
                }
            }
        }
    }
    out
}

fn regressions_dir() -> PathBuf {
    root().join("testdata/differential")
}

/// The `.kir` text of a failing graph: the graph with weights inline, and
/// a header the replay reads (the inputs' seed and distributions).
fn regression_text(family: &str, seed: u64, dists: &[Dist], g: &Graph, failure: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Differential regression: family {family}, seed {seed}."
    );
    let _ = writeln!(s, "// Found: {}", failure.replace('\n', " "));
    let _ = writeln!(s, "// input-seed: {seed}");
    for d in dists {
        let _ = writeln!(s, "// input: {}", d.to_header());
    }
    let opts = kiln_ir::text::PrintOptions {
        inline_limit: usize::MAX,
    };
    s.push_str(&kiln_ir::text::print_with(g, &opts));
    s
}

/// The dtype graph `seed` computes in: mostly f32, some f16 and bf16.
fn dtype_for(seed: u64) -> DType {
    match seed % 8 {
        5 => DType::F16,
        7 => DType::BF16,
        _ => DType::F32,
    }
}

/// The child process: generates graphs until the budget is spent.
fn generate_for(budget: Duration, base_seed: u64) {
    let start = Instant::now();
    let mut per_family: HashMap<&str, usize> = HashMap::new();
    // The largest error seen per compute dtype, against its tolerance.
    let mut worst: HashMap<&str, f64> = HashMap::new();
    let (mut graphs, mut compiles, mut runs) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < budget {
        let seed = base_seed.wrapping_add(i);
        let family = FAMILIES[(seed % FAMILIES.len() as u64) as usize];
        // Every 16th graph is a large one (10^6 elements or more).
        let large = seed % 16 == 9 && family != "attention";
        let dt = if large {
            DType::F32
        } else {
            dtype_for(seed / 7)
        };
        i += 1;
        let (g, dists) = build(family, seed, dt, large);
        let inputs = make_inputs(&g, &dists, seed);
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let out = check_graph(&g, &inputs, dir.path());
        if std::env::var_os("KILN_DIFFERENTIAL_VERBOSE").is_some() {
            eprintln!(
                "differential: {family} seed {seed} {} {}: {:.1} s (interpreter {:.1} s, compile {:.1} s, run {:.1} s)",
                dt.name(),
                if large { "large" } else { "" },
                t0.elapsed().as_secs_f64(),
                out.times[0],
                out.times[1],
                out.times[2]
            );
        }
        let w = worst.entry(dt.name()).or_default();
        *w = w.max(out.worst);
        graphs += 1;
        compiles += out.compiles;
        runs += out.runs;
        *per_family.entry(family).or_default() += 1;
        if let Some(failure) = out.failure {
            let path = regressions_dir().join(format!("{family}-{seed}.kir"));
            std::fs::create_dir_all(regressions_dir()).unwrap();
            std::fs::write(&path, regression_text(family, seed, &dists, &g, &failure)).unwrap();
            eprintln!(
                "differential: {family} seed {seed} ({}): {failure}\n  kept as {}",
                dt.name(),
                path.display()
            );
            failures.push(format!("{}: {failure}", path.display()));
        }
    }
    let mut fams: Vec<_> = per_family.into_iter().collect();
    fams.sort();
    let mut worst: Vec<String> = worst
        .into_iter()
        .map(|(d, e)| format!("{d} {e:.1e}"))
        .collect();
    worst.sort();
    println!(
        "differential: {graphs} graphs ({compiles} compiles at -O0..-O3, {runs} runs at 1/2/4 threads) \
         in {:.0} s, seeds {base_seed}..{}, by family {fams:?}, largest error by dtype [{}]; {} failed",
        start.elapsed().as_secs_f64(),
        base_seed.wrapping_add(i),
        worst.join(", "),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} graph(s) differ from the interpreter (kept under testdata/differential/; rename each \
         after what broke):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `test` in a child process of this test binary with
/// `KILN_PARALLEL_MIN_US=0` (the shim reads it once per process; setting
/// it here would race with other tests) and the given environment.
fn in_child(test: &str, env: &[(&str, String)]) {
    const CHILD: &str = "KILN_TEST_DIFFERENTIAL_CHILD";
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .env(kiln_codegen::parallel::MIN_US_ENV, "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The summary line, for the test log.
    for line in stdout.lines() {
        if let Some(at) = line.find("differential: ") {
            println!("{}", &line[at..]);
        }
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child() -> bool {
    std::env::var_os("KILN_TEST_DIFFERENTIAL_CHILD").is_some()
}

#[test]
fn differential_graphs_match_the_interpreter() {
    const TEST: &str = "differential::differential_graphs_match_the_interpreter";
    if is_child() {
        let secs: u64 = std::env::var("KILN_DIFFERENTIAL_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(150);
        let seed: u64 = std::env::var("KILN_DIFFERENTIAL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap();
        generate_for(Duration::from_secs(secs), seed);
        return;
    }
    let seed = std::env::var("KILN_DIFFERENTIAL_SEED").unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (now.as_secs() % 1_000_000 * 1000).to_string()
    });
    println!("differential: base seed {seed} (reproduce with KILN_DIFFERENTIAL_SEED={seed})");
    in_child(TEST, &[("KILN_DIFFERENTIAL_SEED", seed)]);
}

/// A regression file's header fields.
struct Header {
    input_seed: u64,
    dists: Vec<Dist>,
    known_bug: Option<String>,
}

fn read_header(text: &str) -> Option<Header> {
    let mut seed = None;
    let mut dists = Vec::new();
    let mut known_bug = None;
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let line = line.trim_start_matches('/').trim();
        if let Some(s) = line.strip_prefix("input-seed:") {
            seed = s.trim().parse().ok();
        } else if let Some(d) = line.strip_prefix("input:") {
            dists.push(Dist::from_header(d)?);
        } else if let Some(b) = line.strip_prefix("known-bug:") {
            known_bug = Some(b.trim().to_string());
        }
    }
    Some(Header {
        input_seed: seed?,
        dists,
        known_bug,
    })
}

#[test]
fn differential_regressions_still_match() {
    const TEST: &str = "differential::differential_regressions_still_match";
    if !is_child() {
        in_child(TEST, &[]);
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(regressions_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kir"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regressions under testdata/differential"
    );
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let header = read_header(&text)
            .unwrap_or_else(|| panic!("{}: no input-seed/input header", path.display()));
        let g = kiln_ir::text::parse(&text, &path.display().to_string(), path.parent())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
            .graph;
        assert_eq!(header.dists.len(), g.inputs.len(), "{}", path.display());
        let inputs = make_inputs(&g, &header.dists, header.input_seed);
        let dir = tempfile::tempdir().unwrap();
        let out = check_graph(&g, &inputs, dir.path());
        match (&header.known_bug, out.failure) {
            (None, None) => {}
            (None, Some(f)) => problems.push(format!("{}: {f}", path.display())),
            (Some(bug), Some(f)) => {
                println!(
                    "FIXME {}: known bug ({bug}) still fails: {f}",
                    path.display()
                )
            }
            (Some(bug), None) => problems.push(format!(
                "{}: the known bug ({bug}) is fixed: remove the known-bug line",
                path.display()
            )),
        }
    }
    println!("differential: replayed {} regression graphs", files.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
