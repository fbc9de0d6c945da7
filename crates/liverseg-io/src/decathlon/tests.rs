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

fn labels_of(json: &str) -> Result<Vec<Label>> {
    let ds: DatasetJson = serde_json::from_str(json).unwrap();
    ds.label_list(Path::new("dataset.json"))
}

const TASK03: &str = r#"{"name": "Liver", "labels": {"0": "background", "1": "liver", "2": "cancer"},
    "numTraining": 0, "training": []}"#;

#[test]
fn labels_read_from_decathlon_and_nnunet_tables() {
    let msd = labels_of(TASK03).unwrap();
    let v2 = labels_of(
        r#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "cancer": 2},
        "numTraining": 3, "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    assert_eq!(msd, v2);
    assert_eq!(
        msd[1],
        Label {
            value: 2,
            name: "cancer".into()
        }
    );
    for (json, why) in [
        (
            r#"{"labels": {"0": "background", "1": "a", "2": "A"}}"#,
            "twice",
        ),
        (
            r#"{"labels": {"background": 0, "a": 1, "b": 1}}"#,
            "share value 1",
        ),
        (r#"{"labels": {"background": 0, "a": 300}}"#, "0-255"),
        (
            r#"{"labels": {"background": 0, "whole": [1, 2]}}"#,
            "region",
        ),
        (r#"{"labels": {"0": "background"}}"#, "background only"),
        (r#"{"labels": {}}"#, "no labels"),
    ] {
        let e = labels_of(json).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("dataset.json"), "{json}: {e}");
    }
}

fn sources(m: &LabelMap) -> Vec<(String, u8, Vec<u8>)> {
    m.classes
        .iter()
        .map(|c| (c.name.clone(), c.value, c.sources.clone()))
        .collect()
}

fn class(name: &str, value: u8, sources: &[u8]) -> (String, u8, Vec<u8>) {
    (name.into(), value, sources.to_vec())
}

#[test]
fn selections_select_merge_and_keep_the_tutorial_default() {
    let task03 = labels_of(TASK03).unwrap();
    let liver = vec![class("liver", 1, &[1, 2])];
    // The tutorial: liver and tumour as one class, by default or by name.
    for spec in [
        "",
        "auto",
        "liver",
        "Liver",
        "liver=liver+tumour",
        "liver=1+2",
    ] {
        let m = LabelMap::resolve(&task03, spec).unwrap();
        assert_eq!(sources(&m), liver, "{spec:?}");
        assert_eq!(m.known, vec![0, 1, 2]);
    }
    let both = LabelMap::resolve(&task03, "liver,tumour").unwrap();
    assert_eq!(
        sources(&both),
        vec![class("liver", 1, &[1]), class("cancer", 2, &[2])]
    );
    assert_eq!(both.values(), vec![0, 1, 2]);
    assert_eq!(both.describe(), "liver (1), cancer (2)");
    let t = LabelMap::resolve(&task03, "tumour").unwrap();
    let lut = t.lookup();
    assert_eq!(
        (lut[0], lut[1], lut[2], lut[3]),
        (Some(0), Some(0), Some(1), None)
    );

    // A multi-organ dataset: each label its own class by default; an organ
    // takes in only the lesions named after it.
    let organs = labels_of(
        r#"{"labels": {"0": "background", "1": "liver", "2": "liver_tumour", "3": "spleen",
        "4": "kidney", "5": "kidney cyst lesion"}}"#,
    )
    .unwrap();
    assert_eq!(LabelMap::resolve(&organs, "").unwrap().classes.len(), 5);
    let m = LabelMap::resolve(&organs, "spleen, liver").unwrap();
    assert_eq!(
        sources(&m),
        vec![class("spleen", 3, &[3]), class("liver", 1, &[1, 2])]
    );
    assert_eq!(m.values(), vec![0, 3, 1]);
    let m = LabelMap::resolve(&organs, "abdomen=liver+spleen+kidney").unwrap();
    assert_eq!(sources(&m), vec![class("abdomen", 1, &[1, 3, 4])]);
    for (spec, why) in [
        ("lung", "no label \"lung\""),
        ("liver,liver=1", "named twice"),
        ("a=liver,b=liver+spleen", "more than one class"),
        ("a=", "NAME=A+B"),
        ("=liver", "NAME=A+B"),
        ("liver,,spleen", "NAME=A+B"),
    ] {
        let e = LabelMap::resolve(&organs, spec).unwrap_err();
        assert!(e.contains(why), "{spec:?}: {e}");
    }
}

#[test]
fn an_nnunet_dataset_lists_its_label_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("imagesTr")).unwrap();
    std::fs::create_dir_all(root.join("labelsTr")).unwrap();
    for c in ["la_003", "la_007"] {
        std::fs::write(root.join(format!("imagesTr/{c}_0000.nii.gz")), b"x").unwrap();
        std::fs::write(root.join(format!("labelsTr/{c}.nii.gz")), b"x").unwrap();
    }
    std::fs::write(root.join("labelsTr/.hidden.nii.gz"), b"x").unwrap();
    std::fs::write(root.join("labelsTr/notes.txt"), b"x").unwrap();
    let ds: DatasetJson = serde_json::from_str(
        r#"{"channel_names": {"0": "MRI"}, "labels": {"background": 0, "left atrium": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    assert_eq!(ds.channels(), vec!["MRI"]);
    let cases = ds.cases(root).unwrap();
    assert_eq!(cases.keys().collect::<Vec<_>>(), ["la_003", "la_007"]);
    assert_eq!(
        cases["la_007"].image,
        root.join("imagesTr/la_007_0000.nii.gz")
    );
    assert_eq!(cases["la_007"].label, root.join("labelsTr/la_007.nii.gz"));
    std::fs::write(root.join("labelsTr/la_009.nii.gz"), b"x").unwrap();
    let e = ds.cases(root).unwrap_err().to_string();
    assert!(
        e.contains("la_009_0000.nii.gz") && e.contains("channel 0"),
        "{e}"
    );
    // The Decathlon's four-channel table.
    let brats: DatasetJson = serde_json::from_str(
        r#"{"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}, "labels": {}}"#,
    )
    .unwrap();
    assert_eq!(brats.channels(), vec!["FLAIR", "T1w", "t1gd", "T2w"]);
}

