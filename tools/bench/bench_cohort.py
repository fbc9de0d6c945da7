#!/usr/bin/env python3
"""Cohort throughput: cases per hour for a folder of CTs.

The cohort is N copies (default 20) of the 512 x 512 x 200 phantom of
`cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct`,
written to `target/bench-data/cohort/case_NN.nii.gz` on the first run.
Each way below segments all of them from disk to label NIfTIs on disk, with
the built-in model, and is timed from its first process start to its last
exit:

* batch: one `liverseg predict --input cohort --output OUT` (model loaded
  once; reading, network and writing overlapped), 2 threads;
* per-case: N separate `liverseg predict --input case --output mask` calls,
  one after the other (TotalSegmentator's pattern: a process and a model
  load per case);
* 2 shards: `--shard 0/2` and `--shard 1/2` at once, one thread each
  (RAYON_NUM_THREADS=1), as two array tasks on one 2-core node would;
* MONAI: the tutorial's inference loop in one process (the tutorial's
  validation transforms, sliding_window_inference 128 x 128 x 64 with 4
  windows per batch, softmax, Invertd, argmax, SaveImaged, over a
  DataLoader of the N files, the tutorial UNet with seeded random weights),
  torch on 2 threads, timed in process from the first load to the last
  save (imports excluded).

Needs torch and monai for the MONAI row (without them it says SKIPPED for
that row and times liverseg alone).

    cargo build --release -p liverseg-cli
    python3 tools/bench/bench_cohort.py [--liverseg BIN] [--cases 20] [--out results.json]
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


def monai_child(args):
    """The tutorial's inference loop over every file of args.image_dir."""
    import torch

    torch.set_num_threads(2)
    from monai.data import DataLoader, Dataset, decollate_batch
    from monai.inferers import sliding_window_inference

    from bench_predict import build_unet, tutorial_transforms

    files = sorted(os.path.join(args.image_dir, f) for f in os.listdir(args.image_dir) if f.endswith(".nii.gz"))
    val, post = tutorial_transforms(args.out_dir)
    torch.manual_seed(0)
    model = build_unet()
    model.eval()
    loader = DataLoader(Dataset([{"image": f} for f in files], transform=val), batch_size=1, num_workers=1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            batch["pred"] = sliding_window_inference(batch["image"], (128, 128, 64), 4, model)
            for item in decollate_batch(batch):
                post(item)
    print(json.dumps({"seconds": time.perf_counter() - t0, "cases": len(files)}))


def cohort(n):
    """The N-case folder, made from the bench CT on the first run."""
    src = benchenv.ct_image()
    benchenv.need_file(src, "ct")
    folder = benchenv.data_path("cohort")
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        dst = os.path.join(folder, f"case_{i:02}.nii.gz")
        if not os.path.exists(dst):
            shutil.copyfile(src, dst)
    extra = [f for f in os.listdir(folder) if f.endswith(".nii.gz") and int(f[5:7]) >= n]
    for f in extra:
        os.remove(os.path.join(folder, f))
    return folder


def timed(cmds, env=None):
    """Starts every command of `cmds` at once; returns the wall seconds until
    the last has ended. Fails when one fails."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for c in cmds]
    for c, p in zip(cmds, procs):
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"{' '.join(c)} failed:\n{err.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--liverseg", default=benchenv.default_liverseg())
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--image-dir", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        monai_child(args)
        return
    if not os.path.exists(args.liverseg):
        sys.exit(f"{args.liverseg} is missing: run `cargo build --release -p liverseg-cli` or pass --liverseg")
    folder = cohort(args.cases)
    n = args.cases
    bin_ = args.liverseg
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        env2 = dict(os.environ, RAYON_NUM_THREADS="2")
        env1 = dict(os.environ, RAYON_NUM_THREADS="1")
        for k in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"]:
            env1.pop(k, None)
            env2.pop(k, None)
        out = os.path.join(tmp, "batch")
        rows["batch"] = timed([[bin_, "predict", "--input", folder, "--output", out]], env2)
        print(f"batch:    {rows['batch']:.1f} s", flush=True)
        per = os.path.join(tmp, "per_case")
        os.makedirs(per)
        t0 = time.perf_counter()
        for f in sorted(os.listdir(folder)):
            timed([[bin_, "predict", "--input", os.path.join(folder, f), "--output", os.path.join(per, f)]], env2)
        rows["per_case"] = time.perf_counter() - t0
        print(f"per-case: {rows['per_case']:.1f} s", flush=True)
        sh = os.path.join(tmp, "shards")
        rows["two_shards"] = timed([[bin_, "predict", "--input", folder, "--output", sh, "--shard", f"{i}/2"]
                                    for i in range(2)], env1)
        print(f"2 shards: {rows['two_shards']:.1f} s", flush=True)
        missing = benchenv.missing_modules("torch", "monai", "nibabel")
        if missing:
            print(f"SKIPPED the MONAI row: {', '.join(missing)} not importable", flush=True)
        else:
            mo = os.path.join(tmp, "monai")
            os.makedirs(mo)
            p = subprocess.run([sys.executable, __file__, "--child", "--image-dir", folder, "--out-dir", mo],
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"MONAI failed:\n{p.stderr[-3000:]}")
            rows["monai"] = json.loads(p.stdout.strip().splitlines()[-1])["seconds"]
            print(f"MONAI:    {rows['monai']:.1f} s", flush=True)
    per_hour = {k: n * 3600.0 / v for k, v in rows.items()}
    summary = {
        "cases": n,
        "seconds": rows,
        "cases_per_hour": per_hour,
        "batch_over_per_case": per_hour["batch"] / per_hour["per_case"],
        "two_shards_over_batch": per_hour["two_shards"] / per_hour["batch"],
    }
    if "monai" in per_hour:
        summary["batch_over_monai"] = per_hour["batch"] / per_hour["monai"]
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
