//! The terminal's view of a training run: a bar per stage (epoch,
//! validation, preprocessing) when standard error is a terminal, and
//! `curves.png` in the run folder redrawn after every validated epoch.

use std::path::{Path, PathBuf};

use liverseg_report::{EpochPoint, draw_curves};
use liverseg_train::{EpochRecord, Progress, ProgressFn};

/// A bar of `steps` named `name` in the style of training's, drawn only
/// when standard error is a terminal.
pub fn bar(steps: u64, name: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    styled(steps, name)
}

fn styled(steps: u64, name: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(steps);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(name.to_string());
    b
}

/// The display for a run writing into `out`; bars only when `bars`; the
/// curves (`out/curves.png`) only when `curves` (rank 0 of a data-parallel
/// run draws them).
pub fn training_display(out: &Path, bars: bool, curves: bool) -> ProgressFn {
    let draw = curves;
    let curves: PathBuf = out.join("curves.png");
    let mut bar: Option<indicatif::ProgressBar> = None;
    Box::new(move |event| match event {
        Progress::Stage { name, steps } => {
            if bars {
                bar = Some(styled(steps, name));
            }
        }
        Progress::Step { note } => {
            if let Some(b) = &bar {
                b.inc(1);
                if let Some(n) = note {
                    b.set_message(n.to_string());
                }
            }
        }
        Progress::StageDone => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
        Progress::Epoch { record, history } => {
            if draw
                && record.val_dice.is_some()
                && let Err(e) = draw_curves(&curves, &points(history))
            {
                // The curves are a picture of numbers already written to
                // metrics.csv: failing to draw them does not stop training.
                tracing::warn!("{}: {e}", curves.display());
            }
        }
    })
}

/// The numbers the curves show.
fn points(history: &[EpochRecord]) -> Vec<EpochPoint> {
    history
        .iter()
        .map(|r| EpochPoint {
            epoch: r.epoch,
            train_loss: r.train_loss,
            val_loss: r.val_loss,
            val_dice: r.val_dice,
            val_dice_per_class: r.val_dice_per_class.clone(),
        })
        .collect()
}
