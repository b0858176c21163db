//! Lowering tests: each builds a tiny graph with the IR API, lowers it, runs
//! [`CPU_PIPELINE`] through `mlir-opt-22`, compiles with `mlir-translate-22`,
//! `llc-22` and `ld.lld-22`, loads the library and calls `kiln_main` with
//! bare pointers. Expected values are computed in the tests from the op
//! definitions (plain loops) or are published constants (erf).

use super::*;
use kiln_ir::{Blob, Weight, WeightData};
use std::path::Path;
use std::process::Command;

// ---- graph building ----

fn node(
    g: &mut Graph,
    op: OpKind,
    ins: &[Option<kiln_ir::ValueId>],
    attrs: &[(&str, Attr)],
) -> Vec<kiln_ir::ValueId> {
    node_n(g, op, ins, attrs, 1)
}

fn node_n(
    g: &mut Graph,
    op: OpKind,
    ins: &[Option<kiln_ir::ValueId>],
    attrs: &[(&str, Attr)],
    num_outputs: usize,
) -> Vec<kiln_ir::ValueId> {
    let attrs: kiln_ir::Attrs = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let defs = g.defs();
    let tys: Vec<Option<TensorType>> = ins
        .iter()
        .map(|i| i.map(|v| g.value(v).ty.clone()))
        .collect();
    let ty_refs: Vec<Option<&TensorType>> = tys.iter().map(Option::as_ref).collect();
    let consts: Vec<Option<ConstOperand<'_>>> = ins
        .iter()
        .map(|i| {
            let w = g.constant_weight(&defs, (*i)?)?;
            let w = g.weight(w);
            Some(ConstOperand {
                ty: &w.ty,
                data: w.bytes()?,
            })
        })
        .collect();
    let ctx = InferCtx {
        def: op.def(),
        inputs: &ty_refs,
        attrs: &attrs,
        consts: &consts,
        num_outputs,
        weight_ty: None,
        body: None,
    };
    let out = (op.def().infer)(&ctx).expect("test graphs are valid");
    drop(consts);
    let results = out
        .into_iter()
        .take(num_outputs)
        .enumerate()
        .map(|(i, t)| (format!("r{i}"), t))
        .collect();
    g.add_node(op, ins.to_vec(), attrs, results)
}

fn node1(
    g: &mut Graph,
    op: OpKind,
    ins: &[kiln_ir::ValueId],
    attrs: &[(&str, Attr)],
) -> kiln_ir::ValueId {
    let ins: Vec<_> = ins.iter().map(|&v| Some(v)).collect();
    node(g, op, &ins, attrs)[0]
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn konst(g: &mut Graph, dtype: DType, shape: &[u64], bytes: Vec<u8>) -> kiln_ir::ValueId {
    g.add_constant(
        "c",
        Weight {
            name: "w".into(),
            ty: TensorType::fixed(dtype, shape),
            data: WeightData::Bytes(Blob::from_vec(bytes)),
            source: None,
        },
    )
}

fn kf32(g: &mut Graph, shape: &[u64], v: &[f32]) -> kiln_ir::ValueId {
    konst(g, DType::F32, shape, f32_bytes(v))
}

fn ki64(g: &mut Graph, v: &[i64]) -> kiln_ir::ValueId {
    konst(
        g,
        DType::I64,
        &[v.len() as u64],
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn input(g: &mut Graph, shape: &[u64]) -> kiln_ir::ValueId {
    g.add_input("x", TensorType::fixed(DType::F32, shape))
}

// ---- compile and run ----

fn tool(cmd: &mut Command) {
    let out = cmd.output().expect("LLVM 22 tools are installed");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The parallel shim's object, built once: in the system's temporary folder under a name holding
/// a hash of the shim's text (written to a unique file and renamed, so concurrent test processes
/// never see half an object).
fn shim_object() -> &'static Path {
    use std::hash::{Hash, Hasher};
    static SHIM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let text = crate::parallel::shim_module();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let path =
            std::env::temp_dir().join(format!("kiln-lower-tests-shim-{:016x}.o", h.finish()));
        if path.is_file() {
            return path;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("shim.mlir"), text).expect("write");
        tool(
            Command::new("mlir-translate-22")
                .current_dir(dir.path())
                .args(["--mlir-to-llvmir", "shim.mlir", "-o", "shim.ll"]),
        );
        tool(Command::new("llc-22").current_dir(dir.path()).args([
            "-O2",
            "-filetype=obj",
            "-relocation-model=pic",
            "shim.ll",
            "-o",
            "shim.o",
        ]));
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::copy(dir.path().join("shim.o"), &tmp).expect("copy shim.o");
        std::fs::rename(&tmp, &path).expect("rename shim.o");
        path
    })
}

fn build(m: &LoweredModule, dir: &Path) -> libloading::Library {
    std::fs::write(dir.join("in.mlir"), &m.mlir).expect("write");
    let pipe = format!("--pass-pipeline={}", m.pipeline_hint);
    tool(
        Command::new("mlir-opt-22")
            .current_dir(dir)
            .args(["in.mlir", &pipe, "-o", "ll.mlir"]),
    );
    tool(Command::new("mlir-translate-22").current_dir(dir).args([
        "--mlir-to-llvmir",
        "ll.mlir",
        "-o",
        "m.ll",
    ]));
    tool(Command::new("llc-22").current_dir(dir).args([
        "-O2",
        "-filetype=obj",
        "-relocation-model=pic",
        "m.ll",
        "-o",
        "m.o",
    ]));
    // The OpenMP entry points that parallel loops call come from the shim
    // every artifact carries; without `kiln_entry` its loops run serially.
    let shim = shim_object();
    tool(Command::new("ld.lld-22").current_dir(dir).args([
        "-shared",
        "m.o",
        shim.to_str().expect("UTF-8 temporary path"),
        "-o",
        "m.so",
        "-L/usr/lib/x86_64-linux-gnu",
        "-L/usr/lib/aarch64-linux-gnu",
        "-lm",
    ]));
    // SAFETY: the library was just built from our own module; it has no initializers.
    unsafe { libloading::Library::new(dir.join("m.so")) }.expect("dlopen")
}

type P = *mut u8;

/// Lowers, compiles and runs `g` on `inputs` (raw bytes); returns the outputs' bytes.
fn run(g: &Graph, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    kiln_ir::verify(g).expect("test graph verifies");
    let m = lower_graph(g, &LowerOptions::default()).unwrap_or_else(|e| panic!("{e}\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = build(&m, dir.path());
    let mut blob = Vec::new();
    let n = m.weights.write_to(g, &mut blob).expect("write blob");
    assert_eq!(n, m.weights.total_bytes);
    blob.push(0); // never a null pointer, even without weights
    let mut ins: Vec<Vec<u8>> = inputs.to_vec();
    let mut outs: Vec<Vec<u8>> = m
        .outputs
        .iter()
        .map(|s| {
            let n = s.dtype.storage_bytes(s.shape.iter().product()).unwrap();
            vec![0xAB; (n as usize).max(1)]
        })
        .collect();
    let mut args: Vec<P> = ins.iter_mut().map(|v| v.as_mut_ptr()).collect();
    args.extend(outs.iter_mut().map(|v| v.as_mut_ptr()));
    args.push(blob.as_mut_ptr());
    // SAFETY: `kiln_main` takes one pointer per memref argument, in this order,
    // each pointing to a buffer of the argument's static size.
    unsafe {
        macro_rules! call {
            ($($i:literal)*) => {{
                let f: libloading::Symbol<unsafe extern "C" fn($(call!(@t $i)),*)> = lib.get(b"kiln_main").expect("symbol");
                f($(args[$i]),*)
            }};
            (@t $i:literal) => { P };
        }
        match args.len() {
            1 => call!(0),
            2 => call!(0 1),
            3 => call!(0 1 2),
            4 => call!(0 1 2 3),
            5 => call!(0 1 2 3 4),
            6 => call!(0 1 2 3 4 5),
            7 => call!(0 1 2 3 4 5 6),
            8 => call!(0 1 2 3 4 5 6 7),
            9 => call!(0 1 2 3 4 5 6 7 8),
            10 => call!(0 1 2 3 4 5 6 7 8 9),
            11 => call!(0 1 2 3 4 5 6 7 8 9 10),
            12 => call!(0 1 2 3 4 5 6 7 8 9 10 11),
            n => panic!("{n} arguments"),
        }
    }
    outs
}

fn as_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn run1(g: &Graph, inputs: &[&[f32]]) -> Vec<f32> {
    let ins: Vec<Vec<u8>> = inputs.iter().map(|v| f32_bytes(v)).collect();
    as_f32(&run(g, &ins)[0])
}

fn seq(n: usize, scale: f32, off: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * scale + off).collect()
}

// ---- elementwise ----

#[test]
fn binary_broadcast_with_weight() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 3]);
    let c = kf32(&mut g, &[3], &[10.0, 20.0, 30.0]);
    let s = node1(&mut g, OpKind::Add, &[x, c], &[]);
    let col = kf32(&mut g, &[2, 1], &[2.0, 4.0]);
    let d = node1(&mut g, OpKind::Div, &[s, col], &[]);
    let m = node1(&mut g, OpKind::Mul, &[d, d], &[]);
    let p = node1(&mut g, OpKind::Sub, &[m, d], &[]);
    let two = kf32(&mut g, &[], &[2.0]);
    let q = node1(&mut g, OpKind::Pow, &[p, two], &[]);
    g.outputs = vec![d, q];
    let xv = seq(6, 1.0, 0.0);
    let outs = run(&g, &[f32_bytes(&xv)]);
    let want_d: Vec<f32> = (0..6)
        .map(|i| (xv[i] + [10.0, 20.0, 30.0][i % 3]) / [2.0, 4.0][i / 3])
        .collect();
    let want_q: Vec<f32> = want_d.iter().map(|d| (d * d - d).powi(2)).collect();
    close(&as_f32(&outs[0]), &want_d, 1e-6);
    close(&as_f32(&outs[1]), &want_q, 1e-5);
}

#[test]
fn unary_table() {
    let xs = [-1.5f32, -1.0, 0.0, 0.5, 1.0, 2.0];
    // erf at the points above (Abramowitz & Stegun table values).
    let erf = [
        -0.966_105_146_5f64,
        -0.842_700_792_9,
        0.0,
        0.520_499_877_8,
        0.842_700_792_9,
        0.995_322_265_0,
    ];
    let erf = erf.map(|v| v as f32);
    let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
    type Case<'a> = (OpKind, Vec<(&'a str, Attr)>, Vec<f32>);
    let cases: Vec<Case<'_>> = vec![
        (
            OpKind::Relu,
            vec![],
            xs.iter().map(|x| x.max(0.0)).collect(),
        ),
        (OpKind::Erf, vec![], erf.to_vec()),
        (OpKind::Exp, vec![], xs.iter().map(|x| x.exp()).collect()),
        (OpKind::Tanh, vec![], xs.iter().map(|x| x.tanh()).collect()),
        (
            OpKind::Sigmoid,
            vec![],
            xs.iter().map(|&x| sig(x)).collect(),
        ),
        (OpKind::Neg, vec![], xs.iter().map(|x| -x).collect()),
        (OpKind::Abs, vec![], xs.iter().map(|x| x.abs()).collect()),
        (
            OpKind::LeakyRelu,
            vec![("alpha", Attr::Float(0.1))],
            xs.iter()
                .map(|&x| if x >= 0.0 { x } else { 0.1 * x })
                .collect(),
        ),
        (
            OpKind::Gelu,
            vec![],
            xs.iter()
                .zip(erf)
                .map(|(&x, e)| 0.5 * x * (1.0 + e_at(x, e)))
                .collect(),
        ),
        (
            OpKind::Softplus,
            vec![],
            xs.iter().map(|x| (1.0 + x.exp()).ln()).collect(),
        ),
        (
            OpKind::HardSwish,
            vec![],
            xs.iter()
                .map(|&x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0))
                .collect(),
        ),
        (
            OpKind::Swish,
            vec![("alpha", Attr::Float(1.5))],
            xs.iter().map(|&x| x * sig(1.5 * x)).collect(),
        ),
        (
            OpKind::Sign,
            vec![],
            xs.iter()
                .map(|&x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
        (
            OpKind::Floor,
            vec![],
            xs.iter().map(|x| x.floor()).collect(),
        ),
        (
            OpKind::Elu,
            vec![],
            xs.iter()
                .map(|&x| if x >= 0.0 { x } else { x.exp() - 1.0 })
                .collect(),
        ),
    ];
    // gelu(x) = x/2 (1 + erf(x / sqrt 2)): erf at x/sqrt2 from the table is not
    // available, so compare with erf computed by a reference series.
    fn e_at(x: f32, _e: f32) -> f32 {
        let z = f64::from(x) / std::f64::consts::SQRT_2;
        // Maclaurin series of erf, converged for |z| < 2.
        let mut sum = 0.0;
        let mut term = z;
        for n in 0..60 {
            sum += term / (2 * n + 1) as f64;
            term *= -z * z / (n + 1) as f64;
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
    }
    for (op, attrs, want) in cases {
        let mut g = Graph::new("t");
        let x = input(&mut g, &[6]);
        let y = node1(&mut g, op, &[x], &attrs);
        g.outputs = vec![y];
        let got = run1(&g, &[&xs]);
        close(&got, &want, 2e-6);
    }
    // sqrt and log on positive inputs.
    let pos = [0.25f32, 1.0, 4.0, 9.0];
    for (op, f) in [
        (OpKind::Sqrt, f32::sqrt as fn(f32) -> f32),
        (OpKind::Log, f32::ln),
    ] {
        let mut g = Graph::new("t");
        let x = input(&mut g, &[4]);
        let y = node1(&mut g, op, &[x], &[]);
        g.outputs = vec![y];
        close(&run1(&g, &[&pos]), &pos.map(f), 1e-6);
    }
}

#[test]
fn compare_where_clip() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[4]);
    let z = kf32(&mut g, &[1], &[0.5]);
    let c = node1(&mut g, OpKind::Greater, &[x, z], &[]);
    let neg = node1(&mut g, OpKind::Neg, &[x], &[]);
    let w = node1(&mut g, OpKind::Where, &[c, x, neg], &[]);
    let lo = kf32(&mut g, &[], &[-1.0]);
    let hi = kf32(&mut g, &[], &[1.5]);
    let cl = node1(&mut g, OpKind::Clip, &[w, lo, hi], &[]);
    let only_max = node(&mut g, OpKind::Clip, &[Some(x), None, Some(hi)], &[])[0];
    g.outputs = vec![cl, only_max, c];
    let xv = [-3.0f32, 0.0, 1.0, 2.0];
    let outs = run(&g, &[f32_bytes(&xv)]);
    close(&as_f32(&outs[0]), &[1.5, 0.0, 1.0, 1.5], 0.0);
    close(&as_f32(&outs[1]), &[-3.0, 0.0, 1.0, 1.5], 0.0);
    assert_eq!(outs[2], vec![0, 0, 1, 1]);
}

