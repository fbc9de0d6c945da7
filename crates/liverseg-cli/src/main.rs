//! `liverseg`: the command-line front of the liverseg toolkit.
//!
//! Exit codes: 0 on success, 2 when the input or the command line is wrong
//! (a file that is not what it claims, a missing argument, an output that
//! would overwrite something), 1 for every other failure.

mod commands;
mod exit;
mod formats;

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
    /// Segment a CT (NIfTI, DICOM series) or a folder of them with a liverseg model.
    Predict(commands::predict::PredictArgs),
    /// Train a U-Net on a Decathlon-layout dataset (defaults: the MONAI liver tutorial).
    Train(commands::train::TrainArgs),
    /// Run a preprocessing preset (seed = the MONAI tutorial, patch = nnU-Net-like) on a CT and label.
    Preprocess(commands::preprocess::PreprocessArgs),
    /// Score predicted label maps against references: Dice, IoU, HD, HD95, ASSD, surface Dice, volumes.
    Evaluate(commands::evaluate::EvaluateArgs),
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
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
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
    if !matches!(cli.command, Command::Train(_) | Command::Demo(_)) {
        init_logging(cli.verbose);
    }
    let result = match cli.command {
        Command::Train(args) => commands::train::run(&args, cli.verbose),
        Command::Predict(args) => commands::predict::run(&args),
        Command::Demo(args) => commands::demo::run(&args, cli.verbose),
        Command::Info(args) => commands::info::run(&args),
        Command::Convert(args) => commands::convert::run(&args),
        Command::ImportMonai(args) => commands::import_monai::run(&args),
        Command::Preprocess(args) => commands::preprocess::run(&args),
        Command::Evaluate(args) => commands::evaluate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("liverseg: error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}
