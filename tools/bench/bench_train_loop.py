#!/usr/bin/env python3
"""Training throughput: `liverseg train` beside the original MONAI tutorial loop.

Same phantom dataset (a Decathlon folder from `cargo xtask synth`), same
split (cases sorted by name, every fifth validating, as `liverseg train`
does without splits.json), same network (tutorial UNet 16..256), loss
(DiceLoss sigmoid, squared_pred, one-hot targets), optimiser (Adam 1e-5,
weight decay 1e-5, AMSGrad), batch 1, `--epochs E`, one validation pass at
the end, 2 threads.

* liverseg: `liverseg train --data DIR --epochs E --val-every E --out TMP`,
  cold (its preprocessing cache deleted first), timed as a whole process;
  per-epoch times from its metrics.csv.
* MONAI: the tutorial loop: Dataset of dictionaries through LoadImaged,
  EnsureChannelFirstd, Spacingd (1.5, 1.5, 1.0; bilinear/nearest),
  Orientationd RAS, ScaleIntensityRanged -200..200 -> 0..1 clipped,
  CropForegroundd, Resized 128 x 128 x 64 (area/nearest), labels merged to
  liver; DataLoader(batch_size=1) with the tutorial's plain `Dataset` (every
  epoch decodes and resamples every case) and, for comparison,
  `CacheDataset(cache_rate=1.0)`. Timed inside a fresh child process from
  building the dataset to the end of validation (interpreter start and
  imports excluded, which favours MONAI).

Throughput is training cases per second over the whole run (preprocessing
included) and per steady epoch (epochs 2..E). Each run is a fresh process;
peak RSS is that process's (os.wait4).

    cargo xtask synth --scanner-sizes --cases 5 --out target/bench-data/train --force
    cargo build --release -p liverseg-cli
    python3 tools/bench/bench_train_loop.py [--liverseg BIN] [--data DIR] [--epochs 3] [--out results.json]

BIN defaults to target/release/liverseg of this checkout, DIR to
`$LIVERSEG_BENCH_DATA/train` (target/bench-data/train). The MONAI loops need
torch and monai; without them they say SKIPPED and only liverseg is timed.
"""
import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time

import benchenv
from procstat import run_child


def split(data):
    with open(os.path.join(data, "dataset.json")) as f:
        entries = json.load(f)["training"]
    name = lambda e: os.path.basename(e["image"]).replace(".nii.gz", "").replace(".nii", "")
    entries = sorted(entries, key=name)
    train = [e for i, e in enumerate(entries) if i % 5 != 4]
    val = [e for i, e in enumerate(entries) if i % 5 == 4]
    absolute = lambda e: {"vol": os.path.join(data, e["image"]), "seg": os.path.join(data, e["label"])}
    return [absolute(e) for e in train], [absolute(e) for e in val]