#[test]
fn cast_roundtrips() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[4]);
    let i = node1(
        &mut g,
        OpKind::Cast,
        &[x],
        &[("to", Attr::DType(DType::I32))],
    );
    let h = node1(
        &mut g,
        OpKind::Cast,
        &[x],
        &[("to", Attr::DType(DType::F16))],
    );
    let back = node1(
        &mut g,
        OpKind::Cast,
        &[h],
        &[("to", Attr::DType(DType::F32))],
    );
    let fi = node1(
        &mut g,
        OpKind::Cast,
        &[i],
        &[("to", Attr::DType(DType::F32))],
    );
    g.outputs = vec![i, back, fi];
    let outs = run(&g, &[f32_bytes(&[-2.7, 0.4, 3.9, 1000.1])]);
    let ints: Vec<i32> = outs[0]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ints, vec![-2, 0, 3, 1000]);
    // f16 has 11 significant bits: 1000.1 rounds to 1000, 3.9 to 3.900390625.
    close(
        &as_f32(&outs[1]),
        &[-2.699_218_8, 0.399_902_34, 3.900_390_6, 1000.0],
        1e-6,
    );
    close(&as_f32(&outs[2]), &[-2.0, 0.0, 3.0, 1000.0], 0.0);
}

// ---- contractions ----

fn matmul_ref(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

fn transpose2(a: &[f32], r: usize, c: usize) -> Vec<f32> {
    (0..c * r).map(|i| a[(i % r) * c + i / r]).collect()
}

#[test]
fn gemm_transposes_alpha_beta() {
    let (m, k, n) = (2, 3, 4);
    let a = seq(m * k, 0.5, -1.0);
    let b = seq(k * n, 0.25, -1.5);
    let bias = [1.0f32, 2.0, 3.0, 4.0];
    let plain = matmul_ref(&a, &b, m, k, n);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut g = Graph::new("t");
        let (sa, av) = if ta {
            ([k as u64, m as u64], transpose2(&a, m, k))
        } else {
            ([m as u64, k as u64], a.clone())
        };
        let (sb, bv) = if tb {
            ([n as u64, k as u64], transpose2(&b, k, n))
        } else {
            ([k as u64, n as u64], b.clone())
        };
        let x = input(&mut g, &sa);
        let w = kf32(&mut g, &sb, &bv);
        let c = kf32(&mut g, &[n as u64], &bias);
        let y = node1(
            &mut g,
            OpKind::Gemm,
            &[x, w, c],
            &[
                ("trans_a", Attr::Bool(ta)),
                ("trans_b", Attr::Bool(tb)),
                ("alpha", Attr::Float(0.5)),
                ("beta", Attr::Float(2.0)),
            ],
        );
        g.outputs = vec![y];
        let want: Vec<f32> = plain
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * v + 2.0 * bias[i % n])
            .collect();
        close(&run1(&g, &[&av]), &want, 1e-6);
    }
}

#[test]
fn matmul_batch_broadcast_and_vectors() {
    // [2,1,2,3] x [3,3,2] -> [2,3,2,2]
    let a = seq(12, 0.5, -2.0);
    let b = seq(18, 0.25, -1.0);
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 1, 2, 3]);
    let w = kf32(&mut g, &[3, 3, 2], &b);
    let y = node1(&mut g, OpKind::MatMul, &[x, w], &[]);
    let v = kf32(&mut g, &[3], &[1.0, -1.0, 2.0]);
    let yv = node1(&mut g, OpKind::MatMul, &[x, v], &[]);
    g.outputs = vec![y, yv];
    let outs = run(&g, &[f32_bytes(&a)]);
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            want.extend(matmul_ref(
                &a[i * 6..i * 6 + 6],
                &b[j * 6..j * 6 + 6],
                2,
                3,
                2,
            ));
        }
    }
    close(&as_f32(&outs[0]), &want, 1e-6);
    let want_v = matmul_ref(&a, &[1.0, -1.0, 2.0], 4, 3, 1);
    close(&as_f32(&outs[1]), &want_v, 1e-6);
}

#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    bias: &[f32],
    g: usize,
    stride: usize,
    pad: [usize; 4],
    dil: usize,
) -> (Vec<f32>, [usize; 4]) {
    let [n, c, h, wd] = xs;
    let [m, cg, kh, kw] = ws;
    let oh = (h + pad[0] + pad[2] - ((kh - 1) * dil + 1)) / stride + 1;
    let ow = (wd + pad[1] + pad[3] - ((kw - 1) * dil + 1)) / stride + 1;
    let mg = m / g;
    let mut out = vec![0.0; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let grp = oc / mg;
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = bias[oc];
                    for ic in 0..cg {
                        for p in 0..kh {
                            for q in 0..kw {
                                let y = (i * stride + p * dil) as isize - pad[0] as isize;
                                let xx = (j * stride + q * dil) as isize - pad[1] as isize;
                                if y < 0 || xx < 0 || y >= h as isize || xx >= wd as isize {
                                    continue;
                                }
                                let ch = grp * cg + ic;
                                s += x[((b * c + ch) * h + y as usize) * wd + xx as usize]
                                    * w[((oc * cg + ic) * kh + p) * kw + q];
                            }
                        }
                    }
                    out[((b * m + oc) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    (out, [n, m, oh, ow])
}

#[test]
fn conv_pads_strides_groups_dilations() {
    // (group, stride, pads [t, l, b, r], dilation)
    for (grp, stride, pads, dil) in [
        (1, 1, [1, 1, 1, 1], 1),
        (2, 2, [1, 0, 2, 1], 1),
        (4, 1, [0, 0, 0, 0], 2),
    ] {
        let (c, m) = (4, 4);
        let xs = [1, c, 6, 5];
        let ws = [m, c / grp, 3, 3];
        let x = seq(xs.iter().product(), 0.1, -1.0);
        let w = seq(ws.iter().product(), 0.05, -0.7);
        let bias = [0.5f32, -0.5, 1.0, 0.0];
        let (want, os) = conv_ref(&x, xs, &w, ws, &bias, grp, stride, pads, dil);
        let mut g = Graph::new("t");
        let xi = input(&mut g, &xs.map(|v| v as u64));
        let wi = kf32(&mut g, &ws.map(|v| v as u64), &w);
        let bi = kf32(&mut g, &[m as u64], &bias);
        let y = node1(
            &mut g,
            OpKind::Conv,
            &[xi, wi, bi],
            &[
                ("group", Attr::Int(grp as i64)),
                ("strides", Attr::Ints(vec![stride as i64; 2])),
                ("pads", Attr::Ints(pads.map(|p| p as i64).to_vec())),
                ("dilations", Attr::Ints(vec![dil as i64; 2])),
            ],
        );
        assert_eq!(
            g.value(y).ty.static_shape().unwrap(),
            os.map(|v| v as u64).to_vec()
        );
        g.outputs = vec![y];
        close(&run1(&g, &[&x]), &want, 1e-5);
    }
}

// ---- pools ----

#[allow(clippy::too_many_arguments)]
fn pool_ref(
    x: &[f32],
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pad: usize,
    oh: usize,
    ow: usize,
    kind: &str,
) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..oh {
        for j in 0..ow {
            let (mut mx, mut sum, mut cnt, mut cnt_pad) = (f32::NEG_INFINITY, 0.0, 0.0, 0.0);
            for p in 0..k {
                for q in 0..k {
                    let y = (i * s + p) as isize - pad as isize;
                    let xx = (j * s + q) as isize - pad as isize;
                    if y >= h as isize + pad as isize || xx >= w as isize + pad as isize {
                        continue;
                    }
                    cnt_pad += 1.0;
                    if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                        continue;
                    }
                    let v = x[y as usize * w + xx as usize];
                    mx = mx.max(v);
                    sum += v;
                    cnt += 1.0;
                }
            }
            out.push(match kind {
                "max" => mx,
                "avg" => sum / cnt,
                _ => sum / cnt_pad,
            });
        }
    }
    out
}

#[test]
fn pools() {
    let x = seq(25, 1.0, -7.0)
        .iter()
        .map(|v| (v * 0.37).sin() * 4.0)
        .collect::<Vec<f32>>();
    for (kind, op, include) in [
        ("max", OpKind::MaxPool, false),
        ("avg", OpKind::AveragePool, false),
        ("avg_pad", OpKind::AveragePool, true),
    ] {
        let mut g = Graph::new("t");
        let xi = input(&mut g, &[1, 1, 5, 5]);
        let mut attrs = vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("strides", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ];
        if op == OpKind::AveragePool {
            attrs.push(("count_include_pad", Attr::Bool(include)));
        }
        let y = node1(&mut g, op, &[xi], &attrs);
        g.outputs = vec![y];
        let want = pool_ref(&x, 5, 5, 3, 2, 1, 3, 3, kind);
        close(&run1(&g, &[&x]), &want, 1e-6);
    }
    let mut g = Graph::new("t");
    let xi = input(&mut g, &[1, 2, 2, 2]);
    let y = node1(&mut g, OpKind::GlobalAveragePool, &[xi], &[]);
    g.outputs = vec![y];
    close(
        &run1(&g, &[&[1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, 3.0]]),
        &[2.5, 0.0],
        0.0,
    );
}

// ---- normalizations ----

#[test]
fn softmax_is_stable() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 3]);
    let y = node1(&mut g, OpKind::Softmax, &[x], &[("axis", Attr::Int(-1))]);
    let l = node1(&mut g, OpKind::LogSoftmax, &[x], &[("axis", Attr::Int(0))]);
    g.outputs = vec![y, l];
    let xv = [1000.0f32, 1001.0, 1002.0, -5.0, 0.0, 5.0];
    let outs = run(&g, &[f32_bytes(&xv)]);
    let sm = |r: &[f32]| -> Vec<f32> {
        let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
        r.iter().map(|v| (v - m).exp() / s).collect()
    };
    let mut want = sm(&xv[..3]);
    want.extend(sm(&xv[3..]));
    close(&as_f32(&outs[0]), &want, 1e-6);
    // log_softmax along axis 0 of columns (1000, -5): the -5 entry is ~ -1005.
    let got = as_f32(&outs[1]);
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    close(&got[..3], &[0.0, 0.0, 0.0], 1e-6);
    close(&got[3..], &[-1005.0, -1001.0, -997.0], 1e-6);
}

#[test]
fn layer_norm_and_batch_norm() {
    let xv = seq(8, 0.7, -2.0);
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 4]);
    let sc = kf32(&mut g, &[4], &[1.0, 2.0, 0.5, -1.0]);
    let bi = kf32(&mut g, &[4], &[0.0, 0.1, 0.2, 0.3]);
    let y = node1(
        &mut g,
        OpKind::LayerNorm,
        &[x, sc, bi],
        &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-5))],
    );
    g.outputs = vec![y];
    let mut want = Vec::new();
    for r in 0..2 {
        let row = &xv[r * 4..r * 4 + 4];
        let mean: f32 = row.iter().sum::<f32>() / 4.0;
        let var: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        for (i, v) in row.iter().enumerate() {
            want.push(
                (v - mean) / (var + 1e-5).sqrt() * [1.0, 2.0, 0.5, -1.0][i]
                    + [0.0, 0.1, 0.2, 0.3][i],
            );
        }
    }
    close(&run1(&g, &[&xv]), &want, 1e-5);

    let mut g = Graph::new("t");
    let x = input(&mut g, &[1, 2, 2, 1]);
    let s = kf32(&mut g, &[2], &[2.0, 3.0]);
    let b = kf32(&mut g, &[2], &[1.0, -1.0]);
    let mean = kf32(&mut g, &[2], &[0.5, -0.5]);
    let var = kf32(&mut g, &[2], &[4.0, 0.25]);
    let y = node1(
        &mut g,
        OpKind::BatchNorm,
        &[x, s, b, mean, var],
        &[("epsilon", Attr::Float(0.0))],
    );
    g.outputs = vec![y];
    let want = [
        (1.0 - 0.5) / 2.0 * 2.0 + 1.0,
        (2.0 - 0.5) / 2.0 * 2.0 + 1.0,
        (3.0 + 0.5) / 0.5 * 3.0 - 1.0,
        (4.0 + 0.5) / 0.5 * 3.0 - 1.0,
    ];
    close(&run1(&g, &[&[1.0, 2.0, 3.0, 4.0]]), &want, 1e-6);
}

#[test]
fn reductions() {
    let xv = seq(6, 1.0, -2.0); // [[-2,-1,0],[1,2,3]]
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 3]);
    let ax1 = ki64(&mut g, &[1]);
    let s = node1(
        &mut g,
        OpKind::ReduceSum,
        &[x, ax1],
        &[("keepdims", Attr::Bool(false))],
    );
    let ax0 = ki64(&mut g, &[0]);
    let m = node1(&mut g, OpKind::ReduceMean, &[x, ax0], &[]);
    let mx = node1(
        &mut g,
        OpKind::ReduceMax,
        &[x],
        &[("keepdims", Attr::Bool(false))],
    );
    g.outputs = vec![s, m, mx];
    let outs = run(&g, &[f32_bytes(&xv)]);
    close(&as_f32(&outs[0]), &[-3.0, 6.0], 0.0);
    close(&as_f32(&outs[1]), &[-0.5, 0.5, 1.5], 0.0);
    close(&as_f32(&outs[2]), &[3.0], 0.0);
}

