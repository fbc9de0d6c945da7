//! The planner against nnU-Net v2's own `ExperimentPlanner` on the same
//! fingerprints (`tests/golden/*.fingerprint.json`, planned by nnU-Net
//! 2.8.1 in `tools/golden/nnunet_plans.py`): liver and spleen CT like MSD
//! Task03 and Task09, anisotropic two-channel prostate MR, and four-channel
//! BraTS-like MR.

use liverseg_plan::{Fingerprint, PlanInput, plan};
use std::path::Path;

fn golden(name: &str, kind: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.{kind}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn triples(v: &serde_json::Value) -> Vec<[usize; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| usizes(t).try_into().unwrap())
        .collect()
}

#[test]
fn plans_equal_nnunets_on_the_same_fingerprints() {
    for name in ["task03", "task09", "prostate", "brats"] {
        let fp_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/{name}.fingerprint.json"));
        let fp = Fingerprint::read(&fp_path).unwrap();
        let ds = golden(name, "dataset");
        let want = golden(name, "plans");
        let full = &want["3d_fullres"];
        let input = PlanInput {
            channels: ds["channel_names"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            classes: ds["labels"].as_object().unwrap().len(),
            cases: ds["numTraining"].as_u64().unwrap() as usize,
            gpu_memory_gb: 8.0,
        };
        let got = plan(&fp, &input).unwrap();
        assert_eq!(
            got.transpose_forward.to_vec(),
            usizes(&want["transpose_forward"]),
            "{name}"
        );
        for (a, b) in got.spacing.iter().zip(full["spacing"].as_array().unwrap()) {
            assert!(
                (a - b.as_f64().unwrap()).abs() < 1e-9,
                "{name}: spacing {:?}",
                got.spacing
            );
        }
        for (a, b) in got
            .median_shape
            .iter()
            .zip(full["median_image_size_in_voxels"].as_array().unwrap())
        {
            assert_eq!(*a, b.as_f64().unwrap(), "{name}: median shape");
        }
        assert_eq!(
            got.patch_size.to_vec(),
            usizes(&full["patch_size"]),
            "{name}: patch"
        );
        assert_eq!(
            got.batch_size,
            full["batch_size"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(got.features, usizes(&full["features_per_stage"]), "{name}");
        assert_eq!(
            got.kernel_sizes,
            triples(&full["kernel_sizes"]),
            "{name}: kernels"
        );
        assert_eq!(got.strides, triples(&full["strides"]), "{name}: strides");
        let schemes: Vec<String> = full["normalization_schemes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got.normalization_schemes, schemes, "{name}");
        let masks: Vec<bool> = full["use_mask_for_norm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        assert_eq!(got.use_mask_for_norm, masks, "{name}");
        eprintln!(
            "{name}: spacing {:?} patch {:?} batch {} stages {}",
            got.spacing,
            got.patch_size,
            got.batch_size,
            got.strides.len()
        );
    }
}
