#!/usr/bin/env python3
"""Golden values and input gradients of MONAI's DiceLoss and DiceCELoss.

Logits and targets are closed formulas (reproduced by the Rust test), so only
the results are stored, in crates/liverseg-model/tests/golden/losses.safetensors:
for each case `NAME`, `NAME.loss` (scalar) and `NAME.grad` (d loss / d logits).

    python tools/golden/loss_golden.py
"""
import math
import os

import torch
from monai.losses import DiceCELoss, DiceLoss
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-model", "tests", "golden")
SHAPE = (2, 3, 4, 5, 6)


def logits():
    n = math.prod(SHAPE)
    i = torch.arange(n, dtype=torch.float64)
    return (2.0 * torch.sin(0.13 * i) + torch.cos(0.029 * i)).to(torch.float32).reshape(SHAPE)


def target():
    n = SHAPE[0] * math.prod(SHAPE[2:])
    i = torch.arange(n, dtype=torch.float64)
    t = torch.floor((torch.sin(0.05 * i) + 1.0) * 1.5).clamp(0, 2)
    return t.to(torch.float32).reshape((SHAPE[0], 1) + SHAPE[2:])


CASES = {
    "dice_default": lambda: DiceLoss(to_onehot_y=True, softmax=True),
    "dice_nobg_squared": lambda: DiceLoss(to_onehot_y=True, softmax=True, include_background=False, squared_pred=True),
    "dice_sigmoid_batch": lambda: DiceLoss(to_onehot_y=True, sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=1e-6),
    "dice_jaccard": lambda: DiceLoss(to_onehot_y=True, softmax=True, jaccard=True),
    "dicece_default": lambda: DiceCELoss(to_onehot_y=True, softmax=True),
    "dicece_weighted": lambda: DiceCELoss(to_onehot_y=True, softmax=True, weight=torch.tensor([0.2, 1.0, 3.0]), lambda_dice=0.5, lambda_ce=2.0),
}


def main():
    out = {}
    for name, make in CASES.items():
        x = logits().requires_grad_(True)
        loss = make()(x, target())
        loss.backward()
        out[f"{name}.loss"] = loss.detach().reshape(1)
        out[f"{name}.grad"] = x.grad.contiguous()
        print(name, float(loss))
    save_file(out, os.path.join(OUT, "losses.safetensors"))


if __name__ == "__main__":
    main()
