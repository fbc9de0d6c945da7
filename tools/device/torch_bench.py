#!/usr/bin/env python3
"""PyTorch + cuDNN side of `tools/device/check.sh`: the cases `liverseg
device-check` times, with the same names, shapes, networks and optimiser.

    python3 tools/device/torch_bench.py --json OUT [--device cuda] [--reps 5] [--quick]

* unet_forward: the tutorial UNet in eval mode under no_grad, (1, 1, 128, 128, 64).
* unet_train_step: train mode, zero_grad + forward + Dice loss (soft-max,
  one-hot targets, MONAI's smoothing 1e-5) + backward + Adam(lr 1e-5,
  weight_decay 1e-5, amsgrad) step, (2, 1, 128, 128, 128).
* unet_sliding_window: MONAI-style windows (roi 128x128x64, overlap 0.25,
  constant blending, one window per call) over (1, 1, 256, 256, 160).
* plain_unet_train_step: the plain U-Net (nnU-Net 3d_fullres at 128^3,
  6 stages, 32..320 features), same step, (2, 1, 128, 128, 128).

f32 runs with TF32 off (cuDNN and matmul), as liverseg's f32 (FMA math);
bf16 runs under torch.autocast(dtype=torch.bfloat16), as liverseg's
`--precision bf16`. cudnn.benchmark is on. Timing: one warm-up, then the
median of --reps runs, each between two torch.cuda.synchronize() calls.
The inputs are random; no file is read. Needs only torch.
"""
import argparse
import contextlib
import json
import math
import statistics
import time

import torch

import torch_nets


def dice_loss(logits, target):
    """MONAI DiceLoss(to_onehot_y=True, softmax=True), per sample and class, mean."""
    p = torch.softmax(logits.float(), dim=1)
    onehot = torch.cat([1.0 - target, target], dim=1)
    dims = tuple(range(2, p.dim()))
    inter = (p * onehot).sum(dims)
    denom = p.sum(dims) + onehot.sum(dims)
    return (1.0 - (2.0 * inter + 1e-5) / (denom + 1e-5)).mean()


def timed(fn, device, reps):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def starts(size, roi, overlap):
    """MONAI's window starts along one axis."""
    if size <= roi:
        return [0]
    step = max(1, int(roi * (1 - overlap)))
    n = math.ceil((size - roi) / step) + 1
    return sorted({min(i * step, size - roi) for i in range(n)})


def sliding(net, x, roi, overlap=0.25):
    out = None
    count = torch.zeros(x.shape[2:], device=x.device)
    for a in starts(x.shape[2], roi[0], overlap):
        for b in starts(x.shape[3], roi[1], overlap):
            for c in starts(x.shape[4], roi[2], overlap):
                w = x[:, :, a:a + roi[0], b:b + roi[1], c:c + roi[2]]
                y = net(w).float()
                if out is None:
                    out = torch.zeros((x.shape[0], y.shape[1]) + tuple(x.shape[2:]), device=x.device)
                out[:, :, a:a + roi[0], b:b + roi[1], c:c + roi[2]] += y
                count[a:a + roi[0], b:b + roi[1], c:c + roi[2]] += 1
    return out / count


def cases(quick):
    if quick:
        return dict(fwd=(1, 1, 32, 32, 16), unet_step=(2, 1, 16, 16, 16), plain_step=(2, 1, 16, 16, 16),
                    volume=(1, 1, 48, 48, 24), roi=(32, 32, 16))
    return dict(fwd=(1, 1, 128, 128, 64), unet_step=(2, 1, 128, 128, 128), plain_step=(2, 1, 128, 128, 128),
                volume=(1, 1, 256, 256, 160), roi=(128, 128, 64))


def run(device, precision, quick, reps):
    c = cases(quick)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if precision == "bf16" else contextlib.nullcontext())
    out = []

    def push(name, shape, seconds):
        out.append(dict(case=name, precision=precision, shape=list(shape), median_s=seconds, reps=reps))

    def step_of(net, shape):
        x = torch.randn(shape, device=device)
        target = (x >= 0.5).float()
        opt = torch.optim.Adam(net.parameters(), lr=1e-5, weight_decay=1e-5, amsgrad=True)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast:
                logits = net(x)
            dice_loss(logits, target).backward()
            opt.step()
        return step

    unet = torch_nets.TutorialUNet(quick).to(device)
    unet.eval()
    x = torch.randn(c["fwd"], device=device)
    with torch.no_grad():
        def forward():
            with autocast:
                unet(x)
        push("unet_forward", c["fwd"], timed(forward, device, reps))
    unet.train()
    push("unet_train_step", c["unet_step"], timed(step_of(unet, c["unet_step"]), device, reps))
    unet.eval()
    v = torch.randn(c["volume"], device=device)
    with torch.no_grad():
        def window():
            with autocast:
                sliding(unet, v, c["roi"])
        push("unet_sliding_window", c["volume"], timed(window, device, reps))
    del unet
    plain = torch_nets.PlainUNet(quick).to(device).train()
    push("plain_unet_train_step", c["plain_step"], timed(step_of(plain, c["plain_step"]), device, reps))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    report = dict(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if device.type == "cuda" else None,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        parameters=[torch_nets.parameters(torch_nets.TutorialUNet(args.quick)),
                    torch_nets.parameters(torch_nets.PlainUNet(args.quick))],
        timings={},
    )
    for precision in ["f32", "bf16"]:
        try:
            report["timings"][precision] = {"ok": run(device, precision, args.quick, args.reps)}
        except Exception as e:  # one precision failing keeps the other's figures
            report["timings"][precision] = {"error": f"{type(e).__name__}: {e}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
