//! `shape-inference`: refines declared value types with what each op's
//! inference knows (an unknown or symbolic extent becomes static), repeating
//! until nothing changes.
//!
//! Precondition: a verified graph. Only refines: dtypes and ranks never
//! change and a static extent is never replaced, so the result still agrees
//! with every declaration. Graph input types are never touched; graph output
//! types may become more static, which is the point of the pass.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::registry::PassInfo;
use kiln_ir::Graph;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "shape-inference",
    summary: "Refines value types with inferred static shapes until a fixpoint",
    create: || Box::new(ShapeInference),
};

/// The shape inference pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShapeInference;

impl Pass for ShapeInference {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        // Nodes are in topological order, so one sweep usually reaches the
        // fixpoint; further sweeps only confirm it. Each sweep can only make
        // dims more static, so the bound is a guard, not a tuning knob.
        let mut sweeps = 0;
        while sweeps < opts.max_iterations.max(1) && kiln_ir::verify::refine_types(g) {
            sweeps += 1;
        }
        Ok(PassStats { rewrites: sweeps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::run;

    #[test]
    fn unknown_dims_become_static_through_a_chain() {
        let (out, stats) = run(
            &ShapeInference,
            "graph @main(%x: tensor<2x3xf32>, %w: tensor<3x4xf32>) -> (tensor<?x?xf32>) {\n  \
               %y = nn.matmul %x, %w : tensor<?x?xf32>\n  \
               %z = nn.relu %y : tensor<?x?xf32>\n  \
               return %z\n}\n",
        );
        assert!(
            out.contains("%y = nn.matmul %x, %w : tensor<2x4xf32>"),
            "{out}"
        );
        assert!(out.contains("%z = nn.relu %y : tensor<2x4xf32>"), "{out}");
        assert!(out.contains("-> (tensor<2x4xf32>)"), "{out}");
        assert!(stats.changed());
    }

    #[test]
    fn symbols_are_kept_and_unknowns_take_symbols() {
        let (out, _) = run(
            &ShapeInference,
            "graph @main(%x: tensor<{n}x3xf32>) -> (tensor<?x3xf32>) {\n  \
               %z = nn.relu %x : tensor<?x3xf32>\n  \
               return %z\n}\n",
        );
        assert!(out.contains("%z = nn.relu %x : tensor<{n}x3xf32>"), "{out}");
    }

    #[test]
    fn static_graph_is_a_fixpoint() {
        let src = "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %z = nn.relu %x : tensor<2xf32>\n  return %z\n}\n";
        let (out, stats) = run(&ShapeInference, src);
        assert_eq!(out, src);
        assert!(!stats.changed());
    }
}
