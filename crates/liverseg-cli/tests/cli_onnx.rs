//! `liverseg export-onnx`: the exported graph, run in ONNX Runtime (PyPI),
//! gives the logits liverseg's own network gives on the same window, for
//! both architectures and the built-in model; the file passes ONNX's full
//! checker and carries the model's card in `metadata_props`.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::{liverseg, ok, s, tool_available};
use liverseg_model::{Architecture, ModelFile, PlainUNet, PlainUNetConfig, UNet, UNetConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

fn ort_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_run.py")
}

fn have_onnxruntime() -> bool {
    tool_available(
        "python3 with onnx and onnxruntime",
        Command::new("python3").args(["-c", "import onnx, onnxruntime"]),
    )
}

/// Random values in `[lo, hi)` of `t`'s shape, from a seeded generator.
fn uniform(t: &Tensor, lo: f32, hi: f32, seed: &mut u64) -> Tensor {
    let v: Vec<f32> = (0..t.elem_count())
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((*seed >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
}

/// A network's parameters as a trained one might have them: weights from
/// the initialiser, and the normalisation and PReLU parameters (which
/// start at 0 and 1) moved away from their identities.
fn trained_like(varmap: &VarMap) -> std::collections::HashMap<String, Tensor> {
    let mut seed = 7;
    let vars = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|k| {
            let t = vars[k].as_tensor();
            let t = if k.ends_with("running_var") || k.contains("adn.N.weight") {
                uniform(t, 0.5, 1.5, &mut seed)
            } else if k.ends_with("running_mean") || k.contains("adn.N.bias") {
                uniform(t, -0.3, 0.3, &mut seed)
            } else if k.contains("adn.A.weight") {
                uniform(t, 0.0, 0.5, &mut seed)
            } else if k.contains("norm.") {
                uniform(t, 0.5, 1.5, &mut seed)
            } else {
                t.clone()
            };
            (k.clone(), t)
        })
        .collect()
}

/// Exports `model` with the CLI, runs it in ONNX Runtime on `x` and
/// returns the largest difference from liverseg's logits, relative to their
/// largest magnitude, and what the runner reported.
fn compare(dir: &Path, model: &str, file: &ModelFile, x: &Tensor) -> (f32, serde_json::Value) {
    let onnx = dir.join(format!(
        "{}.onnx",
        Path::new(model).file_stem().unwrap().to_str().unwrap()
    ));
    ok(&liverseg(&["export-onnx", model, "--out", s(&onnx)]));
    let input = dir.join("x.f32");
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    std::fs::write(&input, le_bytes(&v)).unwrap();
    let out = dir.join("logits.f32");
    let shape: Vec<String> = x.dims().iter().map(|d| d.to_string()).collect();
    let run = Command::new("python3")
        .arg(ort_script())
        .args([s(&onnx), s(&input), &shape.join(","), s(&out)])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let theirs: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let net = file.network(&Device::Cpu).unwrap();
    let ours: Vec<f32> = net
        .forward_t(x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(ours.len(), theirs.len());
    let scale = ours.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    let diff = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (diff / scale, report)
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn save(dir: &Path, name: &str, arch: Architecture, varmap: &VarMap) -> (PathBuf, ModelFile) {
    let path = dir.join(name);
    let tensors = trained_like(varmap);
    liverseg_model::save(&path, &arch, &tensors, false).unwrap();
    let file = ModelFile::load(&path, &Device::Cpu).unwrap();
    (path, file)
}

/// Saves the network of `varmap` as `name`, exports and runs it on a
/// random input of `shape`, asserts the logits agree (≤ 1e-4 of their
/// scale) and have the input's extents; returns the runner's report.
fn agrees(
    dir: &Path,
    name: &str,
    arch: Architecture,
    varmap: &VarMap,
    shape: [usize; 5],
) -> serde_json::Value {
    let out_channels = arch.out_channels();
    let (path, file) = save(dir, name, arch, varmap);
    let x = Tensor::randn(0f32, 1.0, &shape, &Device::Cpu).unwrap();
    let (err, report) = compare(dir, s(&path), &file, &x);
    eprintln!("{name}: largest relative difference {err:.2e}");
    assert!(err <= 1e-4, "{name} differs by {err:e}");
    let mut want = shape.to_vec();
    want[1] = out_channels;
    assert_eq!(report["logits_shape"], serde_json::json!(want));
    report
}

#[test]
fn exported_networks_give_liversegs_logits_in_onnxruntime() {
    if !have_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;

    // The tutorial network: batch norm, PReLU, residual units, transposed
    // convolutions with output padding.
    let varmap = VarMap::new();
    let cfg = UNetConfig::default();
    UNet::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    let report = agrees(
        dir.path(),
        "tutorial.safetensors",
        Architecture::MonaiUnet(cfg),
        &varmap,
        [1, 1, 48, 32, 16],
    );
    assert_eq!(report["opset"], serde_json::json!([["", 17]]));
    assert!(report["prob_sum_error"].as_f64().unwrap() < 1e-5);
    let ops: Vec<&str> = report["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "Add",
            "BatchNormalization",
            "Concat",
            "Conv",
            "ConvTranspose",
            "PRelu",
            "Softmax"
        ]
    );
    // A model file without a card still says what it expects: the
    // defaults (the tutorial's preset, background and liver).
    let meta = &report["metadata"];
    assert_eq!(meta["liverseg.labels"], "[\"background\",\"liver\"]");
    assert!(
        meta["liverseg.preset"]
            .as_str()
            .unwrap()
            .contains("\"name\":\"seed\"")
    );
    assert_eq!(meta["liverseg.divisor"], "[16,16,16]");

    // nnU-Net's plain U-Net: two input channels, three classes, instance
    // norm, leaky ReLU, anisotropic strides and kernels.
    let varmap = VarMap::new();
    let cfg = PlainUNetConfig {
        in_channels: 2,
        out_channels: 3,
        features: vec![4, 8, 16],
        strides: vec![1, 2, 2],
        strides_xyz: vec![[1, 1, 1], [2, 2, 1], [2, 2, 2]],
        kernels_xyz: vec![[3, 3, 1], [3, 3, 3], [3, 3, 3]],
        deep_supervision: true,
        ..PlainUNetConfig::default()
    };
    PlainUNet::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    let report = agrees(
        dir.path(),
        "plain.safetensors",
        Architecture::PlainUnet(cfg),
        &varmap,
        [1, 2, 24, 16, 10],
    );
    assert_eq!(
        report["inputs"],
        serde_json::json!([["image", ["batch", 2, "x", "y", "z"]]])
    );
}

#[test]
fn the_builtin_model_exports_with_its_card() {
    if !have_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bytes = liverseg_infer_builtin();
    let file = ModelFile::from_bytes(Path::new("builtin"), &bytes, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 1, 64, 48, 32), &Device::Cpu).unwrap();
    let (err, report) = compare(dir.path(), "builtin", &file, &x);
    eprintln!("built-in model: largest relative difference {err:.2e}");
    assert!(err <= 1e-4, "built-in model differs by {err:e}");
    let meta = &report["metadata"];
    assert_eq!(meta["liverseg.labels"], "[\"background\",\"liver\"]");
    assert!(
        meta["liverseg.preset"]
            .as_str()
            .unwrap()
            .contains("\"name\":\"builtin\"")
    );
    assert!(
        meta["liverseg.about"]
            .as_str()
            .unwrap()
            .contains("intended use")
    );

    // An existing file is never replaced without --force.
    let onnx = dir.path().join("builtin.onnx");
    let before = std::fs::read(&onnx).unwrap();
    std::fs::write(&onnx, b"mine").unwrap();
    let o = liverseg(&["export-onnx", "--out", s(&onnx)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&onnx).unwrap(), b"mine");
    ok(&liverseg(&["export-onnx", "--out", s(&onnx), "--force"]));
    assert_eq!(std::fs::read(&onnx).unwrap(), before);
}

/// The built-in model's bytes, as `liverseg models` reads them.
fn liverseg_infer_builtin() -> Vec<u8> {
    liverseg_infer::builtin_bytes()
        .expect("built with the builtin model")
        .to_vec()
}
