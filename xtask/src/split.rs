//! `cargo xtask split`: a seeded test hold-out and k-fold cross-validation
//! split of a Decathlon dataset's training cases, written as `splits.json`
//! by the one split rule (`liverseg_io::decathlon::Splits::seeded`, whose
//! documentation gives the procedure).

use anyhow::{Result, anyhow};
use liverseg_io::Overwrite;
use liverseg_io::decathlon::{DatasetJson, Splits, case_name};
use std::path::PathBuf;

/// Options of `cargo xtask split`.
#[derive(Clone, Debug, clap::Args)]
pub struct SplitArgs {
    /// Dataset folder holding `dataset.json`; `splits.json` is written there.
    #[arg(long, default_value = "data/Phantom")]
    pub data_dir: PathBuf,
    /// Number of cross-validation folds (at least 2, at most the number of
    /// non-test cases).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Fraction of the cases held out as the test set, in [0, 1).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Shuffle seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing `splits.json`.
    #[arg(long)]
    pub force: bool,
}

/// Runs `cargo xtask split`.
pub fn run(args: &SplitArgs) -> Result<()> {
    let ds = DatasetJson::read(&args.data_dir)?;
    let names: Vec<String> = ds.training.iter().map(|p| case_name(&p.image)).collect();
    let splits = Splits::seeded(&names, args.folds, args.test_fraction, args.seed)
        .map_err(|e| anyhow!("{}: cannot split: {e}", args.data_dir.display()))?;
    let path = args.data_dir.join("splits.json");
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    };
    splits.write(&path, overwrite)?;
    tracing::info!(
        "wrote {}: {} test cases, {} folds of {}–{} validation cases",
        path.display(),
        splits.test.len(),
        splits.folds.len(),
        splits.folds.iter().map(|f| f.val.len()).min().unwrap_or(0),
        splits.folds.iter().map(|f| f.val.len()).max().unwrap_or(0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_splits_json_next_to_dataset_json() {
        let dir = tempfile::tempdir().unwrap();
        let training = (0..6)
            .map(|i| DatasetJson::pair(&format!("c_{i}")))
            .collect();
        DatasetJson::new("T", "", &["background", "liver"], training)
            .write(dir.path(), Overwrite::Never)
            .unwrap();
        let args = SplitArgs {
            data_dir: dir.path().to_path_buf(),
            folds: 2,
            test_fraction: 0.34,
            seed: 3,
            force: false,
        };
        run(&args).unwrap();
        let s = Splits::read(&dir.path().join("splits.json")).unwrap();
        assert_eq!(s.test.len(), 2);
        assert_eq!(s.folds[0].val.len() + s.folds[1].val.len(), 4);
        assert!(s.folds[0].train.iter().all(|c| c.starts_with("c_")));
        assert!(run(&args).unwrap_err().to_string().contains("splits.json"));
        run(&SplitArgs {
            force: true,
            ..args
        })
        .unwrap();
        let bad = SplitArgs {
            data_dir: dir.path().to_path_buf(),
            folds: 9,
            test_fraction: 0.2,
            seed: 0,
            force: true,
        };
        let e = run(&bad).unwrap_err().to_string();
        assert!(e.contains("cannot split") && e.contains("9 folds"), "{e}");
    }
}
