#!/usr/bin/env python3
"""ONNX Runtime side of the UNet forward benchmark: the ONNX file that
`liverseg export-onnx` writes for the tutorial network, run on the CPU
at the same window and thread count as liverseg's forward case.

    python3 tools/bench/bench_onnxruntime.py MODEL.onnx [--shape 1,1,128,128,64] [--reps 5] [--threads 2]

`cargo bench -p liverseg-model --bench unet` exports its own network and
runs this after its forward case. ONNX Runtime's default graph
optimisations (all levels) and its CPU execution provider; one warm-up,
then `--reps` timed runs of `session.run` on a random input, median
reported with the process's peak RSS. Needs onnxruntime and numpy; without
them it says SKIPPED and measures nothing.
"""
import argparse
import statistics
import time

import benchenv

FORWARD_GFLOP = 12.1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--shape", default="1,1,128,128,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    benchenv.require("onnxruntime", "numpy")
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    shape = [int(v) for v in args.shape.split(",")]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    run = lambda: sess.run(["logits"], {"image": x})  # noqa: E731
    run()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    benchenv.emit({"name": "onnxruntime_unet_forward", "threads": args.threads,
                   "versions": {"onnxruntime": ort.__version__},
                   "median_s": median, "min_s": min(times), "all_s": times, "reps": args.reps,
                   "gflops": FORWARD_GFLOP / median, "peak_rss_mib": benchenv.peak_rss_mib()})


if __name__ == "__main__":
    main()
