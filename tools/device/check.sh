#!/usr/bin/env bash
# tools/device/check.sh — the one script run on a lent GPU machine (issue 19).
#
#   tools/device/check.sh [--binary PATH] [--out DIR] [--reps N] [--dry-run]
#                         [--device cpu --quick]   (the whole run, on a CPU)
#
# On a machine with an NVIDIA GPU and PyTorch (no Rust, no network needed):
#   1. `liverseg device-check --device cuda:0`: every layer's output and
#      gradients and both networks' logits and training gradients against
#      the CPU kernels (f32 within 1e-4, bf16 within its stated bound),
#      timings, and a 512x512x200 CT predicted with the built-in model;
#   2. tools/device/torch_bench.py: PyTorch + cuDNN timings of the same
#      cases on the same GPU, in the same run;
#   3. one JSON, DIR/device-check.json, with both reports and the ratios
#      (liverseg's time over PyTorch's, per case and precision).
# Everything fits in about 8 minutes on an H100 (each step has a timeout).
#
# The binary is the CUDA build carried to the machine:
#   source tools/cuda/env.sh
#   cargo build --profile device -p liverseg-cli --features cuda
# (target/device/liverseg, the default; tools/device/build.sh builds it and
# a cuRAND stand-in in target/device/fallback). Its CUDA libraries (cudart,
# cuBLAS, NVRTC, cuDNN 9) are taken from PyTorch's wheels on the machine.
#
# --dry-run (CI, no GPU): checks the binary runs `device-check --help`, the
# Python files compile, the arguments parse, and prints the library folders
# and commands a real run would use; exits 0 when all is in place.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
binary="$repo/target/device/liverseg"
out="${OUT:-$repo/target/device-check}"
reps=5
dry=0
device=cuda
quick=()
python="${PYTHON:-python3}"

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --reps) reps="${2:?--reps needs a count}"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        --device) device="${2:?--device needs cuda or cpu}"; shift 2 ;;
        --quick) quick=(--quick); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cpu) ;; *) echo "check.sh: --device is cuda or cpu" >&2; exit 2 ;; esac
case "$reps" in ''|*[!0-9]*|0) echo "check.sh: --reps must be a positive whole number" >&2; exit 2 ;; esac

fail() { echo "check.sh: $*" >&2; exit 1; }
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

[ -x "$binary" ] || fail "no executable liverseg at $binary (build it: see the header of $0)"
for f in torch_bench.py torch_nets.py merge.py; do
    [ -f "$here/$f" ] || fail "missing $here/$f"
done
command -v "$python" >/dev/null || fail "no $python"

# The CUDA libraries PyTorch's wheels ship: nvidia/<pkg>/lib folders (cu13
# wheels put the toolkit in nvidia/cu13/lib, cuDNN in nvidia/cudnn/lib).
libdirs=""
if site="$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)"; then
    for d in "$site"/nvidia/*/lib "$site"/torch/lib; do
        [ -d "$d" ] && libdirs="${libdirs:+$libdirs:}$d"
    done
    torch_found=1
else
    torch_found=0
fi

ldev=cuda:0
[ "$device" = cpu ] && ldev=cpu
run_liverseg=("$binary" device-check --device "$ldev" --reps "$reps" "${quick[@]}" --json "$out/liverseg.json")
run_torch=("$python" "$here/torch_bench.py" --device "$device" --reps "$reps" "${quick[@]}" --json "$out/torch.json")
run_merge=("$python" "$here/merge.py" "$out/liverseg.json" "$out/torch.json" "$out/device-check.json")

if [ "$dry" = 1 ]; then
    "$binary" device-check --help >/dev/null || fail "$binary device-check --help failed"
    "$python" -m py_compile "$here/torch_bench.py" "$here/torch_nets.py" "$here/merge.py" \
        || fail "the Python files do not compile"
    echo "check.sh --dry-run: binary $binary"
    [ -e "$(dirname "$binary")/fallback/libcurand.so.10" ] \
        && echo "check.sh --dry-run: cuRAND stand-in beside it" \
        || echo "check.sh --dry-run: no cuRAND stand-in beside it (tools/device/build.sh makes one)"
    if [ "$torch_found" = 1 ]; then
        echo "check.sh --dry-run: torch found; library folders: ${libdirs:-none}"
    else
        echo "check.sh --dry-run: torch not importable here (the GPU machine has it)"
    fi
    echo "check.sh --dry-run: would run:"
    printf '  %s\n' "${run_liverseg[*]}" "${run_torch[*]}" "${run_merge[*]}"
    echo "check.sh --dry-run: ok"
    exit 0
fi

[ "$torch_found" = 1 ] || fail "PyTorch is not importable with $python"
mkdir -p "$out"
[ ! -e "$out/liverseg.json" ] || fail "$out/liverseg.json exists; give a new --out"
# The cuRAND stand-in of build.sh goes last: a real cuRAND wins.
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:$(dirname "$binary")/fallback"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

status=0
stamp "liverseg device-check"
timeout 330 "${run_liverseg[@]}" 2>&1 | tee "$out/liverseg.log" || status=1
stamp "PyTorch timings"
timeout 150 "${run_torch[@]}" 2>&1 | tee "$out/torch.log" || status=1
stamp "merging"
"${run_merge[@]}" || status=1
stamp "done (status $status): $out/device-check.json"
exit "$status"
