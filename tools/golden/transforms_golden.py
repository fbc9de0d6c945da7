#!/usr/bin/env python3
"""Golden outputs of MONAI's transforms for liverseg-transforms.

Makes a small synthetic CT and label with a scanner-like affine (LPS-style
flipped axes, anisotropic spacing, non-zero origin), runs MONAI's dictionary
transforms on the files exactly as the tutorial loads them (LoadImaged +
EnsureChannelFirstd), and saves every stage as NIfTI plus a JSON index with
the full-precision affines:

    crates/liverseg-transforms/tests/golden/transforms/
        ct.nii.gz, label.nii.gz            inputs (int16 HU, uint8 0/1/2)
        ct_oblique.nii.gz, ...             the same voxels under other affines
        <case>_image.nii.gz / _label.nii.gz
        index.json                         {case: {"shape", "affine", "files", ...}}

    python3 tools/golden/transforms_golden.py

Needs torch, monai, nibabel and numpy (`pip install torch monai nibabel numpy`).
The Rust tests read only the committed outputs.
"""
import json
import math
import os

import nibabel as nib
import numpy as np
import torch
from monai.transforms import (
    CropForegroundd,
    DivisiblePadd,
    EnsureChannelFirstd,
    Flipd,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    Resized,
    Rotate90d,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "liverseg-transforms", "tests", "golden", "transforms")
SHAPE = (20, 16, 10)
SPACING = (3.3, 2.9, 5.5)
ORIGIN = (120.5, 95.25, -40.0)


