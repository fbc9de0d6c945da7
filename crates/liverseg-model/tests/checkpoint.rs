//! Model files: a MONAI `.pth` imported, saved as self-describing
//! safetensors and loaded back gives MONAI's logits; mismatched
//! architectures are refused with the offending names.

mod common;

use candle_core::Device;
use liverseg_model::{Architecture, ModelFile, Norm, UNetConfig, import_monai, save};

fn small() -> Architecture {
    Architecture::MonaiUnet(UNetConfig {
        channels: vec![4, 8, 16],
        strides: vec![2, 2],
        norm: Norm::Instance,
        ..UNetConfig::default()
    })
}

#[test]
fn imported_monai_checkpoint_round_trips_through_a_model_file() {
    let tensors = import_monai(&common::golden("unet_small.pth"), &small()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save(&path, &small(), &tensors, false).unwrap();
    let err = save(&path, &small(), &tensors, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let file = ModelFile::load(&path, &Device::Cpu).unwrap();
    assert_eq!(file.architecture, small());
    let net = file.network(&Device::Cpu).unwrap();
    let g = candle_core::safetensors::load(common::golden("unet_small.safetensors"), &Device::Cpu)
        .unwrap();
    let y = net.forward_t(&g["input"], false).unwrap();
    let d: f32 = common::max_diff(&y, &g["eval"]);
    assert!(d < 1e-4, "{d}");
}

#[test]
fn wrong_architecture_is_refused_with_names() {
    let err = import_monai(
        &common::golden("unet_small.pth"),
        &Architecture::MonaiUnet(UNetConfig::default()),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unet_small.pth") && msg.contains("weights do not fit"),
        "{msg}"
    );
    assert!(msg.contains("shape") || msg.contains("missing"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let err = ModelFile::load(&junk, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("junk.safetensors"), "{err}");
}
