//! Small ResNet-, MobileNetV2- and BERT-style graphs, spelled the way the
//! ONNX exporters write them (batch norms, relu6 as Clip, decomposed layer
//! norm and GELU, head-split attention), with random weights, for the
//! tests of the optimizing passes and pipelines.

use crate::passes::testutil::weight;

/// Text builder: weights first, then the graph body.
#[derive(Default)]
struct Builder {
    weights: String,
    consts: String,
    body: String,
    seed: u64,
}

impl Builder {
    /// A random f32 weight `@name` and its constant `%name`.
    fn w(&mut self, name: &str, shape: &[u64], offset: f64, abs: bool) -> String {
        self.seed += 1;
        self.weights += &weight(name, shape, self.seed, offset, abs);
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let ty = if dims.is_empty() {
            "f32".into()
        } else {
            format!("{}xf32", dims.join("x"))
        };
        self.consts += &format!("  %{name} = nn.constant {{value = @{name}}} : tensor<{ty}>\n");
        format!("%{name}")
    }

    /// A scalar f32 constant.
    fn scalar(&mut self, name: &str, v: f64) -> String {
        self.weights += &format!("weight @{name} : tensor<f32> = dense<[{:?}]>\n", v as f32);
        self.consts += &format!("  %{name} = nn.constant {{value = @{name}}} : tensor<f32>\n");
        format!("%{name}")
    }

    /// An i64 constant.
    fn ints(&mut self, name: &str, v: &[i64]) -> String {
        let list: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        self.weights += &format!(
            "weight @{name} : tensor<{}xi64> = dense<[{}]>\n",
            v.len(),
            list.join(", ")
        );
        self.consts += &format!(
            "  %{name} = nn.constant {{value = @{name}}} : tensor<{}xi64>\n",
            v.len()
        );
        format!("%{name}")
    }

    fn line(&mut self, s: &str) {
        self.body += "  ";
        self.body += s;
        self.body += "\n";
    }

    /// A batch norm of `x` (`[N, C, ...]` of type `ty`) named `name`.
    fn bn(&mut self, name: &str, x: &str, c: u64, ty: &str) -> String {
        let g = self.w(&format!("{name}_g"), &[c], 1.0, false);
        let b = self.w(&format!("{name}_b"), &[c], 0.0, false);
        let m = self.w(&format!("{name}_m"), &[c], 0.0, false);
        let v = self.w(&format!("{name}_v"), &[c], 0.5, true);
        self.line(&format!(
            "%{name} = nn.batch_norm {x}, {g}, {b}, {m}, {v} : {ty}"
        ));
        format!("%{name}")
    }

    fn finish(self, signature: &str, ret: &str) -> String {
        format!(
            "{}graph {signature} {{\n{}{}  return {ret}\n}}\n",
            self.weights, self.consts, self.body
        )
    }
}

/// A ResNet basic block: conv3x3 (bias) + bn + relu, conv3x3 + bn,
/// residual add, relu, then global average pool, flatten and a Gemm head.
pub fn resnet_block(c: u64, hw: u64, classes: u64) -> String {
    let mut b = Builder::default();
    let t = format!("tensor<1x{c}x{hw}x{hw}xf32>");
    let w1 = b.w("w1", &[c, c, 3, 3], 0.0, false);
    let b1 = b.w("b1", &[c], 0.0, false);
    let w2 = b.w("w2", &[c, c, 3, 3], 0.0, false);
    b.line(&format!(
        "%c1 = nn.conv %x, {w1}, {b1} {{pads = [1, 1, 1, 1]}} : {t}"
    ));
    let n1 = b.bn("n1", "%c1", c, &t);
    b.line(&format!("%r1 = nn.relu {n1} : {t}"));
    b.line(&format!(
        "%c2 = nn.conv %r1, {w2} {{pads = [1, 1, 1, 1]}} : {t}"
    ));
    let n2 = b.bn("n2", "%c2", c, &t);
    b.line(&format!("%s = nn.add {n2}, %x : {t}"));
    b.line(&format!("%r2 = nn.relu %s : {t}"));
    b.line(&format!(
        "%p = nn.global_average_pool %r2 : tensor<1x{c}x1x1xf32>"
    ));
    b.line(&format!("%f = nn.flatten %p : tensor<1x{c}xf32>"));
    let fw = b.w("fw", &[classes, c], 0.0, false);
    let fb = b.w("fb", &[classes], 0.0, false);
    b.line(&format!(
        "%y = nn.gemm %f, {fw}, {fb} {{trans_b = true}} : tensor<1x{classes}xf32>"
    ));
    b.finish(
        &format!("@resnet(%x: {t}) -> (tensor<1x{classes}xf32>)"),
        "%y",
    )
}

