#!/usr/bin/env python3
"""Golden plans from nnU-Net v2's own ExperimentPlanner, for liverseg-plan's tests.

For each reference case below, draws a dataset fingerprint in nnU-Net's format
(`dataset_fingerprint.json`: spacings and shapes after cropping in nnU-Net's
array order z, y, x; the median relative size after cropping; foreground
intensity statistics per channel) from stated distributions with a seeded
numpy generator, writes it with a dataset.json into a temporary nnU-Net folder
tree (with 2x2x2 placeholder images, which the planner lists but does not
read), runs `ExperimentPlanner(...).plan_experiment()` (the default
`nnUNetPlans`, 8 GB target), and writes, under crates/liverseg-plan/tests/golden/:

  {name}.fingerprint.json  the fingerprint the planner was given
  {name}.dataset.json      the dataset.json it was given
  {name}.plans.json        nnU-Net's plans: transpose, and the 3d_fullres
                           configuration (spacing, median shape, patch size,
                           batch size, kernel sizes, strides, features,
                           normalisation), whether a 3d_lowres one exists

The cases:
  task03  liver CT like MSD Task03 / LiTS: 131 cases, 0.55-1.0 mm in plane,
          0.7-5 mm slices, 512 x 512 x 74-987
  task09  spleen CT like MSD Task09: 41 cases, 0.61-0.98 mm in plane,
          1.5-8 mm slices, 512 x 512 x 31-168
  prostate  two MR channels (T2, ADC) like MSD Task05: 32 cases, 0.6 mm in
          plane, 3.6-4 mm slices (anisotropic), 256-320 x 256-320 x 15-24
  brats   four MR channels like MSD Task01 / BraTS: 484 cases, 1 mm
          isotropic, cropped to the brain (about 140 x 170 x 135 of 240 x 240 x 155)

Run with nnunetv2 installed (`pip install nnunetv2`; 2.8.1 made the committed files):
    python3 tools/golden/nnunet_plans.py
"""
import json
import os
import sys
import tempfile

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "../../crates/liverseg-plan/tests/golden")


def intensity(rs, mean, std, lo, hi):
    return {
        "max": float(hi), "mean": float(mean), "median": float(mean + rs.uniform(-0.1, 0.1) * std),
        "min": float(lo), "percentile_00_5": float(mean - 2.6 * std),
        "percentile_99_5": float(mean + 2.6 * std), "std": float(std),
    }


def task03(rs):
    n = 131
    xy = rs.uniform(0.55, 1.0, n)
    z = rs.choice([0.7, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0], n, p=[0.1, 0.15, 0.3, 0.1, 0.1, 0.1, 0.15])
    extent = rs.uniform(150, 500, n)
    nz = np.clip(np.round(extent / z), 74, 987).astype(int)
    shapes = [[int(k), 512, 512] for k in nz]
    spacings = [[float(a), float(b), float(b)] for a, b in zip(z, xy)]
    channels = {"0": "CT"}
    labels = {"background": 0, "liver": 1, "tumour": 2}
    props = {"0": intensity(rs, 99.4, 39.4, -1024, 3071)}
    return n, shapes, spacings, 1.0, channels, labels, props


def task09(rs):
    n = 41
    xy = rs.uniform(0.61, 0.98, n)
    z = rs.choice([1.5, 2.5, 5.0, 8.0], n, p=[0.3, 0.2, 0.4, 0.1])
    nz = rs.randint(31, 169, n)
    shapes = [[int(k), 512, 512] for k in nz]
    spacings = [[float(a), float(b), float(b)] for a, b in zip(z, xy)]
    channels = {"0": "CT"}
    labels = {"background": 0, "spleen": 1}
    props = {"0": intensity(rs, 99.3, 33.6, -1024, 3071)}
    return n, shapes, spacings, 1.0, channels, labels, props


def prostate(rs):
    n = 32
    xy = rs.uniform(0.6, 0.63, n)
    z = rs.uniform(3.6, 4.0, n)
    m = rs.choice([256, 320], n)
    nz = rs.randint(15, 25, n)
    shapes = [[int(k), int(a), int(a)] for k, a in zip(nz, m)]
    spacings = [[float(a), float(b), float(b)] for a, b in zip(z, xy)]
    channels = {"0": "T2", "1": "ADC"}
    labels = {"background": 0, "PZ": 1, "TZ": 2}
    props = {"0": intensity(rs, 354.0, 145.0, 0, 1500), "1": intensity(rs, 1058.0, 418.0, 0, 3000)}
    return n, shapes, spacings, 1.0, channels, labels, props


