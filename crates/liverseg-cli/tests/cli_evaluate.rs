//! `liverseg evaluate`: values against the library, pairing by name, the
//! CSV output and the exit-code contract.

mod common;
use common::liverseg;

use liverseg_io::{Affine, Volume, nifti};
use liverseg_metrics::{CaseMetrics, MetricOptions, evaluate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

const DIMS: [usize; 3] = [20, 18, 10];
const SPACING: [f64; 3] = [0.8, 0.8, 2.5];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A label map: a liver ellipsoid (label 1) centred at `c` with radius
/// `r` mm, with a tumour (label 2) of radius `r/3` at its centre.
fn label_map(c: [f64; 3], r: f64, spacing: [f64; 3]) -> Volume<u8> {
    let affine = Affine::from_spacing_origin(spacing, [-10.0, 5.0, 30.0]);
    let mut v = Volume::filled(DIMS, affine, 0u8).unwrap();
    for k in 0..DIMS[2] {
        for j in 0..DIMS[1] {
            for i in 0..DIMS[0] {
                let d2: f64 = [i, j, k]
                    .iter()
                    .zip(c)
                    .zip(spacing)
                    .map(|((&x, c), s)| ((x as f64 - c) * s).powi(2))
                    .sum();
                let idx = v.index(i, j, k);
                v.data_mut()[idx] = if d2 <= (r / 3.0).powi(2) {
                    2
                } else if d2 <= r * r {
                    1
                } else {
                    0
                };
            }
        }
    }
    v
}

fn write(path: &Path, v: &Volume<u8>) {
    nifti::write(path, v, &nifti::WriteOptions::default()).unwrap();
}

/// `pred/` and `gt/` with three cases: `a` (shifted and larger), `b` (a
/// `.nii` prediction for a `.nii.gz` reference) and `c` (an empty
/// prediction).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (pred, gt) = (tmp.path().join("pred"), tmp.path().join("gt"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    let truth = label_map([9.0, 9.0, 4.5], 5.0, SPACING);
    write(&gt.join("a.nii.gz"), &truth);
    write(
        &pred.join("a.nii.gz"),
        &label_map([10.0, 8.5, 5.0], 5.5, SPACING),
    );
    write(&gt.join("b.nii.gz"), &truth);
    write(
        &pred.join("b.nii"),
        &label_map([9.0, 9.0, 4.5], 4.6, SPACING),
    );
    write(&gt.join("c.nii.gz"), &truth);
    write(
        &pred.join("c.nii.gz"),
        &Volume::filled(DIMS, *truth.affine(), 0u8).unwrap(),
    );
    // Not a NIfTI name: ignored.
    std::fs::write(pred.join("notes.txt"), b"x").unwrap();
    (tmp, pred, gt)
}

fn library(pred: &Path, gt: &Path, labels: &[u8]) -> CaseMetrics {
    let opts = nifti::ReadOptions::default();
    let p: Volume<u8> = nifti::read(pred, &opts).unwrap();
    let g: Volume<u8> = nifti::read(gt, &opts).unwrap();
    evaluate(&p, &g, labels, &MetricOptions::default()).unwrap()
}

/// The CLI's values are the library's: equal up to the last bit or two,
/// since serde_json's default float parser (without its `float_roundtrip`
/// feature) may land one ulp off the printed shortest representation.
/// `null` reads back as +∞.
fn assert_row(row: &Value, want: &CaseMetrics) {
    let got: CaseMetrics = serde_json::from_value(row.clone()).unwrap();
    let pairs = [
        (got.dice, want.dice),
        (got.iou, want.iou),
        (got.hd, want.hd),
        (got.hd95, want.hd95),
        (got.assd, want.assd),
        (got.surface_dice, want.surface_dice),
        (got.volume_ml, want.volume_ml),
        (got.volume_ml_ref, want.volume_ml_ref),
        (got.volume_error, want.volume_error),
    ];
    for (g, w) in pairs {
        let same = g == w || (g - w).abs() <= 4.0 * f64::EPSILON * w.abs();
        assert!(same, "{g} vs {w} in {row}");
    }
}

