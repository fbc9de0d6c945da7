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

    /tmp/torchenv/bin/python crates/liverseg-cli/benches/reference/bench_predict_modes.py \
        --liverseg target/release/liverseg --ct /tmp/refdata/phantom_image.nii.gz \
        --ct /tmp/talldata/phantom_image.nii.gz --reps 2 [--baseline OLD] [--out results.json]

The CTs come from ../shared/bench/make_phantom.py (512 x 512 x 200 at
0.78 x 0.78 x 2.5 mm by default; `--shape 512 512 800 --spacing 0.78 0.78 1.0`
for the tall scan).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_predict import run_child, write_weights  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--liverseg", required=True, help="the liverseg binary (release build)")
    ap.add_argument("--baseline", help="an older liverseg binary to run beside it")
    ap.add_argument("--ct", action="append", required=True, help="a CT NIfTI (repeatable)")
    ap.add_argument("--presets", default="seed,patch,fast")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    presets = args.presets.split(",")
    binaries = {"new": args.liverseg}
    if args.baseline:
        binaries["baseline"] = args.baseline
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "unet.pth")
        write_weights(weights)
        models = {}
        for p in presets:
            models[p] = os.path.join(tmp, f"{p}.safetensors")
            cmd = [args.liverseg, "import-monai", weights, "--out", models[p]]
            if p != "seed":
                cmd += ["--preset", p]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for ct in args.ct:
            for p in presets:
                for rep in range(args.reps):
                    for name, binary in binaries.items():
                        if name == "baseline" and p != "seed":
                            continue  # older builds know only the seed preset here
                        out = os.path.join(tmp, "mask.nii.gz")
                        cmd = [binary, "predict", "--model", models[p], "--input", ct, "--output", out,
                               "--force", "--json"]
                        if p == "fast":
                            cmd.append("--fast")
                        wall, rss, stdout = run_child(cmd)
                        report = json.loads(stdout)["cases"][0]
                        row = {"ct": ct, "preset": p, "binary": name, "seconds": wall, "peak_rss_mib": rss,
                               "network_grid": report.get("network_grid")}
                        rows.append(row)
                        grid = row["network_grid"]["dims"] if row["network_grid"] else "?"
                        print(f"{os.path.basename(os.path.dirname(ct))} {p:5s} {name:8s} rep {rep}: "
                              f"{wall:.2f} s, {rss:.0f} MiB, network grid {grid}", flush=True)

    summary = {}
    for r in rows:
        key = f"{os.path.basename(os.path.dirname(r['ct']))}/{r['preset']}/{r['binary']}"
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
