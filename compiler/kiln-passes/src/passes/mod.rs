//! One module per pass. Each defines `INFO` (its registry entry) and the
//! pass type; [`crate::registry::PASSES`] lists them.

pub mod canonicalize;
pub mod cse;
pub mod dce;
pub mod fold_constants;
pub mod plan_memory;
pub mod shape_inference;

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for pass unit tests: parse `.kir` text, run a pass, print.

    use crate::pass::{Pass, PassOptions, PassStats};
    use kiln_ir::text::{parse, print};
    use kiln_ir::Graph;

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
}