// ---- data movement ----

#[test]
fn reshape_transpose_gather_concat_slice() {
    let xv = seq(6, 1.0, 0.0); // [[0,1,2],[3,4,5]]
    let mut g = Graph::new("t");
    let x = input(&mut g, &[2, 3]);
    let t = node1(
        &mut g,
        OpKind::Transpose,
        &[x],
        &[("perm", Attr::Ints(vec![1, 0]))],
    );
    let shape = ki64(&mut g, &[1, 6]);
    let r = node1(&mut g, OpKind::Reshape, &[t, shape], &[]);
    let f = node1(&mut g, OpKind::Flatten, &[x], &[("axis", Attr::Int(0))]);
    let idx = konst(
        &mut g,
        DType::I64,
        &[2, 2],
        [-1i64, 0, 1, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    let ga = node1(&mut g, OpKind::Gather, &[x, idx], &[("axis", Attr::Int(0))]);
    let cat = node1(&mut g, OpKind::Concat, &[x, x], &[("axis", Attr::Int(1))]);
    let (st, en, ax, sp) = (
        ki64(&mut g, &[2]),
        ki64(&mut g, &[-100]),
        ki64(&mut g, &[1]),
        ki64(&mut g, &[-2]),
    );
    let sl = node1(&mut g, OpKind::Slice, &[x, st, en, ax, sp], &[]);
    g.outputs = vec![r, f, ga, cat, sl];
    let outs = run(&g, &[f32_bytes(&xv)]);
    close(&as_f32(&outs[0]), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
    close(&as_f32(&outs[1]), &xv, 0.0);
    close(
        &as_f32(&outs[2]),
        &[3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 5.0],
        0.0,
    );
    close(
        &as_f32(&outs[3]),
        &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 5.0],
        0.0,
    );
    close(&as_f32(&outs[4]), &[2.0, 0.0, 5.0, 3.0], 0.0);
}

#[test]
fn outputs_alias_inputs_constants_and_each_other() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[3]);
    let c = kf32(&mut g, &[2], &[7.0, 8.0]);
    let y = node1(&mut g, OpKind::Relu, &[x], &[]);
    let id = node1(&mut g, OpKind::Identity, &[x], &[]);
    g.outputs = vec![x, c, y, y, id];
    let outs = run(&g, &[f32_bytes(&[-1.0, 2.0, -3.0])]);
    close(&as_f32(&outs[0]), &[-1.0, 2.0, -3.0], 0.0);
    close(&as_f32(&outs[1]), &[7.0, 8.0], 0.0);
    close(&as_f32(&outs[2]), &[0.0, 2.0, 0.0], 0.0);
    close(&as_f32(&outs[3]), &[0.0, 2.0, 0.0], 0.0);
    close(&as_f32(&outs[4]), &[-1.0, 2.0, -3.0], 0.0);
}

// ---- API ----

#[test]
fn every_unsupported_node_is_reported() {
    let mut g = Graph::new("t");
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![kiln_ir::Dim::sym("n"), 4u64.into()]),
    );
    let y = node1(&mut g, OpKind::Relu, &[x], &[]);
    let xs = input(&mut g, &[4]);
    let e = node1(&mut g, OpKind::NonZero, &[xs], &[]);
    g.outputs = vec![y, e];
    let err = lower_graph(&g, &LowerOptions::default()).expect_err("unsupported");
    let nodes: Vec<String> = err.nodes().into_iter().map(|u| u.node).collect();
    assert_eq!(
        nodes,
        vec![
            "input \"x\"",
            "output \"r0\"",
            "output \"r0_1\"",
            "nn.relu",
            "nn.non_zero"
        ]
    );
    assert!(matches!(err, LowerError::Unsupported { .. }));
}

#[test]
fn weights_are_aligned_and_streamed() {
    let mut g = Graph::new("t");
    let x = input(&mut g, &[3]);
    let a = kf32(&mut g, &[3], &[1.0, 2.0, 3.0]);
    let b = kf32(&mut g, &[3], &[4.0, 5.0, 6.0]);
    let s = node1(&mut g, OpKind::Add, &[x, a], &[]);
    let t = node1(&mut g, OpKind::Add, &[s, b], &[]);
    g.outputs = vec![t];
    let m = lower_graph(&g, &LowerOptions::default()).expect("lowers");
    let offs: Vec<u64> = m.weights.slots.iter().map(|s| s.offset).collect();
    assert_eq!(offs, vec![0, 64]);
    assert_eq!(m.weights.total_bytes, 128);
    assert!(m.mlir.contains("%weights: memref<128xi8>"), "{}", m.mlir);
    let mut blob = Vec::new();
    m.weights.write_to(&g, &mut blob).expect("write");
    assert_eq!(blob.len(), 128);
    assert_eq!(&blob[64..76], &f32_bytes(&[4.0, 5.0, 6.0])[..]);
    assert!(blob[12..64].iter().all(|&b| b == 0));
    close(&run1(&g, &[&[1.0, 1.0, 1.0]]), &[6.0, 8.0, 10.0], 0.0);
}

// ---- the reference interpreter as oracle ----

use kiln_interp::Tensor;

/// Deterministic pseudo-random values in [-2, 2), with some exact
/// duplicates so ties are exercised.
fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) % 64) as f64 / 16.0 - 2.0
        })
        .collect()
}

fn tensor(dtype: DType, shape: &[u64], v: Vec<f64>) -> Tensor {
    if dtype.is_float() {
        Tensor::from_f64(dtype, shape.to_vec(), v)
    } else {
        Tensor::from_ints(
            dtype,
            shape.to_vec(),
            v.iter().map(|&x| x as i128).collect(),
        )
    }
}

/// A typed graph input.
fn input_t(g: &mut Graph, dtype: DType, shape: &[u64]) -> kiln_ir::ValueId {
    g.add_input("x", TensorType::fixed(dtype, shape))
}

/// A constant from a tensor.
fn konst_t(g: &mut Graph, t: &Tensor) -> kiln_ir::ValueId {
    konst(g, t.dtype, &t.shape.clone(), t.to_bytes())
}

/// Runs `g` compiled and through `kiln_interp::run_graph`, and compares
/// every output: integers and bools exactly, floats within `tol` relative
/// (NaN only matches NaN).
fn check(g: &Graph, inputs: &[Tensor], tol: f64) {
    let bytes: Vec<Vec<u8>> = inputs.iter().map(Tensor::to_bytes).collect();
    check_bytes(g, &bytes, tol);
}

/// [`check`] on inputs given as raw storage bytes (so that every bit
/// pattern, padding nibbles and NaN payloads included, can be fed). Outputs
/// of storage-only dtypes are also compared byte for byte with the
/// interpreter's encoding.
fn check_bytes(g: &Graph, bytes: &[Vec<u8>], tol: f64) {
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .zip(bytes)
        .map(|(&v, b)| {
            let ty = &g.value(v).ty;
            Tensor::from_bytes(ty.dtype, &ty.static_shape().unwrap(), b).expect("input bytes")
        })
        .collect();
    let want = kiln_interp::run_graph(g, &inputs).unwrap_or_else(|e| panic!("oracle: {e}"));
    let got = run(g, bytes);
    assert_eq!(got.len(), want.len());
    for (k, (gb, w)) in got.iter().zip(&want).enumerate() {
        let n = w.dtype.storage_bytes(w.numel() as u64).unwrap() as usize;
        if storage::is_storage_only(w.dtype) {
            assert_eq!(
                gb[..n],
                w.to_bytes()[..],
                "output {k} ({} {:?}) bytes",
                w.dtype,
                w.shape
            );
        }
        let gt = Tensor::from_bytes(w.dtype, &w.shape, &gb[..n]).expect("output bytes");
        if w.dtype.is_float() {
            let (gv, wv) = (gt.to_f64_vec(), w.to_f64_vec());
            for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
                let ok = if b.is_nan() {
                    a.is_nan()
                } else {
                    a == b || (a - b).abs() <= tol * (1.0 + b.abs())
                };
                assert!(
                    ok,
                    "output {k} element {i}: got {a}, want {b}\n got {gv:?}\nwant {wv:?}"
                );
            }
        } else {
            assert_eq!(gt.data, w.data, "output {k} ({:?})", w.shape);
        }
    }
}

/// One node over one f32 input of `shape` (plus constant operands), checked
/// against the oracle.
fn check_unary(
    op: OpKind,
    shape: &[u64],
    extra: &[Option<Tensor>],
    attrs: &[(&str, Attr)],
    outs: usize,
) {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F32, shape);
    let mut ins = vec![Some(x)];
    for e in extra {
        ins.push(e.as_ref().map(|t| konst_t(&mut g, t)));
    }
    g.outputs = node_n(&mut g, op, &ins, attrs, outs);
    let n = shape.iter().product::<u64>() as usize;
    check(&g, &[tensor(DType::F32, shape, vals(n, 7))], 1e-5);
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_ints(
        DType::I64,
        vec![v.len() as u64],
        v.iter().map(|&x| i128::from(x)).collect(),
    )
}

fn i64_scalar(v: i64) -> Tensor {
    Tensor::from_ints(DType::I64, vec![], vec![i128::from(v)])
}

#[test]
fn arg_max_min_ties_nan_and_ints() {
    let shape = [3u64, 4];
    let mut xv = vals(12, 3);
    xv[5] = f64::NAN;
    for op in [OpKind::ArgMax, OpKind::ArgMin] {
        for (keep, last, axis) in [(true, false, 1), (false, true, 0), (false, false, -1)] {
            let mut g = Graph::new("t");
            let x = input_t(&mut g, DType::F32, &shape);
            let y = node1(
                &mut g,
                op,
                &[x],
                &[
                    ("axis", Attr::Int(axis)),
                    ("keepdims", Attr::Bool(keep)),
                    ("select_last_index", Attr::Bool(last)),
                ],
            );
            let xi = input_t(&mut g, DType::I32, &shape);
            let yi = node1(
                &mut g,
                op,
                &[xi],
                &[
                    ("axis", Attr::Int(axis)),
                    ("select_last_index", Attr::Bool(last)),
                ],
            );
            g.outputs = vec![y, yi];
            check(
                &g,
                &[
                    tensor(DType::F32, &shape, xv.clone()),
                    tensor(
                        DType::I32,
                        &shape,
                        vals(12, 4).iter().map(|v| (v * 2.0).round()).collect(),
                    ),
                ],
                0.0,
            );
        }
    }
}

#[test]
fn cumsum_modes() {
    for (excl, rev) in [(false, false), (true, false), (false, true), (true, true)] {
        let attrs = [
            ("exclusive", Attr::Bool(excl)),
            ("reverse", Attr::Bool(rev)),
        ];
        check_unary(OpKind::CumSum, &[2, 5], &[Some(i64_scalar(1))], &attrs, 1);
        check_unary(OpKind::CumSum, &[3, 2], &[Some(i64s(&[-2]))], &attrs, 1);
    }
}

#[test]
fn top_k_largest_smallest_with_ties() {
    for largest in [true, false] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &[2, 6]);
        let k = konst_t(&mut g, &i64s(&[3]));
        g.outputs = node_n(
            &mut g,
            OpKind::TopK,
            &[Some(x), Some(k)],
            &[("largest", Attr::Bool(largest))],
            2,
        );
        let mut xv = vals(12, 11);
        xv[2] = f64::NAN;
        xv[3] = -0.0;
        xv[4] = 0.0;
        check(&g, &[tensor(DType::F32, &[2, 6], xv)], 0.0);
    }
}

#[test]
fn hardmax_first_max() {
    check_unary(OpKind::Hardmax, &[3, 4], &[], &[("axis", Attr::Int(1))], 1);
    check_unary(OpKind::Hardmax, &[3, 4], &[], &[("axis", Attr::Int(0))], 1);
}

#[test]
fn shape_family() {
    check_unary(
        OpKind::DepthToSpace,
        &[1, 8, 2, 3],
        &[],
        &[("blocksize", Attr::Int(2))],
        1,
    );
    check_unary(
        OpKind::DepthToSpace,
        &[1, 8, 2, 3],
        &[],
        &[
            ("blocksize", Attr::Int(2)),
            ("mode", Attr::Str("CRD".into())),
        ],
        1,
    );
    check_unary(
        OpKind::SpaceToDepth,
        &[1, 2, 4, 6],
        &[],
        &[("blocksize", Attr::Int(2))],
        1,
    );
    check_unary(OpKind::Tile, &[2, 3], &[Some(i64s(&[2, 3]))], &[], 1);
    check_unary(
        OpKind::Split,
        &[2, 7],
        &[Some(i64s(&[2, 1, 4]))],
        &[("axis", Attr::Int(1))],
        3,
    );
    check_unary(
        OpKind::Split,
        &[5, 2],
        &[None],
        &[("num_outputs", Attr::Int(2))],
        2,
    );
    for upper in [true, false] {
        check_unary(
            OpKind::Trilu,
            &[2, 3, 4],
            &[Some(i64_scalar(1))],
            &[("upper", Attr::Bool(upper))],
            1,
        );
        check_unary(
            OpKind::Trilu,
            &[4, 3],
            &[Some(i64_scalar(-1))],
            &[("upper", Attr::Bool(upper))],
            1,
        );
    }
    check_unary(OpKind::EyeLike, &[3, 5], &[], &[("k", Attr::Int(1))], 1);
    check_unary(
        OpKind::EyeLike,
        &[4, 3],
        &[],
        &[("k", Attr::Int(-1)), ("dtype", Attr::DType(DType::I32))],
        1,
    );
}

