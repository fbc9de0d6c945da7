//! `liverseg_metrics` against MONAI 1.6.1 and DeepMind's
//! surface-distance on the synthetic cases of
//! `tools/golden/metrics_golden.py` (anisotropic grids, shifted, eroded,
//! hollow, thin, border-cut and random shapes, single voxels, empty masks).

use liverseg_io::{Volume, nifti};
use liverseg_metrics::{
    CaseMetrics, ClassSpec, MetricOptions, evaluate, evaluate_classes, surface_distances,
    surfel_area_table,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// MONAI measures distances in float64 and returns them as float32 (its
/// quantile and mean also run in float32): at ≤ 10 mm that rounds by under
/// 1e-6 mm, so 1e-4 mm leaves two orders of magnitude of margin while still
/// catching any off-by-one voxel or wrong spacing (0.7 mm at least).
const MM_TOL: f64 = 1e-4;
/// Ratios MONAI returns in float32 (Dice, IoU, surface Dice): relative
/// rounding 6e-8, doubled by the division.
const F32_RATIO_TOL: f64 = 1e-6;
/// DeepMind's surface Dice is float64 end to end and the golden script
/// passes it the spacing as stored in the NIfTI files (float32-rounded, as
/// liverseg reads it); only the summation order of the surfel areas differs.
const F64_RATIO_TOL: f64 = 1e-12;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(golden_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A golden number: JSON numbers, or the strings "inf", "-inf", "nan".
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad number {s}")),
        other => panic!("not a number: {other}"),
    }
}

