#!/usr/bin/env python3
"""Golden values of MONAI's segmentation metrics (and DeepMind's surface Dice)
for liverseg_train::metrics.

Builds small synthetic label maps (0 background, 1 liver, 2 tumour, at most
48^3 voxels, anisotropic spacing), writes each prediction/reference pair as
uint8 NIfTI under crates/liverseg-metrics/tests/golden/metrics/, and writes
expected.json with, per case and class:

  * MONAI 1.6.1: DiceMetric and MeanIoU (ignore_empty=False),
    HausdorffDistanceMetric (percentile None and 95), SurfaceDistanceMetric
    (symmetric=True), SurfaceDiceMetric (class_thresholds=[tol], both the
    default boundary-voxel count and use_subvoxels=True), all with
    include_background=False and the spacing passed;
  * DeepMind's surface-distance package (PyPI `surface-distance` 0.1):
    surface Dice at a tolerance, robust Hausdorff 95, average surface
    distances;
  * counts (foreground voxels, MONAI edge voxels) for diagnosis.

Non-finite numbers are stored as the strings "inf" and "nan" (JSON has
neither). It also stores MONAI's 256-entry surfel-area table for each spacing,
which checks the transcribed normals table in the Rust crate.

    python3 tools/golden/metrics_golden.py
    python3 tools/golden/metrics_golden.py --rust-table PATH

Needs torch, monai, nibabel, numpy, scipy and surface-distance
(`pip install torch monai nibabel numpy scipy surface-distance`).

`--rust-table` writes the 2x2x2 neighbour-code -> surfel normals table (the
one MONAI adapted from DeepMind) as Rust source instead.
"""
import argparse
import json
import math
import os
import warnings

import monai
import nibabel as nib
import numpy as np
import scipy
import surface_distance as deepmind
import torch
from monai.metrics import (
    DiceMetric,
    HausdorffDistanceMetric,
    MeanIoU,
    SurfaceDiceMetric,
    SurfaceDistanceMetric,
)
from monai.metrics.utils import (
    _get_neighbour_code_to_normals_table,
    create_table_neighbour_code_to_surface_area,
    get_mask_edges,
)
from scipy import ndimage

# surface-distance 0.1 (2024) still spells np.Inf, which NumPy 2 removed.
if not hasattr(np, "Inf"):
    np.Inf = np.inf
# MONAI warns on every empty class and deprecated argument; the empty cases
# are deliberate.
warnings.filterwarnings("ignore")

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "liverseg-train", "tests", "golden", "metrics"
)
TOLERANCES = [1.0, 2.0]
CLASSES = {"liver": [1, 2], "tumour": [2]}


