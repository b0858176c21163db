//! A spinner on stderr while a model compiles, with the stage and the time
//! so far (`indicatif`).
//!
//! Invariants: it appears only when stderr is a terminal, diagnostics are
//! human text (not `--message-format=json`), and the compile has run for
//! more than [`DELAY`]; otherwise nothing at all is written. It is cleared
//! before anything else is printed.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

/// How long a compile runs before the spinner appears.
pub const DELAY: Duration = Duration::from_secs(1);

/// A running progress display; cleared when finished or dropped.
pub struct Progress {
    bar: ProgressBar,
    /// Dropped (or sent to) when finished, to stop the delay thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts a display for `what` (e.g. "compiling model.onnx").
    pub fn start(what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        let enabled = std::io::stderr().is_terminal() && !crate::report::json();
        if !enabled {
            return Progress {
                bar,
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let shown = bar.clone();
        let thread = std::thread::spawn(move || {
            // Shown only when nothing arrived (and the sender lives) for DELAY.
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(DELAY) {
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Progress {
            bar,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// A stage hook for the driver that shows the stage's name.
    pub fn hook(&self) -> kiln_driver::StageHook {
        let bar = self.bar.clone();
        kiln_driver::StageHook(std::sync::Arc::new(move |stage| {
            bar.set_message(stage);
        }))
    }

    fn finish_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish_now();
    }
}
