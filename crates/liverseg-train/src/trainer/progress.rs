//! What a running training reports as it goes. The trainer draws nothing
//! itself: a progress display (the CLI's bars) and live curves (the CLI's
//! `curves.png`) are built from these events.

use std::cell::RefCell;

use super::EpochRecord;

/// One event of a run.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A stage begins: `"preprocess"`, `"epoch 3"` or `"validate"`, with
    /// its number of steps (cases or batches).
    Stage {
        /// The stage's name.
        name: &'a str,
        /// How many steps it has.
        steps: u64,
    },
    /// One step of the current stage is done; `note` is what is worth
    /// showing beside it (the running loss).
    Step {
        /// A short note, or nothing.
        note: Option<&'a str>,
    },
    /// The current stage is over.
    StageDone,
    /// An epoch is complete: trained, validated when due, checkpointed, its
    /// metrics written.
    Epoch {
        /// Its numbers.
        record: &'a EpochRecord,
        /// Every epoch of the run so far, this one last.
        history: &'a [EpochRecord],
    },
}

/// The receiver of a run's events.
pub type ProgressFn = Box<dyn for<'a> FnMut(Progress<'a>) + Send>;

/// Holds the receiver so that methods borrowing the trainer immutably
/// (validation) can still report.
pub(super) struct Reporter(RefCell<ProgressFn>);

impl Reporter {
    pub(super) fn new(f: ProgressFn) -> Self {
        Reporter(RefCell::new(f))
    }

    /// Reports one event. Events are reported one at a time from the
    /// training thread, so the cell is never borrowed twice.
    pub(super) fn report(&self, event: Progress<'_>) {
        if let Ok(mut f) = self.0.try_borrow_mut() {
            f(event);
        }
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new(Box::new(|_| {}))
    }
}
