#!/usr/bin/env python3
"""Golden outputs of MONAI's UNet for liverseg-model's parity tests.

Parameters and inputs are not random: every tensor is filled by a closed
formula of its name and element index (see `fill`), which the Rust test
reproduces, so no weights need committing. The script writes, under
crates/liverseg-model/tests/golden/:

  unet_tutorial.safetensors  tutorial UNet (16..256, strides 2, 2 res units, batch norm):
                             input (1,1,32,32,32), eval logits, train-mode logits
  unet_small.pth             torch.save(state_dict) of a small UNet (channels 4, 8, 16,
                             strides 2, 2, instance norm), to test loading .pth files
  unet_small.safetensors     its input (2,1,16,16,8) and eval logits

Run with torch + monai + safetensors installed:
    python tools/golden/unet_golden.py
"""
import math
import os

import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-model", "tests", "golden")


def name_key(name: str) -> int:
    return sum(name.encode()) % 97


def fill(name: str, shape) -> torch.Tensor:
    """The formula the Rust tests reproduce (float64 maths, then float32)."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    s = torch.sin(0.37 * i + name_key(name))
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 1.0 + 0.25 * (s + 1.0)
    elif leaf == "running_mean" or leaf == "bias":
        v = 0.1 * s
    elif ".adn.A." in name:  # PReLU slope
        v = 0.25 + 0.05 * s
    elif ".adn.N." in name:  # norm weight
        v = 1.0 + 0.1 * s
    else:  # convolution weights, scaled by fan-in so activations stay O(1)
        fan = n // shape[0]
        v = s * math.sqrt(1.0 / max(fan, 1))
    return v.to(torch.float32).reshape(shape)


def input_tensor(shape) -> torch.Tensor:
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(0.011 * i) + 0.5 * torch.cos(0.07 * i)).to(torch.float32).reshape(shape)


def build(channels, strides, norm):
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=channels, strides=strides,
                num_res_units=2, norm=norm)


def set_formula_weights(net):
    sd = net.state_dict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        sd[k] = fill(k, tuple(v.shape))
    net.load_state_dict(sd)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)

    net = build((16, 32, 64, 128, 256), (2, 2, 2, 2), Norm.BATCH)
    n_params = sum(p.numel() for p in net.parameters())
    set_formula_weights(net)
    x = input_tensor((1, 1, 32, 32, 32))
    with torch.no_grad():
        net.eval()
        y_eval = net(x)
        net.train()
        y_train = net(x)
    save_file({"input": x, "eval": y_eval.contiguous(), "train": y_train.contiguous()},
              os.path.join(OUT, "unet_tutorial.safetensors"),
              metadata={"parameters": str(n_params)})
    print("tutorial UNet parameters:", n_params, "eval logits range", float(y_eval.min()), float(y_eval.max()))

    small = build((4, 8, 16), (2, 2), Norm.INSTANCE)
    set_formula_weights(small)
    small.eval()
    torch.save(small.state_dict(), os.path.join(OUT, "unet_small.pth"))
    xs = input_tensor((2, 1, 16, 16, 8))
    with torch.no_grad():
        ys = small(xs)
    save_file({"input": xs, "eval": ys.contiguous()}, os.path.join(OUT, "unet_small.safetensors"))
    print("small UNet keys:", len(small.state_dict()))


if __name__ == "__main__":
    main()