/// A MobileNetV2 inverted residual: 1x1 expand + bn + relu6 (Clip), 3x3
/// depthwise + bn + relu6, 1x1 project + bn, residual add.
pub fn mobilenet_block(c: u64, expand: u64, hw: u64) -> String {
    let mut b = Builder::default();
    let e = c * expand;
    let t = format!("tensor<1x{c}x{hw}x{hw}xf32>");
    let te = format!("tensor<1x{e}x{hw}x{hw}xf32>");
    let zero = b.scalar("zero", 0.0);
    let six = b.scalar("six", 6.0);
    let w1 = b.w("w1", &[e, c, 1, 1], 0.0, false);
    let wd = b.w("wd", &[e, 1, 3, 3], 0.0, false);
    let w2 = b.w("w2", &[c, e, 1, 1], 0.0, false);
    b.line(&format!("%c1 = nn.conv %x, {w1} : {te}"));
    let n1 = b.bn("n1", "%c1", e, &te);
    b.line(&format!("%r1 = nn.clip {n1}, {zero}, {six} : {te}"));
    b.line(&format!(
        "%c2 = nn.conv %r1, {wd} {{group = {e}, pads = [1, 1, 1, 1]}} : {te}"
    ));
    let n2 = b.bn("n2", "%c2", e, &te);
    b.line(&format!("%r2 = nn.clip {n2}, {zero}, {six} : {te}"));
    b.line(&format!("%c3 = nn.conv %r2, {w2} : {t}"));
    let n3 = b.bn("n3", "%c3", c, &t);
    b.line(&format!("%y = nn.add %x, {n3} : {t}"));
    b.finish(&format!("@mobilenet(%x: {t}) -> ({t})"), "%y")
}

/// A BERT encoder layer as PyTorch exports it: Q/K/V projections with
/// biases, head split by Reshape + Transpose, scores / sqrt(d), an
/// additive mask input `[B, 1, 1, S]`, softmax, context merged back, output
/// projection, residual, decomposed LayerNorm; FFN with the exact GELU
/// spelled out (Div, Erf, Add, Mul, Mul), residual, LayerNorm.
pub fn bert_layer(batch: u64, seq: u64, heads: u64, head: u64, ffn: u64) -> String {
    let mut b = Builder::default();
    let hd = heads * head;
    let t = format!("tensor<{batch}x{seq}x{hd}xf32>");
    let tf = format!("tensor<{batch}x{seq}x{ffn}xf32>");
    let th = format!("tensor<{batch}x{heads}x{seq}x{head}xf32>");
    let ts = format!("tensor<{batch}x{heads}x{seq}x{seq}xf32>");
    let tsplit = format!("tensor<{batch}x{seq}x{heads}x{head}xf32>");
    let tstat = format!("tensor<{batch}x{seq}x1xf32>");
    let s4 = b.ints("s4", &[batch as i64, seq as i64, heads as i64, head as i64]);
    let s3 = b.ints("s3", &[batch as i64, seq as i64, hd as i64]);
    let axes = b.ints("axes", &[-1]);
    let scale = b.scalar("scale", (head as f64).sqrt());
    let two = b.scalar("two", 2.0);
    let eps = b.scalar("eps", 1e-12);
    let sqrt2 = b.scalar("sqrt2", std::f64::consts::SQRT_2);
    let one = b.scalar("one", 1.0);
    let half = b.scalar("half", 0.5);
    let proj = |b: &mut Builder, p: &str| {
        let w = b.w(&format!("w{p}"), &[hd, hd], 0.0, false);
        let bias = b.w(&format!("b{p}"), &[hd], 0.0, false);
        b.line(&format!("%{p}m = nn.matmul %x, {w} : {t}"));
        b.line(&format!("%{p}a = nn.add %{p}m, {bias} : {t}"));
        b.line(&format!("%{p}r = nn.reshape %{p}a, {s4} : {tsplit}"));
    };
    for p in ["q", "k", "v"] {
        proj(&mut b, p);
    }
    b.line(&format!(
        "%q = nn.transpose %qr {{perm = [0, 2, 1, 3]}} : {th}"
    ));
    b.line(&format!(
        "%kt = nn.transpose %kr {{perm = [0, 2, 3, 1]}} : tensor<{batch}x{heads}x{head}x{seq}xf32>"
    ));
    b.line(&format!(
        "%v = nn.transpose %vr {{perm = [0, 2, 1, 3]}} : {th}"
    ));
    b.line(&format!("%sc = nn.matmul %q, %kt : {ts}"));
    b.line(&format!("%sd = nn.div %sc, {scale} : {ts}"));
    b.line(&format!("%sm = nn.add %sd, %mask : {ts}"));
    b.line(&format!("%p = nn.softmax %sm {{axis = -1}} : {ts}"));
    b.line(&format!("%ctx = nn.matmul %p, %v : {th}"));
    b.line(&format!(
        "%ct = nn.transpose %ctx {{perm = [0, 2, 1, 3]}} : {tsplit}"
    ));
    b.line(&format!("%cm = nn.reshape %ct, {s3} : {t}"));
    let wo = b.w("wo", &[hd, hd], 0.0, false);
    let bo = b.w("bo", &[hd], 0.0, false);
    b.line(&format!("%om = nn.matmul %cm, {wo} : {t}"));
    b.line(&format!("%oa = nn.add %om, {bo} : {t}"));
    b.line(&format!("%r1 = nn.add %oa, %x : {t}"));
    let layer_norm = |b: &mut Builder, x: &str, p: &str| {
        let g = b.w(&format!("{p}g"), &[hd], 1.0, false);
        let be = b.w(&format!("{p}b"), &[hd], 0.0, false);
        b.line(&format!("%{p}mean = nn.reduce_mean {x}, {axes} : {tstat}"));
        b.line(&format!("%{p}d = nn.sub {x}, %{p}mean : {t}"));
        b.line(&format!("%{p}sq = nn.pow %{p}d, {two} : {t}"));
        b.line(&format!(
            "%{p}var = nn.reduce_mean %{p}sq, {axes} : {tstat}"
        ));
        b.line(&format!("%{p}ve = nn.add %{p}var, {eps} : {tstat}"));
        b.line(&format!("%{p}std = nn.sqrt %{p}ve : {tstat}"));
        b.line(&format!("%{p}n = nn.div %{p}d, %{p}std : {t}"));
        b.line(&format!("%{p}s = nn.mul %{p}n, {g} : {t}"));
        b.line(&format!("%{p}y = nn.add %{p}s, {be} : {t}"));
        format!("%{p}y")
    };
    let h1 = layer_norm(&mut b, "%r1", "ln1");
    let w1 = b.w("w1", &[hd, ffn], 0.0, false);
    let b1 = b.w("b1", &[ffn], 0.0, false);
    let w2 = b.w("w2", &[ffn, hd], 0.0, false);
    let b2 = b.w("b2", &[hd], 0.0, false);
    b.line(&format!("%f1 = nn.matmul {h1}, {w1} : {tf}"));
    b.line(&format!("%f1b = nn.add %f1, {b1} : {tf}"));
    b.line(&format!("%gu = nn.div %f1b, {sqrt2} : {tf}"));
    b.line(&format!("%ge = nn.erf %gu : {tf}"));
    b.line(&format!("%ga = nn.add %ge, {one} : {tf}"));
    b.line(&format!("%gm = nn.mul %f1b, %ga : {tf}"));
    b.line(&format!("%g = nn.mul %gm, {half} : {tf}"));
    b.line(&format!("%f2 = nn.matmul %g, {w2} : {t}"));
    b.line(&format!("%f2b = nn.add %f2, {b2} : {t}"));
    b.line(&format!("%r2 = nn.add %f2b, {h1} : {t}"));
    let y = layer_norm(&mut b, "%r2", "ln2");
    b.finish(
        &format!("@bert(%x: {t}, %mask: tensor<{batch}x1x1x{seq}xf32>) -> ({t})"),
        &y,
    )
}

