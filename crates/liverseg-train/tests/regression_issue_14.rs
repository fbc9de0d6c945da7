//! Regression tests for issue 14 (defects found by probing liverseg as a
//! hostile user would): runs that could not be resumed, metrics rows
//! written twice, labels and voxels that trained silently as something
//! else, and divergence messages that named nothing.

mod common;

use std::path::Path;

use liverseg_io::{Volume, nifti};
use liverseg_train::{RunState, train};

/// Reads the NIfTI at `path`, changes its voxels with `edit` and writes it
/// back in place.
fn edit_nifti<T: liverseg_io::Voxel>(path: &Path, edit: impl FnOnce(&mut [T])) {
    let mut v: Volume<T> = nifti::read(path, &Default::default()).unwrap();
    edit(v.data_mut());
    let opts = nifti::WriteOptions {
        overwrite: liverseg_io::Overwrite::Allow,
        ..Default::default()
    };
    nifti::write(path, &v, &opts).unwrap();
}

fn state(run: &Path) -> RunState {
    serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap()
}

/// A pid no process has (above Linux's pid_max), as a killed run's
/// temporaries carry.
const DEAD: u32 = 4_194_305;

/// Item 4: a run killed before its first validation saved "no best Dice"
/// (written `null` by earlier versions, which then could not read it).
#[test]
fn a_run_killed_before_its_first_validation_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    let run = tmp.path().join("run");
    let mut c = common::tiny_config(&data, &run, &preset);
    c.epochs = 1;
    train(c.clone(), false, false).unwrap();
    // The state such a run leaves: one epoch, never validated.
    let path = run.join("last/state.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["best_dice"] = serde_json::Value::Null;
    json["best_epoch"] = 0.into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(run.join("best")).unwrap();

    c.epochs = 2;
    let s = train(c, true, false).unwrap();
    assert_eq!(s.epochs, 2);
    assert!(s.best_dice.is_some_and(|d| (0.0..=1.0).contains(&d)));
    assert_eq!(s.best_epoch, 2);
    assert!(run.join("best/model.safetensors").is_file());
}

/// Item 3: killed between moving `last/` aside and moving the new one in,
/// a run kept its checkpoint only as `.last.old-*`; resume now finishes the
/// swap. A kill after the metrics were written but before the checkpoint
/// was complete wrote that epoch's row twice after resuming; the rows are
/// now rewritten from the checkpoint.
#[test]
fn resume_finishes_an_interrupted_swap_and_rewrites_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    let run = tmp.path().join("run");
    let mut c = common::tiny_config(&data, &run, &preset);
    c.epochs = 2;
    train(c.clone(), false, false).unwrap();
    std::fs::rename(run.join("last"), run.join(format!(".last.old-{DEAD}-0"))).unwrap();
    std::fs::create_dir(run.join(format!(".last.tmpdir-{DEAD}-1"))).unwrap();
    let mut csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    csv.push_str("3,0.5,,,,1e-2,1.0,1.0\n");
    std::fs::write(run.join("metrics.csv"), csv).unwrap();

    c.epochs = 3;
    let s = train(c, true, false).unwrap();
    assert_eq!(s.epochs, 3);
    assert_eq!(state(&run).history.len(), 3);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3"], "{csv}");
    let jsonl = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    // Nothing of the killed run is left.
    let hidden: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// Item 5: label values that are no class of the dataset are refused,
/// naming the file and the values, instead of training as liver.
#[test]
fn stray_label_values_are_refused_naming_the_case() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    edit_nifti::<u8>(&data.join("labelsTr/phantom_1.nii.gz"), |l| {
        l[0] = 7;
        l[1] = 255;
    });
    let c = common::tiny_config(&data, &tmp.path().join("run"), &preset);
    let e = train(c, false, false).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_bad_input(), "{msg}");
    assert!(
        msg.contains("phantom_1.nii.gz") && msg.contains("7, 255"),
        "{msg}"
    );
}

/// Item 6: NaN voxels name the case; a divergence before the first
/// checkpoint says there is none, and names the batch's cases.
#[test]
fn nan_voxels_and_early_divergence_name_what_matters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());

    let mut c = common::tiny_config(&data, &tmp.path().join("diverge"), &preset);
    if let liverseg_train::config::OptimizerConfig::Adam { lr, .. } = &mut c.optimizer {
        *lr = 1e30;
    }
    c.epochs = 3;
    let msg = train(c, false, false).unwrap_err().to_string();
    assert!(msg.contains("diverged"), "{msg}");
    assert!(msg.contains("cases phantom_"), "{msg}");
    // The first epoch diverges: no checkpoint exists to point to.
    assert!(msg.contains("there is no checkpoint yet"), "{msg}");
    assert!(!tmp.path().join("diverge/last").exists());

    edit_nifti::<f32>(&data.join("imagesTr/phantom_2.nii.gz"), |v| v[5] = f32::NAN);
    let c = common::tiny_config(&data, &tmp.path().join("nan"), &preset);
    let e = train(c, false, false).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_bad_input(), "{msg}");
    assert!(
        msg.contains("phantom_2.nii.gz") && msg.contains("NaN"),
        "{msg}"
    );
}

/// Item 12: a damaged or missing checkpoint file on `--resume` is bad
/// input naming that file (it was exit 1 with candle's words alone).
#[test]
fn damaged_checkpoint_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    let run = tmp.path().join("run");
    let mut c = common::tiny_config(&data, &run, &preset);
    c.epochs = 1;
    train(c.clone(), false, false).unwrap();
    c.epochs = 2;
    for (file, damage) in [
        ("optimizer.safetensors", None),
        ("optimizer.safetensors", Some(&b"garbage"[..])),
        (
            "model.safetensors",
            Some(&b"\x08\x00\x00\x00\x00\x00\x00\x00{}"[..]),
        ),
    ] {
        let p = run.join("last").join(file);
        let keep = std::fs::read(&p).unwrap();
        match damage {
            None => std::fs::remove_file(&p).unwrap(),
            Some(bytes) => std::fs::write(&p, bytes).unwrap(),
        }
        let e = train(c.clone(), true, false).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_bad_input(), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        std::fs::write(&p, keep).unwrap();
    }
    assert_eq!(train(c, true, false).unwrap().epochs, 2);
}