#[test]
fn constants_ranges_one_hot() {
    let mut g = Graph::new("t");
    let shape = konst_t(&mut g, &i64s(&[2, 3]));
    let c = node1(
        &mut g,
        OpKind::ConstantOfShape,
        &[shape],
        &[("value", Attr::Float(2.5))],
    );
    let ci = node1(
        &mut g,
        OpKind::ConstantOfShape,
        &[shape],
        &[
            ("value", Attr::Float(-3.0)),
            ("value_dtype", Attr::DType(DType::I32)),
        ],
    );
    let (s, l, d) = (
        konst_t(&mut g, &tensor(DType::F32, &[], vec![1.5])),
        konst_t(&mut g, &tensor(DType::F32, &[], vec![-2.0])),
        konst_t(&mut g, &tensor(DType::F32, &[], vec![-0.75])),
    );
    let r = node1(&mut g, OpKind::Range, &[s, l, d], &[]);
    let (s, l, d) = (
        konst_t(&mut g, &i64_scalar(10)),
        konst_t(&mut g, &i64_scalar(-3)),
        konst_t(&mut g, &i64_scalar(-4)),
    );
    let ri = node1(&mut g, OpKind::Range, &[s, l, d], &[]);
    let ind = input_t(&mut g, DType::I64, &[2, 3]);
    let depth = konst_t(&mut g, &i64_scalar(4));
    let values = konst_t(&mut g, &tensor(DType::F32, &[2], vec![-1.0, 5.0]));
    let oh = node1(
        &mut g,
        OpKind::OneHot,
        &[ind, depth, values],
        &[("axis", Attr::Int(1))],
    );
    let oh2 = node1(&mut g, OpKind::OneHot, &[ind, depth, values], &[]);
    g.outputs = vec![c, ci, r, ri, oh, oh2];
    check(
        &g,
        &[tensor(
            DType::I64,
            &[2, 3],
            vec![0.0, 3.0, -1.0, 7.0, -4.0, 2.0],
        )],
        1e-6,
    );
}

#[test]
fn gather_elements_wraps_negative() {
    for axis in [0i64, 1] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &[3, 3]);
        let idx = konst_t(
            &mut g,
            &Tensor::from_ints(DType::I64, vec![2, 3], vec![0, -1, 2, 1, 1, -3]),
        );
        g.outputs = vec![node1(
            &mut g,
            OpKind::GatherElements,
            &[x, idx],
            &[("axis", Attr::Int(axis))],
        )];
        check(&g, &[tensor(DType::F32, &[3, 3], vals(9, 5))], 0.0);
    }
}

#[test]
fn einsum_equations() {
    for (eq, shapes) in [
        ("ij,jk->ik", vec![vec![3u64, 4], vec![4, 5]]),
        ("bij,bjk->bik", vec![vec![2, 2, 3], vec![2, 3, 2]]),
        ("ii->i", vec![vec![3, 3]]),
        ("ij->", vec![vec![2, 3]]),
        ("ij,j->i", vec![vec![3, 4], vec![4]]),
        ("ik,jk->ij", vec![vec![2, 3], vec![4, 3]]),
    ] {
        let mut g = Graph::new("t");
        let mut ins = Vec::new();
        let mut data = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            ins.push(input_t(&mut g, DType::F32, s));
            data.push(tensor(
                DType::F32,
                s,
                vals(s.iter().product::<u64>() as usize, i as u64),
            ));
        }
        g.outputs = vec![node1(
            &mut g,
            OpKind::Einsum,
            &ins,
            &[("equation", Attr::Str(eq.into()))],
        )];
        check(&g, &data, 1e-5);
    }
}

// ---- index-addressed ops ----

fn ints_t(dtype: DType, shape: &[u64], v: &[i64]) -> Tensor {
    Tensor::from_ints(
        dtype,
        shape.to_vec(),
        v.iter().map(|&x| i128::from(x)).collect(),
    )
}

#[test]
fn pad_modes_axes_and_negative_pads() {
    type Case = (&'static str, Vec<i64>, Option<Vec<i64>>);
    let cases: Vec<Case> = vec![
        ("constant", vec![1, 2, 0, 3], None),
        ("reflect", vec![2, 3, 1, 4], None),
        ("edge", vec![0, 2, 3, 1], None),
        ("wrap", vec![3, 1, 2, 5], None),
        ("constant", vec![-1, 2, 1, -2], None),
        ("reflect", vec![1, -1, 2, 1], None),
        ("edge", vec![2, 1], Some(vec![-1])),
        ("wrap", vec![1, 4], Some(vec![0])),
    ];
    for (mode, pads, axes) in cases {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &[3, 4]);
        let p = konst_t(&mut g, &i64s(&pads));
        let c = konst_t(&mut g, &tensor(DType::F32, &[], vec![-7.5]));
        let a = axes.map(|a| konst_t(&mut g, &i64s(&a)));
        g.outputs = node(
            &mut g,
            OpKind::Pad,
            &[Some(x), Some(p), Some(c), a],
            &[("mode", Attr::Str(mode.into()))],
        );
        check(&g, &[tensor(DType::F32, &[3, 4], vals(12, 2))], 0.0);
    }
    // Integers, default constant 0, a run-time constant value.
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::I32, &[2, 3]);
    let p = konst_t(&mut g, &i64s(&[1, 1, 0, 2]));
    let y = node(&mut g, OpKind::Pad, &[Some(x), Some(p)], &[])[0];
    let cv = input_t(&mut g, DType::I32, &[]);
    let y2 = node(&mut g, OpKind::Pad, &[Some(x), Some(p), Some(cv)], &[])[0];
    g.outputs = vec![y, y2];
    check(
        &g,
        &[
            ints_t(DType::I32, &[2, 3], &[1, -2, 3, 4, 5, -6]),
            ints_t(DType::I32, &[], &[9]),
        ],
        0.0,
    );
}

#[test]
fn gather_nd_with_batch_dims() {
    for (xs, is, idx, bd) in [
        (vec![2u64, 3], vec![2u64, 2], vec![0i64, 1, 1, -1], 0i64),
        (vec![2, 3, 2], vec![3, 1], vec![1, 0, -1], 0),
        (vec![2, 3, 2], vec![2, 1], vec![2, 0], 1),
        (
            vec![2, 2, 3],
            vec![2, 2, 2],
            vec![0, 1, 1, 2, 1, 0, 0, 2],
            1,
        ),
    ] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &xs);
        let i = konst_t(&mut g, &ints_t(DType::I64, &is, &idx));
        g.outputs = vec![node1(
            &mut g,
            OpKind::GatherNd,
            &[x, i],
            &[("batch_dims", Attr::Int(bd))],
        )];
        let n = xs.iter().product::<u64>() as usize;
        check(&g, &[tensor(DType::F32, &xs, vals(n, 4))], 0.0);
    }
}

#[test]
fn scatters_with_every_reduction() {
    for red in ["none", "add", "mul", "max", "min"] {
        for axis in [0i64, 1] {
            let mut g = Graph::new("t");
            let x = input_t(&mut g, DType::F32, &[3, 3]);
            // Duplicated targets exercise the order of application.
            let i = konst_t(&mut g, &ints_t(DType::I64, &[2, 3], &[0, -1, 2, 0, 1, 2]));
            let u = input_t(&mut g, DType::F32, &[2, 3]);
            g.outputs = vec![node1(
                &mut g,
                OpKind::ScatterElements,
                &[x, i, u],
                &[
                    ("axis", Attr::Int(axis)),
                    ("reduction", Attr::Str(red.into())),
                ],
            )];
            check(
                &g,
                &[
                    tensor(DType::F32, &[3, 3], vals(9, 1)),
                    tensor(DType::F32, &[2, 3], vals(6, 2)),
                ],
                1e-6,
            );
        }
        // scatter_nd: slices of rows, and single elements with duplicates,
        // on i32 data.
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::I32, &[4, 3]);
        let rows = konst_t(&mut g, &ints_t(DType::I64, &[2, 1], &[3, -4]));
        let u = input_t(&mut g, DType::I32, &[2, 3]);
        let a = node1(
            &mut g,
            OpKind::ScatterNd,
            &[x, rows, u],
            &[("reduction", Attr::Str(red.into()))],
        );
        let pts = konst_t(&mut g, &ints_t(DType::I64, &[3, 2], &[1, 2, 0, 0, 1, 2]));
        let u2 = input_t(&mut g, DType::I32, &[3]);
        let b2 = node1(
            &mut g,
            OpKind::ScatterNd,
            &[a, pts, u2],
            &[("reduction", Attr::Str(red.into()))],
        );
        g.outputs = vec![a, b2];
        check(
            &g,
            &[
                ints_t(
                    DType::I32,
                    &[4, 3],
                    &[1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3],
                ),
                ints_t(DType::I32, &[2, 3], &[10, -20, 30, 2, 3, -4]),
                ints_t(DType::I32, &[3], &[5, -6, 7]),
            ],
            0.0,
        );
    }
}

// ---- normalizations and channel windows ----

#[test]
fn instance_mvn_rms_and_layer_norm() {
    let c = |v: Vec<f64>| Some(tensor(DType::F32, &[3], v));
    check_unary(
        OpKind::InstanceNorm,
        &[2, 3, 2, 5],
        &[c(vec![1.0, -0.5, 2.0]), c(vec![0.25, 0.0, -1.0])],
        &[("epsilon", Attr::Float(1e-3))],
        1,
    );
    check_unary(
        OpKind::InstanceNorm,
        &[1, 3, 7],
        &[c(vec![1.0; 3]), c(vec![0.0; 3])],
        &[],
        1,
    );
    check_unary(
        OpKind::MeanVarianceNormalization,
        &[2, 3, 2, 2],
        &[],
        &[],
        1,
    );
    check_unary(
        OpKind::MeanVarianceNormalization,
        &[2, 3, 4],
        &[],
        &[("axes", Attr::Ints(vec![-1]))],
        1,
    );
    let scale = Some(tensor(DType::F32, &[4], vec![0.5, 1.0, -2.0, 3.0]));
    check_unary(
        OpKind::RmsNorm,
        &[3, 4],
        std::slice::from_ref(&scale),
        &[],
        1,
    );
    check_unary(
        OpKind::RmsNorm,
        &[2, 3, 4],
        &[Some(tensor(DType::F32, &[3, 4], vals(12, 9)))],
        &[("axis", Attr::Int(1)), ("epsilon", Attr::Float(0.1))],
        1,
    );
    // Layer norm with its statistics results (now through the shared helper).
    check_unary(
        OpKind::LayerNorm,
        &[2, 3, 4],
        &[
            scale,
            Some(tensor(DType::F32, &[4], vec![1.0, 0.0, -1.0, 0.5])),
        ],
        &[],
        3,
    );
}

#[test]
fn lrn_and_lp_pool() {
    for size in [1i64, 2, 3, 5] {
        check_unary(
            OpKind::Lrn,
            &[2, 4, 2, 3],
            &[],
            &[
                ("size", Attr::Int(size)),
                ("alpha", Attr::Float(0.3)),
                ("beta", Attr::Float(0.6)),
                ("bias", Attr::Float(1.5)),
            ],
            1,
        );
    }
    for (p, pads, strides) in [
        (2i64, vec![0, 0, 0, 0], vec![1, 1]),
        (3, vec![1, 0, 1, 2], vec![2, 1]),
        (1, vec![0, 1, 1, 0], vec![1, 2]),
    ] {
        check_unary(
            OpKind::LpPool,
            &[1, 2, 5, 4],
            &[],
            &[
                ("p", Attr::Int(p)),
                ("kernel_shape", Attr::Ints(vec![2, 3])),
                ("pads", Attr::Ints(pads)),
                ("strides", Attr::Ints(strides)),
            ],
            1,
        );
    }
}

#[test]
fn conv_transpose_strides_pads_groups_output_padding() {
    type Case = (Vec<u64>, Vec<u64>, bool, Vec<(&'static str, Attr)>);
    let cases: Vec<Case> = vec![
        (vec![1, 2, 3, 3], vec![2, 3, 2, 2], true, vec![]),
        (
            vec![2, 2, 3, 4],
            vec![2, 2, 3, 3],
            true,
            vec![
                ("strides", Attr::Ints(vec![2, 3])),
                ("pads", Attr::Ints(vec![1, 0, 0, 2])),
                ("output_padding", Attr::Ints(vec![1, 2])),
            ],
        ),
        (
            vec![1, 4, 3, 3],
            vec![4, 1, 2, 3],
            true,
            vec![
                ("group", Attr::Int(2)),
                ("strides", Attr::Ints(vec![2, 2])),
                ("dilations", Attr::Ints(vec![2, 1])),
            ],
        ),
        (
            vec![1, 2, 5],
            vec![2, 2, 3],
            false,
            vec![
                ("strides", Attr::Ints(vec![3])),
                ("output_shape", Attr::Ints(vec![16])),
            ],
        ),
        (
            vec![1, 1, 4],
            vec![1, 2, 3],
            false,
            vec![
                ("strides", Attr::Ints(vec![2])),
                ("auto_pad", Attr::Str("SAME_UPPER".into())),
            ],
        ),
        (
            vec![1, 1, 4],
            vec![1, 2, 4],
            true,
            vec![
                ("strides", Attr::Ints(vec![2])),
                ("auto_pad", Attr::Str("SAME_LOWER".into())),
            ],
        ),
        (
            vec![1, 6, 2, 2],
            vec![6, 1, 3, 3],
            false,
            vec![
                ("group", Attr::Int(3)),
                ("auto_pad", Attr::Str("VALID".into())),
            ],
        ),
    ];
    for (xs, ws, with_bias, attrs) in cases {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &xs);
        let wn = ws.iter().product::<u64>() as usize;
        let w = konst_t(&mut g, &tensor(DType::F32, &ws, vals(wn, 3)));
        let m = ws[1]
            * (xs[1] / ws[0]).max(1)
            * attrs
                .iter()
                .find(|(k, _)| *k == "group")
                .map_or(1, |(_, v)| if let Attr::Int(g) = v { *g as u64 } else { 1 });
        let bias =
            with_bias.then(|| konst_t(&mut g, &tensor(DType::F32, &[m], vals(m as usize, 8))));
        g.outputs = node(
            &mut g,
            OpKind::ConvTranspose,
            &[Some(x), Some(w), bias],
            &attrs,
        );
        let n = xs.iter().product::<u64>() as usize;
        check(&g, &[tensor(DType::F32, &xs, vals(n, 5))], 1e-5);
    }
}

// ---- resize ----

fn f32s(v: &[f64]) -> Tensor {
    tensor(DType::F32, &[v.len() as u64], v.to_vec())
}

/// One resize of a `[1, 2, 3, 4]` input by `scales` or `sizes`, checked
/// against the oracle.
fn check_resize(scales: Option<&[f64]>, sizes: Option<&[i64]>, attrs: &[(&str, Attr)]) {
    let shape = [1u64, 2, 3, 4];
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F32, &shape);
    let s = scales.map(|s| konst_t(&mut g, &f32s(s)));
    let z = sizes.map(|z| konst_t(&mut g, &i64s(z)));
    let roi = attrs
        .iter()
        .any(|(_, v)| matches!(v, Attr::Str(m) if m == "tf_crop_and_resize"))
        .then(|| konst_t(&mut g, &f32s(&[0.0, 0.0, 0.2, 0.1, 1.0, 1.0, 0.9, 0.7])));
    g.outputs = node(&mut g, OpKind::Resize, &[Some(x), roi, s, z], attrs);
    check(&g, &[tensor(DType::F32, &shape, vals(24, 6))], 1e-5);
}

