"""Where the benchmark inputs live, and how a reference script says it cannot run.

Shared by the scripts of tools/bench. The inputs are made by the project's
own tools, never by these scripts (see docs/benchmarks.md):

    target/bench-data/              LIVERSEG_BENCH_DATA (default: target/bench-data of this checkout)
      ct/                           cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct
        imagesTr/phantom_000.nii.gz   512 x 512 x 200 int16 CT
        labelsTr/phantom_000.nii.gz   its liver label
        io/                         written by `cargo bench -p liverseg-io --bench io` on its first run:
          phantom_image.nii           the CT uncompressed
          phantom_image.nii.gz        the CT as one gzip member (level 1, as nibabel writes)
          series/                     the CT as a DICOM series (liverseg's writer)
      tall/                         cargo xtask synth --scanner-sizes --cases 1 --seed 4094 --out target/bench-data/tall
      train/                        cargo xtask synth --scanner-sizes --cases 5 --out target/bench-data/train
"""
import importlib.util
import json
import os
import subprocess
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))

# The commands that make each input folder, printed when one is missing.
MAKE = {
    "ct": "cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct --force",
    "tall": "cargo xtask synth --scanner-sizes --cases 1 --seed 4094 --out target/bench-data/tall --force",
    "train": "cargo xtask synth --scanner-sizes --cases 5 --out target/bench-data/train --force",
    "io": "cargo bench -p liverseg-io --bench io",
}


def data_root():
    """`LIVERSEG_BENCH_DATA`, or target/bench-data of this checkout. A
    relative path is taken from the repository root, as the Rust benches
    take it (cargo runs them in their crate's folder)."""
    return os.path.join(REPO, os.environ.get("LIVERSEG_BENCH_DATA") or os.path.join("target", "bench-data"))


def data_path(*parts):
    return os.path.join(data_root(), *parts)


def ct_image(name="ct"):
    return data_path(name, "imagesTr", "phantom_000.nii.gz")


def ct_label(name="ct"):
    return data_path(name, "labelsTr", "phantom_000.nii.gz")


def default_liverseg():
    """The release binary of this checkout (`cargo build --release -p liverseg-cli`)."""
    return os.path.join(REPO, "target", "release", "liverseg")


def need_file(path, what):
    """Exits with the command that makes `path` when it is missing."""
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run `{MAKE[what]}` first (from the repository root)")


def missing_modules(*modules):
    """The modules of `modules` that are not installed. They are looked up,
    not imported: a parent that has imported torch would hand its resident
    pages to every child it starts (see procstat.py)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def peak_rss_mib():
    """This process's peak resident set (`VmHWM`), MiB. Unlike `ru_maxrss`,
    it starts afresh at `exec`, so the parent's size does not leak into it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_now_mib():
    """This process's resident set now (`VmRSS`), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def emit(result):
    """Prints `result` as the `@@RESULT@@` line the Rust benches read."""
    print("@@RESULT@@" + json.dumps(result), flush=True)


def run_script_child(args):
    """Runs this script again (`sys.executable`) with `args` and returns the
    result of its `@@RESULT@@` line; exits with the child's stderr when it
    fails."""
    cp = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    lines = [l for l in cp.stdout.splitlines() if l.startswith("@@RESULT@@")]
    if cp.returncode != 0 or not lines:
        sys.exit(f"{' '.join(args[:3])} failed ({cp.returncode}):\n{cp.stderr[-3000:]}")
    return json.loads(lines[-1][len("@@RESULT@@"):])


def skip(why):
    """Says loudly that nothing was measured and why, on stderr and as the
    `@@RESULT@@` line the Rust benches read, and exits 0: a missing optional
    package is not a failure of the bench."""
    print(f"SKIPPED: {why}", file=sys.stderr, flush=True)
    emit({"skipped": why})
    sys.exit(0)


def require(*modules):
    """Skips (see `skip`) when any of `modules` is not installed."""
    missing = missing_modules(*modules)
    if missing:
        skip(f"{sys.executable} lacks {', '.join(missing)} (pip install {' '.join(missing)})")


BF16_MODES = ["off", "conv", "autocast"]


def bf16_context(mode):
    """The bfloat16 mode `--bf16` names, as a function returning the context
    each timed call runs in. `conv`: float32 network, oneDNN allowed to
    round convolution operands to bfloat16 (`torch.backends.mkldnn.conv.
    fp32_precision = "bf16"`, liverseg's `Precision::Bf16.on(&Device::Cpu)`);
    `autocast`: `torch.autocast("cpu", dtype=torch.bfloat16)` (bfloat16
    activations, liverseg's `Precision::Bf16`); `off`: float32."""
    import contextlib

    import torch

    if mode == "conv":
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
    if mode == "autocast":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext
