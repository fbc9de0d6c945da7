//! `liverseg predict`: parity with MONAI on an imported checkpoint, the
//! input grid kept, folders of cases, DICOM in and SEG out, exit codes.

mod common;
use common::{liverseg, ok};

use liverseg_io::{Volume, nifti};
use std::path::{Path, PathBuf};
use std::process::Output;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/predict")
        .join(name)
}

/// Imports the golden MONAI checkpoint (4, 8, 16 channels) to `out`, with
/// `extra` flags.
fn import(out: &Path, extra: &[&str]) -> Output {
    let golden = golden("unet.pth");
    let mut args = vec![
        "import-monai",
        golden.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--channels",
        "4,8,16",
        "--strides",
        "2,2",
    ];
    args.extend_from_slice(extra);
    liverseg(&args)
}

/// Imports the golden MONAI checkpoint into `dir`.
fn imported(dir: &Path) -> PathBuf {
    let m = dir.join("model.safetensors");
    ok(&import(&m, &[]));
    m
}

/// `liverseg predict --model M --input IN --output OUT` and `extra`.
fn predict(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    liverseg(&args)
}

fn read4(p: &Path, v: usize) -> Volume<f32> {
    nifti::read(p, &nifti::ReadOptions { volume: Some(v) }).unwrap()
}

