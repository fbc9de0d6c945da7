//! Tests of the Decathlon layout: dataset.json, case names and the split
//! rule.

use super::*;
use std::collections::BTreeSet;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("case_{i:03}")).collect()
}

#[test]
fn case_names_drop_one_nifti_suffix() {
    assert_eq!(case_name("./imagesTr/liver_7.nii.gz"), "liver_7");
    assert_eq!(case_name("imagesTr\\a.nii"), "a");
    assert_eq!(case_name("b"), "b");
    assert_eq!(case_name("x.nii.nii.gz"), "x.nii");
}

#[test]
fn parses_and_writes_a_decathlon_json() {
    let text = r#"{"name": "Liver", "description": "d", "tensorImageSize": "3D",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": 1, "numTest": 1,
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
        "test": ["./imagesTs/liver_132.nii.gz"]}"#;
    let ds: DatasetJson = serde_json::from_str(text).unwrap();
    assert_eq!(ds.num_training, 1);
    assert_eq!(ds.labels["2"], "cancer");
    assert_eq!(ds.test, vec!["./imagesTs/liver_132.nii.gz"]);
    let dir = tempfile::tempdir().unwrap();
    ds.write(dir.path(), Overwrite::Never).unwrap();
    assert_eq!(DatasetJson::read(dir.path()).unwrap(), ds);
    assert!(ds.to_json().contains("\"numTraining\": 1"));
    // The listed files must exist.
    let e = ds.cases(dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("liver_0.nii.gz") && e.is_bad_input(),
        "{e}"
    );
    std::fs::write(dir.path().join("dataset.json"), "{").unwrap();
    let e = DatasetJson::read(dir.path()).unwrap_err();
    assert!(e.to_string().contains("dataset.json"), "{e}");
}

#[test]
fn splits_are_deterministic_for_a_seed_and_order_independent() {
    let a = Splits::seeded(&names(23), 5, 0.2, 7).unwrap();
    let mut rev = names(23);
    rev.reverse();
    assert_eq!(a, Splits::seeded(&rev, 5, 0.2, 7).unwrap());
    let b = Splits::seeded(&names(23), 5, 0.2, 8).unwrap();
    assert_ne!(a.test, b.test);
    assert_eq!(a.seed, 7);
}

#[test]
fn every_non_test_case_validates_exactly_once() {
    let s = Splits::seeded(&names(23), 5, 0.2, 1).unwrap();
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
fn bad_fold_counts_are_refused() {
    assert!(Splits::seeded(&names(10), 1, 0.2, 0).is_err());
    let e = Splits::seeded(&names(10), 9, 0.2, 0).unwrap_err();
    assert!(e.contains("exceed the 8 cases"), "{e}");
    assert!(Splits::seeded(&names(10), 8, 0.2, 0).is_ok());
    assert!(Splits::seeded(&names(10), 2, 1.0, 0).is_err());
    assert!(
        Splits::seeded(&names(4), 4, 0.0, 0)
            .unwrap()
            .test
            .is_empty()
    );
    // Without splits.json: five folds, or as many as there are cases.
    assert_eq!(Splits::default_for(&names(23)).unwrap().folds.len(), 5);
    assert_eq!(Splits::default_for(&names(3)).unwrap().folds.len(), 3);
    assert_eq!(
        Splits::default_for(&names(3)).unwrap().folds[0].val.len(),
        1
    );
}

#[test]
fn splits_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("splits.json");
    let s = Splits::seeded(&names(6), 2, 0.34, 3).unwrap();
    s.write(&p, Overwrite::Never).unwrap();
    assert_eq!(Splits::read(&p).unwrap(), s);
    assert!(matches!(
        s.write(&p, Overwrite::Never),
        Err(Error::Exists { .. })
    ));
    // nnU-Net's splits_final.json (a list of folds) has no seed or test.
    let folds = r#"{"folds": [{"train": ["a"], "val": ["b"]}]}"#;
    std::fs::write(&p, folds).unwrap();
    assert_eq!(Splits::read(&p).unwrap().folds[0].val, vec!["b"]);
}
