//! Every path the planned lowering sends to the kernel library, checked
//! against the reference interpreter on odd sizes (1, primes, the register
//! tile ± 1) at 1 and 2 threads with parallel regions forced
//! (`KILN_PARALLEL_MIN_US=0`). Each case also asserts that the kernel it is
//! about was called, so a silent fallback to tensor code fails the test.
//!
//! Inputs are drawn from a normal distribution (a seeded generator);
//! expected values come from `kiln_interp` on the graph as written (before
//! any pass), compared with an f32 tolerance scaled to the reduction length:
//! relative above magnitude 1, absolute below (outputs are sums of O(1)
//! terms, so tiny values carry the absolute rounding error of their sum).

use kiln_codegen::Target;
use kiln_driver::tensors::{max_relative_error, AlignedBytes, HostTensor};
use kiln_driver::{compile, CompileOptions, OptLevel, Session, SessionOptions};
use kiln_ir::ops::layout::{PackLayout, Packing};
use kiln_ir::DType;
use std::fmt::Write;
use std::sync::Once;

/// A small seeded generator of normally distributed f32 (Box-Muller).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    fn vec(&mut self, n: u64, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

fn dims(shape: &[u64]) -> String {
    let mut s = String::new();
    for d in shape {
        let _ = write!(s, "{d}x");
    }
    s
}

fn ty(shape: &[u64]) -> String {
    format!("tensor<{}f32>", dims(shape))
}

/// `weight @name : tensor<..> = dense<"0x..">` for `values`.
fn weight(name: &str, shape: &[u64], values: &[f32]) -> String {
    let mut hex = String::with_capacity(values.len() * 8);
    for v in values {
        for b in v.to_le_bytes() {
            let _ = write!(hex, "{b:02X}");
        }
    }
    format!("weight @{name} : {} = dense<\"0x{hex}\">\n", ty(shape))
}

fn f32_tensor(name: &str, shape: &[u64], values: &[f32]) -> HostTensor {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    HostTensor {
        name: name.into(),
        dtype: DType::F32,
        shape: shape.to_vec(),
        data: AlignedBytes::from_slice(&bytes),
    }
}

/// The targets each case is compiled for: this machine, and on x86-64 also
/// the AVX2 and the SSE2 baselines (other kernel variants: register tiles and
/// panel widths), which this machine can run.
fn targets() -> Vec<Target> {
    let host = Target::host().expect("a host target");
    let mut v = vec![host.clone()];
    if host.arch() == kiln_codegen::Arch::X86_64 {
        for cpu in ["x86-64-v3", "x86-64"] {
            let t = Target::parse(cpu).expect("a known CPU");
            if t.cpu_config() != host.cpu_config() {
                v.push(t);
            }
        }
    }
    v
}

/// The panel width of packed weights on `t`.
fn nr(t: &Target) -> u64 {
    t.cpu_config().expect("a CPU").panel_width() as u64
}

/// Compiles `kir` at -O3 for every target, checks that every kernel in
/// `kernels` is called, runs it at 1 and 2 threads on random inputs and
/// compares with the interpreter.
fn check(name: &str, kir: &str, inputs: &[(&str, &[u64])], kernels: &[&str], tol: f64) {
    for t in targets() {
        check_on(&t, name, kir, inputs, kernels, tol);
    }
}

