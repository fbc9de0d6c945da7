#!/usr/bin/env python3
"""nibabel side of the liverseg-io NIfTI benchmarks (read, write, gzip alone).

    python3 tools/bench/bench_nibabel.py [--data-dir DIR] [--reps 5] [--out ref_io.json] [--only a,b]

`cargo bench -p liverseg-io --bench io` runs each case of this script right
after its liverseg counterpart, on the same files; run alone, it reads the
files that bench wrote: DIR (default `$LIVERSEG_BENCH_DATA/ct/io`, that is
target/bench-data/ct/io of this checkout) holds `phantom_image.nii.gz` (one
gzip member) and `phantom_image.nii`, the phantom of
`cargo xtask synth --scanner-sizes --cases 1 --seed 19558`.

The read cases are a fresh `nib.load(path)` + `get_fdata(dtype=float32)` per
repetition, and `gzip.decompress` of the whole file read into memory (the
inflate work alone). Needs nibabel and numpy, not torch.

The write cases time `nib.save` of the phantom (int16, qform and sform code 1)
to `.nii` and `.nii.gz` (nibabel's default gzip level, 1). nibabel does not
fsync; liverseg's atomic writer does, so `*_fsync` variants (nib.save, then
fsync of the written file) are timed as well for a like-for-like figure.

Each case runs in its own child process (this script with --child NAME) so the
peak RSS (getrusage ru_maxrss of the child) belongs to that case alone; it
includes the interpreter and imports (the RSS after setup is reported as
`baseline_rss_mib`). Timing: time.perf_counter, 1 warm-up run, then `--reps`
timed runs; median, min and max reported.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import benchenv

CASES = [
    "nib_load_gz",
    "nib_load_nii",
    "gzip_decompress_only",
    "nib_save_nii",
    "nib_save_gz",
    "nib_save_nii_fsync",
    "nib_save_gz_fsync",
]


def current_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_case(name, data_dir, reps, work_dir):
    gz_path = os.path.join(data_dir, "phantom_image.nii.gz")
    nii_path = os.path.join(data_dir, "phantom_image.nii")
    import gzip

    import nibabel as nib
    import numpy as np

    result = {"name": name}
    shape = {}
    if name in ("nib_load_gz", "nib_load_nii"):
        path = gz_path if name == "nib_load_gz" else nii_path
        result["file_bytes"] = os.path.getsize(path)

        def once():
            arr = nib.load(path).get_fdata(dtype=np.float32)
            shape["shape"] = list(arr.shape)
            shape["dtype"] = str(arr.dtype)

        note = "fresh nib.load + get_fdata(dtype=float32); file in page cache after warm-up"
    elif name == "gzip_decompress_only":
        path = gz_path
        result["file_bytes"] = os.path.getsize(path)

        def once():
            with open(path, "rb") as f:
                gzip.decompress(f.read())

        note = "gzip.decompress (zlib) of the whole .nii.gz read into memory; no NIfTI parsing"
    else:
        src = nib.load(nii_path if os.path.exists(nii_path) else gz_path)
        data = np.asanyarray(src.dataobj)  # int16, as stored
        affine = src.affine
        ext = ".nii.gz" if "_gz" in name else ".nii"
        fsync = name.endswith("_fsync")
        out = os.path.join(work_dir, "nibabel_out" + ext)

        def once():
            img = nib.Nifti1Image(data, affine)
            img.set_qform(affine, code=1)
            img.set_sform(affine, code=1)
            nib.save(img, out)
            if fsync:
                fd = os.open(out, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        shape = {"shape": list(data.shape), "dtype": str(data.dtype)}
        note = "nib.save of an int16 Nifti1Image (qform/sform code 1), default gzip level"
        if fsync:
            note += ", then fsync of the written file"
    result["baseline_rss_mib"] = current_rss_mib()
    once()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    if name.startswith("nib_save"):
        result["file_bytes"] = os.path.getsize(out)
    result.update(shape)
    result.update(
        median_s=statistics.median(times),
        min_s=min(times),
        max_s=max(times),
        all_s=times,
        reps=reps,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        note=note,
    )
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=benchenv.data_path("ct", "io"),
                    help="directory holding phantom_image.nii.gz and .nii (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="write all results as JSON here")
    ap.add_argument("--only", default=None, help="comma-separated subset of: " + ",".join(CASES))
    ap.add_argument("--work-dir", default=None, help="where write cases put their files (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchenv.require("nibabel", "numpy")
    for name in ("phantom_image.nii.gz", "phantom_image.nii"):
        benchenv.need_file(os.path.join(args.data_dir, name), "io")

    if args.child:
        res = run_case(args.child, args.data_dir, args.reps, args.work_dir)
        print("@@RESULT@@" + json.dumps(res), flush=True)
        return

    import platform

    import nibabel
    import numpy

    names = args.only.split(",") if args.only else CASES
    for n in names:
        if n not in CASES:
            sys.exit(f"unknown case {n!r}; choose from {CASES}")
    results = {
        "_env": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "nproc": os.cpu_count(),
            "nibabel": nibabel.__version__,
            "numpy": numpy.__version__,
        }
    }
    with tempfile.TemporaryDirectory(prefix="bench_nibabel_", dir=args.work_dir) as work:
        for n in names:
            cp = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", n, "--data-dir", args.data_dir,
                 "--reps", str(args.reps), "--work-dir", work],
                capture_output=True, text=True)
            lines = [l for l in cp.stdout.splitlines() if l.startswith("@@RESULT@@")]
            if cp.returncode != 0 or not lines:
                results[n] = {"error": cp.stderr[-3000:], "returncode": cp.returncode}
                print(f"{n:22s} FAILED\n{cp.stderr[-3000:]}", file=sys.stderr)
                continue
            r = json.loads(lines[-1][len("@@RESULT@@"):])
            results[n] = r
            print(f"{n:22s} median {r['median_s']:8.4f} s  peak RSS {r['peak_rss_mib']:8.1f} MiB", flush=True)
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