#[test]
fn channels_read_from_per_channel_files_or_a_4d_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let vol = |v: f32| Volume::filled([3, 2, 2], crate::Affine::identity(), v).unwrap();
    let opts = crate::nifti::WriteOptions::default();
    let label = Volume::filled([3, 2, 2], crate::Affine::identity(), 1u8).unwrap();
    crate::nifti::write(&root.join("labelsTr/p.nii.gz"), &label, &opts).unwrap();
    for c in 0..2 {
        let p = root.join(format!("imagesTr/p_{c:04}.nii.gz"));
        crate::nifti::write(&p, &vol(c as f32 + 1.0), &opts).unwrap();
    }
    let v2: DatasetJson = serde_json::from_str(
        r#"{"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0, "a": 1},
        "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    let case = v2.cases(root).unwrap().remove("p").unwrap();
    assert_eq!(case.extra, vec![root.join("imagesTr/p_0001.nii.gz")]);
    let ch = case.read_channels(2).unwrap();
    assert_eq!((ch[0].data()[0], ch[1].data()[0]), (1.0, 2.0));
    // The Decathlon's 4-D image: its volumes are the channels.
    let four = root.join("imagesTr/q.nii.gz");
    crate::nifti::write_4d(&four, &[&vol(5.0), &vol(6.0), &vol(7.0)], &opts).unwrap();
    let q = Case {
        name: "q".into(),
        image: four.clone(),
        label: root.join("labelsTr/p.nii.gz"),
        extra: Vec::new(),
    };
    let ch = q.read_channels(3).unwrap();
    assert_eq!(
        ch.iter().map(|v| v.data()[0]).collect::<Vec<_>>(),
        [5.0, 6.0, 7.0]
    );
    let e = q.read_channels(4).unwrap_err().to_string();
    assert!(e.contains("q.nii.gz"), "{e}");
    // A missing channel file is named.
    std::fs::remove_file(root.join("imagesTr/p_0001.nii.gz")).unwrap();
    let e = v2.cases(root).unwrap_err().to_string();
    assert!(
        e.contains("p_0001.nii.gz") && e.contains("channel 1"),
        "{e}"
    );
}
