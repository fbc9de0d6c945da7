//! End-to-end runs of the training loop on a tiny phantom dataset:
//! outputs, bit-identical resume and loader thread counts, divergence
//! handling.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use liverseg_train::{RunState, train};

fn tensors(p: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn assert_identical(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.len(), tb.len());
    for (name, x) in &ta {
        let y = &tb[name];
        let xa: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let ya: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            xa == ya,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn four_epochs_equal_two_plus_resume_two_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 5);
    let preset = common::tiny_preset(tmp.path());

    let one = common::tiny_config(&data, &tmp.path().join("one"), &preset);
    // The run reports its epochs as events (the CLI draws its bars and
    // curves.png from them: cli_train checks the picture).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut trainer = liverseg_train::Trainer::new(one.clone(), false, false).unwrap();
    let sink = seen.clone();
    trainer.set_progress(Box::new(move |e| {
        if let liverseg_train::Progress::Epoch { record, history } = e {
            sink.lock().unwrap().push((record.epoch, history.len()));
        }
    }));
    let s = trainer.run().unwrap();
    assert_eq!(s.epochs, 4);
    assert_eq!(*seen.lock().unwrap(), vec![(1, 1), (2, 2), (3, 3), (4, 4)]);

    let mut two = common::tiny_config(&data, &tmp.path().join("two"), &preset);
    two.epochs = 2;
    train(two.clone(), false, false).unwrap();
    two.epochs = 4;
    let s2 = train(two, true, false).unwrap();
    assert_eq!(s2.epochs, 4);

    assert_identical(
        &tmp.path().join("one/last/model.safetensors"),
        &tmp.path().join("two/last/model.safetensors"),
    );
    assert_identical(
        &tmp.path().join("one/last/optimizer.safetensors"),
        &tmp.path().join("two/last/optimizer.safetensors"),
    );
    // Three loader threads deliver the same batches in the same order.
    let mut three = common::tiny_config(&data, &tmp.path().join("three"), &preset);
    three.loader_threads = 3;
    three.prefetch = 1;
    train(three, false, false).unwrap();
    assert_identical(
        &tmp.path().join("one/last/model.safetensors"),
        &tmp.path().join("three/last/model.safetensors"),
    );
    // The run folder holds what the issue lists.
    let out = tmp.path().join("one");
    for f in [
        "config.toml",
        "metrics.csv",
        "metrics.jsonl",
        "best/model.safetensors",
        "last/state.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("epoch,train_loss,val_loss,val_dice,val_dice_liver,lr"));
    let state: RunState =
        serde_json::from_str(&std::fs::read_to_string(out.join("last/state.json")).unwrap())
            .unwrap();
    assert_eq!(state.history.len(), 4);
    assert!(
        state
            .history
            .iter()
            .all(|r| r.train_loss.is_finite() && r.val_dice.is_some())
    );
    // The two runs' histories agree except for timings.
    let other: RunState = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("two/last/state.json")).unwrap(),
    )
    .unwrap();
    for (a, b) in state.history.iter().zip(&other.history) {
        assert_eq!(a.train_loss, b.train_loss);
        assert_eq!(a.val_dice, b.val_dice);
    }
    // The best model file is a self-describing liverseg model.
    let m =
        liverseg_model::ModelFile::load(&out.join("best/model.safetensors"), &Device::Cpu).unwrap();
    assert!(m.metadata.contains_key(liverseg_model::PRESET_KEY));
}

#[test]
fn existing_run_needs_resume_or_force() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    let mut c = common::tiny_config(&data, &tmp.path().join("run"), &preset);
    c.epochs = 1;
    train(c.clone(), false, false).unwrap();
    let e = train(c.clone(), false, false).unwrap_err();
    assert!(
        e.is_bad_input() && matches!(e, liverseg_train::Error::RunExists { .. }),
        "{e}"
    );
    train(c, false, true).unwrap();
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::phantom_dataset(tmp.path(), 3);
    let preset = common::tiny_preset(tmp.path());
    let mut c = common::tiny_config(&data, &tmp.path().join("run"), &preset);
    c.epochs = 1;
    train(c.clone(), false, false).unwrap();
    // An absurd learning rate overflows the weights within a few steps.
    c.epochs = 6;
    if let liverseg_train::config::OptimizerConfig::Adam { lr, .. } = &mut c.optimizer {
        *lr = 1e30;
    }
    let e = train(c, true, false).unwrap_err();
    assert!(e.to_string().contains("diverged"), "{e}");
    let state: RunState = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/last/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state.epoch >= 1 && state.epoch < 6);
    let t = tensors(&tmp.path().join("run/last/model.safetensors"));
    assert!(t.values().all(|x| {
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().all(|f| f.is_finite())
    }));
}