#[cfg(test)]
mod tests {
    //! The named pipelines on the three model blocks: every pass verified,
    //! results equal to the original's in the interpreter on random inputs.

    use super::*;
    use crate::passes::testutil::{
        assert_close, assert_equivalent, graph, padding_mask, random_inputs, run_with_plan,
        InputGen,
    };
    use crate::{ManagerOptions, PassManager, Pipeline};
    use kiln_ir::text::print;
    use kiln_ir::{Graph, OpKind};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Runs `pipeline`; `o3` with the facts of an NHWC kernel library with
    /// 16-wide panels.
    fn optimize(src: &str, pipeline: &str) -> (Graph, Graph) {
        let before = graph(src);
        let mut after = before.clone();
        let mut opts = ManagerOptions {
            verify_each: true,
            ..ManagerOptions::default()
        };
        if pipeline == "o3" {
            opts.pass.target = crate::TargetFacts {
                conv_layout: kiln_ir::ops::layout::DataLayout::Nhwc,
                gemm_nr: 16,
                pack_depthwise: true,
                epilogue_max_ops: 8,
                int8_dot: false,
                int8_pairs: false,
                qgemv_panel: 16,
            };
        }
        PassManager::new(Pipeline::parse(pipeline).unwrap(), opts)
            .run(&mut after)
            .unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        (before, after)
    }

    /// Top-level ops, and every op inside fused bodies.
    fn census(g: &Graph) -> (Vec<OpKind>, Vec<OpKind>) {
        let top = g
            .nodes
            .iter()
            .map(|n| n.op)
            .filter(|&o| o != OpKind::Constant)
            .collect();
        let inner = g
            .nodes
            .iter()
            .filter_map(|n| n.body.as_ref())
            .flat_map(|b| b.nodes.iter().map(|n| n.op))
            .collect();
        (top, inner)
    }