#[test]
fn imported_monai_model_gives_monai_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let model = imported(tmp.path());
    let probs = tmp.path().join("probs.nii.gz");
    let mask = tmp.path().join("mask.nii.gz");
    let o = predict(
        &model,
        &golden("ct.nii.gz"),
        &mask,
        &[
            "--preprocess",
            "none",
            "--no-postprocess",
            "--roi",
            "32,32,16",
            "--save-probabilities",
            probs.to_str().unwrap(),
            "--overlay",
            tmp.path().join("overlay.png").to_str().unwrap(),
            "--json",
        ],
    );
    ok(&o);
    let png = std::fs::read(tmp.path().join("overlay.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["cases"].as_array().unwrap().len(), 1);
    let mut worst = 0.0f32;
    for c in 0..2 {
        let ours = read4(&probs, c);
        let theirs = read4(&golden("probs.nii.gz"), c);
        assert_eq!(ours.dims(), theirs.dims());
        for (a, b) in ours.data().iter().zip(theirs.data()) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst < 1e-4, "probabilities differ from MONAI's by {worst}");
    // The mask is the argmax of those probabilities, on the input grid.
    let m: Volume<u8> = nifti::read(&mask, &nifti::ReadOptions::default()).unwrap();
    let ct: Volume<f32> =
        nifti::read(&golden("ct.nii.gz"), &nifti::ReadOptions::default()).unwrap();
    assert!(m.same_grid(&ct, 1e-5));
    let p1 = read4(&golden("probs.nii.gz"), 1);
    let agree = m
        .data()
        .iter()
        .zip(p1.data())
        .filter(|(l, p)| (**l == 1) == (**p > 0.5))
        .count();
    assert!(
        agree as f64 >= 0.999 * m.len() as f64,
        "{agree} of {}",
        m.len()
    );
    // The volume printed is the mask's voxel count times 1.5 · 1.5 · 2 mm³.
    let n1 = m.data().iter().filter(|&&v| v == 1).count() as f64;
    let ml = report["cases"][0]["volumes_ml"]["liver"].as_f64().unwrap();
    assert!((ml - n1 * 4.5 / 1000.0).abs() < 1e-6, "{ml}");
}

#[test]
fn preset_path_maps_the_mask_back_onto_the_input_and_folders_skip_bad_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let model = imported(tmp.path());
    // A folder with the golden CT, an LPS → RAS-reoriented copy of it and a
    // broken file.
    let cases = tmp.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::copy(golden("ct.nii.gz"), cases.join("a.nii.gz")).unwrap();
    let ct: Volume<f32> =
        nifti::read(&golden("ct.nii.gz"), &nifti::ReadOptions::default()).unwrap();
    let ras = liverseg_transforms::orientation(&ct, ['R', 'A', 'S']).unwrap();
    nifti::write(
        &cases.join("b.nii.gz"),
        &ras,
        &nifti::WriteOptions::default(),
    )
    .unwrap();
    std::fs::write(cases.join("c.nii.gz"), b"not a nifti").unwrap();
    let out = tmp.path().join("out");
    let o = predict(&model, &cases, &out, &["--json"]);
    // The others are done; the failure is bad input at the end (exit 2).
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["cases"].as_array().unwrap().len(), 2);
    assert_eq!(report["failed"], 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("c.nii.gz"));
    let a: Volume<u8> = nifti::read(&out.join("a.nii.gz"), &nifti::ReadOptions::default()).unwrap();
    let b: Volume<u8> = nifti::read(&out.join("b.nii.gz"), &nifti::ReadOptions::default()).unwrap();
    assert!(a.same_grid(&ct, 1e-4) && b.same_grid(&ras, 1e-4));
    // The same anatomy in two orientations gives the same mask, voxel for
    // voxel once reoriented.
    let a_ras = liverseg_transforms::orientation(&a, ['R', 'A', 'S']).unwrap();
    let differ = a_ras
        .data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(differ, 0);
    // Asking for the probabilities maps them back whole; without them the
    // decision is taken plane by plane while mapping back. Same mask, and
    // it is the argmax of the saved probabilities. The CT gets 12 columns
    // of air, which CropForeground leaves out, so both classes occur.
    let [nx, ny, nz] = ct.dims();
    let mut padded = Vec::with_capacity((nx + 12) * ny * nz);
    for row in ct.data().chunks(nx) {
        padded.extend_from_slice(row);
        padded.extend(std::iter::repeat_n(-1000.0f32, 12));
    }
    let ct = Volume::new([nx + 12, ny, nz], *ct.affine(), padded).unwrap();
    let padded_ct = tmp.path().join("padded.nii.gz");
    nifti::write(&padded_ct, &ct, &nifti::WriteOptions::default()).unwrap();
    let with_probs = tmp.path().join("with_probs.nii.gz");
    let probs = tmp.path().join("a_probs.nii.gz");
    ok(&predict(
        &model,
        &padded_ct,
        &with_probs,
        &[
            "--save-probabilities",
            probs.to_str().unwrap(),
            "--no-postprocess",
        ],
    ));
    let raw = tmp.path().join("raw.nii.gz");
    ok(&predict(&model, &padded_ct, &raw, &["--no-postprocess"]));
    let m1: Volume<u8> = nifti::read(&with_probs, &nifti::ReadOptions::default()).unwrap();
    let m2: Volume<u8> = nifti::read(&raw, &nifti::ReadOptions::default()).unwrap();
    assert_eq!(m1.data(), m2.data());
    let (p0, p1) = (read4(&probs, 0), read4(&probs, 1));
    assert!(p0.same_grid(&ct, 1e-4));
    let argmax: Vec<u8> = p0
        .data()
        .iter()
        .zip(p1.data())
        .map(|(b, l)| u8::from(l > b))
        .collect();
    assert_eq!(m2.data(), &argmax[..]);
    let ones = argmax.iter().filter(|&&v| v == 1).count();
    assert!(
        ones > 0 && ones < argmax.len(),
        "{ones} of {}",
        argmax.len()
    );
    // Existing outputs are not replaced without --force.
    let o = predict(&model, &golden("ct.nii.gz"), &out.join("a.nii.gz"), &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn dicom_series_in_seg_out() {
    let tmp = tempfile::tempdir().unwrap();
    let model = imported(tmp.path());
    // The golden CT as a DICOM series, then predicted on its own grid.
    let ct: Volume<f32> =
        nifti::read(&golden("ct.nii.gz"), &nifti::ReadOptions::default()).unwrap();
    let series = tmp.path().join("series");
    ok(&liverseg(&[
        "convert",
        golden("ct.nii.gz").to_str().unwrap(),
        series.to_str().unwrap(),
    ]));
    let mask = tmp.path().join("mask.nii.gz");
    let o = predict(
        &model,
        &series,
        &mask,
        &[
            "--format",
            "both",
            "--preprocess",
            "none",
            "--roi",
            "32,32,16",
        ],
    );
    ok(&o);
    let m: Volume<u8> = nifti::read(&mask, &nifti::ReadOptions::default()).unwrap();
    assert!(m.dims() == ct.dims() && m.data().contains(&1));
    // The SEG beside it holds the same mask on the series grid.
    let seg =
        liverseg_io::dicom::read_seg(&tmp.path().join("mask.dcm"), Some((m.dims(), m.affine())))
            .unwrap();
    let from_seg = seg.label_map().unwrap().unwrap();
    assert_eq!(from_seg.data(), m.data());
    // With both formats the output named is the NIfTI.
    let o = predict(
        &model,
        &series,
        &tmp.path().join("both.dcm"),
        &["--format", "both"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the output is the NIfTI file"));
    assert!(!tmp.path().join("both.dcm").exists());
    // A SEG and an RT Structure Set: the SEG at the output, the contours
    // beside it.
    let seg_out = tmp.path().join("case.dcm");
    ok(&predict(
        &model,
        &series,
        &seg_out,
        &[
            "--format",
            "seg,rtstruct",
            "--preprocess",
            "none",
            "--roi",
            "32,32,16",
        ],
    ));
    let rt = tmp.path().join("case_rtstruct.dcm");
    let bytes = std::fs::read(&rt).unwrap();
    let rt_class = b"1.2.840.10008.5.1.4.1.1.481.3";
    assert!(bytes.windows(rt_class.len()).any(|w| w == rt_class));
    let seg = liverseg_io::dicom::read_seg(&seg_out, Some((m.dims(), m.affine()))).unwrap();
    assert_eq!(seg.label_map().unwrap().unwrap().data(), m.data());
    if common::tool_available(
        "dciodvfy",
        std::process::Command::new("dciodvfy").arg("-version"),
    ) {
        let out = std::process::Command::new("dciodvfy")
            .arg(&rt)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!text.lines().any(|l| l.starts_with("Error")), "{text}");
    }
    let nii = tmp.path().join("hu.nii.gz");
    nifti::write(&nii, &ct, &nifti::WriteOptions::default()).unwrap();
    // A NIfTI input cannot become a SEG.
    let o = predict(
        &model,
        &nii,
        &tmp.path().join("x.dcm"),
        &["--format", "seg"],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `train --preset fast` makes a model for `predict --fast`: it records the
/// fast preset with the dataset's CT statistics, and predicting with it runs
/// the network at 3 mm and maps the mask back onto the input. A finer model
/// under `--fast` is warned about.
#[test]
fn fast_preset_model_runs_at_three_millimetres() {
    use liverseg_phantom::{PhantomConfig, generate};
    use liverseg_transforms::Step;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let phantom = PhantomConfig {
        dims: [48, 48, 24],
        spacing: [8.0, 8.0, 10.0],
        ..PhantomConfig::default()
    };
    let cases = (0..3).map(|i| Ok((format!("p{i}"), generate(i, &phantom)?)));
    liverseg_phantom::write_decathlon(&data, cases, "test phantoms").unwrap();
    let mut cfg = liverseg_train::TrainConfig {
        data: data.clone(),
        out: tmp.path().join("run"),
        preset: "fast".into(),
        model: liverseg_model::Architecture::MonaiUnet(liverseg_model::UNetConfig {
            channels: vec![4, 8],
            strides: vec![2],
            num_res_units: 1,
            ..liverseg_model::UNetConfig::default()
        }),
        epochs: 1,
        iterations_per_epoch: 2,
        batch_size: 1,
        cache: Some(tmp.path().join("cache")),
        ..liverseg_train::TrainConfig::default()
    };
    cfg.sliding_window.roi_size = [96, 96, 64];
    let toml = tmp.path().join("fast.toml");
    std::fs::write(&toml, cfg.to_toml().unwrap()).unwrap();
    ok(&liverseg(&["train", "--config", toml.to_str().unwrap()]));
    let model = tmp.path().join("run/best/model.safetensors");
    let predictor = liverseg_infer::Predictor::load(&model, &candle_core::Device::Cpu).unwrap();
    let preset = predictor.preset();
    assert_eq!(preset.name, "fast");
    assert!(
        preset
            .steps
            .iter()
            .any(|s| matches!(s, Step::CtNormalize { stats: Some(_) }))
    );

    // The phantom is 384 x 384 x 240 mm: 128 x 128 x 80 voxels at 3 mm
    // before the body crop.
    let input = data.join("imagesTr/p0.nii.gz");
    let mask = tmp.path().join("p0_mask.nii.gz");
    let o = predict(&model, &input, &mask, &["--fast", "--json"]);
    ok(&o);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("finer spacing"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let grid = &report["cases"][0]["network_grid"];
    for a in 0..3 {
        let s = grid["spacing_mm"][a].as_f64().unwrap();
        assert!((s - 3.0).abs() < 1e-6, "{grid}");
        let d = grid["dims"][a].as_u64().unwrap();
        assert!(d >= [96, 96, 64][a] && d <= [128, 128, 80][a], "{grid}");
    }
    let ct: Volume<f32> = nifti::read(&input, &nifti::ReadOptions::default()).unwrap();
    let m: Volume<u8> = nifti::read(&mask, &nifti::ReadOptions::default()).unwrap();
    assert!(m.same_grid(&ct, 1e-4));

    // A MONAI checkpoint imported with the fast preset records it; an
    // unknown preset is bad input.
    let fast_import = tmp.path().join("fast_import.safetensors");
    ok(&import(&fast_import, &["--preset", "fast"]));
    let p = liverseg_infer::Predictor::load(&fast_import, &candle_core::Device::Cpu).unwrap();
    assert_eq!(p.preset(), &liverseg_transforms::Preset::fast());
    let o = import(&tmp.path().join("nope.safetensors"), &["--preset", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!tmp.path().join("nope.safetensors").exists());

    // --fast and --preprocess none contradict each other.
    let o = predict(
        &fast_import,
        &input,
        &tmp.path().join("none.nii.gz"),
        &["--fast", "--preprocess", "none"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!tmp.path().join("none.nii.gz").exists());

    // The tutorial model (1.5 mm) under --fast: coarsened, and warned about.
    let seed = imported(tmp.path());
    let o = predict(
        &seed,
        &golden("ct.nii.gz"),
        &tmp.path().join("seed_fast.nii.gz"),
        &["--fast"],
    );
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("finer spacing"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
