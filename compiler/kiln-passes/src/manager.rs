//! Runs a [`Pipeline`] over a graph.
//!
//! With [`ManagerOptions::verify_each`] (on by default in debug builds and
//! therefore in tests; the CLI can force it either way) the verifier runs on
//! the input and after every pass, so a pass that breaks the IR is named in
//! the error instead of surfacing later as a confusing failure.

use crate::pass::{PassError, PassOptions, PassStats};
use crate::pipeline::Pipeline;
use kiln_ir::Graph;
use std::time::{Duration, Instant};

/// Pass manager settings.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Verify the input and the graph after every pass.
    pub verify_each: bool,
    /// Options handed to every pass.
    pub pass: PassOptions,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            verify_each: cfg!(debug_assertions),
            pass: PassOptions::default(),
        }
    }
}

/// How long one pass took and what it did.
#[derive(Clone, Debug)]
pub struct PassTiming {
    /// The pass name.
    pub pass: &'static str,
    /// Wall time of the pass itself (verification excluded).
    pub elapsed: Duration,
    /// What the pass reported.
    pub stats: PassStats,
}

/// The outcome of a pipeline run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// One entry per pass, in run order.
    pub timings: Vec<PassTiming>,
}

impl RunReport {
    /// A table of pass timings, one line per pass plus a total.
    pub fn timing_table(&self) -> String {
        let total: Duration = self.timings.iter().map(|t| t.elapsed).sum();
        let mut out = String::from("===-- Pass execution timing report --===\n");
        for t in &self.timings {
            out.push_str(&format!(
                "  {:>10.3} ms  {:<20} {} rewrites\n",
                t.elapsed.as_secs_f64() * 1e3,
                t.pass,
                t.stats.rewrites
            ));
        }
        out.push_str(&format!(
            "  {:>10.3} ms  total\n",
            total.as_secs_f64() * 1e3
        ));
        out
    }
}

/// Called after each pass with the pass name and the graph.
pub type AfterPassHook<'a> = Box<dyn FnMut(&str, &Graph) + 'a>;

/// Runs pipelines.
pub struct PassManager<'a> {
    pipeline: Pipeline,
    options: ManagerOptions,
    after_pass: Option<AfterPassHook<'a>>,
}

impl<'a> PassManager<'a> {
    /// A manager for `pipeline`.
    pub fn new(pipeline: Pipeline, options: ManagerOptions) -> PassManager<'a> {
        PassManager {
            pipeline,
            options,
            after_pass: None,
        }
    }

    /// Calls `hook` after every pass (print-after-all).
    pub fn after_each_pass(mut self, hook: impl FnMut(&str, &Graph) + 'a) -> PassManager<'a> {
        self.after_pass = Some(Box::new(hook));
        self
    }

    /// The pipeline this manager runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Runs every pass in order.
    pub fn run(&mut self, g: &mut Graph) -> Result<RunReport, PassError> {
        let mut report = RunReport::default();
        if self.options.verify_each {
            check(g, "input")?;
        }
        for info in &self.pipeline.passes {
            let pass = (info.create)();
            let span = tracing::debug_span!("pass", name = info.name);
            let _enter = span.enter();
            let start = Instant::now();
            let stats = pass.run(g, &self.options.pass)?;
            let elapsed = start.elapsed();
            tracing::debug!(rewrites = stats.rewrites, ?elapsed, "pass done");
            report.timings.push(PassTiming {
                pass: info.name,
                elapsed,
                stats,
            });
            if let Some(hook) = &mut self.after_pass {
                hook(info.name, g);
            }
            if self.options.verify_each {
                check(g, info.name)?;
            }
        }
        Ok(report)
    }
}

fn check(g: &Graph, after: &str) -> Result<(), PassError> {
    kiln_ir::verify(g).map_err(|errs| PassError::Verify {
        after: after.to_string(),
        messages: errs.into_iter().map(|e| e.message).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{Attrs, DType, OpKind, TensorType};

    fn relu_chain() -> Graph {
        let mut g = Graph::new("main");
        let t = TensorType::fixed(DType::F32, &[2]);
        let x = g.add_input("x", t.clone());
        let a = g.add_node(
            OpKind::Relu,
            vec![Some(x)],
            Attrs::new(),
            vec![("a".into(), t.clone())],
        )[0];
        let _dead = g.add_node(
            OpKind::Exp,
            vec![Some(x)],
            Attrs::new(),
            vec![("d".into(), t.clone())],
        );
        let b = g.add_node(
            OpKind::Relu,
            vec![Some(a)],
            Attrs::new(),
            vec![("b".into(), t)],
        )[0];
        g.outputs.push(b);
        g
    }

    #[test]
    fn runs_passes_in_order_and_reports_each() {
        let mut g = relu_chain();
        let mut seen = Vec::new();
        let report = PassManager::new(
            Pipeline::parse("canonicalize,dce").unwrap(),
            ManagerOptions::default(),
        )
        .after_each_pass(|name, g| seen.push((name.to_string(), g.nodes.len())))
        .run(&mut g)
        .unwrap();
        assert_eq!(report.timings.len(), 2);
        assert_eq!(report.timings[0].pass, "canonicalize");
        assert!(report.timings[0].stats.changed());
        assert_eq!(seen, vec![("canonicalize".into(), 1), ("dce".into(), 1)]);
        assert!(report.timing_table().contains("total"));
    }

    #[test]
    fn broken_input_is_reported_before_any_pass() {
        let mut g = relu_chain();
        // Declare a wrong result type: the verifier must catch it.
        let b = g.outputs[0];
        *g.value_ty_mut(b) = TensorType::fixed(DType::F32, &[3]);
        let opts = ManagerOptions {
            verify_each: true,
            ..ManagerOptions::default()
        };
        let err = PassManager::new(Pipeline::parse("dce").unwrap(), opts)
            .run(&mut g)
            .unwrap_err();
        match err {
            PassError::Verify { after, messages } => {
                assert_eq!(after, "input");
                assert!(
                    messages[0].contains("declared tensor<3xf32>"),
                    "{messages:?}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
