//! The one table of passes. A pass is reachable by name only through this
//! table; adding a pass means adding its file under `passes/` and one line
//! here (and a lit test `lit-tests/passes/<name>.kir`).

use crate::pass::Pass;
use crate::passes::{
    assign_layout, canonicalize, conv_transpose_to_conv, cse, dce, fold_batch_norm, fold_constants,
    fold_quantized_unary, fuse_elementwise, fuse_epilogue, pack_weights, plan_memory,
    quantize_weights, recognize_attention, recognize_norms, recognize_qdq_weights, shape_inference,
    sink_transposes,
};

/// A registry entry.
#[derive(Clone, Copy)]
pub struct PassInfo {
    /// Kebab-case name.
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Creates the pass.
    pub create: fn() -> Box<dyn Pass>,
}

impl std::fmt::Debug for PassInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for PassInfo {
    fn eq(&self, other: &PassInfo) -> bool {
        self.name == other.name
    }
}

impl Eq for PassInfo {}

/// Every pass, alphabetically.
pub const PASSES: &[PassInfo] = &[
    assign_layout::INFO,
    canonicalize::INFO,
    conv_transpose_to_conv::INFO,
    cse::INFO,
    dce::INFO,
    fold_batch_norm::INFO,
    fold_constants::INFO,
    fold_quantized_unary::INFO,
    fuse_elementwise::INFO,
    fuse_epilogue::INFO,
    pack_weights::INFO,
    plan_memory::INFO,
    quantize_weights::INFO,
    recognize_attention::INFO,
    recognize_norms::INFO,
    recognize_qdq_weights::INFO,
    shape_inference::INFO,
    sink_transposes::INFO,
];

/// Looks a pass up by name.
pub fn lookup(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_match_the_pass() {
        let mut seen = std::collections::HashSet::new();
        for info in PASSES {
            assert!(seen.insert(info.name), "duplicate pass {}", info.name);
            assert!(
                info.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{} is not kebab-case",
                info.name
            );
            assert!(!info.summary.is_empty() && !info.summary.contains('\n'));
            let pass = (info.create)();
            assert_eq!(pass.name(), info.name);
            assert_eq!(pass.summary(), info.summary);
        }
        let mut sorted: Vec<_> = PASSES.iter().map(|p| p.name).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, PASSES.iter().map(|p| p.name).collect::<Vec<_>>());
    }
}