def phantom():
    """Smooth body (-100..60 HU) inside air, a liver ellipsoid (label 1) with a tumour (label 2)."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in SHAPE], indexing="ij")
    u = (i - (SHAPE[0] - 1) / 2) / (SHAPE[0] / 2)
    v = (j - (SHAPE[1] - 1) / 2) / (SHAPE[1] / 2)
    w = (k - (SHAPE[2] - 1) / 2) / (SHAPE[2] / 2)
    body = (u / 0.8) ** 2 + (v / 0.7) ** 2 < 1.0
    hu = np.where(body, 20.0 + 40.0 * np.sin(3.0 * u) * np.cos(2.0 * v) + 10.0 * w, -1000.0)
    liver = ((u + 0.25) / 0.35) ** 2 + ((v + 0.05) / 0.4) ** 2 + (w / 0.6) ** 2 < 1.0
    tumour = ((u + 0.3) / 0.12) ** 2 + (v / 0.15) ** 2 + ((w - 0.1) / 0.3) ** 2 < 1.0
    hu = np.where(liver, 60.0 + 15.0 * u, hu)
    hu = np.where(tumour, 110.0, hu)
    label = np.zeros(SHAPE, np.uint8)
    label[liver] = 1
    label[tumour & liver] = 2
    return np.rint(hu).astype(np.int16), label


def lps_affine():
    a = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    a[:3, 3] = ORIGIN
    return a


def rot(axis, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = np.eye(4)
    p, q = [(1, 2), (0, 2), (0, 1)][axis]
    m[p, p], m[p, q], m[q, p], m[q, q] = c, -s, s, c
    return m


def oblique_affine():
    return rot(2, 20.0) @ rot(0, 10.0) @ lps_affine()


def permuted_affine():
    # Array axis 0 runs superior, axis 1 to the patient's left, axis 2 posterior.
    a = np.zeros((4, 4))
    a[2, 0] = SPACING[0]
    a[0, 1] = -SPACING[1]
    a[1, 2] = -SPACING[2]
    a[:3, 3] = ORIGIN
    a[3, 3] = 1.0
    return a


def save_input(name, arr, affine):
    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, os.path.join(OUT, name))


index = {}


def record(case, d, keys=("vol", "seg"), extra=None):
    entry = {"files": {}}
    for key in keys:
        t = d[key]
        arr = t.detach().cpu().numpy()[0]
        aff = np.asarray(t.affine, dtype=np.float64)
        if key == "vol":
            arr = arr.astype(np.float32)
            fname = f"{case}_image.nii.gz"
        else:
            arr = np.rint(arr).astype(np.uint8)
            fname = f"{case}_label.nii.gz"
        nib.save(nib.Nifti1Image(arr, aff), os.path.join(OUT, fname))
        entry["files"][key] = fname
        entry.setdefault("shape", list(arr.shape))
        entry.setdefault("affine", aff.tolist())
        entry[f"{key}_sum"] = float(arr.astype(np.float64).sum())
    if extra:
        entry.update(extra)
    index[case] = entry


def load(image, label):
    d = {"vol": os.path.join(OUT, image), "seg": os.path.join(OUT, label)}
    d = LoadImaged(keys=["vol", "seg"])(d)
    return EnsureChannelFirstd(keys=["vol", "seg"])(d)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    hu, label = phantom()
    save_input("ct.nii.gz", hu, lps_affine())
    save_input("label.nii.gz", label, lps_affine())
    save_input("ct_oblique.nii.gz", hu, oblique_affine())
    save_input("label_oblique.nii.gz", label, oblique_affine())
    save_input("ct_permuted.nii.gz", hu, permuted_affine())
    save_input("label_permuted.nii.gz", label, permuted_affine())
    keys = ["vol", "seg"]

    # The tutorial's chain, stage by stage, with a small final Resize.
    d = load("ct.nii.gz", "label.nii.gz")
    d = Spacingd(keys=keys, pixdim=(1.5, 1.5, 1.0), mode=("bilinear", "nearest"))(d)
    record("seed_spacing", d)
    d = Orientationd(keys=keys, axcodes="RAS")(d)
    record("seed_orientation", d)
    d = ScaleIntensityRanged(keys=["vol"], a_min=-200, a_max=200, b_min=0.0, b_max=1.0, clip=True)(d)
    record("seed_scale", d)
    scaled = {k: v.clone() for k, v in d.items() if k in keys}
    d = CropForegroundd(keys=keys, source_key="vol")(d)
    record("seed_crop", d)
    d = Resized(keys=keys, spatial_size=(24, 20, 16), mode=("area", "nearest"))(d)
    record("seed_resize_small", d)

    # The tutorial's exact final size: shape, affine and a strided sample.
    d = {k: v.clone() for k, v in scaled.items()}
    d = CropForegroundd(keys=keys, source_key="vol")(d)
    d = Resized(keys=keys, spatial_size=(128, 128, 64), mode=("area", "nearest"))(d)
    vol = d["vol"].numpy()[0]
    seg = d["seg"].numpy()[0]
    index["seed_resize_full"] = {
        "shape": list(vol.shape),
        "affine": np.asarray(d["vol"].affine, dtype=np.float64).tolist(),
        "vol_sum": float(vol.astype(np.float64).sum()),
        "seg_sum": float(seg.astype(np.float64).sum()),
        "seg_count_2": int((seg == 2).sum()),
        # vol[::7, ::5, ::3] flattened in C order (k fastest).
        "vol_sample": vol[::7, ::5, ::3].astype(np.float64).ravel().tolist(),
    }

    # Other transforms on the scaled, RAS-oriented image.
    d = CropForegroundd(keys=keys, source_key="vol", margin=(2, 1, 0), k_divisible=(8, 5, 3),
                        select_fn=lambda x: x > 0.3)(
        {k: v.clone() for k, v in scaled.items()})
    record("crop_margin_k", d, extra={"margin": [2, 1, 0], "k_divisible": [8, 5, 3], "threshold": 0.3})
    d = Resized(keys=keys, spatial_size=(17, 23, 9), mode=("trilinear", "nearest"))(
        {k: v.clone() for k, v in scaled.items()})
    record("resize_trilinear", d, extra={"size": [17, 23, 9]})
    d = Resized(keys=keys, spatial_size=(30, 11, 25), mode=("area", "nearest"))(
        {k: v.clone() for k, v in scaled.items()})
    record("resize_area_mixed", d, extra={"size": [30, 11, 25]})
    d = NormalizeIntensityd(keys=["vol"], nonzero=True)({k: v.clone() for k, v in scaled.items()})
    record("normalize_nonzero", d)
    d = SpatialPadd(keys=keys, spatial_size=(45, 33, 61))({k: v.clone() for k, v in scaled.items()})
    record("spatial_pad", d, extra={"size": [45, 33, 61]})
    d = DivisiblePadd(keys=keys, k=7)({k: v.clone() for k, v in scaled.items()})
    record("divisible_pad", d, extra={"k": 7})
    d = Rotate90d(keys=keys, k=1, spatial_axes=(0, 2))({k: v.clone() for k, v in scaled.items()})
    record("rotate90_k1_02", d)
    d = Flipd(keys=keys, spatial_axis=1)({k: v.clone() for k, v in scaled.items()})
    record("flip_1", d)

    # A rotated scanner grid: Spacing keeps the rotation; Orientation then
    # picks the nearest axis codes.
    d = load("ct_oblique.nii.gz", "label_oblique.nii.gz")
    d = Spacingd(keys=keys, pixdim=(2.0, 2.5, 3.0), mode=("bilinear", "nearest"))(d)
    record("oblique_spacing", d)
    d = Orientationd(keys=keys, axcodes="RAS")(d)
    record("oblique_orientation", d)

    # Permuted axes: Orientation must transpose as well as flip.
    d = load("ct_permuted.nii.gz", "label_permuted.nii.gz")
    d = Orientationd(keys=keys, axcodes="RAS")(d)
    record("permuted_orientation", d)
    d = Spacingd(keys=keys, pixdim=(2.0, 2.0, 2.0), mode=("bilinear", "nearest"))(d)
    record("permuted_spacing", d)

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    print("wrote", len(index), "cases to", OUT)


if __name__ == "__main__":
    main()