#[test]
fn resize_nearest_modes() {
    for nm in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
        for ctm in ["half_pixel", "asymmetric", "align_corners"] {
            let attrs = [
                ("mode", Attr::Str("nearest".into())),
                ("nearest_mode", Attr::Str(nm.into())),
                ("coordinate_transformation_mode", Attr::Str(ctm.into())),
            ];
            check_resize(Some(&[1.0, 1.0, 2.0, 1.5]), None, &attrs);
            check_resize(None, Some(&[1, 2, 2, 3]), &attrs);
        }
    }
}

#[test]
fn resize_linear_and_cubic_every_transformation() {
    for mode in ["linear", "cubic"] {
        for ctm in [
            "half_pixel",
            "half_pixel_symmetric",
            "pytorch_half_pixel",
            "align_corners",
            "asymmetric",
            "tf_crop_and_resize",
        ] {
            let attrs = [
                ("mode", Attr::Str(mode.into())),
                ("coordinate_transformation_mode", Attr::Str(ctm.into())),
                ("extrapolation_value", Attr::Float(-3.0)),
            ];
            check_resize(Some(&[1.0, 1.0, 1.7, 0.75]), None, &attrs);
            check_resize(None, Some(&[1, 2, 1, 5]), &attrs);
        }
    }
    // exclude_outside, cubic_coeff_a, antialias downscale, axes and
    // keep_aspect_ratio_policy.
    check_resize(
        Some(&[1.0, 1.0, 2.0, 2.0]),
        None,
        &[
            ("mode", Attr::Str("cubic".into())),
            ("exclude_outside", Attr::Bool(true)),
            ("cubic_coeff_a", Attr::Float(-0.5)),
        ],
    );
    for mode in ["linear", "cubic"] {
        check_resize(
            Some(&[1.0, 1.0, 0.6, 0.5]),
            None,
            &[
                ("mode", Attr::Str(mode.into())),
                ("antialias", Attr::Bool(true)),
            ],
        );
    }
    for policy in ["not_larger", "not_smaller"] {
        check_resize(
            None,
            Some(&[5, 7]),
            &[
                ("mode", Attr::Str("linear".into())),
                ("axes", Attr::Ints(vec![2, 3])),
                ("keep_aspect_ratio_policy", Attr::Str(policy.into())),
            ],
        );
    }
}

#[test]
fn resize_integers_round_and_saturate() {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::U8, &[1, 1, 2, 3]);
    let s = konst_t(&mut g, &f32s(&[1.0, 1.0, 2.0, 1.5]));
    g.outputs = node(
        &mut g,
        OpKind::Resize,
        &[Some(x), None, Some(s)],
        &[("mode", Attr::Str("cubic".into()))],
    );
    check(
        &g,
        &[ints_t(DType::U8, &[1, 1, 2, 3], &[0, 255, 10, 255, 0, 128])],
        0.0,
    );
}

// ---- quantization ----

#[test]
fn quantize_dequantize_granularities() {
    let xs = [2u64, 4];
    // (scale shape, zero point shape, axis, block_size)
    type Case = (Vec<u64>, Option<Vec<u64>>, i64, i64);
    let cases: Vec<Case> = vec![
        (vec![], Some(vec![]), 1, 0),
        (vec![1], None, 1, 0),
        (vec![4], Some(vec![4]), 1, 0),
        (vec![2], Some(vec![2]), 0, 0),
        (vec![2, 2], Some(vec![2, 2]), 1, 2),
        (vec![2, 2], Some(vec![2, 2]), -1, 3),
        (vec![1, 4], None, 0, 2),
    ];
    for zdt in [DType::U8, DType::I8, DType::I16, DType::U16] {
        for (ss, zs, axis, block) in &cases {
            let attrs = [
                ("axis", Attr::Int(*axis)),
                ("block_size", Attr::Int(*block)),
            ];
            let sn = ss.iter().product::<u64>() as usize;
            let scale = tensor(
                DType::F32,
                ss,
                (0..sn).map(|i| 0.05 + 0.1 * i as f64).collect(),
            );
            let zero = zs.as_ref().map(|zs| {
                let n = zs.iter().product::<u64>() as usize;
                let v: Vec<f64> = (0..n)
                    .map(|i| {
                        if zdt.is_signed() {
                            i as f64 * 3.0 - 4.0
                        } else {
                            100.0 + i as f64 * 7.0
                        }
                    })
                    .collect();
                tensor(zdt, zs, v)
            });
            let mut g = Graph::new("t");
            let x = input_t(&mut g, DType::F32, &xs);
            let s = konst_t(&mut g, &scale);
            let z = zero.as_ref().map(|z| konst_t(&mut g, z));
            let out_attr = [("output_dtype", Attr::DType(zdt))];
            let mut qa: Vec<(&str, Attr)> = attrs.to_vec();
            if z.is_none() {
                qa.extend(out_attr.iter().cloned());
            }
            let q = node(&mut g, OpKind::QuantizeLinear, &[Some(x), Some(s), z], &qa)[0];
            let d = node(
                &mut g,
                OpKind::DequantizeLinear,
                &[Some(q), Some(s), z],
                &attrs,
            )[0];
            g.outputs = vec![q, d];
            // Large values saturate; halves round to even; NaN goes to the zero point.
            let mut xv: Vec<f64> = vals(8, 12).iter().map(|v| v * 40.0).collect();
            xv[0] = f64::NAN;
            xv[1] = 1e6;
            xv[2] = -1e6;
            xv[3] = 0.125;
            check(&g, &[tensor(DType::F32, &xs, xv)], 0.0);
        }
    }
    // An f16 input with an f16 scale divides in f16; i32 input in f64.
    for xdt in [DType::F16, DType::I32] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, xdt, &[5]);
        let s = konst_t(&mut g, &tensor(DType::F16, &[], vec![0.3]));
        let q = node(&mut g, OpKind::QuantizeLinear, &[Some(x), Some(s)], &[])[0];
        let d = node(&mut g, OpKind::DequantizeLinear, &[Some(q), Some(s)], &[])[0];
        g.outputs = vec![q, d];
        check(
            &g,
            &[tensor(xdt, &[5], vec![-3.0, 0.0, 7.0, 12.0, 90.0])],
            0.0,
        );
    }
}

/// Zero-extent inputs, weights, intermediates and results (ONNX node tests
/// have them): empty arguments are passed as `memref<0xT>` pointers.
#[test]
fn zero_sized_tensors() {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F32, &[2, 0]);
    let w = konst_t(&mut g, &tensor(DType::F32, &[0, 3], vec![]));
    let y = node1(&mut g, OpKind::MatMul, &[x, w], &[]);
    let e = konst_t(&mut g, &tensor(DType::F32, &[2, 0], vec![]));
    let s = node1(&mut g, OpKind::Add, &[x, e], &[]);
    let c = node1(
        &mut g,
        OpKind::Concat,
        &[x, s, x],
        &[("axis", Attr::Int(1))],
    );
    let r = node(&mut g, OpKind::ReduceSum, &[Some(x)], &[])[0];
    let x2 = input_t(&mut g, DType::F32, &[2, 3]);
    let p = konst_t(&mut g, &i64s(&[0, 0, 0, -3]));
    let pd = node(&mut g, OpKind::Pad, &[Some(x2), Some(p)], &[])[0];
    let p2 = konst_t(&mut g, &i64s(&[0, 1, 0, 1]));
    let back = node(&mut g, OpKind::Pad, &[Some(pd), Some(p2)], &[])[0];
    let idx = konst_t(&mut g, &ints_t(DType::I64, &[0, 1], &[]));
    let upd = konst_t(&mut g, &tensor(DType::F32, &[0, 3], vec![]));
    let sc = node1(&mut g, OpKind::ScatterNd, &[x2, idx, upd], &[]);
    g.outputs = vec![y, s, c, r, pd, back, sc];
    check(
        &g,
        &[
            tensor(DType::F32, &[2, 0], vec![]),
            tensor(DType::F32, &[2, 3], vals(6, 1)),
        ],
        0.0,
    );
}

#[test]
fn rotary_embedding_layouts() {
    // (x shape, num_heads, rotary dim, interleaved, with position ids)
    let cases: [(Vec<u64>, i64, i64, bool, bool); 5] = [
        (vec![2, 2, 3, 4], 0, 0, false, false),
        (vec![2, 2, 3, 4], 0, 0, true, true),
        (vec![1, 3, 2, 6], 0, 4, false, true),
        (vec![2, 3, 8], 2, 0, false, false),
        (vec![2, 3, 12], 2, 4, true, true),
    ];
    for (xs, heads, rot, inter, with_pos) in cases {
        let (bn, sn) = if xs.len() == 4 {
            (xs[0], xs[2])
        } else {
            (xs[0], xs[1])
        };
        let head = if xs.len() == 4 {
            xs[3]
        } else {
            xs[2] / heads as u64
        };
        let half = if rot == 0 { head / 2 } else { rot as u64 / 2 };
        let cache: Vec<u64> = if with_pos {
            vec![7, half]
        } else {
            vec![bn, sn, half]
        };
        let cn = cache.iter().product::<u64>() as usize;
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::F32, &xs);
        let ang: Vec<f64> = (0..cn).map(|i| 0.37 * i as f64).collect();
        let c = konst_t(
            &mut g,
            &tensor(DType::F32, &cache, ang.iter().map(|a| a.cos()).collect()),
        );
        let s = konst_t(
            &mut g,
            &tensor(DType::F32, &cache, ang.iter().map(|a| a.sin()).collect()),
        );
        let p = with_pos.then(|| {
            let ids: Vec<i64> = (0..bn * sn).map(|i| (i as i64 * 3 + 1) % 7).collect();
            konst_t(&mut g, &ints_t(DType::I64, &[bn, sn], &ids))
        });
        let mut attrs = vec![
            ("rotary_embedding_dim", Attr::Int(rot)),
            ("interleaved", Attr::Bool(inter)),
        ];
        if heads > 0 {
            attrs.push(("num_heads", Attr::Int(heads)));
        }
        g.outputs = node(
            &mut g,
            OpKind::RotaryEmbedding,
            &[Some(x), Some(c), Some(s), p],
            &attrs,
        );
        let n = xs.iter().product::<u64>() as usize;
        check(&g, &[tensor(DType::F32, &xs, vals(n, 13))], 1e-6);
    }
}

// ---- attention ----

