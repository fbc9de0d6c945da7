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
    /// Run a preprocessing preset (seed = the MONAI tutorial, patch = nnU-Net-like) on a CT and label.
    Preprocess(commands::preprocess::PreprocessArgs),
    /// Score predicted label maps against references: Dice, IoU, HD, HD95, ASSD, surface Dice, volumes.
    Evaluate(commands::evaluate::EvaluateArgs),
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
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
    init_logging(cli.verbose);
    let result = match cli.command {
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
