//! `liverseg`: the command-line front of the liverseg toolkit.
//!
//! Exit codes: 0 on success, 2 when the input or the command line is wrong
//! (a file that is not what it claims, a missing argument, an output that
//! would overwrite something), 1 for every other failure.

mod batch;
mod commands;
mod exit;
mod formats;
mod progress;
mod shard;
mod stdout;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc, told to keep freed memory mapped: the network's per-layer
/// activations are allocated and freed by the tens of megabytes, and
/// glibc's allocator (or mimalloc's default purging) hands such blocks back
/// to the kernel, so every layer paid for fresh zeroed pages (about a
/// quarter of a training step; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores one integer option; mimalloc documents
    // it as callable at any time from any thread, and 15 is
    // `mi_option_purge_delay` in the bundled mimalloc's header.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

/// Liver segmentation for abdominal CT: inspect, convert, preprocess, train, predict.
#[derive(Debug, Parser)]
#[command(name = "liverseg", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Memory budget for buffers sized by the input, e.g. `8G` (default: the
    /// machine's memory, or LIVERSEG_MEMORY_LIMIT). Larger inputs are refused.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_memory)]
    memory_limit: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a NIfTI file, a DICOM file, a DICOM series directory or a DICOM SEG.
    Info(commands::info::InfoArgs),
    /// Convert between NIfTI, DICOM CT series and DICOM SEG.
    Convert(commands::convert::ConvertArgs),
    /// Turn a MONAI UNet state_dict (.pth) into a self-describing liverseg model file.
    ImportMonai(commands::import_monai::ImportArgs),
    /// The whole path on synthetic phantoms in minutes: data, training, prediction, evaluation, report.
    Demo(commands::demo::DemoArgs),
    /// Write a model (or the built-in one) as ONNX for ONNX Runtime, TensorRT, OpenVINO or Triton.
    ExportOnnx(commands::export_onnx::ExportOnnxArgs),
    /// Describe the built-in model, or model files: classes, training, network, preprocessing.
    Models(commands::models::ModelsArgs),
    /// Read a dataset's fingerprint and plan its training as nnU-Net does: spacing, patch, batch, network, normalisation.
    Plan(commands::plan::PlanArgs),
    /// Segment a CT (NIfTI, DICOM series), a folder of them or a manifest; batches are sharded and resumable.
    Predict(commands::predict::PredictArgs),
    /// A DICOM node: receive CT/MR series (C-STORE), segment each, send SEG and RTSTRUCT back; --status lists its series.
    Serve(commands::serve::ServeArgs),
    /// Merge a batch's shard records into one CSV and JSON; list failed and missing cases.
    Report(commands::report::ReportArgs),
    /// Train a U-Net on a Decathlon-layout dataset (defaults: the MONAI liver tutorial).
    Train(commands::train::TrainArgs),
    /// Run a preprocessing preset (seed = the MONAI tutorial, patch = nnU-Net-like) on a CT and label.
    Preprocess(commands::preprocess::PreprocessArgs),
    /// Score predicted label maps against references: Dice, IoU, HD, HD95, ASSD, surface Dice, volumes.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Check a GPU against the CPU kernels (every layer, both networks, f32 and bf16) and time it.
    DeviceCheck(commands::device_check::DeviceCheckArgs),
}

fn parse_memory(s: &str) -> Result<u64, String> {
    liverseg_io::budget::parse_size(s)
        .ok_or_else(|| format!("{s:?}: expected a size such as 8G, 512M or a byte count"))
}

fn init_logging(verbose: u8) {
    init_logging_with_file(verbose, None);
}