/// Attention case: Q/K/V shapes, optional mask (dtype, shape), past length,
/// nonpad lengths, attributes and the number of results.
struct AttnCase {
    q: Vec<u64>,
    k: Vec<u64>,
    v: Vec<u64>,
    mask: Option<(DType, Vec<u64>)>,
    past: u64,
    nonpad: Option<Vec<i64>>,
    attrs: Vec<(&'static str, Attr)>,
    outs: usize,
}

fn check_attention(c: AttnCase) {
    let mut g = Graph::new("t");
    let mut data = Vec::new();
    let mut add = |g: &mut Graph, dt: DType, shape: &[u64], seed: u64| {
        let n = shape.iter().product::<u64>() as usize;
        let v = if dt == DType::Bool {
            (0..n).map(|i| f64::from(u8::from(i % 3 != 1))).collect()
        } else {
            vals(n, seed)
        };
        data.push(tensor(dt, shape, v));
        Some(input_t(g, dt, shape))
    };
    let q = add(&mut g, DType::F32, &c.q, 1);
    let k = add(&mut g, DType::F32, &c.k, 2);
    let v = add(&mut g, DType::F32, &c.v, 3);
    let mask = c.mask.as_ref().and_then(|(dt, s)| add(&mut g, *dt, s, 4));
    let kvh = if c.k.len() == 4 { c.k[1] } else { 2 };
    let (pk, pv) = if c.past > 0 {
        let b = c.q[0];
        let d = if c.k.len() == 4 { c.k[3] } else { c.k[2] / kvh };
        let dv = if c.v.len() == 4 { c.v[3] } else { c.v[2] / kvh };
        (
            add(&mut g, DType::F32, &[b, kvh, c.past, d], 5),
            add(&mut g, DType::F32, &[b, kvh, c.past, dv], 6),
        )
    } else {
        (None, None)
    };
    let np = c.nonpad.as_ref().map(|n| konst_t(&mut g, &i64s(n)));
    g.outputs = node_n(
        &mut g,
        OpKind::Attention,
        &[q, k, v, mask, pk, pv, np],
        &c.attrs,
        c.outs,
    );
    check(&g, &data, 1e-5);
}

#[test]
fn attention_masks_gqa_caches_and_outputs() {
    let heads3 = vec![
        ("q_num_heads", Attr::Int(4)),
        ("kv_num_heads", Attr::Int(2)),
    ];
    let cases = vec![
        AttnCase {
            q: vec![2, 2, 3, 4],
            k: vec![2, 2, 5, 4],
            v: vec![2, 2, 5, 3],
            mask: None,
            past: 0,
            nonpad: None,
            attrs: vec![],
            outs: 1,
        },
        // GQA, 3-D layout, causal with a past cache, float mask shorter
        // than the total length, present caches returned.
        AttnCase {
            q: vec![1, 3, 8],
            k: vec![1, 3, 4],
            v: vec![1, 3, 6],
            mask: Some((DType::F32, vec![3, 4])),
            past: 2,
            nonpad: None,
            attrs: [heads3.clone(), vec![("is_causal", Attr::Bool(true))]].concat(),
            outs: 3,
        },
        // Bool mask broadcast over heads, softcap, scale, each qk output mode.
        AttnCase {
            q: vec![2, 4, 2, 3],
            k: vec![2, 2, 4, 3],
            v: vec![2, 2, 4, 3],
            mask: Some((DType::Bool, vec![2, 1, 2, 4])),
            past: 0,
            nonpad: None,
            attrs: vec![
                ("softcap", Attr::Float(1.5)),
                ("scale", Attr::Float(0.3)),
                ("qk_matmul_output_mode", Attr::Int(1)),
            ],
            outs: 4,
        },
        AttnCase {
            q: vec![1, 2, 3, 2],
            k: vec![1, 2, 3, 2],
            v: vec![1, 2, 3, 2],
            mask: None,
            past: 0,
            nonpad: None,
            attrs: vec![
                ("left_window_size", Attr::Int(1)),
                ("right_window_size", Attr::Int(0)),
                ("qk_matmul_output_mode", Attr::Int(3)),
            ],
            outs: 4,
        },
        // nonpad_kv_seqlen with a fully masked row (length 0) and causal.
        AttnCase {
            q: vec![2, 1, 2, 2],
            k: vec![2, 1, 3, 2],
            v: vec![2, 1, 3, 2],
            mask: None,
            past: 0,
            nonpad: Some(vec![3, 0]),
            attrs: vec![
                ("is_causal", Attr::Bool(true)),
                ("qk_matmul_output_mode", Attr::Int(2)),
            ],
            outs: 4,
        },
    ];
    for c in cases {
        check_attention(c);
    }
}

// ---- storage-only dtypes (float8, i4, u4, nf4) ----

/// `nn.cast` of `x` to `to` with `saturate`.
fn cast_to(g: &mut Graph, x: kiln_ir::ValueId, to: DType, saturate: bool) -> kiln_ir::ValueId {
    node1(
        g,
        OpKind::Cast,
        &[x],
        &[("to", Attr::DType(to)), ("saturate", Attr::Bool(saturate))],
    )
}

/// The other float8 format.
fn other_f8(f: DType) -> DType {
    if f == DType::F8E4M3FN {
        DType::F8E5M2
    } else {
        DType::F8E4M3FN
    }
}

/// f32 and f64 values around every float8 rounding hazard: signed zeros
/// and NaNs, infinities, the largest finite values and the ties just above
/// them, subnormal ties, normal ties, underflow and values far out of range.
fn f8_edges() -> Vec<f64> {
    let p = |e: i32| 2f64.powi(e);
    let mut v = vec![
        0.0,
        -0.0,
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        448.0,
        -448.0,
        449.0,
        464.0,
        -464.0,
        465.0,
        480.0,
        500.0,
        1e6,
        -1e6,
        57344.0,
        57345.0,
        61439.0,
        61440.0,
        -61440.0,
        65536.0,
        1e-10,
        -1e-10,
        p(-10),
        3.0 * p(-10),
        1.5 * p(-9),
        p(-17),
        3.0 * p(-17),
        -3.0 * p(-17),
        1.0625,
        1.1875,
        1.125,
        232.0,
        -2.75,
        0.3,
        3.4e38,
    ];
    v.extend(vals(27, 5).iter().map(|x| x * 37.0));
    v
}

#[test]
fn float8_casts_round_saturate_and_keep_nan_signs() {
    let xs: Vec<f32> = f8_edges().iter().map(|&x| x as f32).collect();
    let n = xs.len() as u64;
    for fmt in [DType::F8E4M3FN, DType::F8E5M2] {
        for sat in [true, false] {
            let mut g = Graph::new("t");
            let x = input(&mut g, &[n]);
            let y = cast_to(&mut g, x, fmt, sat);
            let back = cast_to(&mut g, y, DType::F32, sat);
            let h = cast_to(&mut g, y, DType::F16, sat);
            let o = cast_to(&mut g, y, other_f8(fmt), sat);
            g.outputs = vec![y, back, h, o];
            check_bytes(&g, &[f32_bytes(&xs)], 0.0);
        }
    }
    // f64 sources round once, directly: through f32, 1.0625 + 2^-40 would
    // become the tie 1.0625 and round to even (1.0) instead of up.
    let eps = 2f64.powi(-40);
    let mut xd = vec![
        1.0625 + eps,
        1.0625 - eps,
        1.125 + eps,
        1.125 - eps,
        464.0 + eps * 512.0,
        61440.0 - eps * 65536.0,
    ];
    xd.extend(f8_edges());
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F64, &[xd.len() as u64]);
    let a = cast_to(&mut g, x, DType::F8E4M3FN, true);
    let b = cast_to(&mut g, x, DType::F8E5M2, false);
    let c = cast_to(&mut g, x, DType::F8E5M2, true);
    g.outputs = vec![a, b, c];
    let bytes = xd.iter().flat_map(|v| v.to_le_bytes()).collect();
    check_bytes(&g, &[bytes], 0.0);
}

#[test]
fn float8_inputs_decode_every_code() {
    let codes: Vec<u8> = (0..=255).collect();
    for fmt in [DType::F8E4M3FN, DType::F8E5M2] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, fmt, &[256]);
        let f = cast_to(&mut g, x, DType::F32, true);
        let h = cast_to(&mut g, x, DType::F64, true);
        let o = cast_to(&mut g, x, other_f8(fmt), true);
        let os = cast_to(&mut g, x, other_f8(fmt), false);
        // The input itself as an output: decoded then encoded again.
        g.outputs = vec![x, f, h, o, os];
        check_bytes(&g, std::slice::from_ref(&codes), 0.0);
        // Finite codes to integers (truncating; i4 wraps), as a weight of
        // rank 2 so constants are decoded too.
        let finite: Vec<u8> = codes
            .iter()
            .copied()
            .filter(|&c| {
                let e_all = if fmt == DType::F8E4M3FN { 0x7F } else { 0x7C };
                (c & 0x7F) < e_all
            })
            .collect();
        let rows = finite.len() as u64 / 2;
        let mut g = Graph::new("t");
        let w = konst(
            &mut g,
            fmt,
            &[rows, 2],
            finite[..2 * rows as usize].to_vec(),
        );
        let i = cast_to(&mut g, w, DType::I32, true);
        let q = cast_to(&mut g, w, DType::I4, true);
        g.outputs = vec![i, q];
        check_bytes(&g, &[], 0.0);
    }
}

#[test]
fn four_bit_casts_pack_odd_counts_and_sign_extend() {
    // 15 i4 elements in 8 bytes; the last byte's high nibble is padding
    // (garbage here, which must be ignored).
    let raw: Vec<u8> = vec![0x8F, 0x70, 0x19, 0xE2, 0xC5, 0x3B, 0xA6, 0xD4];
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::I4, &[3, 5]);
    let i = cast_to(&mut g, x, DType::I32, true);
    let u = cast_to(&mut g, x, DType::U4, true);
    let f = cast_to(&mut g, x, DType::F32, true);
    let t = node1(
        &mut g,
        OpKind::Transpose,
        &[x],
        &[("perm", Attr::Ints(vec![1, 0]))],
    );
    g.outputs = vec![x, i, u, f, t];
    let m = lower_graph(&g, &LowerOptions::default()).expect("lowers");
    assert!(
        m.mlir.contains("%in0: memref<8xi8>, %out0: memref<8xi8>"),
        "{}",
        m.mlir
    );
    check_bytes(&g, &[raw], 0.0);

    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::U4, &[7]);
    let i = cast_to(&mut g, x, DType::I4, true);
    let b = cast_to(&mut g, x, DType::I8, true);
    let h = cast_to(&mut g, x, DType::F16, true);
    let z = cast_to(&mut g, x, DType::Bool, true);
    g.outputs = vec![i, b, h, z];
    check_bytes(&g, &[vec![0x10, 0x7F, 0x08, 0xE9]], 0.0);

    // Wide integers and floats wrap (after truncation) into 4 bits.
    let mut g = Graph::new("t");
    let xi = input_t(&mut g, DType::I32, &[9]);
    let xf = input_t(&mut g, DType::F32, &[9]);
    let a = cast_to(&mut g, xi, DType::I4, true);
    let b = cast_to(&mut g, xi, DType::U4, true);
    let c = cast_to(&mut g, xf, DType::I4, true);
    let d = cast_to(&mut g, xf, DType::U4, true);
    let e = cast_to(&mut g, xi, DType::U8, true);
    let u = cast_to(&mut g, e, DType::U4, true);
    g.outputs = vec![a, b, c, d, u];
    check(
        &g,
        &[
            ints_t(DType::I32, &[9], &[-9, -8, -1, 0, 7, 8, 9, 100, -100]),
            tensor(
                DType::F32,
                &[9],
                vec![3.7, -3.7, 9.5, -0.5, 15.9, -8.2, 0.0, 7.99, -100.3],
            ),
        ],
        0.0,
    );
}

#[test]
fn quantize_dequantize_to_four_bit_and_float8() {
    let xs = [3u64, 5];
    // (scale shape, axis, block_size)
    let cases: Vec<(Vec<u64>, i64, i64)> = vec![
        (vec![], 1, 0),
        (vec![5], 1, 0),
        (vec![3], 0, 0),
        (vec![3, 3], 1, 2),
        (vec![2, 5], 0, 2),
    ];
    let mut xv: Vec<f64> = vals(15, 21).iter().map(|v| v * 30.0).collect();
    xv[0] = f64::NAN;
    xv[1] = 1e6;
    xv[2] = -1e6;
    xv[3] = 0.125;
    xv[4] = -f64::NAN;
    xv[5] = f64::INFINITY;
    let x_t = tensor(DType::F32, &xs, xv);
    for target in [DType::I4, DType::U4, DType::F8E4M3FN, DType::F8E5M2] {
        for (k, (ss, axis, block)) in cases.iter().enumerate() {
            for sat in [true, false] {
                let sn = ss.iter().product::<u64>() as usize;
                let scale = tensor(
                    DType::F32,
                    ss,
                    (0..sn).map(|i| 0.07 + 0.11 * i as f64).collect(),
                );
                // Zero points: in range for the integers, zeros naming the
                // type for float8 (every other case uses output_dtype).
                let zero = (k % 2 == 0).then(|| {
                    let v: Vec<f64> = (0..sn)
                        .map(|i| match target {
                            DType::I4 => (i % 7) as f64 - 3.0,
                            DType::U4 => (3 + i % 10) as f64,
                            _ => 0.0,
                        })
                        .collect();
                    tensor(target, ss, v)
                });
                let mut g = Graph::new("t");
                let x = input_t(&mut g, DType::F32, &xs);
                let s = konst_t(&mut g, &scale);
                let z = zero.as_ref().map(|z| konst_t(&mut g, z));
                let mut qa = vec![
                    ("axis", Attr::Int(*axis)),
                    ("block_size", Attr::Int(*block)),
                    ("saturate", Attr::Bool(sat)),
                ];
                if z.is_none() {
                    qa.push(("output_dtype", Attr::DType(target)));
                }
                let q = node(&mut g, OpKind::QuantizeLinear, &[Some(x), Some(s), z], &qa)[0];
                let da = [
                    ("axis", Attr::Int(*axis)),
                    ("block_size", Attr::Int(*block)),
                ];
                let d = node(
                    &mut g,
                    OpKind::DequantizeLinear,
                    &[Some(q), Some(s), z],
                    &da,
                )[0];
                g.outputs = vec![q, d];
                check(&g, std::slice::from_ref(&x_t), 0.0);
            }
        }
    }
    // Quantized graph inputs: i4 with a per-axis i4 zero point (odd count),
    // u4 per tensor, and float8 with an f16 scale.
    let mut g = Graph::new("t");
    let xi = input_t(&mut g, DType::I4, &[7, 1]);
    let si = konst_t(
        &mut g,
        &tensor(
            DType::F32,
            &[7],
            seq(7, 0.25, 0.5).iter().map(|&v| f64::from(v)).collect(),
        ),
    );
    let zi = konst_t(&mut g, &ints_t(DType::I4, &[7], &[-8, -3, 0, 1, 5, 7, -1]));
    let a = node(
        &mut g,
        OpKind::DequantizeLinear,
        &[Some(xi), Some(si), Some(zi)],
        &[("axis", Attr::Int(0))],
    )[0];
    let xu = input_t(&mut g, DType::U4, &[5]);
    let su = konst_t(&mut g, &tensor(DType::F32, &[], vec![0.3]));
    let zu = konst_t(&mut g, &ints_t(DType::U4, &[], &[9]));
    let b = node(
        &mut g,
        OpKind::DequantizeLinear,
        &[Some(xu), Some(su), Some(zu)],
        &[],
    )[0];
    let xf = input_t(&mut g, DType::F8E5M2, &[6]);
    let sf = konst_t(&mut g, &tensor(DType::F16, &[], vec![0.1]));
    let c = node(&mut g, OpKind::DequantizeLinear, &[Some(xf), Some(sf)], &[])[0];
    g.outputs = vec![a, b, c];
    check_bytes(
        &g,
        &[
            vec![0x8F, 0x70, 0x19, 0xE2],
            vec![0xF0, 0x39, 0x0C],
            vec![0x00, 0x80, 0x3C, 0xBD, 0x7B, 0x7C],
        ],
        0.0,
    );
}

/// Deterministic NF4 codes (every code appears).
fn nf4_codes(n: usize) -> Vec<i64> {
    (0..n).map(|i| ((i * 7 + i / 16) % 16) as i64).collect()
}

