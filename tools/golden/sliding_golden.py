#!/usr/bin/env python3
"""Golden outputs of MONAI's sliding_window_inference for liverseg-model.

The predictor is a fixed position-dependent function of the window (so the
blending of overlapping windows matters), reproduced by the Rust test:
    r[x, y, z] = 1 + 0.1 * x - 0.05 * y + 0.02 * z        (window-local indices)
    out = cat([w * r, sin(w) + r], channel)                (2 channels per input channel)
Writes crates/liverseg-model/tests/golden/sliding.safetensors.

    python tools/golden/sliding_golden.py
"""
import math
import os

import torch
from monai.inferers import sliding_window_inference
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-model", "tests", "golden")


def inp(shape):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(0.021 * i) * 3.0 + torch.cos(0.5 * i)).to(torch.float32).reshape(shape)


def predictor(w):
    _, _, a, b, c = w.shape
    x = torch.arange(a, dtype=torch.float32)[:, None, None]
    y = torch.arange(b, dtype=torch.float32)[None, :, None]
    z = torch.arange(c, dtype=torch.float32)[None, None, :]
    r = 1.0 + 0.1 * x - 0.05 * y + 0.02 * z
    return torch.cat([w * r, torch.sin(w) + r], dim=1)


CASES = {
    # name: (input shape, roi, sw_batch_size, overlap, mode)
    "constant_025": ((2, 1, 13, 11, 9), (6, 5, 4), 3, 0.25, "constant"),
    "gaussian_05": ((1, 1, 13, 11, 9), (6, 5, 4), 1, 0.5, "gaussian"),
    "padded": ((1, 1, 5, 11, 3), (6, 5, 4), 2, 0.25, "gaussian"),
}


def main():
    out = {}
    for name, (shape, roi, swb, overlap, mode) in CASES.items():
        x = inp(shape)
        with torch.no_grad():
            y = sliding_window_inference(x, roi, swb, predictor, overlap=overlap, mode=mode)
        out[f"{name}.input"] = x
        out[f"{name}.output"] = torch.as_tensor(y).contiguous()
        print(name, tuple(y.shape))
    save_file(out, os.path.join(OUT, "sliding.safetensors"))


if __name__ == "__main__":
    main()