def grid(shape, spacing):
    """Voxel centre coordinates in mm, array order [x, y, z]."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij")


def ellipsoid(shape, spacing, centre_vox, radius_mm):
    x, y, z = grid(shape, spacing)
    c = [c * s for c, s in zip(centre_vox, spacing)]
    return ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) <= radius_mm**2


def case_shifted_sphere():
    shape, sp = (40, 40, 24), (0.8, 0.8, 2.5)
    truth = np.zeros(shape, np.uint8)
    truth[ellipsoid(shape, sp, (19, 20, 11), 11.0)] = 1
    truth[ellipsoid(shape, sp, (22, 18, 12), 4.0)] = 2
    pred = np.zeros(shape, np.uint8)
    pred[ellipsoid(shape, sp, (21, 19, 12), 11.5)] = 1
    pred[ellipsoid(shape, sp, (23, 18, 12), 5.0)] = 2
    return pred, truth, sp, ["liver", "tumour"]


def case_eroded_sphere():
    shape, sp = (36, 36, 20), (0.8, 0.8, 2.5)
    t = ellipsoid(shape, sp, (17, 18, 9), 10.0)
    p = ndimage.binary_erosion(t, iterations=2)
    return p.astype(np.uint8), t.astype(np.uint8), sp, ["liver"]


def case_hole():
    # The reference has a cavity (an inner surface) that the filled
    # prediction lacks, so the inner surface's distances are long.
    shape, sp = (36, 36, 20), (0.8, 0.8, 2.5)
    outer = ellipsoid(shape, sp, (17, 17, 9), 11.0)
    cavity = ellipsoid(shape, sp, (18, 17, 9), 5.0)
    t = outer & ~cavity
    p = ellipsoid(shape, sp, (17, 18, 9), 10.5)
    return p.astype(np.uint8), t.astype(np.uint8), sp, ["liver"]


def case_thin():
    # A one-voxel-thick tilted plate against a slightly tilted, offset copy,
    # on a grid whose three spacings all differ.
    shape, sp = (32, 28, 16), (0.7, 1.1, 1.9)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    t = np.abs(0.3 * i + 0.2 * j - k + 4.0) < 0.5
    p = np.abs(0.32 * i + 0.18 * j - k + 5.0) < 0.5
    box = (i > 2) & (i < 29) & (j > 3) & (j < 25)
    return (p & box).astype(np.uint8), (t & box).astype(np.uint8), sp, ["liver"]


def case_border():
    # Objects cut by the volume's faces: the faces are surface for MONAI
    # (binary_erosion with border_value=0) and DeepMind (zero padding).
    shape, sp = (30, 26, 14), (0.9, 0.9, 3.0)
    t = ellipsoid(shape, sp, (2, 24, 6), 12.0)
    p = ellipsoid(shape, sp, (0, 23, 8), 12.5)
    return p.astype(np.uint8), t.astype(np.uint8), sp, ["liver"]


def case_blobs():
    shape, sp = (48, 40, 20), (0.8, 0.8, 2.5)
    rng = np.random.default_rng(1234)
    base = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(3.0, 3.0, 1.2))
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(2.0, 2.0, 1.0))
    t = base > 0.02
    p = (base + 0.6 * noise) > 0.03
    return p.astype(np.uint8), t.astype(np.uint8), sp, ["liver"]


def case_single_voxels():
    shape, sp = (12, 10, 8), (0.8, 0.8, 2.5)
    t = np.zeros(shape, np.uint8)
    t[4, 5, 3] = 1
    p = np.zeros(shape, np.uint8)
    p[7, 2, 4] = 1
    p[4, 5, 3] = 1
    return p, t, sp, ["liver"]


def case_empty_pred():
    shape, sp = (24, 24, 12), (0.8, 0.8, 2.5)
    t = ellipsoid(shape, sp, (11, 12, 5), 6.0).astype(np.uint8)
    return np.zeros(shape, np.uint8), t, sp, ["liver"]


def case_empty_truth():
    shape, sp = (24, 24, 12), (0.8, 0.8, 2.5)
    p = ellipsoid(shape, sp, (12, 11, 6), 6.0).astype(np.uint8)
    return p, np.zeros(shape, np.uint8), sp, ["liver"]


def case_both_empty():
    shape, sp = (16, 16, 8), (0.8, 0.8, 2.5)
    return np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), sp, ["liver"]


CASES = {
    "shifted_sphere": case_shifted_sphere,
    "eroded_sphere": case_eroded_sphere,
    "hole": case_hole,
    "thin": case_thin,
    "border": case_border,
    "blobs": case_blobs,
    "single_voxels": case_single_voxels,
    "empty_pred": case_empty_pred,
    "empty_truth": case_empty_truth,
    "both_empty": case_both_empty,
}


def affine_for(spacing):
    # x flipped like a CT read from DICOM (LPS -> RAS): the spacing is the
    # column norm, never the signed diagonal.
    a = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    a[:3, 3] = [40.0, -25.0, -100.0]
    return a


def num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def onehot(mask):
    m = torch.as_tensor(mask.astype(np.float32))
    return torch.stack([1.0 - m, m])[None]


def monai_values(p, t, spacing):
    yp, yt = onehot(p), onehot(t)
    sp = list(spacing)
    out = {}

    def run(metric, **kw):
        return float(metric(y_pred=yp, y=yt, **kw)[0, 0])

    out["dice"] = run(DiceMetric(include_background=False, ignore_empty=False))
    out["dice_ignore_empty"] = run(DiceMetric(include_background=False))
    out["iou"] = run(MeanIoU(include_background=False, ignore_empty=False))
    out["hd"] = run(HausdorffDistanceMetric(include_background=False), spacing=sp)
    out["hd95"] = run(HausdorffDistanceMetric(include_background=False, percentile=95), spacing=sp)
    out["assd"] = run(SurfaceDistanceMetric(include_background=False, symmetric=True), spacing=sp)
    for tol in TOLERANCES:
        out[f"nsd_voxels@{tol}"] = run(SurfaceDiceMetric([tol], include_background=False), spacing=sp)
        out[f"nsd_subvoxels@{tol}"] = run(
            SurfaceDiceMetric([tol], include_background=False, use_subvoxels=True), spacing=sp
        )
    ep, et = get_mask_edges(p, t, crop=True)
    out["edge_voxels_pred"] = int(np.count_nonzero(ep))
    out["edge_voxels_truth"] = int(np.count_nonzero(et))
    return {k: num(v) for k, v in out.items()}


def deepmind_values(p, t, spacing):
    d = deepmind.compute_surface_distances(t.astype(bool), p.astype(bool), spacing)
    out = {
        "surfel_area_truth": float(np.sum(d["surfel_areas_gt"])),
        "surfel_area_pred": float(np.sum(d["surfel_areas_pred"])),
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for tol in TOLERANCES:
            out[f"surface_dice@{tol}"] = deepmind.compute_surface_dice_at_tolerance(d, tol)
        out["robust_hd95"] = deepmind.compute_robust_hausdorff(d, 95)
        gt_to_pred, pred_to_gt = deepmind.compute_average_surface_distance(d)
        out["mean_truth_to_pred"] = gt_to_pred
        out["mean_pred_to_truth"] = pred_to_gt
    return {k: num(v) for k, v in out.items()}


def rust_table(path):
    c = _get_neighbour_code_to_normals_table().numpy() * 8.0
    assert np.all(c == np.round(c))
    lines = [
        "//! The 2x2x2 neighbour code -> surfel normals table of DeepMind's",
        "//! surface-distance library, as MONAI 1.6.1 adapted it",
        "//! (`monai.metrics.utils._get_neighbour_code_to_normals_table`).",
        "//!",
        "//! Generated by `tools/golden/metrics_golden.py --rust-table`; do not edit.",
        "",
        "/// For each neighbour code (bit 7 = voxel (-1,-1,-1) ... bit 0 = voxel",
        "/// (0,0,0) around a corner), up to four triangle normals in units of 1/8;",
        "/// a normal's length is its triangle's area in voxel units.",
        "#[rustfmt::skip]",
        "pub(super) const NORMALS_EIGHTHS: [[[i8; 3]; 4]; 256] = [",
    ]
    for row in c.astype(int):
        cells = ", ".join("[" + ", ".join(str(v) for v in n) + "]" for n in row)
        lines.append(f"    [{cells}],")
    lines.append("];")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust-table", help="write the normals table as Rust source to this path and stop")
    args = ap.parse_args()
    if args.rust_table:
        rust_table(args.rust_table)
        return
    os.makedirs(OUT, exist_ok=True)
    expected = {
        "versions": {
            "monai": monai.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "nibabel": nib.__version__,
            "surface_distance": "0.1",
        },
        "tolerances_mm": TOLERANCES,
        "classes": CLASSES,
        "cases": {},
        "area_tables": {},
    }
    for name, make in CASES.items():
        pred, truth, spacing, classes = make()
        assert max(pred.shape) <= 48
        aff = affine_for(spacing)
        for role, arr in (("pred", pred), ("truth", truth)):
            img = nib.Nifti1Image(arr.astype(np.uint8), aff)
            img.set_qform(aff, code=1)
            img.set_sform(aff, code=1)
            nib.save(img, os.path.join(OUT, f"{name}_{role}.nii.gz"))
        # The metrics use the spacing as stored: NIfTI keeps the affine in
        # float32 (0.8 becomes 0.800000011920929), and that is what a reader
        # of these files, MONAI's LoadImage or liverseg, will see.
        stored = nib.load(os.path.join(OUT, f"{name}_pred.nii.gz")).affine
        spacing = tuple(float(s) for s in np.linalg.norm(stored[:3, :3], axis=0))
        entry = {"shape": list(pred.shape), "spacing": list(spacing), "classes": {}}
        for cls in classes:
            labels = CLASSES[cls]
            p, t = np.isin(pred, labels), np.isin(truth, labels)
            vals = {
                "voxels_pred": int(p.sum()),
                "voxels_truth": int(t.sum()),
                "monai": monai_values(p, t, spacing),
                "deepmind": deepmind_values(p, t, spacing),
            }
            entry["classes"][cls] = vals
            print(name, cls, vals["monai"]["hd95"], vals["monai"]["assd"], vals["deepmind"]["surface_dice@2.0"])
        expected["cases"][name] = entry
        key = ",".join(f"{s:.9g}" for s in spacing)
        if key not in expected["area_tables"]:
            table = create_table_neighbour_code_to_surface_area(spacing)[0]
            expected["area_tables"][key] = {"spacing": list(spacing), "areas": [float(a) for a in table]}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
