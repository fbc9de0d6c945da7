#!/usr/bin/env python3
"""PyTorch side of the plain U-Net training-step benchmark: nnU-Net's
3d_fullres network at a 128^3 patch, one training step on the CPU.

    python3 tools/bench/bench_torch_plain_unet.py [--reps 5] [--threads 2] [--bf16 off|conv|autocast] [--out F]
    python3 tools/bench/bench_torch_plain_unet.py --count-flops

`cargo bench -p liverseg-train --bench step` runs this after its own `plain`
case (same network, loss, optimiser and shapes) and prints the ratio. The
inputs are random tensors; no file is read.

* network: `PlainConvUNet` of `dynamic_network_architectures` (the class
  nnU-Net v2 builds) as nnU-Net's 3d_fullres plan makes it for a 128^3 CT
  patch: six stages of 32, 64, 128, 256, 320, 320 features, 3x3x3 kernels,
  strides 1, 2, 2, 2, 2, 2, two convolutions per stage in the encoder and
  the decoder, convolution bias, InstanceNorm3d (eps 1e-5, affine),
  LeakyReLU (0.01), deep supervision; 1 -> 2 channels.
* step: zero_grad + forward of (1, 1, 128, 128, 128) + nnU-Net's loss +
  backward + `SGD(lr=0.01, momentum=0.99, nesterov=True,
  weight_decay=3e-5).step()`. The loss is nnU-Net's DC_and_CE_loss (soft
  Dice of the softmax without the background over the whole batch, smooth
  1e-5, plus cross-entropy, weights 1 and 1) on every deep-supervision
  output, weighted 1, 1/2, 1/4, 1/8 and 0 (lowest) and normalised, against
  a random binary label taken at every 2^k-th voxel for the k-th output (as
  nnU-Net's data loader hands them over, made once before timing).

`--count-flops` prints torch's FlopCounterMode count of one forward and
backward of this network (the GFLOP the Rust bench divides by).

The case runs in a child process (this script with --child), so its peak
RSS (`VmHWM`) is its own; torch uses `--threads` threads. Three warm-up
steps (torch's step time settles only after them), then `--reps` timed
repetitions, median reported. Needs torch and
dynamic_network_architectures (`pip install dynamic_network_architectures`);
without them it says SKIPPED and measures nothing.
"""
import argparse
import json
import statistics
import sys
import time

import benchenv

FEATURES = [32, 64, 128, 256, 320, 320]
STRIDES = [1, 2, 2, 2, 2, 2]
SHAPE = (1, 1, 128, 128, 128)
# torch's step settles after about three steps (21.5, 20.9, 21.2 s, then
# 19.3-20.4 s on the 2-core machine); the Rust bench warms up as long.
WARMUP = 3


def build():
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    return PlainConvUNet(
        input_channels=1, n_stages=len(FEATURES), features_per_stage=FEATURES, conv_op=torch.nn.Conv3d,
        kernel_sizes=3, strides=STRIDES, n_conv_per_stage=2, num_classes=2,
        n_conv_per_stage_decoder=2, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, deep_supervision=True)


def dice_ce(logits, target):
    """nnU-Net's DC_and_CE_loss with batch Dice, no background, smooth 1e-5."""
    import torch

    probs = torch.softmax(logits, 1)[:, 1:]
    onehot = torch.zeros_like(logits).scatter_(1, target.long(), 1)[:, 1:]
    axes = [0] + list(range(2, logits.ndim))
    intersect = (probs * onehot).sum(axes)
    denom = probs.sum(axes) + onehot.sum(axes)
    dice = -((2 * intersect + 1e-5) / torch.clip(denom + 1e-5, 1e-8)).mean()
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0].long())
    return dice + ce


def child(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build()
    model.train()
    x = torch.randn(*SHAPE)
    label = (torch.rand(*SHAPE) >= 0.7).float()
    scales = len(FEATURES) - 1
    targets = [label[:, :, ::2 ** k, ::2 ** k, ::2 ** k].contiguous() for k in range(scales)]
    weights = [0.5 ** k for k in range(scales)]
    weights[-1] = 0.0
    weights = [w / sum(weights) for w in weights]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    mixed = benchenv.bf16_context(args.bf16)

    def step():
        opt.zero_grad(set_to_none=True)
        with mixed():
            outputs = model(x)
            loss = sum(w * dice_ce(o.float(), t) for w, o, t in zip(weights, outputs, targets) if w != 0)
        loss.backward()
        opt.step()

    res = {"name": "torch_plain_unet_train_step", "threads": args.threads, "bf16": args.bf16,
           "versions": {"torch": torch.__version__}}
    res["baseline_rss_mib"] = benchenv.rss_now_mib()
    times = timed(step, args.reps)
    median = statistics.median(times)
    res.update(median_s=median, min_s=min(times), all_s=times, reps=args.reps,
               peak_rss_mib=benchenv.peak_rss_mib())
    benchenv.emit(res)


def timed(fn, reps, warmup=WARMUP):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def count_flops():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build()
    model.train()
    x = torch.randn(*SHAPE)
    with FlopCounterMode(display=False) as counter:
        outputs = model(x)
        sum(o.sum() for o in outputs).backward()
    print(f"{counter.get_total_flops() / 1e9:.1f} GFLOP per forward and backward")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--bf16", choices=benchenv.BF16_MODES, default="off",
                    help="bfloat16 mode, see benchenv.bf16_context (default: %(default)s)")
    ap.add_argument("--out", help="write the result as JSON here")
    ap.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchenv.require("torch", "dynamic_network_architectures")
    if args.count_flops:
        count_flops()
        return
    if args.child:
        child(args)
        return
    r = benchenv.run_script_child([__file__, "--child", "--reps", str(args.reps), "--threads", str(args.threads),
                                   "--bf16", args.bf16])
    print(f"torch plain    median {r['median_s']:.4f} s  peak RSS {r['peak_rss_mib']:.0f} MiB",
          file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)
    benchenv.emit(r)


if __name__ == "__main__":
    main()