fn read(name: &str) -> Volume<u8> {
    let p = golden_dir().join(name);
    nifti::read(&p, &nifti::ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn class(name: &str) -> ClassSpec {
    ClassSpec::parse_list(name).unwrap().remove(0)
}

/// Largest |difference| seen per metric, printed at the end for the record
/// (`cargo test -- --nocapture`).
#[derive(Default)]
struct MaxDiff(BTreeMap<&'static str, (f64, String)>);

impl MaxDiff {
    fn check(&mut self, what: &'static str, at: &str, got: f64, want: f64, tol: f64) {
        let diff = (got - want).abs();
        assert!(
            diff <= tol,
            "{at} {what}: {got} vs golden {want} (|Δ| {diff:e} > {tol:e})"
        );
        let e = self.0.entry(what).or_insert((0.0, String::new()));
        if diff >= e.0 {
            *e = (diff, at.to_string());
        }
    }
}

fn cases(exp: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (name, case) in exp["cases"].as_object().unwrap() {
        for (cls, vals) in case["classes"].as_object().unwrap() {
            out.push((name.clone(), cls.clone(), vals.clone()));
        }
    }
    out
}

#[test]
fn non_empty_cases_match_monai_and_deepmind() {
    let exp = expected();
    let mut diffs = MaxDiff::default();
    let mut checked = 0;
    for (name, cls, v) in cases(&exp) {
        if num(&v["voxels_pred"]) == 0.0 || num(&v["voxels_truth"]) == 0.0 {
            continue;
        }
        let pred = read(&format!("{name}_pred.nii.gz"));
        let truth = read(&format!("{name}_truth.nii.gz"));
        let labels = class(&cls).labels;
        let at = format!("{name}/{cls}");
        let (m, dm) = (&v["monai"], &v["deepmind"]);
        for tol in exp["tolerances_mm"].as_array().unwrap().iter().map(num) {
            let got =
                evaluate(&pred, &truth, &labels, &MetricOptions::with_tolerance(tol)).unwrap();
            let key = format!("@{tol:.1}");
            let at = format!("{at} {key}");
            diffs.check("dice", &at, got.dice, num(&m["dice"]), F32_RATIO_TOL);
            diffs.check("iou", &at, got.iou, num(&m["iou"]), F32_RATIO_TOL);
            diffs.check("hd", &at, got.hd, num(&m["hd"]), MM_TOL);
            diffs.check("hd95", &at, got.hd95, num(&m["hd95"]), MM_TOL);
            diffs.check("assd", &at, got.assd, num(&m["assd"]), MM_TOL);
            let nsd_dm = num(&dm[format!("surface_dice{key}")]);
            diffs.check(
                "surface_dice vs DeepMind",
                &at,
                got.surface_dice,
                nsd_dm,
                F64_RATIO_TOL,
            );
            let nsd_sub = num(&m[format!("nsd_subvoxels{key}")]);
            diffs.check(
                "surface_dice vs MONAI use_subvoxels",
                &at,
                got.surface_dice,
                nsd_sub,
                F32_RATIO_TOL,
            );
            let vox = surface_distances(&pred, &truth, &labels).unwrap();
            let nsd_vox = num(&m[format!("nsd_voxels{key}")]);
            diffs.check(
                "fraction_within vs MONAI default NSD",
                &at,
                vox.fraction_within(tol),
                nsd_vox,
                F32_RATIO_TOL,
            );
            // The edge voxels are MONAI's exactly.
            assert_eq!(
                vox.pred_to_truth.len() as f64,
                num(&m["edge_voxels_pred"]),
                "{at}"
            );
            assert_eq!(
                vox.truth_to_pred.len() as f64,
                num(&m["edge_voxels_truth"]),
                "{at}"
            );
            // Volumes: the golden affine's |det| is the product of spacings.
            let voxel_ml: f64 = pred.spacing().iter().product::<f64>() / 1000.0;
            let want_ml = num(&v["voxels_pred"]) * voxel_ml;
            let want_ref = num(&v["voxels_truth"]) * voxel_ml;
            diffs.check("volume_ml", &at, got.volume_ml, want_ml, 1e-9);
            diffs.check("volume_ml_ref", &at, got.volume_ml_ref, want_ref, 1e-9);
            let err = (want_ml - want_ref) / want_ref;
            diffs.check("volume_error", &at, got.volume_error, err, 1e-12);
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        2 * 8,
        "eight non-empty case/class pairs at two tolerances"
    );
    for (what, (d, at)) in &diffs.0 {
        eprintln!("max |Δ| {what:<40} {d:.3e}  ({at})");
    }
}

/// The documented conventions, next to what MONAI says for the same masks.
#[test]
fn empty_cases_follow_the_documented_conventions() {
    let exp = expected();
    let o = MetricOptions::default();
    let get = |name: &str| -> (CaseMetrics, Value) {
        let pred = read(&format!("{name}_pred.nii.gz"));
        let truth = read(&format!("{name}_truth.nii.gz"));
        let m = evaluate(&pred, &truth, &[1, 2], &o).unwrap();
        (m, exp["cases"][name]["classes"]["liver"]["monai"].clone())
    };
    let (both, monai) = get("both_empty");
    assert_eq!(
        (
            both.dice,
            both.iou,
            both.hd,
            both.hd95,
            both.assd,
            both.surface_dice,
            both.volume_error
        ),
        (1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    );
    // MONAI: Dice/IoU 1 only with ignore_empty=False; distances and NSD NaN.
    assert_eq!((num(&monai["dice"]), num(&monai["iou"])), (1.0, 1.0));
    assert!(num(&monai["dice_ignore_empty"]).is_nan());
    for k in ["hd", "hd95", "assd", "nsd_voxels@2.0", "nsd_subvoxels@2.0"] {
        assert!(num(&monai[k]).is_nan(), "MONAI {k}");
    }
    for (name, vol_err) in [("empty_pred", -1.0), ("empty_truth", f64::INFINITY)] {
        let (m, monai) = get(name);
        assert_eq!((m.dice, m.iou, m.surface_dice), (0.0, 0.0, 0.0), "{name}");
        assert!(m.hd.is_infinite() && m.hd95.is_infinite() && m.assd.is_infinite());
        assert_eq!(m.volume_error, vol_err, "{name}");
        // MONAI agrees on HD, ASSD and NSD; its HD95 interpolates between
        // infinities and comes out NaN.
        assert!(num(&monai["hd"]).is_infinite() && num(&monai["assd"]).is_infinite());
        assert!(num(&monai["hd95"]).is_nan());
        assert_eq!(num(&monai["nsd_subvoxels@2.0"]), 0.0);
        assert_eq!(num(&monai["dice"]), 0.0);
        let json = serde_json::to_value(m).unwrap();
        assert!(json["hd"].is_null() && json["hd95"].is_null() && json["assd"].is_null());
    }
}

#[test]
fn surfel_area_tables_match_monai() {
    let exp = expected();
    for (key, t) in exp["area_tables"].as_object().unwrap() {
        let sp: Vec<f64> = t["spacing"].as_array().unwrap().iter().map(num).collect();
        let ours = surfel_area_table([sp[0], sp[1], sp[2]]);
        for (code, want) in t["areas"].as_array().unwrap().iter().map(num).enumerate() {
            // MONAI's table is float32.
            assert!(
                (ours[code] - want).abs() <= 1e-6 * want.max(1.0),
                "spacing {key} code {code}: {} vs {want}",
                ours[code]
            );
        }
    }
}

#[test]
fn multi_class_helper_scores_each_class() {
    let pred = read("shifted_sphere_pred.nii.gz");
    let truth = read("shifted_sphere_truth.nii.gz");
    let classes = ClassSpec::parse_list("liver,tumour").unwrap();
    let o = MetricOptions::default();
    let got = evaluate_classes(&pred, &truth, &classes, &o).unwrap();
    assert_eq!(got.len(), 2);
    let exp = expected();
    for (c, r) in classes.iter().zip(&got) {
        assert_eq!(r.class, c.name);
        assert_eq!(r.metrics, evaluate(&pred, &truth, &c.labels, &o).unwrap());
        let m = &exp["cases"]["shifted_sphere"]["classes"][&c.name]["monai"];
        assert!(
            (r.metrics.hd95 - num(&m["hd95"])).abs() < MM_TOL,
            "{}",
            c.name
        );
    }
    let json = serde_json::to_value(&got[1]).unwrap();
    assert_eq!(json["class"], "tumour");
    assert!(json["dice"].is_number());
}
