#!/usr/bin/env python3
"""Golden outputs of nnU-Net's PlainConvUNet for liverseg-model's PlainUNet parity test.

Builds a small `PlainConvUNet` from the PyPI package `dynamic-network-architectures`
(3-D, 1 input channel, 2 classes, 3 stages of 4, 8, 16 features, strides (1, 2, 2),
2 convolutions per encoder and decoder stage, kernel 3, conv_bias True,
InstanceNorm3d(eps 1e-5, affine True), LeakyReLU(0.01), deep supervision on) with
seeded weights and non-trivial norm affine parameters, and writes, under
crates/liverseg-model/tests/golden/plain_unet/:

  plain_unet.pth          torch.save(state_dict), loaded by name by the Rust test
  plain_unet.safetensors  "input" (2,1,16,16,8) and the deep-supervision outputs in
                          the network's order, full resolution first: "out0"
                          (2,2,16,16,8), "out1" (2,2,8,8,4); metadata "outputs" = 2

Run with torch, dynamic-network-architectures and safetensors installed
(`pip install torch dynamic-network-architectures safetensors`):
    python3 tools/golden/plain_unet_golden.py
"""
import math
import os

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from safetensors.torch import save_file
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-model", "tests", "golden",
                   "plain_unet")


def input_tensor(shape) -> torch.Tensor:
    """A smooth, deterministic input (the same formula as unet_golden.py)."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(0.011 * i) + 0.5 * torch.cos(0.07 * i)).to(torch.float32).reshape(shape)


def build() -> nn.Module:
    return PlainConvUNet(
        input_channels=1,
        n_stages=3,
        features_per_stage=(4, 8, 16),
        conv_op=nn.Conv3d,
        kernel_sizes=3,
        strides=(1, 2, 2),
        n_conv_per_stage=2,
        num_classes=2,
        n_conv_per_stage_decoder=2,
        conv_bias=True,
        norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        dropout_op=None,
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"negative_slope": 0.01, "inplace": True},
        deep_supervision=True,
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = build()
    # PyTorch initialises InstanceNorm's affine parameters to 1 and 0, which would
    # hide a missing or misnamed scale/shift: perturb them, seeded.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".norm." in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif ".norm." in name and name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    net.eval()
    torch.save(net.state_dict(), os.path.join(OUT, "plain_unet.pth"))

    x = input_tensor((2, 1, 16, 16, 8))
    with torch.no_grad():
        outs = net(x)
    assert isinstance(outs, (list, tuple)) and len(outs) == 2
    tensors = {"input": x}
    for i, o in enumerate(outs):
        tensors[f"out{i}"] = o.contiguous()
    save_file(tensors, os.path.join(OUT, "plain_unet.safetensors"), metadata={"outputs": str(len(outs))})
    n_params = sum(p.numel() for p in net.parameters())
    print("PlainConvUNet parameters:", n_params, "outputs:", [tuple(o.shape) for o in outs],
          "out0 range", float(outs[0].min()), float(outs[0].max()))


if __name__ == "__main__":
    main()
