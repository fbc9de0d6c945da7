//! liverseg's developer tasks, run as `cargo xtask <command>`: synthetic
//! datasets, cross-validation splits, dataset downloads, the built-in
//! model's training recipe and the repository's tidiness checks.

mod builtin;
mod builtin_eval;
mod extract;
mod fetch;
mod fsutil;
mod http;
mod lits;
mod msd;
mod msd_tasks;
mod progress;
mod split;
mod synth;
#[cfg(test)]
mod test_server;
mod tidy;

use clap::{Parser, Subcommand};

/// liverseg developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a Decathlon-layout dataset of synthetic CT phantoms.
    Synth(synth::SynthArgs),
    /// Write a seeded test hold-out and k-fold split (splits.json).
    Split(split::SplitArgs),
    /// Download (or import) and verify a public liver dataset.
    FetchData(fetch::FetchArgs),
    /// Check file lengths, module docs, machine paths and the commands the
    /// docs show (exit 1 with one `path:line: what` line per problem).
    Tidy(tidy::TidyArgs),
    /// Generate the synthetic phantoms and train liverseg's built-in liver
    /// model (deterministic, resumable); exports the shipped weights.
    TrainBuiltin(builtin::TrainBuiltinArgs),
    /// Score the built-in model on held-out clinical phantoms, per contrast
    /// phase and scan range (the model card's accuracy table).
    EvalBuiltin(builtin_eval::EvalBuiltinArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Split(a) => split::run(a),
        Command::FetchData(a) => fetch::run(a),
        Command::Tidy(a) => tidy::run(a),
        Command::TrainBuiltin(a) => builtin::run(a),
        Command::EvalBuiltin(a) => builtin_eval::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "xtask",
            "fetch-data",
            "--archive",
            "a.zip",
            "b.zip",
            "--data-dir",
            "d",
        ])
        .unwrap();
        match cli.command {
            Command::FetchData(a) => {
                assert_eq!(a.archive.len(), 2);
                assert_eq!(a.data_dir, std::path::PathBuf::from("d"));
                assert_eq!(a.dataset, fetch::Dataset::MsdLiver);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["xtask", "split"]).unwrap();
        match cli.command {
            Command::Split(a) => assert_eq!((a.folds, a.test_fraction, a.seed), (5, 0.2, 0)),
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["xtask", "synth"]).is_err(),
            "--cases is required"
        );
    }
}
