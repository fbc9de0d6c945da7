#!/usr/bin/env python3
"""Whole-CT prediction: `liverseg predict` beside MONAI's tutorial inference.

Both sides segment the same CT (the 512 x 512 x 200 phantom of
`cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct`)
with the same network (the tutorial UNet, 16..256 channels, seeded random
weights written here as a MONAI state_dict and imported with
`liverseg import-monai`), with their defaults, from the file on disk to a
label NIfTI on disk:

* liverseg: `liverseg predict --model M --input CT --output OUT --force`
  (seed preset recorded in the model, one 128 x 128 x 64 window, mapping
  back to the input grid, largest component and hole filling), timed as a
  whole process.
* MONAI: the tutorial's validation transforms (LoadImaged,
  EnsureChannelFirstd, Spacingd 1.5 x 1.5 x 1.0 bilinear, Orientationd RAS,
  ScaleIntensityRanged -200..200 -> 0..1 clipped, CropForegroundd,
  Resized 128 x 128 x 64), sliding_window_inference (roi 128 x 128 x 64,
  sw_batch_size 4), then the tutorial's post transforms (softmax, Invertd
  back to the original grid with linear interpolation, argmax, SaveImaged).
  Timed inside a fresh child process from loading to the saved file
  (interpreter start and imports excluded, which favours MONAI); the child's
  whole wall time is reported too.

`--also NAME=MODEL` (repeatable) times `liverseg predict --model MODEL` in
the same loop, under NAME: `--also builtin=builtin` is the built-in model
the binary carries (3 mm, body crop, 96 x 96 x 64 windows), `--also
demo=target/demo/model.safetensors` the model `liverseg demo` trains.

Each run is a fresh process; peak RSS is that process's (os.wait4).

    cargo build --release -p liverseg-cli
    python3 tools/bench/bench_predict.py [--liverseg BIN] [--ct CT] [--reps 3] [--also NAME=MODEL] [--out results.json]

BIN defaults to target/release/liverseg of this checkout, CT to the phantom
above (under `$LIVERSEG_BENCH_DATA` when set). Needs torch and monai (the
weights are written by torch); without them it says SKIPPED and measures
nothing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import benchenv
from procstat import run_child


def build_unet():
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH)


def write_weights(path):
    """Writes the seeded weights from a separate process: a child forked
    from a parent that has imported torch starts with the parent's resident
    pages, which would put a floor of several hundred MiB under every peak
    RSS measured here."""
    subprocess.run([sys.executable, __file__, "--write-weights", path], check=True)


def write_weights_here(path):
    import torch

    torch.manual_seed(0)
    model = build_unet()
    torch.save(model.state_dict(), path)


def tutorial_transforms(out_dir):
    """The tutorial's validation transforms and post transforms (softmax,
    Invertd with linear interpolation, argmax, SaveImaged into out_dir)."""
    from monai.transforms import (Activationsd, AsDiscreted, Compose, CropForegroundd, EnsureChannelFirstd,
                                  Invertd, LoadImaged, Orientationd, Resized, SaveImaged, ScaleIntensityRanged,
                                  Spacingd)

    val = Compose([
        LoadImaged(keys=["image"]),
        EnsureChannelFirstd(keys=["image"]),
        Spacingd(keys=["image"], pixdim=(1.5, 1.5, 1.0), mode="bilinear"),
        Orientationd(keys=["image"], axcodes="RAS"),
        ScaleIntensityRanged(keys=["image"], a_min=-200, a_max=200, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["image"], source_key="image"),
        Resized(keys=["image"], spatial_size=(128, 128, 64)),
    ])
    post = Compose([
        Activationsd(keys="pred", softmax=True),
        Invertd(keys="pred", transform=val, orig_keys="image", nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", argmax=True),
        SaveImaged(keys="pred", output_dir=out_dir, output_postfix="seg", resample=False,
                   separate_folder=False, print_log=False),
    ])
    return val, post


def monai_child(args):
    """One MONAI tutorial inference; prints the in-process seconds."""
    import torch

    torch.set_num_threads(2)
    from monai.inferers import sliding_window_inference

    val, post = tutorial_transforms(args.out_dir)
    model = build_unet()
    model.load_state_dict(torch.load(args.weights))
    model.eval()
    t0 = time.perf_counter()
    data = val({"image": args.image})
    with torch.no_grad():
        pred = sliding_window_inference(data["image"].unsqueeze(0), (128, 128, 64), 4, model)
    data["pred"] = pred[0]
    post(data)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--liverseg", default=benchenv.default_liverseg(),
                    help="the liverseg binary, a release build (default: %(default)s)")
    ap.add_argument("--ct", default=benchenv.ct_image(), help="the CT to segment (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=MODEL",
                    help="also time `liverseg predict --model MODEL` as NAME (MODEL may be `builtin`)")
    ap.add_argument("--save-model", help="also keep the imported random-weight model here (a .safetensors file)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--write-weights", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_weights:
        write_weights_here(args.write_weights)
        return
    if args.child:
        monai_child(args)
        return
    benchenv.require("torch", "monai", "nibabel")
    benchenv.need_file(args.ct, "ct")
    if not os.path.exists(args.liverseg):
        sys.exit(f"{args.liverseg} is missing: run `cargo build --release -p liverseg-cli` or pass --liverseg")
    image = args.ct
    also = [a.split("=", 1) for a in args.also]
    if any(len(a) != 2 for a in also):
        sys.exit("--also takes NAME=MODEL")
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "unet.pth")
        write_weights(weights)
        model = os.path.join(tmp, "unet.safetensors")
        subprocess.run([args.liverseg, "import-monai", weights, "--out", model], check=True)
        if args.save_model:
            shutil.copyfile(model, args.save_model)
        rows = {"liverseg": [], "monai": []}
        rows.update({name: [] for name, _ in also})
        for rep in range(args.reps):
            out = os.path.join(tmp, "liverseg_seg.nii.gz")
            for name, m in [("liverseg", model)] + also:
                wall, rss, _ = run_child([args.liverseg, "predict", "--model", m, "--input", image,
                                          "--output", out, "--force"])
                rows[name].append({"seconds": wall, "peak_rss_mib": rss})
                print(f"{name} rep {rep}: {wall:.2f} s, {rss:.0f} MiB", flush=True)
            wall, rss, stdout = run_child([sys.executable, __file__, "--child", "--weights", weights,
                                           "--image", image, "--out-dir", tmp])
            inner = json.loads(stdout.strip().splitlines()[-1])["seconds"]
            rows["monai"].append({"seconds": inner, "process_seconds": wall, "peak_rss_mib": rss})
            print(f"monai    rep {rep}: {inner:.2f} s in process ({wall:.2f} s with start-up), {rss:.0f} MiB",
                  flush=True)

    def med(v):
        v = sorted(v)
        return v[len(v) // 2]

    ours = med([r["seconds"] for r in rows["liverseg"]])
    theirs = med([r["seconds"] for r in rows["monai"]])
    summary = {
        "liverseg_median_s": ours,
        "liverseg_peak_rss_mib": max(r["peak_rss_mib"] for r in rows["liverseg"]),
        "monai_median_s": theirs,
        "monai_process_median_s": med([r["process_seconds"] for r in rows["monai"]]),
        "monai_peak_rss_mib": max(r["peak_rss_mib"] for r in rows["monai"]),
        "ratio_monai_over_liverseg": theirs / ours,
        **{f"{name}_median_s": med([r["seconds"] for r in rows[name]]) for name, _ in also},
        **{f"{name}_peak_rss_mib": max(r["peak_rss_mib"] for r in rows[name]) for name, _ in also},
        "runs": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