    /// The memory plan, executed: every value written to its planned home
    /// and read back from it, against the unplanned original.
    fn check_plan(before: &Graph, after: &Graph, custom: InputGen<'_>) {
        let mut rng = StdRng::seed_from_u64(7);
        let inputs = random_inputs(before, &mut rng, custom);
        let want = kiln_interp::run_graph(before, &inputs).unwrap();
        let got = run_with_plan(after, &inputs);
        assert_close(&want, &got, &print(after));
    }

    /// The plan check can fail: with every arena value at offset 0, live
    /// values overwrite each other and the results change.
    #[test]
    fn a_broken_plan_is_caught() {
        let (before, mut after) = optimize(&bert_layer(1, 4, 2, 2, 6), "o1");
        let plan = after.memory_plan.as_mut().unwrap();
        for h in plan.homes.values_mut() {
            if let kiln_ir::plan::Home::Arena(_) = h {
                *h = kiln_ir::plan::Home::Arena(0);
            }
        }
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_plan(&before, &after, &padding_mask)
        }));
        assert!(caught.is_err(), "an overlapping plan went unnoticed");
    }

    #[test]
    fn resnet_block_through_every_level() {
        let src = resnet_block(4, 6, 3);
        for level in ["o0", "o1", "o2", "o3"] {
            let (before, after) = optimize(&src, level);
            assert_equivalent(&before, &after, 2, &|_, _, _| None);
            if level != "o0" {
                check_plan(&before, &after, &|_, _, _| None);
            }
        }
        let (_, after) = optimize(&src, "o2");
        let (top, inner) = census(&after);
        assert!(!top.contains(&OpKind::BatchNorm) && !inner.contains(&OpKind::BatchNorm));
        assert_eq!(
            top.iter().filter(|&&o| o == OpKind::Fused).count(),
            2,
            "{}",
            print(&after)
        );
        assert!(after.memory_plan.is_some());
        // o3: NHWC epilogues with packed weights, one transpose at the input.
        let (_, after) = optimize(&src, "o3");
        let (top, _) = census(&after);
        let count = |op| top.iter().filter(|&&o| o == op).count();
        assert_eq!(count(OpKind::Transpose), 1, "{}", print(&after));
        assert_eq!(count(OpKind::Unpack), 3, "{}", print(&after));
        assert_eq!(count(OpKind::Fused), 2, "{}", print(&after));
    }

    #[test]
    fn mobilenet_block_through_every_level() {
        let src = mobilenet_block(3, 2, 5);
        for level in ["o0", "o1", "o2", "o3"] {
            let (before, after) = optimize(&src, level);
            assert_equivalent(&before, &after, 2, &|_, _, _| None);
            if level != "o0" {
                check_plan(&before, &after, &|_, _, _| None);
            }
        }
        let (_, after) = optimize(&src, "o2");
        let (top, _) = census(&after);
        assert_eq!(
            top,
            [OpKind::Fused, OpKind::Fused, OpKind::Fused],
            "{}",
            print(&after)
        );
        let (_, after) = optimize(&src, "o3");
        let (top, _) = census(&after);
        let count = |op| top.iter().filter(|&&o| o == op).count();
        assert_eq!(count(OpKind::Transpose), 2, "{}", print(&after));
        assert_eq!(count(OpKind::Fused), 3, "{}", print(&after));
        assert_eq!(count(OpKind::Unpack), 3, "{}", print(&after));
    }

    #[test]
    fn bert_layer_through_every_level() {
        let src = bert_layer(2, 5, 2, 4, 12);
        for level in ["o0", "o1", "o2", "o3"] {
            let (before, after) = optimize(&src, level);
            assert_equivalent(&before, &after, 2, &padding_mask);
            if level != "o0" {
                check_plan(&before, &after, &padding_mask);
            }
        }
        let (_, after) = optimize(&src, "o1");
        let (top, _) = census(&after);
        for op in [OpKind::Attention, OpKind::LayerNorm, OpKind::Gelu] {
            assert!(top.contains(&op), "{op:?} missing:\n{}", print(&after));
        }
        for op in [
            OpKind::Softmax,
            OpKind::Erf,
            OpKind::ReduceMean,
            OpKind::Transpose,
        ] {
            assert!(!top.contains(&op), "{op:?} left:\n{}", print(&after));
        }
        let (_, after) = optimize(&src, "o2");
        let (top, inner) = census(&after);
        assert_eq!(
            inner.iter().filter(|&&o| o == OpKind::Gelu).count(),
            1,
            "{}",
            print(&after)
        );
        assert!(!top.contains(&OpKind::Gelu) && !top.contains(&OpKind::MatMul));
    }
}
