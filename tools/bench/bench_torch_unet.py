#!/usr/bin/env python3
"""PyTorch + MONAI side of the UNet benchmark: the tutorial network's eval
forward, one training step and a sliding-window pass, on the CPU.

    python3 tools/bench/bench_torch_unet.py [--only forward,train,sliding] [--reps 5] [--threads 2] [--bf16 off|conv|autocast] [--out F]

`cargo bench -p liverseg-model --bench unet` runs this after its own cases
(same names, same shapes) and prints the ratios. The inputs are random
tensors; no file is read.

* forward: MONAI `UNet` (3-D, 1 -> 2 channels, channels 16..256, strides 2,
  two residual units, batch norm; 4,808,917 parameters) in eval mode under
  `torch.no_grad()`, input (1, 1, 128, 128, 64).
* train: train mode, zero_grad + forward + `DiceLoss(to_onehot_y=True,
  softmax=True)` + backward + `Adam(lr=1e-5, weight_decay=1e-5,
  amsgrad=True).step()`, batch 1 at (1, 1, 128, 128, 64), a random binary
  label.
* sliding: `sliding_window_inference` over (1, 1, 256, 256, 160), roi
  (128, 128, 64), sw_batch_size 1, overlap 0.25, Gaussian blending, in eval
  mode under `torch.no_grad()` (27 windows).

`--bf16` (see `benchenv.bf16_context`): `conv` lets oneDNN round the
convolutions' operands to bfloat16 in the float32 network (as liverseg's
`LIVERSEG_BENCH_BF16=conv`); `autocast` runs the forward (and loss) under
CPU autocast to bfloat16.

GFLOP/s use the same fixed counts as the Rust bench: 12.1 GFLOP per forward,
36.2 per training step (MONAI's FlopCounterMode counts).

Each case runs in its own child process (this script with --child NAME), so
its peak RSS (`VmHWM`) is its own; torch uses `--threads` threads. One
warm-up, then `--reps` timed repetitions, median reported. Needs torch and
monai; without them it says SKIPPED and measures nothing.
"""
import argparse
import json
import statistics
import sys
import time

import benchenv

CASES = ["forward", "train", "sliding"]
FORWARD_GFLOP = 12.1
TRAIN_GFLOP = 36.2


def build_unet():
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH)


def timed(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def mixed_call(mixed, model, x):
    with mixed():
        return model(x)


def child(name, args):
    import monai
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_unet()
    mixed = benchenv.bf16_context(args.bf16)
    res = {"name": f"torch_unet_{name}", "threads": args.threads, "bf16": args.bf16,
           "versions": {"torch": torch.__version__, "monai": monai.__version__}}
    if name == "forward":
        model.eval()
        x = torch.randn(1, 1, 128, 128, 64)
        with torch.no_grad():
            res["baseline_rss_mib"] = benchenv.rss_now_mib()
            times = timed(lambda: mixed_call(mixed, model, x), args.reps)
        gflop = FORWARD_GFLOP
    elif name == "train":
        from monai.losses import DiceLoss

        model.train()
        x = torch.randn(1, 1, 128, 128, 64)
        label = (torch.rand(1, 1, 128, 128, 64) >= 0.7).float()
        loss_fn = DiceLoss(to_onehot_y=True, softmax=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5, amsgrad=True)

        def step():
            opt.zero_grad(set_to_none=True)
            with mixed():
                loss = loss_fn(model(x), label)
            loss.backward()
            opt.step()

        res["baseline_rss_mib"] = benchenv.rss_now_mib()
        times = timed(step, args.reps)
        gflop = TRAIN_GFLOP
    elif name == "sliding":
        from monai.inferers import sliding_window_inference

        model.eval()
        x = torch.randn(1, 1, 256, 256, 160)
        windows = [0]

        def predictor(t):
            windows[0] += 1
            return mixed_call(mixed, model, t).float()

        def run():
            sliding_window_inference(x, roi_size=(128, 128, 64), sw_batch_size=1, predictor=predictor,
                                     overlap=0.25, mode="gaussian")

        with torch.no_grad():
            res["baseline_rss_mib"] = benchenv.rss_now_mib()
            times = timed(run, args.reps)
        res["windows"] = windows[0] // (args.reps + 1)
        gflop = FORWARD_GFLOP * res["windows"]
    else:
        sys.exit(f"unknown case {name!r}; choose from {CASES}")
    median = statistics.median(times)
    res.update(median_s=median, min_s=min(times), all_s=times, reps=args.reps, gflops=gflop / median,
               peak_rss_mib=benchenv.peak_rss_mib())
    benchenv.emit(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated subset of: " + ",".join(CASES))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--bf16", choices=benchenv.BF16_MODES, default="off", help="bfloat16 mode (default: %(default)s)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchenv.require("torch", "monai")
    if args.child:
        child(args.child, args)
        return
    names = [n for n in args.only.split(",") if n]
    for n in names:
        if n not in CASES:
            sys.exit(f"unknown case {n!r}; choose from {CASES}")
    results = {}
    for n in names:
        r = benchenv.run_script_child([__file__, "--child", n, "--reps", str(args.reps),
                                       "--threads", str(args.threads), "--bf16", args.bf16])
        results[n] = r
        print(f"torch {n:8s} median {r['median_s']:.4f} s  {r['gflops']:.1f} GFLOP/s  "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    benchenv.emit(results)


if __name__ == "__main__":
    main()
