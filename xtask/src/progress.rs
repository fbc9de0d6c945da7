//! Progress reporting: an indicatif bar on a terminal, plain log lines
//! (at most one every few seconds) when stderr is redirected.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What a [`Progress`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Items such as cases or files.
    Items,
    /// Bytes, shown with rate and ETA.
    Bytes,
}

/// A progress indicator for one long operation.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    unit: Unit,
    total: Option<u64>,
    pos: u64,
    start: Instant,
    last_line: Instant,
}

/// How often plain progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Starts reporting `label`, out of `total` when known.
    pub fn new(label: &str, total: Option<u64>, unit: Unit) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::no_length(),
            };
            let template = match (unit, total.is_some()) {
                (Unit::Items, _) => "{msg} [{bar:30}] {pos}/{len} ({elapsed}, ETA {eta})",
                (Unit::Bytes, true) => {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
                }
                (Unit::Bytes, false) => "{msg} {bytes} {bytes_per_sec}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            label: label.to_string(),
            unit,
            total,
            pos: 0,
            start: now,
            last_line: now,
        }
    }

    /// Sets the position (items done or bytes transferred).
    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        } else if self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            tracing::info!("{}", self.line());
        }
    }

    /// Advances the position by `n`.
    pub fn inc(&mut self, n: u64) {
        self.set(self.pos + n);
    }

    /// Ends the indicator and logs a final line.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::info!(
            "{} done in {:.1} s",
            self.line(),
            self.start.elapsed().as_secs_f64()
        );
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        match self.unit {
            Unit::Items => match self.total {
                Some(t) => format!("{}: {}/{}", self.label, self.pos, t),
                None => format!("{}: {}", self.label, self.pos),
            },
            Unit::Bytes => {
                let rate = self.pos as f64 / secs;
                let mib = |b: f64| b / (1024.0 * 1024.0);
                match self.total {
                    Some(t) if rate > 0.0 => format!(
                        "{}: {:.1}/{:.1} MiB, {:.1} MiB/s, ETA {:.0} s",
                        self.label,
                        mib(self.pos as f64),
                        mib(t as f64),
                        mib(rate),
                        (t.saturating_sub(self.pos)) as f64 / rate
                    ),
                    _ => format!(
                        "{}: {:.1} MiB, {:.1} MiB/s",
                        self.label,
                        mib(self.pos as f64),
                        mib(rate)
                    ),
                }
            }
        }
    }
}
