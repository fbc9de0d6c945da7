#!/usr/bin/env python3
"""pydicom side of the DICOM-series read benchmark.

    python3 tools/bench/bench_pydicom_series.py [--series-dir DIR] [--reps 5] [--out pydicom.json]

DIR (default `$LIVERSEG_BENCH_DATA/ct/io/series`, that is
target/bench-data/ct/io/series of this checkout) is the benchmark phantom as a
200-file CT series, written by liverseg's DICOM writer when
`cargo bench -p liverseg-io --bench io` first runs; that bench runs this
script right after its own `read_dicom_series` case. Needs pydicom and numpy.

Times reading a CT series the usual pydicom way: `pydicom.dcmread` every file
of the directory, sort the slices by ImagePositionPatient projected on the
slice normal (the cross product of the ImageOrientationPatient directions),
then stack `pixel_array * RescaleSlope + RescaleIntercept` as float32.
Slices are stacked along axis 0, giving a C-order (k, row, column) array: the
same memory layout as a liverseg `Volume<f32>` indexed [i, j, k] with i
fastest, so no transposition is timed on either side.

The case runs in a child process (this script with --child) so its peak RSS
(ru_maxrss) is its own. 1 warm-up, then --reps timed runs; median reported.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import benchenv


def read_series(series_dir):
    import numpy as np
    import pydicom

    files = [os.path.join(series_dir, f) for f in os.listdir(series_dir) if f.endswith(".dcm")]
    slices = [pydicom.dcmread(f) for f in files]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=np.float64))))
    out = np.empty((len(slices), slices[0].Rows, slices[0].Columns), dtype=np.float32)
    for n, ds in enumerate(slices):
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        inter = float(getattr(ds, "RescaleIntercept", 0.0))
        out[n] = ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(inter)
    return out


def child(args):
    import pydicom

    with open("/proc/self/status") as f:
        base = next(int(l.split()[1]) / 1024.0 for l in f if l.startswith("VmRSS:"))
    info = {}

    def once():
        vol = read_series(args.series_dir)
        info["shape_k_row_col"] = list(vol.shape)
        info["sum"] = float(vol.sum(dtype="float64"))

    once()  # warm-up (also brings the files into the page cache)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    nfiles = len([f for f in os.listdir(args.series_dir) if f.endswith(".dcm")])
    nbytes = sum(os.path.getsize(os.path.join(args.series_dir, f)) for f in os.listdir(args.series_dir))
    res = {
        "name": "pydicom_read_series",
        "files": nfiles,
        "bytes": nbytes,
        "pydicom": pydicom.__version__,
        "baseline_rss_mib": base,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "all_s": times,
        "reps": args.reps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "note": "dcmread all files, sort by IPP along the normal, stack pixel_array*slope+intercept as float32",
        **info,
    }
    print("@@RESULT@@" + json.dumps(res), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series-dir", default=benchenv.data_path("ct", "io", "series"),
                    help="a CT series directory (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchenv.require("pydicom", "numpy")
    benchenv.need_file(args.series_dir, "io")
    if args.child:
        child(args)
        return
    cp = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--series-dir", args.series_dir,
                         "--reps", str(args.reps)], capture_output=True, text=True)
    lines = [l for l in cp.stdout.splitlines() if l.startswith("@@RESULT@@")]
    if cp.returncode != 0 or not lines:
        sys.exit(f"child failed ({cp.returncode}):\n{cp.stderr[-3000:]}")
    r = json.loads(lines[-1][len("@@RESULT@@"):])
    print(f"pydicom_read_series    median {r['median_s']:8.4f} s  peak RSS {r['peak_rss_mib']:8.1f} MiB", flush=True)
    text = json.dumps({"pydicom_read_series": r}, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