#[test]
fn nf4_dequantize_matches_the_code_book() {
    // A graph input with an odd element count, f16 absmax, and a
    // partial last block (5 = 2 + 2 + 1).
    let mut g = Graph::new("t");
    let w = input_t(&mut g, DType::NF4, &[3, 5]);
    let a = konst_t(
        &mut g,
        &tensor(
            DType::F16,
            &[3, 3],
            vals(9, 4).iter().map(|v| v + 2.5).collect(),
        ),
    );
    let d = node1(
        &mut g,
        OpKind::Nf4Dequantize,
        &[w, a],
        &[("block_size", Attr::Int(2))],
    );
    g.outputs = vec![d, w];
    check(&g, &[ints_t(DType::NF4, &[3, 5], &nf4_codes(15))], 0.0);
}

#[test]
fn nf4_weight_dequantized_into_a_matmul() {
    // y[2x6] = x[2x10] @ dequant(w[10x6]), blocks of 4 along the last dim.
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F32, &[2, 10]);
    let w = konst_t(&mut g, &ints_t(DType::NF4, &[10, 6], &nf4_codes(60)));
    let a = konst_t(
        &mut g,
        &tensor(
            DType::F32,
            &[10, 2],
            vals(20, 9).iter().map(|v| v * 0.5 + 1.25).collect(),
        ),
    );
    let d = node1(
        &mut g,
        OpKind::Nf4Dequantize,
        &[w, a],
        &[("block_size", Attr::Int(4))],
    );
    let y = node1(&mut g, OpKind::MatMul, &[x, d], &[]);
    g.outputs = vec![y];
    check(&g, &[tensor(DType::F32, &[2, 10], vals(20, 13))], 1e-6);
}

#[test]
fn arithmetic_on_storage_dtypes_is_reported() {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F8E4M3FN, &[4]);
    let y = node1(&mut g, OpKind::Add, &[x, x], &[]);
    let i = input_t(&mut g, DType::I4, &[4]);
    let j = node1(&mut g, OpKind::Neg, &[i], &[]);
    g.outputs = vec![y, j];
    let err = lower_graph(&g, &LowerOptions::default()).expect_err("unsupported");
    let nodes = err.nodes();
    assert_eq!(nodes.len(), 2, "{err}");
    assert_eq!(nodes[0].node, "nn.add");
    assert!(nodes[0].reason.contains("f8e4m3fn"), "{err}");
    assert_eq!(nodes[1].node, "nn.neg");
    assert!(nodes[1].reason.contains("i4"), "{err}");
}

// ---- conformance fixes: bit shifts, float mod, integer pow, max pool
// ---- indices and integer pools, einsum ellipses ----

/// Two inputs of `dtype` (the second of `dt2`) through one binary node.
fn check_binary(op: OpKind, dt: DType, a: &[f64], dt2: DType, b: &[f64], attrs: &[(&str, Attr)]) {
    let mut g = Graph::new("t");
    let n = a.len() as u64;
    let x = input_t(&mut g, dt, &[n]);
    let y = g.add_input("y", TensorType::fixed(dt2, &[n]));
    g.outputs = vec![node1(&mut g, op, &[x, y], attrs)];
    check(
        &g,
        &[tensor(dt, &[n], a.to_vec()), tensor(dt2, &[n], b.to_vec())],
        0.0,
    );
}

#[test]
fn bit_shift_signed_out_of_range_and_unsigned() {
    for dt in [DType::I8, DType::I16, DType::I32, DType::I64] {
        let bits = f64::from(dt.bits());
        let x = [-7.0, -1.0, 5.0, -128.0, 100.0, -3.0, 9.0, -100.0, 1.0];
        let s = [1.0, 3.0, 2.0, 1.0, bits - 1.0, bits, -1.0, bits + 3.0, 0.0];
        for dir in ["left", "right"] {
            check_binary(
                OpKind::BitShift,
                dt,
                &x,
                dt,
                &s,
                &[("direction", Attr::Str(dir.into()))],
            );
        }
    }
    for dt in [DType::U8, DType::U16, DType::U32, DType::U64] {
        let bits = f64::from(dt.bits());
        let x = [7.0, 255.0, 5.0, 128.0, 1.0, 3.0];
        let s = [1.0, 7.0, 0.0, bits - 1.0, bits, bits + 9.0];
        for dir in ["left", "right"] {
            check_binary(
                OpKind::BitShift,
                dt,
                &x,
                dt,
                &s,
                &[("direction", Attr::Str(dir.into()))],
            );
        }
    }
}

#[test]
fn float_mod_takes_the_divisor_sign() {
    let inf = f64::INFINITY;
    let x = [
        5.5,
        -5.5,
        5.5,
        -5.5,
        4.0,
        -4.0,
        0.0,
        3.0,
        inf,
        -1.0,
        1.0,
        -1.0,
        f64::NAN,
        2.0,
    ];
    let y = [
        2.0,
        2.0,
        -2.0,
        -2.0,
        -2.0,
        2.0,
        -3.0,
        0.0,
        2.0,
        inf,
        -inf,
        -inf,
        1.0,
        f64::NAN,
    ];
    for dt in [DType::F32, DType::F64, DType::F16] {
        check_binary(OpKind::Mod, dt, &x, dt, &y, &[("fmod", Attr::Bool(false))]);
        check_binary(OpKind::Mod, dt, &x, dt, &y, &[("fmod", Attr::Bool(true))]);
    }
}

#[test]
fn pow_with_integer_base() {
    let b = [2.0, -3.0, 0.0, 1.0, -1.0, -1.0, 0.0, 5.0, 7.0, -2.0, 3.0];
    let e = [
        10.0, 3.0, 0.0, -4.0, -3.0, -2.0, -1.0, -1.0, 40.0, 63.0, 2.0,
    ];
    check_binary(OpKind::Pow, DType::I32, &b, DType::I32, &e, &[]);
    check_binary(OpKind::Pow, DType::I64, &b, DType::I64, &e, &[]);
    check_binary(OpKind::Pow, DType::I8, &b, DType::I64, &e, &[]);
    let ub = [2.0, 3.0, 0.0, 1.0, 255.0, 7.0];
    let ue = [7.0, 5.0, 0.0, 9.0, 2.0, 3.0];
    check_binary(OpKind::Pow, DType::U8, &ub, DType::U32, &ue, &[]);
    let fe = [0.5, 2.5, 1.0, -1.0, 3.0, -0.5, 2.0, 0.5, 2.0, 3.0, 1.5];
    let fb = [4.0, -3.0, 0.0, 2.0, -1.0, 4.0, 1.0, 5.0, 7.0, -2.0, 3.0];
    check_binary(OpKind::Pow, DType::I32, &fb, DType::F32, &fe, &[]);
    check_binary(OpKind::Pow, DType::I64, &fb, DType::F64, &fe, &[]);
}

#[test]
fn max_pool_indices_storage_orders_and_integer_inputs() {
    for (dt, order, pads, strides) in [
        (DType::F32, 0, [1i64, 0, 1, 1], [2i64, 2]),
        (DType::F32, 1, [1, 0, 1, 1], [2, 1]),
        (DType::F64, 1, [0, 0, 0, 0], [1, 1]),
        (DType::I8, 0, [1, 1, 1, 1], [1, 2]),
        (DType::U8, 1, [0, 1, 0, 1], [2, 2]),
    ] {
        for outs in [1, 2] {
            let mut g = Graph::new("t");
            let x = input_t(&mut g, dt, &[2, 2, 5, 6]);
            g.outputs = node_n(
                &mut g,
                OpKind::MaxPool,
                &[Some(x)],
                &[
                    ("kernel_shape", Attr::Ints(vec![3, 2])),
                    ("pads", Attr::Ints(pads.to_vec())),
                    ("strides", Attr::Ints(strides.to_vec())),
                    ("storage_order", Attr::Int(order)),
                ],
                outs,
            );
            // Values with ties (first maximum wins) and, for u8, no negatives.
            let v: Vec<f64> = vals(120, 3)
                .iter()
                .map(|v| {
                    if dt == DType::U8 {
                        (v + 2.0) * 16.0
                    } else {
                        v * 8.0
                    }
                })
                .collect();
            check(&g, &[tensor(dt, &[2, 2, 5, 6], v)], 0.0);
        }
    }
}

#[test]
fn einsum_ellipses_broadcast() {
    for (eq, shapes) in [
        ("...ii->...i", vec![vec![3u64, 4, 4]]),
        ("...ij,...jk->...ik", vec![vec![2, 1, 2, 3], vec![3, 3, 4]]),
        ("...i,...i->...", vec![vec![2, 3], vec![3]]),
        ("i...->i", vec![vec![3, 2, 2]]),
        ("...ij", vec![vec![2, 3, 4]]),
        ("b...j,jk->b...k", vec![vec![2, 3, 4], vec![4, 2]]),
    ] {
        let mut g = Graph::new("t");
        let mut ins = Vec::new();
        let mut data = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            ins.push(input_t(&mut g, DType::F32, s));
            data.push(tensor(
                DType::F32,
                s,
                vals(s.iter().product::<u64>() as usize, i as u64 + 3),
            ));
        }
        g.outputs = vec![node1(
            &mut g,
            OpKind::Einsum,
            &ins,
            &[("equation", Attr::Str(eq.into()))],
        )];
        check(&g, &data, 1e-5);
    }
}

// ---- inverse hyperbolics, celu, shrink and the bitwise ops ----

#[test]
fn inverse_hyperbolics_celu_and_float_shrink() {
    // vals() spans [-2, 2): acosh below 1 and atanh beyond +-1 give NaN,
    // atanh(+-1) gives +-inf.
    for op in [OpKind::Acosh, OpKind::Asinh, OpKind::Atanh] {
        check_unary(op, &[4, 8], &[], &[], 1);
    }
    check_unary(OpKind::Celu, &[3, 7], &[], &[], 1);
    check_unary(
        OpKind::Celu,
        &[3, 7],
        &[],
        &[("alpha", Attr::Float(0.5))],
        1,
    );
    check_unary(OpKind::Shrink, &[5, 6], &[], &[], 1);
    check_unary(
        OpKind::Shrink,
        &[5, 6],
        &[],
        &[("bias", Attr::Float(1.5)), ("lambd", Attr::Float(1.0))],
        1,
    );
    // f64 and f16 operands.
    for dt in [DType::F64, DType::F16] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[12]);
        let a = node1(&mut g, OpKind::Asinh, &[x], &[]);
        let c = node1(&mut g, OpKind::Celu, &[x], &[("alpha", Attr::Float(2.0))]);
        let s = node1(&mut g, OpKind::Shrink, &[x], &[("bias", Attr::Float(0.25))]);
        g.outputs = vec![a, c, s];
        let tol = if dt == DType::F16 { 2e-3 } else { 1e-12 };
        check(&g, &[tensor(dt, &[12], vals(12, 11))], tol);
    }
}

#[test]
fn integer_shrink_truncates_and_wraps() {
    let attrs = [("bias", Attr::Float(1.75)), ("lambd", Attr::Float(1.0))];
    for (dt, v) in [
        (DType::I8, vec![-128, -7, -3, -1, 0, 1, 2, 5, 127]),
        (DType::U8, vec![0, 1, 2, 3, 9, 100, 200, 254, 255]),
        (
            DType::I32,
            vec![
                i64::from(i32::MIN),
                -9,
                -2,
                -1,
                0,
                1,
                2,
                9,
                i64::from(i32::MAX),
            ],
        ),
        (DType::I64, vec![i64::MIN, -9, -2, -1, 0, 1, 2, 9, i64::MAX]),
        (DType::U64, vec![0, 1, 2, 3, 9, 1 << 40, i64::MAX, -2, -1]),
    ] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[9]);
        let y = node1(&mut g, OpKind::Shrink, &[x], &attrs);
        // A negative bias with a negative lambd sends every value through
        // `x - bias`, so unsigned results wrap.
        let z = node1(
            &mut g,
            OpKind::Shrink,
            &[x],
            &[("bias", Attr::Float(3.5)), ("lambd", Attr::Float(-1.0))],
        );
        g.outputs = vec![y, z];
        check(&g, &[ints_t(dt, &[9], &v)], 0.0);
    }
}

#[test]
fn bitwise_ops_every_integer_width_with_broadcasting() {
    let xs: Vec<i64> = (0..24)
        .map(|i| (i * 37 - 300) * 1_000_003 + (i << 59))
        .collect();
    let ys: Vec<i64> = (0..4).map(|i| -(i * 91 + 5) * 77_777 + (i << 61)).collect();
    for dt in [
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
    ] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[2, 3, 4]);
        let y = input_t(&mut g, dt, &[4]);
        let mut outs = vec![node1(&mut g, OpKind::BitwiseNot, &[x], &[])];
        for op in [OpKind::BitwiseAnd, OpKind::BitwiseOr, OpKind::BitwiseXor] {
            outs.push(node1(&mut g, op, &[x, y], &[]));
            outs.push(node1(&mut g, op, &[y, x], &[]));
        }
        g.outputs = outs;
        // from_ints wraps the values to the dtype.
        check(
            &g,
            &[ints_t(dt, &[2, 3, 4], &xs), ints_t(dt, &[4], &ys)],
            0.0,
        );
    }
}

#[test]
fn cumprod_modes_and_integer_wrap() {
    for (excl, rev) in [(false, false), (true, false), (false, true), (true, true)] {
        let attrs = [
            ("exclusive", Attr::Bool(excl)),
            ("reverse", Attr::Bool(rev)),
        ];
        check_unary(OpKind::CumProd, &[2, 5], &[Some(i64_scalar(1))], &attrs, 1);
        check_unary(OpKind::CumProd, &[3, 2], &[Some(i64s(&[-2]))], &attrs, 1);
        let mut g = Graph::new("t");
        let x = input_t(&mut g, DType::I8, &[2, 4]);
        let ax = konst_t(&mut g, &i64_scalar(-1));
        g.outputs = vec![node1(&mut g, OpKind::CumProd, &[x, ax], &attrs)];
        check(
            &g,
            &[ints_t(DType::I8, &[2, 4], &[3, -7, 100, 9, -128, 2, 2, -1])],
            0.0,
        );
    }
}

