//! Results printed on standard output.
//!
//! Rust ignores SIGPIPE, so `println!` panics when the reader has gone
//! (`liverseg info ct.nii.gz | head -1`) or the device is full. Here a
//! closed pipe only stops the printing: the work goes on and the program
//! exits 0 when it is done, as `ls | head` ends quietly. Any other failure
//! (a full disk behind `> out.json`) is an error, exit 1.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the reader of standard output has gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

fn outcome(result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("standard output: cannot write: {e}")),
    }
}

/// Writes one formatted line (see [`outln!`](crate::outln)).
pub fn write_line(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    outcome(out.write_fmt(args).and_then(|()| out.write_all(b"\n")))
}

/// Writes `text` as it is (no newline added).
pub fn write_text(text: &str) -> anyhow::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    outcome(std::io::stdout().lock().write_all(text.as_bytes()))
}

/// Flushes what is buffered; called once before the program exits.
pub fn finish() -> anyhow::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    outcome(std::io::stdout().lock().flush())
}

/// `println!` that returns `anyhow::Result<()>`: `outln!("{x}")?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write_line(format_args!($($arg)*))
    };
}
