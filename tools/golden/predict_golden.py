#!/usr/bin/env python3
"""Golden probabilities for `liverseg predict --preprocess none` parity.

Writes crates/liverseg-cli/tests/golden/predict/:
    ct.nii.gz      float32 32 x 32 x 16 "preprocessed" CT (values 0..1), LPS affine
    unet.pth       MONAI UNet(3, 1, 2, channels (4, 8, 16), strides (2, 2),
                   num_res_units 2, batch norm) state_dict, seeded weights and
                   non-trivial batch-norm running statistics
    probs.nii.gz   softmax(model(x)) over the classes, float32 (X, Y, Z, 2),
                   x loaded with MONAI's LoadImage(ensure_channel_first=True)

    python3 tools/golden/predict_golden.py

Needs torch, monai, nibabel and numpy (`pip install torch monai nibabel numpy`).
"""
import os

import nibabel as nib
import numpy as np
import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet
from monai.transforms import LoadImage

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-cli", "tests", "golden", "predict")


def main():
    os.makedirs(OUT, exist_ok=True)
    shape = (32, 32, 16)
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    ct = 0.5 + 0.3 * np.sin(0.3 * i) * np.cos(0.2 * j) + 0.1 * (k / shape[2]) + 0.05 * np.sin(0.9 * i * j / 7.0)
    affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    affine[:3, 3] = (40.0, 30.0, -10.0)
    img = nib.Nifti1Image(ct.astype(np.float32), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, os.path.join(OUT, "ct.nii.gz"))

    torch.manual_seed(0)
    model = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                 num_res_units=2, norm=Norm.BATCH)
    g = torch.Generator().manual_seed(1)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=g) * 0.2)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    model.eval()
    torch.save(model.state_dict(), os.path.join(OUT, "unet.pth"))

    x = LoadImage(image_only=True, ensure_channel_first=True)(os.path.join(OUT, "ct.nii.gz"))
    with torch.no_grad():
        probs = torch.softmax(model(x.unsqueeze(0).float()), dim=1)[0]
    out = probs.numpy().transpose(1, 2, 3, 0).astype(np.float32)
    nib.save(nib.Nifti1Image(out, affine), os.path.join(OUT, "probs.nii.gz"))
    print("wrote", OUT, out.shape, float(out[..., 1].mean()))


if __name__ == "__main__":
    main()