#[test]
fn lp_normalization_and_global_lp_pool() {
    for p in [1, 2] {
        for axis in [0, 1, -1] {
            let attrs = [("p", Attr::Int(p)), ("axis", Attr::Int(axis))];
            check_unary(OpKind::LpNormalization, &[3, 4, 5], &[], &attrs, 1);
        }
    }
    for p in [1, 2, 3] {
        check_unary(
            OpKind::GlobalLpPool,
            &[2, 3, 4, 5],
            &[],
            &[("p", Attr::Int(p))],
            1,
        );
        check_unary(
            OpKind::GlobalLpPool,
            &[1, 2, 7],
            &[],
            &[("p", Attr::Int(p))],
            1,
        );
    }
    // A zero lane normalizes to 0; f16 and f64 operands.
    for dt in [DType::F16, DType::F64] {
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[2, 1, 4]);
        let y = node1(&mut g, OpKind::LpNormalization, &[x], &[]);
        let z = node1(&mut g, OpKind::GlobalLpPool, &[x], &[]);
        g.outputs = vec![y, z];
        let tol = if dt == DType::F16 { 1e-3 } else { 1e-12 };
        let v = vec![0.0, 0.0, 0.0, 0.0, 3.0, -4.0, 0.5, 1.0];
        check(&g, &[tensor(dt, &[2, 1, 4], v)], tol);
    }
}

/// f16/bf16 contractions accumulate in f32 and softmax rounds each step to
/// the dtype, as the interpreter (and the ONNX reference) does; attention on
/// f16 with and without `softmax_precision`.
#[test]
fn half_precision_softmax_matmul_gemm_attention() {
    // (bf16 takes the same paths; its f32 -> bf16 truncation calls a
    // compiler-rt builtin this harness does not link.)
    {
        let dt = DType::F16;
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[3, 40]);
        let w = input_t(&mut g, dt, &[40, 5]);
        let c = input_t(&mut g, dt, &[1, 5]);
        let s = node1(&mut g, OpKind::Softmax, &[x], &[("axis", Attr::Int(-1))]);
        let m = node1(&mut g, OpKind::MatMul, &[x, w], &[]);
        let gm = node1(
            &mut g,
            OpKind::Gemm,
            &[x, w, c],
            &[("alpha", Attr::Float(0.5)), ("beta", Attr::Float(2.0))],
        );
        g.outputs = vec![s, m, gm];
        let scaled = |n: usize, seed: u64, k: f64| vals(n, seed).iter().map(|v| v * k).collect();
        check(
            &g,
            &[
                tensor(dt, &[3, 40], scaled(120, 1, 3.0)),
                tensor(dt, &[40, 5], scaled(200, 2, 0.25)),
                tensor(dt, &[1, 5], scaled(5, 3, 1.0)),
            ],
            2e-3,
        );
    }
    for (attrs, causal) in [
        (vec![("is_causal", Attr::Bool(true))], true),
        (vec![("softmax_precision", Attr::Int(1))], false),
    ] {
        let mut g = Graph::new("t");
        let shapes = [[2u64, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8]];
        let ins: Vec<_> = shapes
            .iter()
            .map(|s| Some(input_t(&mut g, DType::F16, s)))
            .collect();
        g.outputs = node_n(&mut g, OpKind::Attention, &ins, &attrs, 1);
        let data: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.iter().product::<u64>() as usize;
                tensor(DType::F16, s, vals(n, i as u64 + u64::from(causal)))
            })
            .collect();
        check(&g, &data, 2e-3);
    }
}

// ---- grid_sample, bit_cast, dft, stft ----

/// Every mode, padding and alignment of a 4-D grid sample in one graph
/// (grid coordinates in [-2, 2) on a 1/16 lattice: outside samples and
/// exact nearest ties included), and the 5-D forms.
#[test]
fn grid_sample_every_mode_padding_and_alignment() {
    for (xs, gs) in [
        ([2u64, 3, 4, 5].as_slice(), [2u64, 3, 6, 2].as_slice()),
        (&[1, 2, 3, 4, 2], &[1, 2, 3, 2, 3]),
    ] {
        // One graph per mode: the test harness calls at most 12 arguments.
        for mode in ["nearest", "linear", "cubic"] {
            let mut g = Graph::new("t");
            let x = input_t(&mut g, DType::F32, xs);
            let grid = g.add_input("grid", TensorType::fixed(DType::F32, gs));
            let mut outs = Vec::new();
            for pad in ["zeros", "border", "reflection"] {
                for ac in [false, true] {
                    outs.extend(node(
                        &mut g,
                        OpKind::GridSample,
                        &[Some(x), Some(grid)],
                        &[
                            ("mode", Attr::Str(mode.into())),
                            ("padding_mode", Attr::Str(pad.into())),
                            ("align_corners", Attr::Bool(ac)),
                        ],
                    ));
                }
            }
            g.outputs = outs;
            let (nx, ng) = (
                xs.iter().product::<u64>() as usize,
                gs.iter().product::<u64>() as usize,
            );
            check(
                &g,
                &[
                    tensor(DType::F32, xs, vals(nx, 11)),
                    tensor(DType::F32, gs, vals(ng, 12)),
                ],
                1e-6,
            );
        }
    }
}

/// `nearest` copies integers exactly; f16 inputs interpolate through f64.
#[test]
fn grid_sample_integers_and_half() {
    let mut g = Graph::new("t");
    let xi = input_t(&mut g, DType::I64, &[1, 2, 3, 3]);
    let xh = g.add_input("xh", TensorType::fixed(DType::F16, &[1, 2, 3, 3]));
    let grid = g.add_input("grid", TensorType::fixed(DType::F64, &[1, 4, 2, 2]));
    let a = node(
        &mut g,
        OpKind::GridSample,
        &[Some(xi), Some(grid)],
        &[("mode", Attr::Str("nearest".into()))],
    );
    let b = node(
        &mut g,
        OpKind::GridSample,
        &[Some(xh), Some(grid)],
        &[("padding_mode", Attr::Str("reflection".into()))],
    );
    g.outputs = [a, b].concat();
    let big: Vec<i64> = (0..18).map(|i| (1i64 << 60) + i * 977).collect();
    check(
        &g,
        &[
            ints_t(DType::I64, &[1, 2, 3, 3], &big),
            tensor(DType::F16, &[1, 2, 3, 3], vals(18, 13)),
            tensor(DType::F64, &[1, 4, 2, 2], vals(16, 14)),
        ],
        1e-3,
    );
}

/// Every byte or word pattern reinterpreted between same-width dtypes,
/// storage-only ones (float8, 4-bit) and bool included.
#[test]
fn bit_cast_pairs() {
    let pairs = [
        (DType::F32, DType::I32),
        (DType::I32, DType::F32),
        (DType::U32, DType::F32),
        (DType::F64, DType::I64),
        (DType::I64, DType::F64),
        (DType::F16, DType::U16),
        (DType::I16, DType::BF16),
        (DType::BF16, DType::F16),
        (DType::Bool, DType::U8),
        (DType::U8, DType::Bool),
        (DType::U8, DType::I8),
        (DType::I8, DType::F8E4M3FN),
        (DType::U8, DType::F8E5M2),
        (DType::F8E5M2, DType::U8),
        (DType::F8E4M3FN, DType::F8E5M2),
        (DType::I4, DType::U4),
        (DType::U4, DType::I4),
    ];
    for (from, to) in pairs {
        let n = 256u64;
        let mut g = Graph::new("t");
        let x = input_t(&mut g, from, &[n]);
        g.outputs = node(
            &mut g,
            OpKind::BitCast,
            &[Some(x)],
            &[("to", Attr::DType(to))],
        );
        let width = from.storage_bytes(n).unwrap() as usize;
        // Byte i of a pattern sweeps every value of each byte position.
        // Bools are 0/1; float patterns go through the interpreter's f64
        // values once, which quiets signaling NaNs and makes float8 NaN
        // codes canonical: the compiled code keeps every bit it is given.
        let bytes: Vec<u8> = (0..width)
            .map(|i| {
                let b = (i * 37 + i / 256) as u8;
                match from {
                    DType::Bool => b & 1,
                    _ => b,
                }
            })
            .collect();
        let bytes = Tensor::from_bytes(from, &[n], &bytes)
            .expect("pattern bytes")
            .to_bytes();
        check_bytes(&g, &[bytes], 0.0);
    }
}

/// `(dft_length, axis, inverse, onesided)` of one `nn.dft` node.
type DftCase = (Option<i64>, i64, bool, bool);

/// The `nn.dft` nodes `cases` over one f32 input of `shape`, in one graph.
fn check_dft(shape: &[u64], cases: &[DftCase]) {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F32, shape);
    let mut outs = Vec::new();
    for &(len, axis, inverse, onesided) in cases {
        let len = len.map(|l| konst_t(&mut g, &i64_scalar(l)));
        let axis = Some(konst_t(&mut g, &i64_scalar(axis)));
        outs.extend(node(
            &mut g,
            OpKind::Dft,
            &[Some(x), len, axis],
            &[
                ("inverse", Attr::Bool(inverse)),
                ("onesided", Attr::Bool(onesided)),
            ],
        ));
    }
    g.outputs = outs;
    let n = shape.iter().product::<u64>() as usize;
    check(&g, &[tensor(DType::F32, shape, vals(n, 15))], 1e-6);
}

/// `dft` forward, inverse, padded, truncated, one-sided and inverse real
/// (even and odd lengths), on real and complex inputs.
#[test]
fn dft_modes() {
    check_dft(
        &[2, 8, 3, 1],
        &[
            (None, 1, false, false),
            (None, 1, false, true),
            (Some(6), 1, true, false),
            (Some(5), -2, false, true),
        ],
    );
    check_dft(
        &[2, 8, 3, 2],
        &[
            (Some(11), 1, false, false),
            (Some(2), -2, false, false),
            (None, 1, true, false),
            (Some(3), 0, false, false),
        ],
    );
    check_dft(
        &[1, 5, 2, 2],
        &[
            (None, 1, true, true),
            (Some(9), 1, true, true),
            (Some(4), 1, true, true),
        ],
    );
    // No input bins: an inverse real transform of zeros, a forward one of
    // nothing.
    check_dft(
        &[2, 0, 2],
        &[(Some(4), 1, true, true), (Some(3), 1, false, false)],
    );
}

/// `stft` with a window (one-sided) and of a complex signal with
/// `frame_length` (two-sided).
#[test]
fn stft_frames() {
    let mut g = Graph::new("t");
    let sig = input_t(&mut g, DType::F32, &[2, 40, 1]);
    let sigc = g.add_input("sigc", TensorType::fixed(DType::F32, &[1, 21, 2]));
    let step = konst_t(&mut g, &i64_scalar(6));
    let window = konst_t(&mut g, &tensor(DType::F32, &[10], vals(10, 21)));
    let mut outs = node(
        &mut g,
        OpKind::Stft,
        &[Some(sig), Some(step), Some(window)],
        &[],
    );
    let step = konst_t(&mut g, &i64_scalar(4));
    let frame = konst_t(&mut g, &i64_scalar(7));
    outs.extend(node(
        &mut g,
        OpKind::Stft,
        &[Some(sigc), Some(step), None, Some(frame)],
        &[("onesided", Attr::Bool(false))],
    ));
    g.outputs = outs;
    check(
        &g,
        &[
            tensor(DType::F32, &[2, 40, 1], vals(80, 18)),
            tensor(DType::F32, &[1, 21, 2], vals(42, 19)),
        ],
        1e-6,
    );
}

/// Half-precision convolutions accumulate in f32 and round once: with
/// 576 products of values on a 1/16 grid, the f32 sum is exact, so the
/// result must equal the interpreter's (an exact sum rounded once) bit for
/// bit; accumulating in f16 would lose the low bits of the partial sums.
/// (bf16 takes the same path; its f32 → bf16 rounding is a compiler-rt
/// call that artifacts link and this harness does not.)
#[test]
fn half_precision_convolutions_round_once() {
    {
        let dt = DType::F16;
        let mut g = Graph::new("t");
        let x = input_t(&mut g, dt, &[1, 64, 5, 5]);
        let w = konst_t(&mut g, &tensor(dt, &[4, 64, 3, 3], vals(4 * 64 * 9, 5)));
        let b = konst_t(&mut g, &tensor(dt, &[4], vals(4, 6)));
        let y = node1(&mut g, OpKind::Conv, &[x, w, b], &[]);
        let wt = konst_t(&mut g, &tensor(dt, &[64, 2, 3, 3], vals(64 * 2 * 9, 7)));
        let t = node1(
            &mut g,
            OpKind::ConvTranspose,
            &[x, wt],
            &[("strides", Attr::Ints(vec![2, 2]))],
        );
        g.outputs = vec![y, t];
        check(&g, &[tensor(dt, &[1, 64, 5, 5], vals(64 * 25, 8))], 0.0);
    }
}

/// Multi-step float functions on f16 compute in f32 and round once, as
/// the interpreter rounds each op's result once: the outputs must equal
/// the interpreter's bit for bit (rounding every step in f16 does not).
/// Softplus and Mish are left out: f32's `log(1 + e)` is itself an ulp
/// off the interpreter's f64 for large negative inputs.
#[test]
fn half_precision_functions_round_once() {
    let mut g = Graph::new("t");
    let x = input_t(&mut g, DType::F16, &[256]);
    let mut outs = Vec::new();
    for op in [
        OpKind::Sigmoid,
        OpKind::Softsign,
        OpKind::Elu,
        OpKind::HardSwish,
        OpKind::Swish,
    ] {
        outs.push(node1(&mut g, op, &[x], &[]));
    }
    g.outputs = outs;
    let v: Vec<f64> = (0..256).map(|i| (i as f64 - 128.0) / 19.0).collect();
    check(&g, &[tensor(DType::F16, &[256], v)], 0.0);
}
