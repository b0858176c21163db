//! `dce`: removes nodes none of whose results are used, then weights no
//! constant refers to.
//!
//! Precondition: a verified graph. Every Kiln op is pure (no side effects,
//! no state), so a node is dead exactly when no graph output depends on it.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::registry::PassInfo;
use kiln_ir::Graph;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "dce",
    summary: "Removes nodes whose results are unused and weights no constant refers to",
    create: || Box::new(Dce),
};

/// The dead code elimination pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dce;

impl Pass for Dce {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(PassStats {
            rewrites: eliminate(g),
        })
    }
}

/// Removes dead nodes and unreferenced weights; returns how many of both
/// were removed. Also used by canonicalize to clean up after rewrites.
pub fn eliminate(g: &mut Graph) -> usize {
    let nodes = remove_dead_nodes(g);
    let before = g.weights().len();
    g.gc_weights();
    nodes + (before - g.weights().len())
}

/// Removes nodes none of whose results reach a graph output; returns how
/// many were removed. One backward sweep suffices because nodes are in
/// topological order.
pub fn remove_dead_nodes(g: &mut Graph) -> usize {
    let mut live = vec![false; g.num_values()];
    for v in &g.outputs {
        live[v.0 as usize] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|v| live[v.0 as usize]) {
            keep[i] = true;
            for v in node.operands() {
                live[v.0 as usize] = true;
            }
        }
    }
    let before = g.nodes.len();
    let mut it = keep.into_iter();
    g.nodes.retain(|_| it.next().unwrap_or(true));
    before - g.nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::run;

    #[test]
    fn removes_unused_chains_and_their_weights() {
        let (out, stats) = run(
            &Dce,
            "weight @w : tensor<2xf32> = dense<[1.0, 2.0]>\n\
             weight @keep : tensor<2xf32> = dense<[3.0, 4.0]>\n\
             graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n\
               %c = nn.constant {value = @w} : tensor<2xf32>\n\
               %k = nn.constant {value = @keep} : tensor<2xf32>\n\
               %d1 = nn.add %x, %c : tensor<2xf32>\n\
               %d2 = nn.exp %d1 : tensor<2xf32>\n\
               %y = nn.mul %x, %k : tensor<2xf32>\n\
               return %y\n}\n",
        );
        assert_eq!(
            out,
            "weight @keep : tensor<2xf32> = dense<[3.0, 4.0]>\n\
             graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
               %k = nn.constant {value = @keep} : tensor<2xf32>\n  \
               %y = nn.mul %x, %k : tensor<2xf32>\n  \
               return %y\n}\n"
        );
        // Three nodes and one weight.
        assert_eq!(stats.rewrites, 4);
    }

    #[test]
    fn live_graph_is_unchanged() {
        let src = "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {\n  \
                   %a = nn.relu %x : tensor<2xf32>\n  \
                   %b = nn.exp %a : tensor<2xf32>\n  \
                   return %b, %a\n}\n";
        let (out, stats) = run(&Dce, src);
        assert_eq!(out, src);
        assert!(!stats.changed());
    }

    #[test]
    fn a_graph_returning_its_input_loses_every_node() {
        let (out, _) = run(
            &Dce,
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %a = nn.relu %x : tensor<2xf32>\n  return %x\n}\n",
        );
        assert!(!out.contains("nn.relu"), "{out}");
    }
}
