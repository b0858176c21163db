//! Helpers for pass unit tests: parse `.kir` text, run a pass, print, and
//! check with the reference interpreter that a rewrite kept the graph's
//! meaning on random inputs.

use crate::pass::{Pass, PassOptions, PassStats};
use kiln_interp::{run_graph, Tensor};
use kiln_ir::text::{parse, print};
use kiln_ir::{DType, Dim, Graph, OpKind, TensorType};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;

/// Parses `src` (panicking with the first error: test input is trusted).
pub fn graph(src: &str) -> Graph {
    match parse(src, "test.kir", None) {
        Ok(p) => p.graph,
        Err(e) => panic!("{}", e[0]),
    }
}

/// Runs `pass` on `src`, verifies the result, returns the printed graph
/// and the stats.
pub fn run(pass: &dyn Pass, src: &str) -> (String, PassStats) {
    let mut g = graph(src);
    let stats = pass
        .run(&mut g, &PassOptions::default())
        .expect("pass failed");
    if let Err(e) = kiln_ir::verify(&g) {
        panic!("{} broke the graph: {e:?}\n{}", pass.name(), print(&g));
    }
    (print(&g), stats)
}

/// Asserts that `pass` leaves `src` exactly as it was.
pub fn assert_unchanged(pass: &dyn Pass, src: &str) {
    let before = print(&graph(src));
    let (out, stats) = run(pass, src);
    assert!(!stats.changed(), "{} changed:\n{out}", pass.name());
    assert_eq!(out, before);
}

/// The ops of `g`'s nodes, constants left out.
pub fn ops(g: &Graph) -> Vec<OpKind> {
    g.nodes
        .iter()
        .map(|n| n.op)
        .filter(|&op| op != OpKind::Constant)
        .collect()
}

/// Number of nodes of op `op` in `g`.
pub fn count(g: &Graph, op: OpKind) -> usize {
    g.nodes.iter().filter(|n| n.op == op).count()
}

/// Overrides the random data of one graph input: `(name, type, rng)` to
/// `Some(tensor)`, or `None` for the default distribution.
pub type InputGen<'a> = &'a dyn Fn(&str, &TensorType, &mut StdRng) -> Option<Tensor>;

/// Random inputs for `g`: floats from a standard normal distribution,
/// bools fair coin flips, integers uniform in [-8, 8] (unsigned [0, 8]).
/// Symbolic dims get one random extent in 1..=5 per symbol, unknown dims
/// one per occurrence.
pub fn random_inputs(g: &Graph, rng: &mut StdRng, custom: InputGen<'_>) -> Vec<Tensor> {
    let mut syms: HashMap<String, u64> = HashMap::new();
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    g.inputs
        .iter()
        .map(|&v| {
            let info = g.value(v);
            if let Some(t) = custom(&info.name, &info.ty, rng) {
                return t;
            }
            let shape: Vec<u64> = info
                .ty
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Static(n) => *n,
                    Dim::Sym(s) => *syms
                        .entry(s.to_string())
                        .or_insert_with(|| rng.random_range(1..=5)),
                    Dim::Unknown => rng.random_range(1..=5),
                })
                .collect();
            let n: usize = shape.iter().product::<u64>() as usize;
            let dt = info.ty.dtype;
            if dt.is_float() {
                let v = (0..n).map(|_| normal.sample(rng)).collect();
                Tensor::from_f64(dt, shape, v)
            } else if dt == DType::Bool {
                let v = (0..n).map(|_| rng.random_bool(0.5)).collect();
                Tensor::from_bools(shape, v)
            } else {
                let lo = if dt.is_signed() { -8 } else { 0 };
                let v = (0..n).map(|_| rng.random_range(lo..=8)).collect();
                Tensor::from_ints(dt, shape, v)
            }
        })
        .collect()
}