#[test]
fn json_matches_the_library_and_pairs_by_name() {
    let (_tmp, pred, gt) = setup();
    let o = liverseg(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let files = [
        (pred.join("a.nii.gz"), gt.join("a.nii.gz")),
        (pred.join("b.nii"), gt.join("b.nii.gz")),
        (pred.join("c.nii.gz"), gt.join("c.nii.gz")),
    ];
    let mut want = Vec::new();
    for (row, (p, g)) in cases.iter().zip(&files) {
        assert_eq!(row["class"], "liver");
        let m = library(p, g, &[1, 2]);
        assert_row(row, &m);
        want.push(m);
    }
    assert!(want[0].dice > 0.5 && want[0].dice < 1.0 && want[0].hd95 > 0.0);
    // The empty prediction: infinite distances are null in JSON.
    assert!(cases[2]["hd"].is_null() && cases[2]["assd"].is_null());
    assert_eq!(cases[2]["dice"], 0.0);
    for key in ["volume_ml", "volume_ml_ref", "surface_dice", "iou", "hd95"] {
        assert!(!cases[0][key].is_null(), "{key}");
    }
    // The mean over the three cases; an infinite case makes the distance
    // means infinite.
    let mean = CaseMetrics::mean(&want).unwrap();
    assert_row(&v["mean"], &mean);
    assert!(v["mean"]["hd"].is_null());
    assert_eq!(v["tolerance_mm"], 2.0);
}

#[test]
fn several_classes_are_reported_per_class() {
    let (_tmp, pred, gt) = setup();
    let o = liverseg(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--json",
        "--labels",
        "liver,tumour",
        "--tolerance",
        "1.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    assert_eq!(cases[1]["name"], "a");
    assert_eq!(cases[1]["class"], "tumour");
    let p: Volume<u8> = nifti::read(&pred.join("a.nii.gz"), &Default::default()).unwrap();
    let g: Volume<u8> = nifti::read(&gt.join("a.nii.gz"), &Default::default()).unwrap();
    let m = evaluate(&p, &g, &[2], &MetricOptions::with_tolerance(1.5)).unwrap();
    assert_row(&cases[1], &m);
    assert!(v["mean"]["liver"]["dice"].is_number());
    assert!(v["mean"]["tumour"]["dice"].is_number());
}

#[test]
fn table_and_csv_without_overwriting() {
    let (tmp, pred, gt) = setup();
    let csv = tmp.path().join("metrics.csv");
    let args = [
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ];
    let o = liverseg(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.lines().next().unwrap().contains("hd95"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("mean")), "{table}");
    assert!(table.contains("inf"), "the empty case's distances: {table}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "name,class,dice,iou,hd,hd95,assd,surface_dice,volume_ml,volume_ml_ref,volume_error"
    );
    assert_eq!(lines.len(), 1 + 3 + 1);
    assert!(lines[1].starts_with("a,liver,"));
    assert!(lines[4].starts_with("mean,liver,"));
    let want = library(&pred.join("a.nii.gz"), &gt.join("a.nii.gz"), &[1, 2]);
    let dice: f64 = lines[1].split(',').nth(2).unwrap().parse().unwrap();
    assert_eq!(dice, want.dice);
    assert_eq!(lines[3].split(',').nth(4), Some("inf"));
    // An existing file is kept without --force and replaced with it.
    std::fs::write(&csv, b"keep me").unwrap();
    let o = liverseg(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("metrics.csv"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&csv).unwrap(), b"keep me");
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = liverseg(&forced);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
    // Nothing temporary left beside it.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // Never inside an input directory.
    let inside = pred.join("m.csv");
    let o = liverseg(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--csv",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!inside.exists());
}

#[test]
fn geometry_mismatch_exits_2_naming_both_files() {
    let (_tmp, pred, gt) = setup();
    let other = label_map([9.0, 9.0, 4.5], 5.0, [0.8, 0.8, 3.0]);
    std::fs::remove_file(pred.join("b.nii")).unwrap();
    write(&pred.join("b.nii"), &other);
    let o = liverseg(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(msg.contains("b.nii") && msg.contains("b.nii.gz"), "{msg}");
    assert!(msg.contains("same grid"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "one-line message: {msg}");
}

#[test]
fn missing_counterparts_are_reported() {
    let (_tmp, pred, gt) = setup();
    write(
        &pred.join("d.nii.gz"),
        &label_map([9.0, 9.0, 4.5], 5.0, SPACING),
    );
    std::fs::remove_file(gt.join("a.nii.gz")).unwrap();
    let base = [
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--json",
    ];
    let o = liverseg(&base);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("d.nii.gz") && msg.contains("a.nii.gz"),
        "{msg}"
    );
    assert!(msg.contains("--allow-missing"), "{msg}");
    let mut lenient = base.to_vec();
    lenient.push("--allow-missing");
    let o = liverseg(&lenient);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("d.nii.gz"), "warned: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c"]);
}

#[test]
fn bad_arguments_exit_2() {
    let (tmp, pred, gt) = setup();
    let (p, g) = (pred.to_str().unwrap(), gt.to_str().unwrap());
    for extra in [
        &["--labels", "kidney"][..],
        &["--tolerance=-1"][..],
        &["--tolerance", "nan"][..],
    ] {
        let mut args = vec!["evaluate", "--pred", p, "--gt", g];
        args.extend_from_slice(extra);
        let o = liverseg(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        let option = extra[0].split('=').next().unwrap();
        assert!(stderr(&o).contains(option), "{extra:?}: {}", stderr(&o));
    }
    let missing = tmp.path().join("nope");
    let o = liverseg(&["evaluate", "--pred", missing.to_str().unwrap(), "--gt", g]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = liverseg(&[
        "evaluate",
        "--pred",
        empty.to_str().unwrap(),
        "--gt",
        g,
        "--allow-missing",
    ]);
    assert_eq!(o.status.code(), Some(2), "no pairs at all");
}

/// Issue 17: with `--dataset`, classes are the dataset's label names, per
/// label or as `train --labels` selects them, in either dataset.json form.
#[test]
fn classes_come_from_the_dataset_labels() {
    let (tmp, pred, gt) = setup();
    for (i, table) in [
        r#"{"labels": {"0": "background", "1": "liver", "2": "cancer"}}"#,
        r#"{"labels": {"background": 0, "liver": 1, "cancer": 2}, "file_ending": ".nii.gz"}"#,
    ]
    .iter()
    .enumerate()
    {
        let ds = tmp.path().join(format!("ds{i}"));
        std::fs::create_dir_all(&ds).unwrap();
        std::fs::write(ds.join("dataset.json"), table).unwrap();
        let run = |labels: &[&str]| {
            let mut args = vec![
                "evaluate",
                "--pred",
                pred.to_str().unwrap(),
                "--gt",
                gt.to_str().unwrap(),
                "--json",
                "--dataset",
                ds.to_str().unwrap(),
            ];
            args.extend_from_slice(labels);
            let o = liverseg(&args);
            assert!(o.status.success(), "{}", stderr(&o));
            serde_json::from_slice::<Value>(&o.stdout).unwrap()
        };
        // The dataset's default (Task03: the tutorial's whole liver).
        let v = run(&[]);
        assert_eq!(v["cases"].as_array().unwrap().len(), 3);
        assert_eq!(v["cases"][0]["class"], "liver");
        assert_row(
            &v["cases"][0],
            &library(&pred.join("a.nii.gz"), &gt.join("a.nii.gz"), &[1, 2]),
        );
        // Per label, by the dataset's names.
        let v = run(&["--labels", "liver,tumour"]);
        assert_eq!(v["cases"][1]["class"], "cancer");
        assert_row(
            &v["cases"][0],
            &library(&pred.join("a.nii.gz"), &gt.join("a.nii.gz"), &[1]),
        );
        assert_row(
            &v["cases"][1],
            &library(&pred.join("a.nii.gz"), &gt.join("a.nii.gz"), &[2]),
        );
        let o = liverseg(&[
            "evaluate",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--dataset",
            ds.to_str().unwrap(),
            "--labels",
            "spleen",
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("no label \"spleen\""), "{}", stderr(&o));
    }
}
