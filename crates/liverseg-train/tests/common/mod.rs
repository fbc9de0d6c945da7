//! A tiny phantom dataset and a tiny network, so a training run takes
//! seconds in tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use liverseg_model::{Architecture, UNetConfig};
use liverseg_phantom::{PhantomConfig, generate};
use liverseg_train::TrainConfig;
use liverseg_train::config::ScheduleConfig;

/// Writes `n` phantom cases (24 × 24 × 12 voxels) and `dataset.json`.
pub fn phantom_dataset(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("Phantom");
    let cfg = PhantomConfig {
        dims: [24, 24, 12],
        spacing: [16.0, 16.0, 21.0],
        ..PhantomConfig::default()
    };
    let cases = (0..n).map(|i| Ok((format!("phantom_{i}"), generate(i as u64, &cfg)?)));
    liverseg_phantom::write_decathlon(&root, cases, "test phantoms").unwrap();
    root
}

/// A preset that makes every case 16 × 16 × 8 in RAS, CT window 0..1.
pub fn tiny_preset(dir: &Path) -> PathBuf {
    let p = dir.join("tiny_preset.json");
    let text = r#"{"name": "tiny", "steps": [
        {"type": "orientation", "axcodes": "RAS"},
        {"type": "scale_intensity_range", "a_min": -200.0, "a_max": 200.0, "b_min": 0.0, "b_max": 1.0, "clip": true},
        {"type": "resize", "size": [16, 16, 8]}]}"#;
    std::fs::write(&p, text).unwrap();
    p
}

/// A configuration for the tiny dataset: 2-level UNet with 4 and 8
/// channels, Adam 1e-2.
pub fn tiny_config(data: &Path, out: &Path, preset: &Path) -> TrainConfig {
    let mut c = TrainConfig {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        preset: preset.to_string_lossy().into_owned(),
        model: Architecture::MonaiUnet(UNetConfig {
            channels: vec![4, 8],
            strides: vec![2],
            num_res_units: 1,
            ..UNetConfig::default()
        }),
        schedule: ScheduleConfig::Constant,
        epochs: 4,
        cache: Some(out.with_extension("cache")),
        ..TrainConfig::default()
    };
    c.sliding_window.roi_size = [16, 16, 8];
    if let liverseg_train::config::OptimizerConfig::Adam { lr, .. } = &mut c.optimizer {
        *lr = 1e-2;
    }
    c
}