def monai_child(args):
    import resource

    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    from monai.data import CacheDataset, DataLoader, Dataset
    from monai.losses import DiceLoss
    from monai.metrics import DiceMetric
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet
    from monai.transforms import (Compose, CropForegroundd, EnsureChannelFirstd, Lambdad, LoadImaged, Orientationd,
                                  Resized, ScaleIntensityRanged, Spacingd)

    train_files, val_files = split(args.data)
    transforms = Compose([
        LoadImaged(keys=["vol", "seg"]),
        EnsureChannelFirstd(keys=["vol", "seg"]),
        Spacingd(keys=["vol", "seg"], pixdim=(1.5, 1.5, 1.0), mode=("bilinear", "nearest")),
        Orientationd(keys=["vol", "seg"], axcodes="RAS"),
        ScaleIntensityRanged(keys=["vol"], a_min=-200, a_max=200, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["vol", "seg"], source_key="vol"),
        Resized(keys=["vol", "seg"], spatial_size=(128, 128, 64), mode=("area", "nearest")),
        Lambdad(keys=["seg"], func=lambda s: (s > 0).float()),
    ])
    t0 = time.perf_counter()
    if args.monai_cache == "full":
        train_ds = CacheDataset(train_files, transforms, cache_rate=1.0, num_workers=0, progress=False)
        val_ds = CacheDataset(val_files, transforms, cache_rate=1.0, num_workers=0, progress=False)
    else:
        train_ds, val_ds = Dataset(train_files, transforms), Dataset(val_files, transforms)
    train_loader = DataLoader(train_ds, batch_size=1, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=1)
    model = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                 strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH)
    loss_fn = DiceLoss(to_onehot_y=True, sigmoid=True, squared_pred=True)
    opt = torch.optim.Adam(model.parameters(), 1e-5, weight_decay=1e-5, amsgrad=True)
    epochs = []
    for _ in range(args.epochs):
        e0 = time.perf_counter()
        model.train()
        for batch in train_loader:
            opt.zero_grad()
            loss = loss_fn(model(batch["vol"]), batch["seg"])
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - e0)
    metric = DiceMetric(include_background=False, reduction="mean")
    model.eval()
    with torch.no_grad():
        for batch in val_loader:
            pred = torch.argmax(model(batch["vol"]), dim=1, keepdim=True)
            metric(torch.nn.functional.one_hot(pred[:, 0].long(), 2).permute(0, 4, 1, 2, 3),
                   torch.nn.functional.one_hot(batch["seg"][:, 0].long(), 2).permute(0, 4, 1, 2, 3))
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": total, "epoch_seconds": epochs, "train_cases": len(train_files),
                      "peak_rss_mib": rss}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--liverseg", default=benchenv.default_liverseg(),
                    help="the liverseg binary, a release build (default: %(default)s)")
    ap.add_argument("--data", default=benchenv.data_path("train"),
                    help="Decathlon folder from cargo xtask synth (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--monai-cache", default="none", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        monai_child(args)
        return
    benchenv.need_file(os.path.join(args.data, "dataset.json"), "train")
    if not os.path.exists(args.liverseg):
        sys.exit(f"{args.liverseg} is missing: run `cargo build --release -p liverseg-cli` or pass --liverseg")
    data = os.path.abspath(args.data)
    train, _ = split(data)
    n, e = len(train), args.epochs
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.rmtree(os.path.join(data, ".liverseg-cache"), ignore_errors=True)
        run = os.path.join(tmp, "run")
        wall, rss, _ = run_child([args.liverseg, "train", "--data", data, "--epochs", str(e), "--val-every", str(e),
                                  "--out", run])
        with open(os.path.join(run, "metrics.csv")) as f:
            epochs = [float(r["epoch_seconds"]) for r in csv.DictReader(f)]
        results["liverseg"] = {"seconds": wall, "epoch_seconds": epochs, "peak_rss_mib": rss}
        print(f"liverseg: {wall:.1f} s, epochs {[round(x, 2) for x in epochs]}, {rss:.0f} MiB", flush=True)
    missing = benchenv.missing_modules("torch", "monai")
    if missing:
        print(f"SKIPPED: the MONAI loops ({sys.executable} lacks {', '.join(missing)}; "
              f"pip install {' '.join(missing)})", file=sys.stderr, flush=True)
    for cache in () if missing else ("none", "full"):
        wall, rss, out = run_child([sys.executable, __file__, "--child", "--data", data, "--epochs", str(e),
                                    "--monai-cache", cache])
        r = json.loads(out.strip().splitlines()[-1])
        r["process_seconds"], r["peak_rss_mib"] = wall, rss
        results[f"monai_{cache}"] = r
        print(f"monai ({'Dataset' if cache == 'none' else 'CacheDataset'}): {r['seconds']:.1f} s in process, "
              f"epochs {[round(x, 2) for x in r['epoch_seconds']]}, {rss:.0f} MiB", flush=True)
    summary = {"train_cases": n, "epochs": e}
    for k, r in results.items():
        steady = sorted(r["epoch_seconds"][1:]) or r["epoch_seconds"]
        summary[k] = {
            "run_seconds": r["seconds"],
            "cases_per_s_run": n * e / r["seconds"],
            "cases_per_s_steady": n / steady[len(steady) // 2],
            "peak_rss_mib": r["peak_rss_mib"],
        }
    for k in ("monai_none", "monai_full") if not missing else ():
        summary[f"ratio_run_vs_{k}"] = summary["liverseg"]["cases_per_s_run"] / summary[k]["cases_per_s_run"]
        summary[f"ratio_steady_vs_{k}"] = (summary["liverseg"]["cases_per_s_steady"]
                                           / summary[k]["cases_per_s_steady"])
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
