//! Mapping errors to the CLI's exit codes (2 bad input, 1 other failures).

use std::fmt;

/// Marks an error caused by the user's input or arguments, detected by the
/// CLI itself (for example an output path equal to the input).
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Shorthand for returning a [`BadInput`] error.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// 2 when any error in the chain is bad input, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<BadInput>().is_some() {
            return 2;
        }
        if let Some(io) = cause.downcast_ref::<liverseg_io::Error>() {
            return if io.is_bad_input() { 2 } else { 1 };
        }
        if let Some(t) = cause.downcast_ref::<liverseg_train::Error>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if let Some(t) = cause.downcast_ref::<liverseg_report::Error>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<liverseg_metrics::Error>().is_some() {
            return 2;
        }
        if let Some(t) = cause.downcast_ref::<liverseg_infer::Error>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if let Some(t) = cause.downcast_ref::<liverseg_plan::Error>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if let Some(t) = cause.downcast_ref::<liverseg_transforms::Error>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
    }
    1
}

/// Names `path` at the front of `err` unless the message already names it:
/// transform and model errors do not know which file their input came from.
pub fn naming(path: &std::path::Path) -> impl FnOnce(anyhow::Error) -> anyhow::Error + '_ {
    move |err| {
        let shown = path.display().to_string();
        if err.chain().any(|c| c.to_string().contains(&shown)) {
            err
        } else {
            err.context(shown)
        }
    }
}
