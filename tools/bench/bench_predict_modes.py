#!/usr/bin/env python3
"""`liverseg predict` under its three built-in presets, and on a tall scan.

The same network (the tutorial UNet, 16..256 channels, seeded random
weights, as in bench_predict.py) is imported three times with
`liverseg import-monai --preset seed|patch|fast`, and each model segments
each CT given, file to file, with the defaults (`--fast` for the fast
model). Inference cost does not depend on the weights; post-processing
does a little (it works on the box of the mask).

* seed: the tutorial's chain, one 128 x 128 x 64 window of the body.
* patch: 1.5 mm isotropic, 128 x 128 x 64 sliding windows (nnU-Net-like).
* fast: 3 mm isotropic, cropped to the body, 96 x 96 x 64 windows
  (`--preset fast` / `predict --fast`, TotalSegmentator's low-resolution
  mode).

With `--baseline BIN` every case also runs with another liverseg binary (an
older build) right after, so before/after figures come from the same run.
Each run is a fresh process; peak RSS is that process's (os.wait4).

    cargo build --release -p liverseg-cli
    python3 tools/bench/bench_predict_modes.py [--liverseg BIN] [--ct CT ...] [--reps 2] [--precision f32|bf16] \
        [--baseline OLD] [--out results.json]

BIN defaults to target/release/liverseg of this checkout. Without `--ct`,
the CTs are the two phantoms of the project's own generator, under
`$LIVERSEG_BENCH_DATA` (default target/bench-data):

    cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct     # 512 x 512 x 200
    cargo xtask synth --scanner-sizes --cases 1 --seed 4094 --out target/bench-data/tall    # 512 x 512 x 400

Needs torch and monai (the weights are written by torch); without them it
says SKIPPED and measures nothing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import benchenv
from bench_predict import run_child, write_weights


def ct_name(path):
    """A short name for a CT in the printed lines: the dataset's folder for
    a Decathlon case (`ct` for target/bench-data/ct/imagesTr/phantom_000.nii.gz),
    else the file's folder."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if len(parts) >= 3 and parts[-2] == "imagesTr":
        return parts[-3]
    return parts[-2] if len(parts) >= 2 else path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--liverseg", default=benchenv.default_liverseg(),
                    help="the liverseg binary, a release build (default: %(default)s)")
    ap.add_argument("--baseline", help="an older liverseg binary to run beside it")
    ap.add_argument("--ct", action="append",
                    help="a CT NIfTI (repeatable; default: the ct and tall phantoms of the bench data)")
    ap.add_argument("--presets", default="seed,patch,fast")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--precision", default="f32", help="`predict --precision` (f32 or bf16; default: %(default)s)")
    ap.add_argument("--out")
    args = ap.parse_args()
    benchenv.require("torch", "monai")
    if not args.ct:
        args.ct = [benchenv.ct_image("ct"), benchenv.ct_image("tall")]
        benchenv.need_file(args.ct[0], "ct")
        benchenv.need_file(args.ct[1], "tall")
    if not os.path.exists(args.liverseg):
        sys.exit(f"{args.liverseg} is missing: run `cargo build --release -p liverseg-cli` or pass --liverseg")
    presets = args.presets.split(",")
    binaries = {"new": args.liverseg}
    if args.baseline:
        binaries["baseline"] = args.baseline
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "unet.pth")
        write_weights(weights)
        # Each binary imports the weights itself, so each model file holds
        # that build's definition of the preset.
        models = {}
        for name, binary in binaries.items():
            for p in presets:
                models[name, p] = os.path.join(tmp, f"{name}-{p}.safetensors")
                cmd = [binary, "import-monai", weights, "--out", models[name, p]]
                if p != "seed":
                    cmd += ["--preset", p]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for ct in args.ct:
            for p in presets:
                for rep in range(args.reps):
                    for name, binary in binaries.items():
                        out = os.path.join(tmp, "mask.nii.gz")
                        cmd = [binary, "predict", "--model", models[name, p], "--input", ct, "--output", out,
                               "--force", "--json", "--precision", args.precision]
                        if p == "fast":
                            cmd.append("--fast")
                        wall, rss, stdout = run_child(cmd)
                        report = json.loads(stdout)["cases"][0]
                        row = {"ct": ct, "preset": p, "binary": name, "seconds": wall, "peak_rss_mib": rss,
                               "network_grid": report.get("network_grid")}
                        rows.append(row)
                        grid = row["network_grid"]["dims"] if row["network_grid"] else "?"
                        print(f"{ct_name(ct)} {p:5s} {name:8s} rep {rep}: "
                              f"{wall:.2f} s, {rss:.0f} MiB, network grid {grid}", flush=True)

    summary = {}
    for r in rows:
        key = f"{ct_name(r['ct'])}/{r['preset']}/{r['binary']}"
        s = summary.setdefault(key, {"seconds": [], "peak_rss_mib": []})
        s["seconds"].append(r["seconds"])
        s["peak_rss_mib"].append(r["peak_rss_mib"])
    for k, s in summary.items():
        v = sorted(s["seconds"])
        print(f"{k}: median {v[len(v) // 2]:.2f} s, peak {max(s['peak_rss_mib']):.0f} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