fn check_on(
    target: &Target,
    name: &str,
    kir: &str,
    inputs: &[(&str, &[u64])],
    kernels: &[&str],
    tol: f64,
) {
    let name = &format!("{name} [{target}]");
    static ENV: Once = Once::new();
    // SAFETY (set_var): done once, before any thread of this binary reads it
    // (the parallel shim reads it at the first parallel region of a run).
    ENV.call_once(|| unsafe { std::env::set_var("KILN_PARALLEL_MIN_US", "0") });
    let graph = match kiln_ir::text::parse(kir, name, None) {
        Ok(p) => p.graph,
        Err(e) => panic!("{name}: {}\n{kir}", e[0]),
    };
    let mut rng = Rng(0x9e37_79b9 ^ name.len() as u64);
    let host_inputs: Vec<HostTensor> = inputs
        .iter()
        .map(|(n, s)| f32_tensor(n, s, &rng.vec(s.iter().product(), 1.0)))
        .collect();
    let interp_inputs: Vec<kiln_interp::Tensor> =
        host_inputs.iter().map(|t| t.to_interp().unwrap()).collect();
    let expected = kiln_interp::run_graph(&graph, &interp_inputs)
        .unwrap_or_else(|e| panic!("{name}: interpreter: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    let mut opts = CompileOptions::new(target.clone(), Some(so.clone()));
    opts.set_level(OptLevel::O3);
    let art = compile(graph.clone(), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    for k in kernels {
        assert!(
            art.kernels
                .iter()
                .any(|s| s.starts_with(&format!("kiln_k_{k}_"))),
            "{name}: kernel {k} not called (called: {:?})",
            art.kernels
        );
    }
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    for threads in [1, 2] {
        session.set_num_threads(threads).unwrap();
        let got = session.run(&host_inputs).unwrap();
        assert_eq!(got.len(), expected.len(), "{name}: output count");
        for (e, g) in expected.iter().zip(&got) {
            let e = HostTensor::from_interp(&g.name, e);
            let err = max_relative_error(&e, g, 1.0).unwrap_or_else(|m| panic!("{name}: {m}"));
            assert!(
                err <= tol,
                "{name} at {threads} threads: output {}: max relative error {err} > {tol}",
                g.name
            );
        }
    }
}

/// Relative tolerance for f32 sums of `k` products of N(0, 1) values: the
/// rounding error of a length-`k` f32 dot product grows with `k` (the
/// kernels block and reorder the sum), far below the 1e-3 of conformance;
/// a wrong index or epilogue gives errors of order 1.
fn tol_k(k: u64) -> f64 {
    2e-5 + 4e-7 * k as f64
}

#[test]
fn matmul_with_constant_weights_and_an_epilogue() {
    let nr = nr(&targets()[0]);
    let mut rng = Rng(7);
    for (m, k, n) in [
        (1, 1, 1),
        (1, 7, 13),
        (5, 17, 31),
        (6, 16, nr),
        (7, 33, nr + 1),
        (13, 64, 2 * nr - 1),
        (128, 96, 96),
    ] {
        let w = rng.vec(k * n, 0.3);
        let bias = rng.vec(n, 1.0);
        let kir = format!(
            "{}{}graph @g(%x: {}, %r: {}) -> ({}) {{\n  %w = nn.constant {{value = @w}} : {}\n  %b = nn.constant {{value = @b}} : {}\n  %m = nn.matmul %x, %w : {}\n  %a = nn.add %m, %b : {}\n  %s = nn.add %a, %r : {}\n  %y = nn.relu %s : {}\n  return %y\n}}\n",
            weight("w", &[k, n], &w),
            weight("b", &[n], &bias),
            ty(&[m, k]),
            ty(&[m, n]),
            ty(&[m, n]),
            ty(&[k, n]),
            ty(&[n]),
            ty(&[m, n]),
            ty(&[m, n]),
            ty(&[m, n]),
            ty(&[m, n]),
        );
        check(
            &format!("matmul {m}x{k}x{n}"),
            &kir,
            &[("x", &[m, k]), ("r", &[m, n])],
            &["gemm"],
            tol_k(k),
        );
    }
}

#[test]
fn batched_and_broadcast_matmuls_of_runtime_operands() {
    for (a, b, o) in [
        (
            vec![2u64, 3, 5, 7],
            vec![2u64, 3, 7, 11],
            vec![2u64, 3, 5, 11],
        ),
        (vec![1, 17], vec![3, 17, 4], vec![3, 1, 4]),
        (vec![4, 9, 16], vec![16, 65], vec![4, 9, 65]),
        (vec![2, 1, 13], vec![2, 13, 1], vec![2, 1, 1]),
    ] {
        let kir = format!(
            "graph @g(%a: {}, %b: {}) -> ({}) {{\n  %y = nn.matmul %a, %b : {}\n  return %y\n}}\n",
            ty(&a),
            ty(&b),
            ty(&o),
            ty(&o)
        );
        let k = a[a.len() - 1];
        check(
            &format!("batched matmul {a:?} x {b:?}"),
            &kir,
            &[("a", &a), ("b", &b)],
            &["gemm"],
            tol_k(k),
        );
    }
}

#[test]
fn gemm_with_transposes_alpha_and_c() {
    for (ta, tb, m, k, n) in [
        (false, true, 3, 5, 7),
        (true, false, 9, 2, 17),
        (true, true, 1, 31, 5),
    ] {
        let (sa, sb) = (
            if ta { [k, m] } else { [m, k] },
            if tb { [n, k] } else { [k, n] },
        );
        let kir = format!(
            "graph @g(%a: {}, %b: {}, %c: {}) -> ({}) {{\n  %y = nn.gemm %a, %b, %c {{alpha = 0.5, trans_a = {ta}, trans_b = {tb}}} : {}\n  return %y\n}}\n",
            ty(&sa),
            ty(&sb),
            ty(&[n]),
            ty(&[m, n]),
            ty(&[m, n])
        );
        check(
            &format!("gemm ta={ta} tb={tb} {m}x{k}x{n}"),
            &kir,
            &[("a", &sa), ("b", &sb), ("c", &[n])],
            &["gemm"],
            tol_k(k),
        );
    }
}

#[test]
fn softmax_log_softmax_and_norms_over_odd_rows() {
    for (rows, cols) in [(1u64, 1u64), (3, 7), (5, 17), (2, 129)] {
        let s = [rows, cols];
        let kir = format!(
            "graph @g(%x: {t}, %gm: {v}, %bt: {v}) -> ({t}, {t}, {t}, {t}) {{\n  %a = nn.softmax %x : {t}\n  %b = nn.log_softmax %x : {t}\n  %c = nn.layer_norm %x, %gm, %bt {{epsilon = 1e-5}} : {t}\n  %d = nn.rms_norm %x, %gm : {t}\n  return %a, %b, %c, %d\n}}\n",
            t = ty(&s),
            v = ty(&[cols])
        );
        check(
            &format!("softmax and norms {rows}x{cols}"),
            &kir,
            &[("x", &s), ("gm", &[cols]), ("bt", &[cols])],
            &["softmax", "norm"],
            1e-5,
        );
    }
}

#[test]
fn elementwise_chains_through_the_executor() {
    for shape in [vec![1u64], vec![3, 17], vec![2, 5, 33]] {
        let t = ty(&shape);
        let kir = format!(
            "graph @g(%x: {t}) -> ({t}, {t}) {{\n  %a = nn.gelu %x : {t}\n  %b = nn.erf %x : {t}\n  %c = nn.tanh %b : {t}\n  %d = nn.sigmoid %c : {t}\n  return %a, %d\n}}\n"
        );
        check(
            &format!("elementwise {shape:?}"),
            &kir,
            &[("x", &shape)],
            &["eltwise"],
            2e-6,
        );
    }
    // Sums of same-shape operands (the col2im sums of conv-transpose-to-conv)
    // run over rows wider than a narrow last dim; a per-last-dim vector keeps
    // the last dim as the row.
    for shape in [vec![4u64, 9, 3], vec![1, 7, 1], vec![3, 300, 2]] {
        let t = ty(&shape);
        let last = *shape.last().unwrap();
        let v = ty(&[last]);
        let kir = format!(
            "graph @g(%x: {t}, %y: {t}, %z: {t}, %v: {v}) -> ({t}, {t}) {{\n  %a = nn.add %x, %y : {t}\n  %b = nn.add %a, %z : {t}\n  %c = nn.tanh %b : {t}\n  %d = nn.add %x, %v : {t}\n  %e = nn.mul %d, %y : {t}\n  return %c, %e\n}}\n"
        );
        check(
            &format!("elementwise sums {shape:?}"),
            &kir,
            &[("x", &shape), ("y", &shape), ("z", &shape), ("v", &[last])],
            &["eltwise"],
            2e-6,
        );
    }
}

#[test]
fn concat_split_and_transposes_as_strided_copies() {
    // A ShuffleNet unit's data movement (concat, channel shuffle, split),
    // a concat along a middle axis and NHWC <-> NCHW transposes (8 x 8
    // blocks in registers and their edges), at 1, primes and around the
    // vector widths.
    for (hw, c) in [(1u64, 1u64), (3, 17), (5, 29), (2, 16), (7, 67)] {
        let x = [1, hw, hw + 1, c];
        let cat = [1, hw, hw + 1, 2 * c];
        let grouped = [1, hw, hw + 1, 2, c];
        let shuffled = [1, hw, hw + 1, c, 2];
        let mid = [1, 2 * hw, hw + 1, c];
        let nchw = [1, c, hw, hw + 1];
        let kir = format!(
            "weight @s5 : tensor<5xi64> = dense<[{g}]>\n\
             weight @s4 : tensor<4xi64> = dense<[{f}]>\n\
             weight @halves : tensor<2xi64> = dense<[{c}, {c}]>\n\
             graph @g(%x: {tx}, %y: {tx}) -> ({tx}, {tx}, {tm}, {tn}, {tx}) {{\n\
             \x20 %s5 = nn.constant {{value = @s5}} : tensor<5xi64>\n\
             \x20 %s4 = nn.constant {{value = @s4}} : tensor<4xi64>\n\
             \x20 %halves = nn.constant {{value = @halves}} : tensor<2xi64>\n\
             \x20 %cat = nn.concat %x, %y {{axis = 3}} : {tc}\n\
             \x20 %r = nn.reshape %cat, %s5 : {tg}\n\
             \x20 %t = nn.transpose %r {{perm = [0, 1, 2, 4, 3]}} : {ts}\n\
             \x20 %f = nn.reshape %t, %s4 : {tc}\n\
             \x20 %a, %b = nn.split %f, %halves {{axis = -1}} : {tx}, {tx}\n\
             \x20 %m = nn.concat %y, %x {{axis = 1}} : {tm}\n\
             \x20 %n = nn.transpose %x {{perm = [0, 3, 1, 2]}} : {tn}\n\
             \x20 %back = nn.transpose %n {{perm = [0, 2, 3, 1]}} : {tx}\n\
             \x20 %z = nn.add %back, %y : {tx}\n\
             \x20 return %a, %b, %m, %n, %z\n}}\n",
            g = grouped.map(|d| d.to_string()).join(", "),
            f = cat.map(|d| d.to_string()).join(", "),
            tx = ty(&x),
            tc = ty(&cat),
            tg = ty(&grouped),
            ts = ty(&shuffled),
            tm = ty(&mid),
            tn = ty(&nchw),
        );
        check(
            &format!("data movement {hw}x{c}"),
            &kir,
            &[("x", &x), ("y", &x)],
            &["copy"],
            0.0,
        );
    }
}

/// The kernels an -O3 artifact of `kir` for `target` calls.
fn kernels_called(target: &Target, kir: &str) -> Vec<String> {
    let graph = kiln_ir::text::parse(kir, "kernels_called", None)
        .unwrap_or_else(|e| panic!("{}\n{kir}", e[0]))
        .graph;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = CompileOptions::new(target.clone(), Some(dir.path().join("model.so")));
    opts.set_level(OptLevel::O3);
    compile(graph, &opts).unwrap().kernels
}

/// `nn.conv` (NHWC, 1x1 or 3x3 with padding 1) of `x` with weights `w`
/// `[cout, cin, k, k]`, bias `b` and a relu, as kir lines.
fn conv_relu(name: &str, x: &str, w: &str, k: u64, out: &[u64]) -> String {
    let p = k / 2;
    format!(
        "  %{name}_w = nn.constant {{value = @{w}}} : {wt}\n\
         \x20 %{name}_b = nn.constant {{value = @{w}_b}} : {bt}\n\
         \x20 %{name}_c = nn.conv %{x}, %{name}_w, %{name}_b {{group = 1, kernel_shape = [{k}, {k}], layout = \"nhwc\", pads = [{p}, {p}, {p}, {p}], strides = [1, 1]}} : {ot}\n\
         \x20 %{name} = nn.relu %{name}_c : {ot}\n",
        wt = "{W}",
        bt = ty(&[out[3]]),
        ot = ty(out),
    )
}

#[test]
fn concats_of_convolutions_are_stored_in_place() {
    // A SqueezeNet fire module with a GoogLeNet-style pooling branch: every
    // concat operand is a convolution's result, so each convolution stores
    // into its channels of the concat and nothing is copied; then a concat
    // with a graph input beside a convolution (only the input is copied).
    let nr = nr(&targets()[0]);
    for (hw, cin, e1, e3, pp) in [
        (1u64, 1u64, 1u64, 1u64, 1u64),
        (5, 3, 17, 13, 5),
        (3, 16, nr - 1, nr + 1, 2),
    ] {
        let mut rng = Rng(hw * 131 + e1);
        let sq = 7;
        let total = e1 + e3 + pp;
        let mut weights = String::new();
        let mut wt = std::collections::HashMap::new();
        for (name, cout, c_in, k) in [
            ("ws", sq, cin, 1u64),
            ("w1", e1, sq, 1),
            ("w3", e3, sq, 3),
            ("wp", pp, cin, 1),
            ("wo", 3, total, 1),
            ("wm", 5, cin, 3),
            ("wq", 2, cin + 5, 1),
        ] {
            let shape = [cout, c_in, k, k];
            weights += &weight(name, &shape, &rng.vec(shape.iter().product(), 0.3));
            weights += &weight(&format!("{name}_b"), &[cout], &rng.vec(cout, 1.0));
            wt.insert(name, ty(&shape));
        }
        let t = |c: u64| [1, hw, hw + 2, c];
        let conv = |name: &str, x: &str, w: &str, k: u64, c: u64| {
            conv_relu(name, x, w, k, &t(c)).replace("{W}", &wt[w])
        };
        let fire = format!(
            "{weights}graph @g(%x: {tx}) -> ({to}) {{\n{}{}{}\
             \x20 %pool = nn.max_pool %x {{kernel_shape = [3, 3], layout = \"nhwc\", pads = [1, 1, 1, 1], strides = [1, 1]}} : {tx}\n{}\
             \x20 %cat = nn.concat %e1, %e3, %pp {{axis = 3}} : {tc}\n{}\
             \x20 return %o\n}}\n",
            conv("s", "x", "ws", 1, sq),
            conv("e1", "s", "w1", 1, e1),
            conv("e3", "s", "w3", 3, e3),
            conv("pp", "pool", "wp", 1, pp),
            conv("o", "cat", "wo", 1, 3),
            tx = ty(&t(cin)),
            tc = ty(&t(total)),
            to = ty(&t(3)),
        );
        check(
            &format!("fire {hw}x{cin} -> {e1}+{e3}+{pp}"),
            &fire,
            &[("x", &t(cin))],
            &["conv2d", "pool2d"],
            tol_k(9 * sq) * 4.0,
        );
        for target in targets() {
            let called = kernels_called(&target, &fire);
            assert!(
                !called.iter().any(|k| k.starts_with("kiln_k_copy_")),
                "fire {hw}x{cin} [{target}]: a concat operand was copied: {called:?}"
            );
        }
        let mixed = format!(
            "{weights}graph @g(%x: {tx}) -> ({tq}, {tm}) {{\n{}\
             \x20 %cat = nn.concat %x, %m {{axis = -1}} : {tm}\n{}\
             \x20 return %q, %cat\n}}\n",
            conv("m", "x", "wm", 3, 5),
            conv("q", "cat", "wq", 1, 2),
            tx = ty(&t(cin)),
            tm = ty(&t(cin + 5)),
            tq = ty(&t(2)),
        );
        check(
            &format!("concat of an input and a conv {hw}x{cin}"),
            &mixed,
            &[("x", &t(cin))],
            &["conv2d", "copy"],
            tol_k(9 * cin + cin + 5) * 4.0,
        );
    }
}

#[test]
fn attention_with_masks_causality_and_grouped_heads() {
    // (batch, q heads, kv heads, sq, sk, d, 3-D layout, mask, causal)
    for (b, hq, hkv, sq, sk, d, three_d, mask, causal) in [
        (1u64, 2u64, 2u64, 5u64, 5u64, 8u64, false, false, true),
        (2, 4, 2, 3, 17, 16, false, true, false),
        (1, 3, 1, 33, 65, 7, false, false, false),
        (2, 2, 2, 7, 7, 4, true, true, true),
    ] {
        let (qs, ks, os) = if three_d {
            (
                vec![b, sq, hq * d],
                vec![b, sk, hkv * d],
                vec![b, sq, hq * d],
            )
        } else {
            (vec![b, hq, sq, d], vec![b, hkv, sk, d], vec![b, hq, sq, d])
        };
        let heads = if three_d {
            format!(", kv_num_heads = {hkv}, q_num_heads = {hq}")
        } else {
            String::new()
        };
        let ms = [1, 1, sq, sk];
        let (mask_arg, mask_in) = if mask {
            (", %m".to_string(), format!(", %m: {}", ty(&ms)))
        } else {
            (String::new(), String::new())
        };
        let kir = format!(
            "graph @g(%q: {}, %k: {}, %v: {}{mask_in}) -> ({}) {{\n  %y = nn.attention %q, %k, %v{mask_arg} {{is_causal = {causal}{heads}}} : {}\n  return %y\n}}\n",
            ty(&qs),
            ty(&ks),
            ty(&ks),
            ty(&os),
            ty(&os)
        );
        let mut inputs: Vec<(&str, &[u64])> = vec![("q", &qs), ("k", &ks), ("v", &ks)];
        if mask {
            inputs.push(("m", &ms));
        }
        check(
            &format!("attention b{b} h{hq}/{hkv} {sq}x{sk} d{d} 3d={three_d} mask={mask} causal={causal}"),
            &kir,
            &inputs,
            &["attention"],
            1e-5,
        );
    }
}

/// One NHWC convolution case: `n` images of `h x w x cin` to `cout`
/// channels, a square `k x k` kernel, stride, padding and groups.
#[derive(Clone, Copy)]
struct Conv {
    n: u64,
    h: u64,
    w: u64,
    cin: u64,
    cout: u64,
    k: u64,
    stride: u64,
    pad: u64,
    groups: u64,
}

/// `nn.conv` in NHWC with its weights packed for each target's kernels, the
/// bias and a ReLU6 after it.
fn conv_case(c: Conv) {
    for t in targets() {
        conv_case_on(&t, c);
    }
}

fn conv_case_on(target: &Target, c: Conv) {
    let Conv {
        n,
        h,
        w,
        cin,
        cout,
        k,
        stride,
        pad,
        groups,
    } = c;
    let mut rng = Rng(h * 31 + cin);
    let depthwise = groups == cin && cout == cin;
    let wshape = [cout, cin / groups, k, k];
    let wv = rng.vec(wshape.iter().product(), 0.3);
    let bias = rng.vec(cout, 1.0);
    let (layout, block) = if depthwise {
        (PackLayout::DwConvNhwc, 1)
    } else {
        (PackLayout::ConvNhwc, nr(target))
    };
    let p = Packing::new(layout, block, groups, wshape.to_vec()).unwrap();
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let (xs, ys) = ([n, h, w, cin], [n, oh, ow, cout]);
    let kir = format!(
        "{}{}weight @wp : {} = derived<nn.pack {{block = {block}, groups = {groups}, layout = \"{}\"}}>(@w)\ngraph @g(%x: {}) -> ({}) {{\n  %wp = nn.constant {{value = @wp}} : {}\n  %wu = nn.unpack %wp {{block = {block}, groups = {groups}, layout = \"{}\", shape = [{}, {}, {k}, {k}]}} : {}\n  %b = nn.constant {{value = @b}} : {}\n  %lo = nn.constant {{value = @lo}} : tensor<f32>\n  %hi = nn.constant {{value = @hi}} : tensor<f32>\n  %c = nn.conv %x, %wu, %b {{group = {groups}, layout = \"nhwc\", pads = [{pad}, {pad}, {pad}, {pad}], strides = [{stride}, {stride}]}} : {}\n  %y = nn.clip %c, %lo, %hi : {}\n  return %y\n}}\n",
        weight("w", &wshape, &wv),
        weight("b", &[cout], &bias) + "weight @lo : tensor<f32> = dense<[0.0]>\nweight @hi : tensor<f32> = dense<[6.0]>\n",
        ty(&p.packed_shape()),
        layout.name(),
        ty(&xs),
        ty(&ys),
        ty(&p.packed_shape()),
        layout.name(),
        cout,
        cin / groups,
        ty(&wshape),
        ty(&[cout]),
        ty(&ys),
        ty(&ys),
    );
    let kernel = if depthwise { "dwconv2d" } else { "conv2d" };
    check_on(
        target,
        &format!("{kernel} n{n} {h}x{w}x{cin} -> {cout} k{k} s{stride} p{pad} g{groups}"),
        &kir,
        &[("x", &xs)],
        &[kernel],
        tol_k(cin / groups * k * k),
    );
}

#[test]
fn nhwc_convolutions_with_packed_weights() {
    let nr = nr(&targets()[0]);
    conv_case(Conv {
        n: 1,
        h: 5,
        w: 7,
        cin: 3,
        cout: 5,
        k: 3,
        stride: 1,
        pad: 1,
        groups: 1,
    });
    conv_case(Conv {
        n: 2,
        h: 9,
        w: 8,
        cin: 16,
        cout: nr + 1,
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    });
    conv_case(Conv {
        n: 1,
        h: 11,
        w: 13,
        cin: 7,
        cout: nr - 1,
        k: 3,
        stride: 2,
        pad: 1,
        groups: 1,
    });
    conv_case(Conv {
        n: 1,
        h: 8,
        w: 8,
        cin: 12,
        cout: 6,
        k: 3,
        stride: 1,
        pad: 1,
        groups: 3,
    });
    conv_case(Conv {
        n: 1,
        h: 17,
        w: 15,
        cin: 4,
        cout: 4,
        k: 7,
        stride: 2,
        pad: 3,
        groups: 1,
    });
}

#[test]
fn depthwise_convolutions_with_packed_weights() {
    conv_case(Conv {
        n: 1,
        h: 7,
        w: 9,
        cin: 5,
        cout: 5,
        k: 3,
        stride: 1,
        pad: 1,
        groups: 5,
    });
    conv_case(Conv {
        n: 2,
        h: 12,
        w: 11,
        cin: 33,
        cout: 33,
        k: 3,
        stride: 2,
        pad: 1,
        groups: 33,
    });
    conv_case(Conv {
        n: 1,
        h: 6,
        w: 6,
        cin: 16,
        cout: 16,
        k: 5,
        stride: 1,
        pad: 2,
        groups: 16,
    });
    // 3x3 rows whose top or bottom taps (or both: one input row) fall in
    // the padding run the interior columns without them: a single row, a
    // padding of 2 (rows with two taps outside), stride 2 over an odd
    // height; channels past whole blocks of vectors and wide enough rows
    // for the sliding path.
    for (h, w, c, stride, pad) in [(1, 13, 37, 1, 1), (5, 17, 40, 1, 2), (9, 14, 19, 2, 1)] {
        conv_case(Conv {
            n: 2,
            h,
            w,
            cin: c,
            cout: c,
            k: 3,
            stride,
            pad,
            groups: c,
        });
    }
}

/// Regression: a residual computed by the model (so the memory plan may
/// reuse its buffer) added in the epilogue of a contraction whose reduction
/// spans several cache blocks. A K-blocked kernel writes partial sums to its
/// output before the epilogue reads the residual, so the output must never
/// share the residual's memory (BERT's FFN output and MobileNetV2's inverted
/// residuals were wrong while it did).
#[test]
fn residuals_of_long_reductions_are_not_overwritten() {
    let mut rng = Rng(11);
    let (m, k, n) = (9u64, 1100u64, 24u64);
    let w = rng.vec(k * n, 0.05);
    let kir = format!(
        "{}graph @g(%x: {}, %z: {}) -> ({}) {{\n  %w = nn.constant {{value = @w}} : {}\n  %r = nn.relu %x : {}\n  %m = nn.matmul %z, %w : {}\n  %y = nn.add %m, %r : {}\n  %o = nn.softmax %y : {}\n  return %o\n}}\n",
        weight("w", &[k, n], &w),
        ty(&[m, n]),
        ty(&[m, k]),
        ty(&[m, n]),
        ty(&[k, n]),
        ty(&[m, n]),
        ty(&[m, n]),
        ty(&[m, n]),
        ty(&[m, n]),
    );
    check(
        "matmul + intermediate residual, K = 1100",
        &kir,
        &[("x", &[m, n]), ("z", &[m, k])],
        &["gemm", "softmax"],
        tol_k(k),
    );
}

/// A graph `y = quant.matmul(x, codes, scales[, zero points])` whose
/// packed weights are derived from random f32 weights by `scheme`.
fn qmatmul_kir(rng: &mut Rng, scheme: &str, block: usize, (m, k, n): (u64, u64, u64)) -> String {
    use kiln_ir::codec::block::{blocks_per_row, padded_k, Scheme};
    let s = Scheme::parse(scheme).unwrap();
    let w = rng.vec(k * n, 0.3);
    let code_dt = s.code_dtype();
    let kp = padded_k(k as usize, block, code_dt) as u64;
    let nb = blocks_per_row(k as usize, block) as u64;
    let derived = |part: &str, ty: String| {
        format!(
            "weight @w.{part} : {ty} = derived<quant.quantize_weight {{axis = 0, block_size = {block}, part = \"{part}\", scheme = \"{scheme}\"}}>(@w)\n"
        )
    };
    let codes_ty = format!("tensor<{n}x{kp}x{code_dt}>");
    let scales_ty = format!("tensor<{n}x{nb}x{}>", s.scale_dtype());
    let zcols = kiln_ir::codec::block::zero_point_cols(nb as usize, code_dt);
    let zp_ty = format!("tensor<{n}x{zcols}x{code_dt}>");
    let mut kir = weight("w", &[k, n], &w);
    kir += &derived("codes", codes_ty.clone());
    kir += &derived("scales", scales_ty.clone());
    let mut body = format!(
        "  %c = nn.constant {{value = @w.codes}} : {codes_ty}\n  %s = nn.constant {{value = @w.scales}} : {scales_ty}\n"
    );
    let mut operands = "%x, %c, %s".to_string();
    if s.has_zero_point() {
        kir += &derived("zero_points", zp_ty.clone());
        body += &format!("  %z = nn.constant {{value = @w.zero_points}} : {zp_ty}\n");
        operands += ", %z";
    }
    kir += &format!(
        "graph @g(%x: {}) -> ({}) {{\n{body}  %y = quant.matmul {operands} {{block_size = {block}}} : {}\n  return %y\n}}\n",
        ty(&[m, k]),
        ty(&[m, n]),
        ty(&[m, n]),
    );
    kir
}

/// The targets quantized products are checked on: portable CPU levels only
/// (a host build may record CPU features a virtual machine hides): the
/// SSE2 baseline (the table-decoding path), AVX2 (8-lane permutes) and,
/// where this machine has AVX-512, `x86-64-v4` (16-lane permutes).
fn quant_targets() -> Vec<Target> {
    let host = Target::host().unwrap();
    if host.arch() != kiln_codegen::Arch::X86_64 {
        return vec![host];
    }
    let mut cpus = vec!["x86-64-v3", "x86-64"];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512cd")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
    {
        cpus.push("x86-64-v4");
    }
    cpus.iter().map(|c| Target::parse(c).unwrap()).collect()
}

fn check_qmatmul(rng: &mut Rng, scheme: &str, block: usize, (m, k, n): (u64, u64, u64)) {
    let kir = qmatmul_kir(rng, scheme, block, (m, k, n));
    for t in &quant_targets() {
        check_on(
            t,
            &format!("quant.matmul {scheme} block {block} {m}x{k}x{n}"),
            &kir,
            &[("x", &[m, k])],
            &["qgemm"],
            tol_k(k),
        );
    }
}

/// `quant.matmul` over block-quantized derived weights of every scheme:
/// the qgemm kernel decodes the packed codes as it multiplies, against the
/// interpreter running the same quantized graph (the quantization itself is
/// checked in kiln-ir and kiln-passes).
#[test]
fn quantized_matmuls_decode_weights_in_the_kernel() {
    let mut rng = Rng(11);
    for (scheme, block, mkn) in [
        ("nf4", 64, (1, 70, 13)),
        ("nf4", 32, (5, 128, 33)),
        ("int4", 32, (1, 67, 7)),
        ("uint4", 32, (6, 96, 17)),
        ("int8", 0, (17, 67, 5)),
        ("uint8", 0, (2, 31, 9)),
        ("int2", 16, (3, 40, 5)),
        ("uint2", 16, (1, 33, 4)),
        ("fp8-e4m3", 0, (4, 300, 6)),
        ("fp8-e5m2", 128, (1, 257, 3)),
        ("mxfp4", 32, (2, 64, 11)),
    ] {
        check_qmatmul(&mut rng, scheme, block, mkn);
    }
}

/// The register-decoding paths of qgemm (4-bit codes through a permuted
/// table, 8-bit integers and FP8 by conversion; one row multiplied as it
/// decodes, several rows through buffers of 512 values and 2 columns, 4
/// rows at a time) at the sizes where their loops change: K of 1, primes,
/// the 16- and 32-code steps and a block ± 1, above and below the 512-value
/// buffer; N of 1, 2, 3 and primes (column pairs or fours and a lone last
/// column), and past the 256-column blocks; M of 1 (GEMV), 3, 4 and 5 (row
/// groups of 4 and the rest).
#[test]
fn quantized_matmul_register_decoding_at_odd_sizes() {
    let mut rng = Rng(23);
    for (scheme, block, mkn) in [
        ("nf4", 64, (1, 1, 1)),
        ("nf4", 64, (1, 63, 3)),
        ("nf4", 64, (1, 65, 2)),
        ("nf4", 64, (1, 1031, 37)),
        ("nf4", 64, (4, 513, 5)),
        ("nf4", 32, (5, 31, 1)),
        ("nf4", 128, (3, 33, 7)),
        ("int4", 32, (1, 97, 11)),
        ("int4", 32, (5, 521, 3)),
        ("uint4", 32, (1, 127, 5)),
        ("uint4", 64, (4, 47, 2)),
        ("nvfp4", 16, (1, 79, 3)),
        ("nvfp4", 16, (3, 17, 4)),
        ("mxfp4", 32, (1, 96, 7)),
        ("fp8-e4m3", 0, (1, 1, 2)),
        ("fp8-e4m3", 0, (1, 1031, 13)),
        ("fp8-e4m3", 0, (5, 511, 3)),
        ("fp8-e4m3", 64, (1, 65, 5)),
        ("fp8-e5m2", 0, (1, 47, 3)),
        ("fp8-e5m2", 32, (4, 33, 7)),
        ("int8", 0, (1, 33, 5)),
        ("int8", 32, (3, 97, 2)),
        ("uint8", 0, (1, 17, 3)),
        ("uint8", 16, (5, 53, 4)),
        // Blocks of 256 columns (a second, partial one) and groups of 4
        // columns (16 lanes) or 2 with a lone last one.
        ("fp8-e4m3", 0, (3, 41, 261)),
        ("nf4", 32, (2, 70, 259)),
        ("int8", 0, (5, 23, 6)),
        // 4-bit codes a group of 64 at a time with several rows: blocks of
        // 96 (halves of one group in different blocks), zero points, and
        // whole groups followed by a tail, inside and across the 384-value
        // chunks.
        ("nf4", 96, (2, 200, 3)),
        ("uint4", 64, (3, 200, 5)),
        ("int4", 128, (4, 851, 6)),
    ] {
        check_qmatmul(&mut rng, scheme, block, mkn);
    }
}

/// The GEMV paths that decode whole groups of codes (4-bit: 64 codes per
/// 32 bytes, a permuted copy of x, one scale per half group, or a
/// dequantized table per group; 8-bit with one block per row: groups of
/// 4 * lanes codes, one load each, and a last group ending at K that
/// overlaps the one before it) at the sizes where they change: K of a group
/// ± 1 (no group: the per-block path; one group and a last one overlapping
/// all but one code) and of one, two and three groups (32 and 64 codes:
/// the 8- and 16-lane groups) and + 3 and 4, above the 4096 values of one
/// copy of x, blocks of 32 and 96 (two scales per group) and 128, zero
/// points, N of 1, 2 and primes.
#[test]
fn quantized_gemv_group_decoding_at_odd_sizes() {
    let mut rng = Rng(41);
    for (scheme, block, mkn) in [
        ("nf4", 64, (1, 64, 2)),
        ("nf4", 64, (1, 127, 5)),
        ("nf4", 32, (1, 97, 5)),
        ("nf4", 96, (1, 200, 3)),
        ("nf4", 128, (1, 257, 7)),
        ("nf4", 64, (1, 4161, 3)),
        ("nf4", 0, (1, 131, 4)),
        ("uint4", 32, (1, 67, 1)),
        ("uint4", 64, (1, 4289, 3)),
        ("int4", 32, (1, 129, 13)),
        ("fp8-e4m3", 0, (1, 31, 2)),
        ("fp8-e4m3", 0, (1, 32, 3)),
        ("fp8-e4m3", 0, (1, 33, 2)),
        ("fp8-e4m3", 0, (1, 63, 2)),
        ("fp8-e4m3", 0, (1, 64, 3)),
        ("fp8-e4m3", 0, (1, 65, 2)),
        ("fp8-e4m3", 0, (1, 192, 2)),
        ("fp8-e5m2", 0, (1, 96, 3)),
        ("int8", 0, (1, 64, 2)),
        ("uint8", 0, (1, 33, 2)),
        ("fp8-e4m3", 0, (1, 35, 3)),
        ("fp8-e4m3", 0, (1, 36, 2)),
        ("fp8-e4m3", 0, (1, 67, 3)),
        ("fp8-e4m3", 0, (1, 68, 1)),
        ("fp8-e4m3", 0, (1, 4099, 3)),
        ("fp8-e4m3", 0, (1, 8311, 2)),
        ("fp8-e5m2", 0, (1, 131, 4)),
        ("int8", 0, (1, 1031, 5)),
        ("uint8", 0, (1, 100, 3)),
    ] {
        check_qmatmul(&mut rng, scheme, block, mkn);
    }
}

/// `qmatmul_kir` with the codes and scales re-laid out as the 4-bit GEMV's
/// panels (`row_panels_k8` and `row_panels` of 16 rows, what `pack-weights`
/// does on AVX-512 targets), written out in the text so that every target
/// runs them: the 16-lane loop on x86-64-v4 (blocks of a multiple of 8 or
/// one per row) and the scalar loop elsewhere and for other blocks.
fn qgemv_panels_kir(rng: &mut Rng, scheme: &str, block: usize, (k, n): (u64, u64)) -> String {
    use kiln_ir::codec::block::{blocks_per_row, padded_k, zero_point_cols, Scheme};
    let s = Scheme::parse(scheme).unwrap();
    let code_dt = s.code_dtype();
    let kp = padded_k(k as usize, block, code_dt) as u64;
    let nb = blocks_per_row(k as usize, block) as u64;
    let zc = zero_point_cols(nb as usize, code_dt) as u64;
    let mut kir = weight("w", &[k, n], &rng.vec(k * n, 0.3));
    let mut body = String::new();
    let panels = n.div_ceil(16);
    let mut parts = vec![
        (
            "codes",
            code_dt.to_string(),
            kp,
            "row_panels_k8",
            format!("{panels}x{}x16x8", kp.div_ceil(8)),
        ),
        (
            "scales",
            s.scale_dtype().to_string(),
            nb,
            "row_panels",
            format!("{panels}x{nb}x16"),
        ),
    ];
    let mut operands = "%x, %codes, %scales".to_string();
    if s.has_zero_point() {
        parts.push((
            "zero_points",
            code_dt.to_string(),
            zc,
            "row_panels_k8",
            format!("{panels}x{}x16x8", zc.div_ceil(8)),
        ));
        operands += ", %zero_points";
    }
    for (part, dt, cols, layout, packed) in parts {
        let attrs = format!("block = 16, groups = 1, layout = \"{layout}\"");
        kir += &format!(
            "weight @w.{part} : tensor<{n}x{cols}x{dt}> = derived<quant.quantize_weight {{axis = 0, block_size = {block}, part = \"{part}\", scheme = \"{scheme}\"}}>(@w)\n\
             weight @w.{part}.p : tensor<{packed}x{dt}> = derived<nn.pack {{{attrs}}}>(@w.{part})\n"
        );
        body += &format!(
            "  %{part}.p = nn.constant {{value = @w.{part}.p}} : tensor<{packed}x{dt}>\n\
             \x20 %{part} = nn.unpack %{part}.p {{{attrs}, shape = [{n}, {cols}]}} : tensor<{n}x{cols}x{dt}>\n"
        );
    }
    kir += &format!(
        "graph @g(%x: {}) -> ({}) {{\n{body}  %y = quant.matmul {operands} {{block_size = {block}}} : {}\n  return %y\n}}\n",
        ty(&[1, k]),
        ty(&[1, n]),
        ty(&[1, n]),
    );
    kir
}

/// The 4-bit GEMV on panel-packed weights (`qg_gemvp`) at the sizes where
/// its loops change: N of 1, a panel ± 1, and past the tiles of 8 and 4
/// panels (a partial last panel); K of 1, a step of 8 ± 1, a block ± 1 and
/// large (the last step of A and codes copied); blocks of 8, 32, 64, 96 and
/// 128 and one per row, and 20 (not a multiple of 8: the scalar loop); NF4,
/// int4, FP4 with E8M0 (MXFP4) and E4M3 (NVFP4) scales, uint4 with zero
/// points (blocks 0 to 7 and 8 to 16 of a column's runs of 8, odd and even
/// blocks, and over 1024 blocks).
#[test]
fn quantized_gemv_on_panel_packed_weights_at_odd_sizes() {
    let mut rng = Rng(47);
    for (scheme, block, kn) in [
        ("nf4", 64, (1, 1)),
        ("nf4", 64, (7, 16)),
        ("nf4", 64, (8, 17)),
        ("nf4", 64, (9, 15)),
        ("nf4", 64, (63, 33)),
        ("nf4", 64, (65, 131)),
        ("nf4", 64, (1031, 259)),
        ("nf4", 32, (97, 200)),
        ("nf4", 96, (200, 47)),
        ("nf4", 128, (257, 64)),
        ("nf4", 0, (131, 23)),
        ("nf4", 8, (41, 18)),
        ("nf4", 20, (67, 19)),
        ("int4", 32, (129, 13)),
        ("mxfp4", 32, (96, 37)),
        ("nvfp4", 16, (79, 21)),
        ("uint4", 32, (129, 13)),
        ("uint4", 8, (137, 37)),
        ("uint4", 0, (70, 17)),
        ("uint4", 64, (1031, 131)),
        // More blocks than the 16-lane loop keeps sums of A for: the scalar loop.
        ("uint4", 8, (8209, 3)),
    ] {
        let (k, n) = kn;
        let kir = qgemv_panels_kir(&mut rng, scheme, block, kn);
        for t in &quant_targets() {
            check_on(
                t,
                &format!("quant.matmul on panels {scheme} block {block} 1x{k}x{n}"),
                &kir,
                &[("x", &[1, k])],
                &["qgemm"],
                tol_k(k),
            );
        }
    }
}

/// One `quant.conv` case: `n` NCHW images `cin x h x w` to `cout` channels,
/// a `k x k` window with `stride`, padding `pad` on every side and `group`
/// groups; the weight is quantized by `scheme` in blocks of `block` along
/// the window-ordered rows (derived weights, as `quantize-weights` writes
/// them), then bias and Relu (the kernel's epilogue).
#[derive(Clone, Copy, Debug)]
struct QConvCase {
    scheme: &'static str,
    block: usize,
    n: u64,
    cin: u64,
    h: u64,
    w: u64,
    cout: u64,
    k: u64,
    stride: u64,
    pad: u64,
    group: u64,
}

/// [`qconv_kir`]'s graph with the codes, scales and zero points as stored
/// (`panels` false) or packed in panels of 16 output channels (`nn.unpack`
/// of `row_panels_k8` / `row_panels` constants, as `pack-weights` writes
/// them for AVX-512), which every variant's kernel then reads.
impl QConvCase {
    /// A case; `hw` is (height, width).
    #[allow(clippy::too_many_arguments)]
    fn new(
        scheme: &'static str,
        block: usize,
        n: u64,
        cin: u64,
        hw: (u64, u64),
        cout: u64,
        k: u64,
        stride: u64,
        pad: u64,
        group: u64,
    ) -> QConvCase {
        QConvCase {
            scheme,
            block,
            n,
            cin,
            h: hw.0,
            w: hw.1,
            cout,
            k,
            stride,
            pad,
            group,
        }
    }
}

fn qconv_kir(rng: &mut Rng, c: QConvCase) -> String {
    qconv_kir_in(rng, c, false)
}

fn qconv_kir_in(rng: &mut Rng, c: QConvCase, panels: bool) -> String {
    use kiln_ir::codec::block::{blocks_per_row, padded_k, zero_point_cols, Scheme};
    let s = Scheme::parse(c.scheme).unwrap();
    let cg = c.cin / c.group;
    let kk = c.k * c.k * cg;
    let code_dt = s.code_dtype();
    let kp = padded_k(kk as usize, c.block, code_dt) as u64;
    let nb = blocks_per_row(kk as usize, c.block) as u64;
    let zc = zero_point_cols(nb as usize, code_dt) as u64;
    let mut kir = weight("w", &[c.cout, cg, c.k, c.k], &rng.vec(c.cout * kk, 0.3));
    kir += &weight("b", &[c.cout], &rng.vec(c.cout, 1.0));
    kir += &format!(
        "weight @w.ohwi : {} = derived<nn.transpose {{perm = [0, 2, 3, 1]}}>(@w)\n",
        ty(&[c.cout, c.k, c.k, cg])
    );
    kir += &format!(
        "weight @w.rows : {} = derived<nn.flatten {{axis = 1}}>(@w.ohwi)\n",
        ty(&[c.cout, kk])
    );
    let mut parts = vec![
        ("codes", code_dt.to_string(), kp),
        ("scales", s.scale_dtype().to_string(), nb),
    ];
    if s.has_zero_point() {
        parts.push(("zero_points", code_dt.to_string(), zc));
    }
    let mut body = String::new();
    let mut operands = "%x".to_string();
    for (part, dt, cols) in &parts {
        let t = format!("tensor<{}x{cols}x{dt}>", c.cout);
        kir += &format!(
            "weight @w.{part} : {t} = derived<quant.quantize_weight {{axis = 1, block_size = {}, part = \"{part}\", scheme = \"{}\"}}>(@w.rows)\n",
            c.block, c.scheme
        );
        operands += &format!(", %{part}");
        if !panels {
            body += &format!("  %{part} = nn.constant {{value = @w.{part}}} : {t}\n");
            continue;
        }
        let rp = c.cout.div_ceil(16);
        // Scales, and 8-bit codes and zero points: a K index of 16 rows at
        // a time; 4-bit ones in steps of 8.
        let (layout, packed) = if *part == "scales" || code_dt.bits() == 8 {
            ("row_panels", format!("{rp}x{cols}x16"))
        } else {
            ("row_panels_k8", format!("{rp}x{}x16x8", cols.div_ceil(8)))
        };
        let attrs = format!("block = 16, groups = 1, layout = \"{layout}\"");
        kir += &format!(
            "weight @w.{part}.p : tensor<{packed}x{dt}> = derived<nn.pack {{{attrs}}}>(@w.{part})\n"
        );
        body += &format!(
            "  %{part}.p = nn.constant {{value = @w.{part}.p}} : tensor<{packed}x{dt}>\n\
             \x20 %{part} = nn.unpack %{part}.p {{{attrs}, shape = [{}, {cols}]}} : {t}\n",
            c.cout
        );
    }
    if !s.has_zero_point() {
        // The bias is operand 4: an absent zero point between.
        operands += ", none";
    }
    let oh = (c.h + 2 * c.pad - c.k) / c.stride + 1;
    let ow = (c.w + 2 * c.pad - c.k) / c.stride + 1;
    let out = ty(&[c.n, c.cout, oh, ow]);
    kir += &format!(
        "graph @g(%x: {}) -> ({out}) {{\n{body}  %b = nn.constant {{value = @b}} : {}\n  %q = quant.conv {operands}, %b {{block_size = {}, group = {}, kernel_shape = [{k}, {k}], pads = [{p}, {p}, {p}, {p}], strides = [{st}, {st}]}} : {out}\n  %y = nn.relu %q : {out}\n  return %y\n}}\n",
        ty(&[c.n, c.cin, c.h, c.w]),
        ty(&[c.cout]),
        c.block,
        c.group,
        k = c.k,
        p = c.pad,
        st = c.stride,
    );
    kir
}

/// `quant.conv` through the conv2d kernel (weights dequantized a panel
/// block at a time) against the interpreter's dequantize-then-convolve, on
/// this CPU and the AVX2 and SSE2 variants: 4-bit (NF4, int4, uint4 with
/// zero points, MXFP4), 8-bit (int8, both FP8) codes; 1x1 (the direct
/// tiles), 3x3 and 7x7 strided windows; groups; output channels past a
/// panel; several input-channel blocks (K above the kernel's KC); blocks
/// that end inside a tap and odd code offsets.
#[test]
fn quantized_convolutions_at_odd_sizes() {
    let mut rng = Rng(53);
    let c = QConvCase::new;
    for case in [
        c("nf4", 64, 1, 16, (9, 9), 70, 3, 1, 1, 1),
        c("nf4", 32, 1, 64, (7, 7), 33, 1, 1, 0, 1),
        c("nf4", 64, 2, 3, (11, 13), 17, 7, 2, 3, 1),
        c("int4", 16, 1, 40, (6, 5), 65, 3, 2, 1, 1),
        c("uint4", 32, 1, 40, (6, 5), 65, 3, 1, 1, 1),
        c("uint4", 8, 1, 24, (8, 8), 16, 3, 1, 1, 2),
        c("mxfp4", 32, 1, 32, (5, 5), 8, 3, 1, 1, 1),
        c("int8", 64, 1, 96, (5, 5), 31, 3, 1, 1, 1),
        c("fp8-e4m3", 0, 1, 24, (8, 8), 16, 3, 1, 1, 2),
        c("fp8-e5m2", 128, 1, 130, (4, 4), 12, 3, 1, 1, 1),
        c("nf4", 64, 1, 600, (3, 3), 20, 1, 1, 0, 1),
        c("nf4", 64, 1, 1, (5, 5), 1, 1, 1, 0, 1),
    ] {
        let kir = qconv_kir(&mut rng, case);
        let kk = case.k * case.k * case.cin / case.group;
        for t in &quant_targets() {
            check_on(
                t,
                &format!("{case:?}"),
                &kir,
                &[("x", &[case.n, case.cin, case.h, case.w])],
                &["conv2d"],
                tol_k(kk),
            );
        }
    }
}

/// `quant.conv` on codes packed in panels of 16 output channels: the
/// AVX-512 kernel's decode of steps of 8 channels (the layout pack-weights
/// writes there) and every other variant's code-by-code reader of the same
/// panels, against the interpreter (which unpacks them): NF4, int4, uint4
/// with zero points (more than 8 blocks per row), MXFP4's E8M0 scales, one
/// block per row; 8-bit codes (FP8 E4M3 and E5M2, int8, uint8 with zero
/// points) a K index at a time; output channels past a panel of 64 and of
/// 16; several input-channel blocks; channels per group 8 (groups of 2).
#[test]
fn quantized_convolutions_on_panel_packed_codes() {
    let mut rng = Rng(59);
    let c = |scheme, block, cin, hw, cout, k, stride, pad, group| {
        QConvCase::new(scheme, block, 1, cin, hw, cout, k, stride, pad, group)
    };
    for case in [
        c("nf4", 64, 16, (9, 9), 70, 3, 1, 1, 1),
        c("nf4", 32, 64, (7, 7), 33, 1, 1, 0, 1),
        c("int4", 16, 40, (6, 5), 65, 3, 2, 1, 1),
        c("uint4", 8, 48, (5, 5), 20, 3, 1, 1, 1),
        c("mxfp4", 32, 32, (5, 5), 8, 3, 1, 1, 1),
        c("nf4", 0, 16, (6, 6), 18, 3, 1, 1, 2),
        c("nf4", 64, 600, (3, 3), 20, 1, 1, 0, 1),
        // Windows of 49 and 121 taps: the decoded block's scratch slot
        // bounds the channel block below what steps of 8 would round to.
        c("nf4", 64, 64, (9, 9), 20, 7, 1, 3, 1),
        c("int4", 32, 24, (12, 12), 17, 11, 1, 2, 1),
        // 8-bit codes: any channel count.
        c("fp8-e4m3", 0, 12, (6, 5), 70, 3, 2, 1, 1),
        c("fp8-e5m2", 64, 40, (5, 5), 17, 3, 1, 1, 1),
        c("int8", 32, 3, (7, 7), 20, 3, 1, 1, 1),
        c("uint8", 16, 24, (5, 5), 34, 3, 1, 1, 2),
    ] {
        let kir = qconv_kir_in(&mut rng, case, true);
        let kk = case.k * case.k * case.cin / case.group;
        for t in &quant_targets() {
            check_on(
                t,
                &format!("panels {case:?}"),
                &kir,
                &[("x", &[case.n, case.cin, case.h, case.w])],
                &["conv2d"],
                tol_k(kk),
            );
        }
    }
}

/// Panel-packed weights in a product of several rows (hand-written IR:
/// the kernel reads panels for one row only) are refused with an error
/// naming the layout's condition, not computed wrong.
#[test]
fn panel_packed_weights_with_several_rows_are_refused() {
    let kir = qgemv_panels_kir(&mut Rng(5), "nf4", 64, (70, 19))
        .replace("tensor<1x70xf32>", "tensor<2x70xf32>")
        .replace("tensor<1x19xf32>", "tensor<2x19xf32>");
    let graph = kiln_ir::text::parse(&kir, "panels.kir", None)
        .unwrap_or_else(|e| panic!("{}\n{kir}", e[0]))
        .graph;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = CompileOptions::new(Target::host().unwrap(), Some(dir.path().join("m.so")));
    opts.set_level(OptLevel::O3);
    let err = compile(graph, &opts).expect_err("several rows on panels must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("panel-packed weights only for one row"),
        "{msg}"
    );
}

/// The FP8 GEMV copies x times 2^60 (E4M3) or 2^56 (E5M2) and takes the
/// table path when the largest |x| is outside [2^-40, 2^60): x scaled by
/// 1e15 (inside: large products), by 1e20 (above: the copy would
/// overflow) and by 1e-14 (below: products would be subnormal), through
/// `nn.mul` by a constant before the product.
#[test]
fn quantized_fp8_gemv_of_large_and_small_activations() {
    let mut rng = Rng(43);
    let (m, k, n) = (1u64, 131u64, 5u64);
    for scheme in ["fp8-e4m3", "fp8-e5m2"] {
        for scale in [1e15f32, 1e20, 1e-14] {
            let kir = qmatmul_kir(&mut rng, scheme, 0, (m, k, n));
            let at = kir.find("graph @g").unwrap();
            let body = kir[at..].find("{\n").unwrap() + at + 2;
            let kir = format!(
                "{}{}{}  %k = nn.constant {{value = @k}} : tensor<1xf32>\n  %xs = nn.mul %x, %k : {}\n{}",
                weight("k", &[1], &[scale]),
                &kir[..at],
                &kir[at..body],
                ty(&[m, k]),
                &kir[body..].replace("quant.matmul %x,", "quant.matmul %xs,"),
            );
            // Outputs scale with x: the tolerance is relative to the largest.
            for t in &quant_targets() {
                check_scaled(
                    t,
                    &format!("{scheme} x * {scale:e}"),
                    &kir,
                    &[m, k],
                    tol_k(k),
                );
            }
        }
    }
}

/// check_on with the error relative to the largest expected magnitude (the
/// outputs of `quantized_fp8_gemv_of_large_and_small_activations` are far
/// from 1).
fn check_scaled(target: &Target, name: &str, kir: &str, xshape: &[u64], tol: f64) {
    let name = &format!("{name} [{target}]");
    let (want, runs) = qgemm_runs(target, name, kir, xshape);
    let big = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(big > 0.0 && big.is_finite(), "{name}: expected {want:?}");
    for (threads, got) in runs {
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= tol * big,
                "{name} at {threads} threads: {g} vs {w} (largest {big})"
            );
        }
    }
}

/// FP8 codes that are not finite numbers (E4M3FN's NaN; E5M2's infinities
/// and NaN) and the subnormal and largest finite codes, in packed weights
/// given byte by byte: the register decoding leaves specials out of its main
/// loop and sums a row that has one again through the table, so each
/// column must come out as the interpreter's (NaN where it has NaN, the
/// same infinity, else within the tolerance), for one row (GEMV) and
/// several, at 1 and 2 threads.
#[test]
fn quantized_matmul_fp8_special_codes() {
    let k = 67u64;
    let n = 6u64;
    let mut rng = Rng(31);
    for (dtype, specials) in [
        ("f8e4m3fn", &[(1u64, 5u64, 0x7Fu8), (2, 66, 0xFF)][..]),
        (
            "f8e5m2",
            &[(1, 5, 0x7C), (2, 66, 0xFC), (3, 9, 0x7D), (3, 40, 0x7C)][..],
        ),
    ] {
        // Random finite codes: sign, then a magnitude below the specials.
        let mut codes: Vec<u8> = (0..n * k)
            .map(|_| {
                let u = rng.uniform();
                let mag = (u * 110.0) as u8; // below 0x7C and 0x7F
                if rng.uniform() < 0.5 {
                    mag | 0x80
                } else {
                    mag
                }
            })
            .collect();
        // Column 4: subnormals, zeros and the largest finite magnitude.
        for (i, c) in codes[(4 * k) as usize..(5 * k) as usize]
            .iter_mut()
            .enumerate()
        {
            *c = [0x00, 0x80, 0x01, 0x87, 0x03, 0x82, 0x7B, 0xFB][i % 8];
        }
        if dtype == "f8e4m3fn" {
            codes[(4 * k + 30) as usize] = 0x7E;
        }
        for &(col, at, code) in specials {
            codes[(col * k + at) as usize] = code;
        }
        let scales: Vec<f32> = (0..n).map(|i| 0.01 * (i + 1) as f32).collect();
        let mut kir = format!("weight @c : tensor<{n}x{k}x{dtype}> = dense<\"0x");
        for c in &codes {
            let _ = write!(kir, "{c:02X}");
        }
        kir += "\">\n";
        kir += &weight("s", &[n, 1], &scales);
        for m in [1u64, 3] {
            let g = format!(
                "{kir}graph @g(%x: {}) -> ({}) {{\n  %c = nn.constant {{value = @c}} : tensor<{n}x{k}x{dtype}>\n  %s = nn.constant {{value = @s}} : {}\n  %y = quant.matmul %x, %c, %s {{block_size = 0}} : {}\n  return %y\n}}\n",
                ty(&[m, k]),
                ty(&[m, n]),
                ty(&[n, 1]),
                ty(&[m, n]),
            );
            for t in &quant_targets() {
                check_specials(
                    t,
                    &format!("{dtype} specials {m}x{k}x{n}"),
                    &g,
                    &[m, k],
                    tol_k(k),
                );
            }
        }
    }
}

/// check_on for outputs that may hold NaN and infinities: the same
/// non-finite values at the same places, finite ones within `tol`.
fn check_specials(target: &Target, name: &str, kir: &str, xshape: &[u64], tol: f64) {
    let name = &format!("{name} [{target}]");
    let (want, runs) = qgemm_runs(target, name, kir, xshape);
    assert!(want.iter().any(|v| v.is_nan()), "{name}: no NaN expected");
    for (threads, got) in runs {
        for (i, (&e, &g)) in want.iter().zip(&got).enumerate() {
            let ok = if e.is_nan() {
                g.is_nan()
            } else if e.is_infinite() {
                g == e
            } else {
                g.is_finite() && (g - e).abs() / e.abs().max(1.0) <= tol
            };
            assert!(
                ok,
                "{name} at {threads} threads: output {i}: expected {e}, got {g}"
            );
        }
    }
}

/// The interpreter's output of the graph `kir` (one input `x` of shape
/// `xshape`, normally distributed) and the compiled graph's at 1 and 2
/// threads, after checking that it calls qgemm.
fn qgemm_runs(
    target: &Target,
    name: &str,
    kir: &str,
    xshape: &[u64],
) -> (Vec<f64>, Vec<(u32, Vec<f64>)>) {
    let graph = kiln_ir::text::parse(kir, name, None)
        .unwrap_or_else(|e| panic!("{name}: {}", e[0]))
        .graph;
    let mut rng = Rng(5);
    let x = f32_tensor("x", xshape, &rng.vec(xshape.iter().product(), 1.0));
    let expected = kiln_interp::run_graph(&graph, &[x.to_interp().unwrap()])
        .unwrap_or_else(|e| panic!("{name}: interpreter: {e}"));
    let want = HostTensor::from_interp("y", &expected[0]).to_f64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("model.so");
    let mut opts = CompileOptions::new(target.clone(), Some(so.clone()));
    opts.set_level(OptLevel::O3);
    let art = compile(graph, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        art.kernels.iter().any(|s| s.starts_with("kiln_k_qgemm_")),
        "{name}: qgemm not called ({:?})",
        art.kernels
    );
    let session = Session::open(&so, &SessionOptions::default()).unwrap();
    let runs = [1, 2]
        .into_iter()
        .map(|threads| {
            session.set_num_threads(threads).unwrap();
            let got = session.run(std::slice::from_ref(&x)).unwrap()[0]
                .to_f64()
                .unwrap();
            (threads, got)
        })
        .collect();
    (want, runs)
}