def brats(rs):
    n = 484
    shapes = [[int(rs.randint(120, 150)), int(rs.randint(150, 190)), int(rs.randint(120, 155))] for _ in range(n)]
    spacings = [[1.0, 1.0, 1.0] for _ in range(n)]
    channels = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    labels = {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}
    props = {str(c): intensity(rs, 400 + 100 * c, 150 + 20 * c, 0, 4000) for c in range(4)}
    rel = float(np.median(rs.uniform(0.33, 0.5, n)))
    return n, shapes, spacings, rel, channels, labels, props


CASES = {"task03": task03, "task09": task09, "prostate": prostate, "brats": brats}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        raw, pre = os.path.join(tmp, "raw"), os.path.join(tmp, "pre")
        os.environ["nnUNet_raw"], os.environ["nnUNet_preprocessed"] = raw, pre
        os.environ["nnUNet_results"] = os.path.join(tmp, "results")
        import nibabel as nib
        from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

        os.makedirs(OUT, exist_ok=True)
        for i, (name, make) in enumerate(CASES.items(), start=1):
            rs = np.random.RandomState(i)
            n, shapes, spacings, rel, channels, labels, props = make(rs)
            ds_name = f"Dataset{i:03d}_{name}"
            root = os.path.join(raw, ds_name)
            os.makedirs(os.path.join(root, "imagesTr"))
            os.makedirs(os.path.join(root, "labelsTr"))
            tiny = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
            for c in range(n):
                for ch in channels:
                    nib.save(tiny, os.path.join(root, "imagesTr", f"c{c:03d}_{int(ch):04d}.nii.gz"))
                nib.save(tiny, os.path.join(root, "labelsTr", f"c{c:03d}.nii.gz"))
            dataset = {"channel_names": channels, "labels": labels, "numTraining": n,
                       "file_ending": ".nii.gz"}
            fingerprint = {
                "foreground_intensity_properties_per_channel": props,
                "median_relative_size_after_cropping": rel,
                "shapes_after_crop": shapes,
                "spacings": spacings,
            }
            with open(os.path.join(root, "dataset.json"), "w") as f:
                json.dump(dataset, f)
            os.makedirs(os.path.join(pre, ds_name))
            with open(os.path.join(pre, ds_name, "dataset_fingerprint.json"), "w") as f:
                json.dump(fingerprint, f)
            planner = ExperimentPlanner(ds_name)
            plans = planner.plan_experiment()
            full = plans["configurations"]["3d_fullres"]
            arch = full["architecture"]["arch_kwargs"]
            golden = {
                "nnunetv2": __import__("nnunetv2").__version__ if hasattr(__import__("nnunetv2"), "__version__") else "2.8.1",
                "transpose_forward": plans["transpose_forward"],
                "original_median_spacing_after_transp": plans["original_median_spacing_after_transp"],
                "original_median_shape_after_transp": plans["original_median_shape_after_transp"],
                "has_3d_lowres": "3d_lowres" in plans["configurations"],
                "3d_fullres": {
                    "spacing": [float(s) for s in full["spacing"]],
                    "median_image_size_in_voxels": [float(s) for s in full["median_image_size_in_voxels"]],
                    "patch_size": [int(s) for s in full["patch_size"]],
                    "batch_size": int(full["batch_size"]),
                    "normalization_schemes": full["normalization_schemes"],
                    "use_mask_for_norm": full["use_mask_for_norm"],
                    "n_stages": arch["n_stages"],
                    "features_per_stage": list(arch["features_per_stage"]),
                    "kernel_sizes": [list(k) for k in arch["kernel_sizes"]],
                    "strides": [list(s) for s in arch["strides"]],
                    "batch_dice": full["batch_dice"],
                },
            }
            for suffix, obj in [("fingerprint", fingerprint), ("dataset", dataset), ("plans", golden)]:
                with open(os.path.join(OUT, f"{name}.{suffix}.json"), "w") as f:
                    json.dump(obj, f, indent=1)
                    f.write("\n")
            print(name, json.dumps(golden["3d_fullres"]), file=sys.stderr)


if __name__ == "__main__":
    main()
