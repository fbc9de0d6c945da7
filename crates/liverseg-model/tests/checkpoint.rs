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

/// Issue 14: a model file whose architecture is invalid or absurd (zero
/// strides, even kernels, a million channels) is refused with its name,
/// before any network or tensor is built for it.
#[test]
fn invalid_or_absurd_architectures_are_refused_naming_the_file() {
    let tensors = import_monai(&common::golden("unet_small.pth"), &small()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with = |name: &str, edit: &dyn Fn(&mut UNetConfig)| {
        let mut cfg = UNetConfig {
            channels: vec![4, 8, 16],
            strides: vec![2, 2],
            norm: Norm::Instance,
            ..UNetConfig::default()
        };
        edit(&mut cfg);
        let path = dir.path().join(name);
        save(&path, &Architecture::MonaiUnet(cfg), &tensors, false).unwrap();
        ModelFile::load(&path, &Device::Cpu)
            .unwrap_err()
            .to_string()
    };
    let e = with("zero_stride.safetensors", &|c| c.strides = vec![0, 2]);
    assert!(
        e.starts_with(
            &dir.path()
                .join("zero_stride.safetensors")
                .display()
                .to_string()
        ),
        "{e}"
    );
    assert!(e.contains("strides"), "{e}");
    let e = with("even_kernel.safetensors", &|c| c.kernel_size = 4);
    assert!(
        e.contains("even_kernel.safetensors") && e.contains("odd"),
        "{e}"
    );
    // 10^12 weights in the first layer alone (4 TB) if they were built.
    let t = std::time::Instant::now();
    let e = with("huge.safetensors", &|c| {
        c.channels = vec![1_000_000, 1_000_000, 16]
    });
    assert!(
        e.contains("huge.safetensors") && e.contains("weights do not fit"),
        "{e}"
    );
    assert!(e.len() < 400, "{e}");
    assert!(t.elapsed().as_secs_f64() < 10.0);
}