/// Logs to stderr, and also to `file` when given (`liverseg train` keeps a
/// `train.log` in its run folder; its default level is `info`).
pub(crate) fn init_logging_with_file(verbose: u8, file: Option<&std::path::Path>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let default = match (verbose, file.is_some()) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a person at a terminal, never in a log file
    // or a pipe.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(filter());
    let file_layer = file
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .map(|f| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter())
        });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with success, usage errors
            // to stderr; usage errors are bad input (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `cargo xtask tidy` checks that every command the README shows still
    // parses: with this variable set, parsing is all that happens.
    if std::env::var_os("LIVERSEG_PARSE_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    if let Some(bytes) = cli.memory_limit {
        liverseg_io::budget::set_limit(bytes);
    }
    if !matches!(cli.command, Command::Train(_) | Command::Demo(_)) {
        init_logging(cli.verbose);
    }
    let result = match cli.command {
        Command::Train(args) => commands::train::run(&args, cli.verbose),
        Command::Predict(args) => commands::predict::run(&args),
        Command::Report(args) => commands::report::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Demo(args) => commands::demo::run(&args, cli.verbose),
        Command::Info(args) => commands::info::run(&args),
        Command::Models(args) => commands::models::run(&args),
        Command::ExportOnnx(args) => commands::export_onnx::run(&args),
        Command::Plan(args) => commands::plan::run(&args),
        Command::Convert(args) => commands::convert::run(&args),
        Command::ImportMonai(args) => commands::import_monai::run(&args),
        Command::Preprocess(args) => commands::preprocess::run(&args),
        Command::Evaluate(args) => commands::evaluate::run(&args),
        Command::DeviceCheck(args) => commands::device_check::run(&args),
    }
    .and_then(|()| stdout::finish());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// The longest error line printed; the whole chain goes to the log (`-v`).
const MAX_ERROR_CHARS: usize = 300;

/// Prints `e` as one line of at most [`MAX_ERROR_CHARS`] characters.
fn report(e: &anyhow::Error) {
    let mut full = chain(e);
    if let Some(h) = hint(e) {
        full = format!("{full} ({h})");
    }
    let line = one_line(&full, MAX_ERROR_CHARS);
    if line != full {
        tracing::info!("the whole error: {full}");
    }
    use std::io::Write;
    // Nothing is left to tell anyone if standard error is gone too.
    let _ = writeln!(std::io::stderr(), "liverseg: error: {line}");
}

/// What a user can do about `e` with this program's flags: the libraries
/// name the problem, the CLI names its own options.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        if let Some(io) = cause.downcast_ref::<liverseg_io::Error>() {
            return match io {
                liverseg_io::Error::Exists { .. } => Some("use --force to replace it"),
                liverseg_io::Error::OverBudget { .. } => {
                    Some("--memory-limit or LIVERSEG_MEMORY_LIMIT changes the budget")
                }
                _ => None,
            };
        }
        if let Some(liverseg_transforms::Error::OverBudget(_)) = cause.downcast_ref() {
            return Some("--memory-limit or LIVERSEG_MEMORY_LIMIT changes the budget");
        }
        if let Some(liverseg_train::Error::RunExists { .. }) = cause.downcast_ref() {
            return Some("--resume continues it, --force starts over");
        }
        None
    })
}

/// The error and its causes joined by ": ", leaving out a cause whose text
/// the message already holds (errors that print their source, such as
/// `liverseg_io::Error::Io`, would otherwise say it twice).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `text` on one line (whitespace runs collapsed), cut to `max` characters
/// with an ellipsis and a pointer to `-v`.
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let tail = " … (-v for the whole message)";
    let keep = max.saturating_sub(tail.chars().count());
    let cut: String = line.chars().take(keep).collect();
    format!("{}{tail}", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::{chain, one_line};

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(liverseg_io::Error::Io {
            path: "ct.nii".into(),
            action: "cannot read",
            source: io,
        })
        .context("converting ct.nii");
        assert_eq!(
            chain(&e),
            "converting ct.nii: ct.nii: cannot read: No such file"
        );
    }

    #[test]
    fn errors_are_one_short_line() {
        assert_eq!(one_line("a.nii: bad\n  header", 300), "a.nii: bad header");
        let long = format!("x.dcm: duplicate frames {}", "1.2.3 ".repeat(200));
        let line = one_line(&long, 300);
        assert_eq!(line.chars().count(), 300, "{line}");
        assert!(line.starts_with("x.dcm: duplicate frames 1.2.3"));
        assert!(line.ends_with("(-v for the whole message)"));
    }
}
