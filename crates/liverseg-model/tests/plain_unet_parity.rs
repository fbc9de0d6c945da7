//! Parity with nnU-Net's `PlainConvUNet` (`dynamic_network_architectures`):
//! its `state_dict`, saved with `torch.save`, loads into [`PlainUNet`] by
//! name with no renaming, and the same input gives the same deep-supervision
//! outputs, in the same order (full resolution first), within 1e-4.
//!
//! Golden files come from `tools/golden/plain_unet_golden.py`
//! (dynamic-network-architectures 0.4.4, torch 2.15): a 3-stage network of
//! 4, 8, 16 features, strides 1, 2, 2, two convolutions per stage, conv
//! bias, affine InstanceNorm (eps 1e-5) with perturbed scale and shift,
//! LeakyReLU(0.01), seeded weights.

mod common;

use candle_core::{DType, Device, ModuleT};
use candle_nn::VarBuilder;
use liverseg_model::{PlainUNet, PlainUNetConfig};

fn config() -> PlainUNetConfig {
    PlainUNetConfig {
        in_channels: 1,
        out_channels: 2,
        features: vec![4, 8, 16],
        strides: vec![1, 2, 2],
        convs_per_stage: 2,
        convs_per_stage_decoder: 2,
        kernel_size: 3,
        strides_xyz: Vec::new(),
        kernels_xyz: Vec::new(),
        deep_supervision: true,
    }
}

#[test]
fn plain_conv_unet_state_dict_loads_by_name_and_matches_nnunet() {
    let dir = common::golden("plain_unet");
    let vb = VarBuilder::from_pth(dir.join("plain_unet.pth"), DType::F32, &Device::Cpu).unwrap();
    let net = PlainUNet::new(&config(), vb).unwrap();
    let g =
        candle_core::safetensors::load(dir.join("plain_unet.safetensors"), &Device::Cpu).unwrap();
    let x = &g["input"];
    assert_eq!(x.dims(), &[2, 1, 16, 16, 8]);
    let expected_shapes = [[2, 2, 16, 16, 8], [2, 2, 8, 8, 4]];
    assert_eq!(
        g.len(),
        1 + expected_shapes.len(),
        "golden file holds the input and two outputs"
    );

    // InstanceNorm keeps no running statistics, so both modes must agree
    // with nnU-Net's (evaluation-mode) outputs.
    for train in [false, true] {
        let outs = net.forward_all(x, train).unwrap();
        assert_eq!(
            outs.len(),
            expected_shapes.len(),
            "deep-supervision outputs"
        );
        for (i, (out, shape)) in outs.iter().zip(&expected_shapes).enumerate() {
            let want = &g[&format!("out{i}")];
            assert_eq!(want.dims(), shape);
            assert_eq!(out.dims(), shape, "output {i} shape");
            let d = common::max_diff(out, want);
            eprintln!("PlainUNet (train {train}): max |liverseg - nnU-Net| output {i} {d:e}");
            assert!(
                d < 1e-4,
                "output {i} (train {train}) differs from nnU-Net by {d}"
            );
        }
        // The `ModuleT` forward is the full-resolution output.
        let full = net.forward_t(x, train).unwrap();
        assert!(common::max_diff(&full, &outs[0]) == 0.0);
    }
}

#[test]
fn without_deep_supervision_only_the_full_resolution_output_is_returned() {
    let cfg = PlainUNetConfig {
        deep_supervision: false,
        ..config()
    };
    let dir = common::golden("plain_unet");
    let vb = VarBuilder::from_pth(dir.join("plain_unet.pth"), DType::F32, &Device::Cpu).unwrap();
    let net = PlainUNet::new(&cfg, vb).unwrap();
    let g =
        candle_core::safetensors::load(dir.join("plain_unet.safetensors"), &Device::Cpu).unwrap();
    let outs = net.forward_all(&g["input"], false).unwrap();
    assert_eq!(outs.len(), 1);
    let d = common::max_diff(&outs[0], &g["out0"]);
    assert!(d < 1e-4, "output differs from nnU-Net by {d}");
}
