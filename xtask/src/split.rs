//! `cargo xtask split`: a seeded test hold-out and k-fold cross-validation
//! split of a Decathlon dataset's training cases, written as `splits.json`.
//!
//! The procedure, so that other tools can reproduce it: take the case names
//! (image file names without `.nii.gz`) from `dataset.json`, sort them, and
//! shuffle them with a Fisher–Yates pass from the last element down, drawing
//! each swap index `j` in `0..=i` with `rand` 0.9's `random_range` from a
//! ChaCha8 generator seeded by `ChaCha8Rng::seed_from_u64(seed)`. The first
//! `round(n * test_fraction)` shuffled cases are the test set. The rest, in
//! shuffled order, are cut into `folds` contiguous parts whose sizes differ by
//! at most one; fold `f` validates on part `f` and trains on all others.
//! Every list in the file is sorted by name. The `folds` list has the
//! structure of nnU-Net's `splits_final.json`.

use crate::msd::{DatasetJson, case_name};
use anyhow::{Context, Result, bail};
use liverseg_io::{Overwrite, write_file_atomic};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
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

/// One cross-validation fold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Cases trained on.
    pub train: Vec<String>,
    /// Cases validated on.
    pub val: Vec<String>,
}

/// The content of `splits.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    /// The seed the shuffle used.
    pub seed: u64,
    /// Held-out test cases.
    pub test: Vec<String>,
    /// Cross-validation folds over the remaining cases.
    pub folds: Vec<Fold>,
}

/// Splits `names` (any order) as the module documentation describes.
pub fn make_splits(
    names: &[String],
    folds: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<Splits> {
    if !(0.0..1.0).contains(&test_fraction) {
        bail!("--test-fraction must be in [0, 1), got {test_fraction}");
    }
    let mut sorted = names.to_vec();
    sorted.sort();
    let n = sorted.len();
    sorted.dedup();
    if sorted.len() != n {
        bail!("dataset.json lists a case name more than once");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        sorted.swap(i, j);
    }
    let n_test = (n as f64 * test_fraction).round() as usize;
    let (test, rest) = sorted.split_at(n_test.min(n));
    if folds < 2 {
        bail!("--folds must be at least 2, got {folds}");
    }
    if folds > rest.len() {
        bail!(
            "--folds {folds} exceeds the {} cases left after holding out {} test cases",
            rest.len(),
            test.len()
        );
    }
    let m = rest.len();
    let mut out = Vec::with_capacity(folds);
    for f in 0..folds {
        let (lo, hi) = (f * m / folds, (f + 1) * m / folds);
        let mut val = rest[lo..hi].to_vec();
        let mut train: Vec<String> = rest[..lo].iter().chain(&rest[hi..]).cloned().collect();
        val.sort();
        train.sort();
        out.push(Fold { train, val });
    }
    let mut test = test.to_vec();
    test.sort();
    Ok(Splits {
        seed,
        test,
        folds: out,
    })
}

/// Runs `cargo xtask split`.
pub fn run(args: &SplitArgs) -> Result<()> {
    let ds = DatasetJson::read(&args.data_dir)?;
    let names: Vec<String> = ds.training.iter().map(|p| case_name(&p.image)).collect();
    let splits = make_splits(&names, args.folds, args.test_fraction, args.seed)
        .with_context(|| format!("{}: cannot split", args.data_dir.display()))?;
    let path = args.data_dir.join("splits.json");
    let json = serde_json::to_string_pretty(&splits)? + "\n";
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    };
    write_file_atomic(&path, overwrite, |w| w.write_all(json.as_bytes()))
        .with_context(|| format!("{}: cannot write", path.display()))?;
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
    use std::collections::BTreeSet;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("case_{i:03}")).collect()
    }

    #[test]
    fn deterministic_for_a_seed_and_order_independent() {
        let a = make_splits(&names(23), 5, 0.2, 7).unwrap();
        let mut rev = names(23);
        rev.reverse();
        assert_eq!(a, make_splits(&rev, 5, 0.2, 7).unwrap());
        let b = make_splits(&names(23), 5, 0.2, 8).unwrap();
        assert_ne!(a.test, b.test);
        assert_eq!(a.seed, 7);
    }

    #[test]
    fn every_non_test_case_validates_exactly_once() {
        let s = make_splits(&names(23), 5, 0.2, 1).unwrap();
        assert_eq!(s.test.len(), 5); // round(23 * 0.2) = 5
        assert_eq!(s.folds.len(), 5);
        let test: BTreeSet<_> = s.test.iter().cloned().collect();
        let mut seen = BTreeSet::new();
        for f in &s.folds {
            assert!((3..=4).contains(&f.val.len()), "{:?}", f.val);
            assert_eq!(f.train.len() + f.val.len(), 18);
            for v in &f.val {
                assert!(seen.insert(v.clone()), "{v} validated twice");
                assert!(!f.train.contains(v));
                assert!(!test.contains(v));
            }
            assert!(f.train.iter().all(|t| !test.contains(t)));
        }
        assert_eq!(seen.len(), 18);
        assert_eq!(seen.union(&test).count(), 23);
    }

    #[test]
    fn rejects_bad_fold_counts() {
        assert!(make_splits(&names(10), 1, 0.2, 0).is_err());
        let e = make_splits(&names(10), 9, 0.2, 0).unwrap_err().to_string();
        assert!(e.contains("exceeds the 8 cases"), "{e}");
        assert!(make_splits(&names(10), 8, 0.2, 0).is_ok());
        assert!(make_splits(&names(10), 2, 1.0, 0).is_err());
        assert!(make_splits(&names(4), 4, 0.0, 0).unwrap().test.is_empty());
    }

    #[test]
    fn writes_splits_json_next_to_dataset_json() {
        let dir = tempfile::tempdir().unwrap();
        let ds = DatasetJson {
            name: "T".into(),
            description: String::new(),
            reference: String::new(),
            licence: String::new(),
            release: String::new(),
            tensor_image_size: "3D".into(),
            modality: Default::default(),
            labels: Default::default(),
            num_training: 6,
            num_test: 0,
            training: (0..6)
                .map(|i| crate::msd::Pair {
                    image: format!("./imagesTr/c_{i}.nii.gz"),
                    label: format!("./labelsTr/c_{i}.nii.gz"),
                })
                .collect(),
            test: vec![],
        };
        std::fs::write(dir.path().join("dataset.json"), ds.to_json().unwrap()).unwrap();
        let args = SplitArgs {
            data_dir: dir.path().to_path_buf(),
            folds: 2,
            test_fraction: 0.34,
            seed: 3,
            force: false,
        };
        run(&args).unwrap();
        let text = std::fs::read_to_string(dir.path().join("splits.json")).unwrap();
        let s: Splits = serde_json::from_str(&text).unwrap();
        assert_eq!(s.test.len(), 2);
        assert_eq!(s.folds[0].val.len() + s.folds[1].val.len(), 4);
        assert!(s.folds[0].train.iter().all(|c| c.starts_with("c_")));
        assert!(run(&args).unwrap_err().to_string().contains("splits.json"));
        run(&SplitArgs {
            force: true,
            ..args
        })
        .unwrap();
    }
}
