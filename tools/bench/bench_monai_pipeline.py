#!/usr/bin/env python3
"""MONAI side of the preprocessing benchmark: the tutorial's seven dictionary
transforms on one CT and its label.

    python3 tools/bench/bench_monai_pipeline.py [--image CT] [--label LABEL] [--reps 5] [--threads 2] [--out F]

`cargo bench -p liverseg-transforms --bench pipeline` runs this right after
timing liverseg's `seed` preset on the same two files, and prints the ratio.
CT and LABEL default to the benchmark phantom of
`cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct`
(under `$LIVERSEG_BENCH_DATA` when set).

The transforms, in the tutorial's order, image and label together:
LoadImaged, EnsureChannelFirstd, Spacingd (1.5, 1.5, 1.0 mm; bilinear /
nearest), Orientationd (RAS), ScaleIntensityRanged (-200..200 HU to 0..1,
clipped; image only), CropForegroundd (on the image), Resized (128 x 128 x 64;
area / nearest). The timing of one case starts at LoadImaged, so reading
both files is included, as on the liverseg side.

The measurement runs in a child process (this script with --child) so its
peak RSS (`VmHWM`) is its own; torch uses `--threads` threads. One warm-up
case, then `--reps` timed ones; the median total and the median of each stage
are reported. Needs torch, monai and nibabel; without them it says SKIPPED and
measures nothing.
"""
import argparse
import json
import statistics
import sys
import time

import benchenv


def stages():
    from monai.transforms import (CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientationd, Resized,
                                  ScaleIntensityRanged, Spacingd)

    keys = ["image", "label"]
    return [
        ("LoadImaged", LoadImaged(keys=keys)),
        ("EnsureChannelFirstd", EnsureChannelFirstd(keys=keys)),
        ("Spacingd", Spacingd(keys=keys, pixdim=(1.5, 1.5, 1.0), mode=("bilinear", "nearest"))),
        ("Orientationd", Orientationd(keys=keys, axcodes="RAS")),
        ("ScaleIntensityRanged",
         ScaleIntensityRanged(keys=["image"], a_min=-200, a_max=200, b_min=0.0, b_max=1.0, clip=True)),
        ("CropForegroundd", CropForegroundd(keys=keys, source_key="image")),
        ("Resized", Resized(keys=keys, spatial_size=(128, 128, 64), mode=("area", "nearest"))),
    ]


def child(args):
    import monai
    import torch

    torch.set_num_threads(args.threads)
    chain = stages()
    baseline = benchenv.rss_now_mib()

    def one():
        d = {"image": args.image, "label": args.label}
        seconds = {}
        for name, t in chain:
            t0 = time.perf_counter()
            d = t(d)
            seconds[name] = time.perf_counter() - t0
        return d, seconds

    d, _ = one()  # warm-up
    totals, per_stage = [], {name: [] for name, _ in chain}
    for _ in range(args.reps):
        _, seconds = one()
        totals.append(sum(seconds.values()))
        for name, s in seconds.items():
            per_stage[name].append(s)
    benchenv.emit({
        "name": "monai_pipeline",
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "all_s": totals,
        "reps": args.reps,
        "stages_median_s": {name: statistics.median(v) for name, v in per_stage.items()},
        "out_shape": list(d["image"].shape),
        "threads": args.threads,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": benchenv.peak_rss_mib(),
        "versions": {"torch": torch.__version__, "monai": monai.__version__},
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=benchenv.ct_image(), help="CT NIfTI (default: %(default)s)")
    ap.add_argument("--label", default=benchenv.ct_label(), help="label NIfTI (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--out", help="write the result as JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchenv.require("torch", "monai", "nibabel")
    benchenv.need_file(args.image, "ct")
    benchenv.need_file(args.label, "ct")
    if args.child:
        child(args)
        return
    r = benchenv.run_script_child([__file__, "--child", "--image", args.image, "--label", args.label,
                                   "--reps", str(args.reps), "--threads", str(args.threads)])
    stages_text = ", ".join(f"{n} {s:.2f} s" for n, s in r["stages_median_s"].items())
    print(f"monai_pipeline median {r['median_s']:.3f} s, peak RSS {r['peak_rss_mib']:.0f} MiB ({stages_text})",
          file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)
    benchenv.emit(r)


if __name__ == "__main__":
    main()