/// Float inputs from a normal distribution of standard deviation `std`
/// (for half-precision graphs whose intermediates would otherwise be large
/// enough for rounding differences to dominate).
pub fn normal_floats(std: f64) -> impl Fn(&str, &TensorType, &mut StdRng) -> Option<Tensor> {
    move |_, ty, rng| {
        let shape = ty.static_shape()?;
        if !ty.dtype.is_float() {
            return None;
        }
        let normal = Normal::new(0.0, std).expect("valid normal");
        let n = shape.iter().product::<u64>() as usize;
        let v = (0..n).map(|_| normal.sample(rng)).collect();
        Some(Tensor::from_f64(ty.dtype, shape, v))
    }
}

/// Absolute and relative tolerance for comparing a rewritten graph's
/// results with the original's: a few units in the last place of the
/// dtype, scaled for the reassociation a rewrite may do (a recognized op
/// computes the same math in another order).
pub fn tolerance(dt: DType) -> (f64, f64) {
    match dt {
        DType::F64 => (1e-12, 1e-10),
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (2e-3, 1e-2),
        DType::BF16 => (2e-2, 4e-2),
        _ if dt.is_float() => (0.25, 0.25),
        _ => (0.0, 0.0),
    }
}

/// Asserts that `got` matches `want` element by element within the dtype's
/// [`tolerance`]; NaN must meet NaN and infinities equal infinities.
pub fn assert_close(want: &[Tensor], got: &[Tensor], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: result count");
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.dtype, g.dtype, "{what}: result #{i} dtype");
        assert_eq!(w.shape, g.shape, "{what}: result #{i} shape");
        let (atol, rtol) = tolerance(w.dtype);
        let (wv, gv) = (w.to_f64_vec(), g.to_f64_vec());
        for (j, (&a, &b)) in wv.iter().zip(&gv).enumerate() {
            let ok = if a.is_nan() || b.is_nan() {
                a.is_nan() && b.is_nan()
            } else if a.is_infinite() || b.is_infinite() {
                a == b
            } else {
                (a - b).abs() <= atol + rtol * a.abs()
            };
            assert!(ok, "{what}: result #{i} element {j}: want {a}, got {b}");
        }
    }
}

/// Runs `before` and `after` in the interpreter on `seeds` sets of random
/// inputs and asserts equal results (within tolerance).
pub fn assert_equivalent(before: &Graph, after: &Graph, seeds: u64, custom: InputGen<'_>) {
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(0x6b69_6c6e ^ seed);
        let inputs = random_inputs(before, &mut rng, custom);
        let want = run_graph(before, &inputs).expect("original graph runs");
        let got = run_graph(after, &inputs)
            .unwrap_or_else(|e| panic!("rewritten graph fails: {e}\n{}", print(after)));
        assert_close(&want, &got, &format!("seed {seed}\n{}", print(after)));
    }
}

/// Runs `pass` on `src`, verifies, checks equivalence on random inputs,
/// and returns the rewritten graph.
pub fn check_pass(pass: &dyn Pass, src: &str) -> Graph {
    check_pass_with(pass, src, &PassOptions::default(), &|_, _, _| None)
}

/// [`check_pass`] with options and custom input data.
pub fn check_pass_with(
    pass: &dyn Pass,
    src: &str,
    opts: &PassOptions,
    custom: InputGen<'_>,
) -> Graph {
    check_graph(pass, graph(src), opts, custom)
}

/// [`check_pass_with`] on a graph (weights of any size stay, where printing
/// and parsing would elide them).
pub fn check_graph(
    pass: &dyn Pass,
    before: Graph,
    opts: &PassOptions,
    custom: InputGen<'_>,
) -> Graph {
    let mut after = before.clone();
    pass.run(&mut after, opts).expect("pass failed");
    if let Err(e) = kiln_ir::verify(&after) {
        panic!("{} broke the graph: {e:?}\n{}", pass.name(), print(&after));
    }
    assert_equivalent(&before, &after, 3, custom);
    after
}

/// `weight @name : ...` text of an f32 weight of `shape` with normal values (plus `offset`; `abs` for
/// variances).
pub fn weight(name: &str, shape: &[u64], seed: u64, offset: f64, abs: bool) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let n: u64 = shape.iter().product();
    let vals: Vec<String> = (0..n)
        .map(|_| {
            let v: f64 = normal.sample(&mut rng);
            let v = if abs { v.abs() } else { v } + offset;
            format!("{:?}", v as f32)
        })
        .collect();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let ty = if dims.is_empty() {
        "f32".to_string()
    } else {
        format!("{}xf32", dims.join("x"))
    };
    format!(
        "weight @{name} : tensor<{ty}> = dense<[{}]>\n",
        vals.join(", ")
    )
}

/// BERT's extended attention mask: 0 for kept keys, -10000 for padding.
pub fn padding_mask(name: &str, ty: &TensorType, rng: &mut StdRng) -> Option<Tensor> {
    if name != "mask" {
        return None;
    }
    let shape = ty.static_shape()?;
    let n = shape.iter().product::<u64>() as usize;
    // Key 0 is always kept, so no query row is masked entirely.
    let v = (0..n)
        .map(|i| {
            if i % shape[shape.len() - 1] as usize == 0 || rng.random_bool(0.7) {
                0.0
            } else {
                -10000.0
            }
        })
        .collect();
    Some(Tensor::from_f64(ty.dtype, shape, v))
}

/// Runs a planned graph the way planned code does: every node result is
/// written to its home in one arena (or an output buffer), and operands are
/// read back from their homes, so two values the plan lets overlap while
/// both are live corrupt each other and change the results. Graph inputs
/// and constants are read as they are.
pub fn run_with_plan(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    use kiln_ir::plan::Home;
    let plan = g.memory_plan.as_ref().expect("a planned graph");
    let defs = g.defs();
    let mut arena = vec![0u8; plan.arena_bytes as usize];
    let mut outs: Vec<Vec<u8>> = g
        .outputs
        .iter()
        .map(|&v| vec![0u8; g.value(v).ty.storage_bytes().unwrap_or(0) as usize])
        .collect();
    let mut constants: HashMap<kiln_ir::ValueId, Tensor> = HashMap::new();
    let limits = kiln_interp::Limits::default();
    let read = |arena: &[u8], outs: &[Vec<u8>], constants: &HashMap<_, Tensor>, v| -> Tensor {
        if let Some(t) = constants.get(&v) {
            return t.clone();
        }
        let ty = &g.value(v).ty;
        let shape = ty.static_shape().expect("static");
        let n = ty.storage_bytes().unwrap() as usize;
        let bytes = match plan.home(g, &defs, v).expect("a home") {
            Home::Input(i) => return inputs[i].clone(),
            Home::Output(j) => outs[j][..n].to_vec(),
            Home::Arena(o) => arena[o as usize..o as usize + n].to_vec(),
            Home::Weight(_) => unreachable!("constants are evaluated"),
        };
        Tensor::from_bytes(ty.dtype, &shape, &bytes).expect("decodes")
    };
    for node in &g.nodes {
        let operands: Vec<Option<Tensor>> = node
            .inputs
            .iter()
            .map(|v| v.map(|v| read(&arena, &outs, &constants, v)))
            .collect();
        let refs: Vec<Option<&Tensor>> = operands.iter().map(Option::as_ref).collect();
        let results = kiln_interp::eval_node(g.weights(), node, &refs, &limits).expect("evaluates");
        for (&v, t) in node.outputs.iter().zip(results) {
            if node.op == OpKind::Constant {
                constants.insert(v, t);
                continue;
            }
            let bytes = t.to_bytes();
            match plan.home(g, &defs, v).expect("a home") {
                Home::Arena(o) => {
                    arena[o as usize..o as usize + bytes.len()].copy_from_slice(&bytes)
                }
                Home::Output(j) => outs[j][..bytes.len()].copy_from_slice(&bytes),
                // A view of a graph input is that input, unchanged.
                Home::Input(_) | Home::Weight(_) => {}
            }
        }
    }
    g.outputs
        .iter()
        .map(|&v| read(&arena, &outs, &constants, v))
        .collect()
}
