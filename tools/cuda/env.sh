# tools/cuda/env.sh — the build environment for `--features cuda`: the CUDA
# 13.0 toolkit of build-env.sh (nvcc, headers, cudart, cuBLAS, cuRAND, NVRTC
# and a libcuda stub, all from PyPI wheels) plus cuDNN 9, whose N-d
# convolutions liverseg-model's `cudnn` feature calls.
#
# Usage:  source tools/cuda/env.sh
#         cargo build --profile device -p liverseg-cli --features cuda
#
# No GPU and no system CUDA are needed to build. Running a cuda build here
# (the CPU path of its tests) needs the driver stub first on the library
# path, as `cuda_run` below does:
#         cuda_run cargo test -p liverseg-model --features cuda
# On a GPU machine the binary needs libcudnn.so.9 beside the CUDA 13
# libraries; PyTorch's CUDA 13 wheels ship it under
# <site-packages>/nvidia/cudnn/lib (tools/device/check.sh finds it).

_liverseg_cuda_extra() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" || return 1
    # shellcheck source=tools/cuda/build-env.sh
    source "$here/build-env.sh" || return 1
    local venv="${LIVERSEG_CUDA_VENV:-/tmp/liverseg-cuda-venv}"
    # cuDNN 9 for CUDA 13. cudarc binds cuDNN 9.21's API, which every later
    # 9.x library provides; the binary records the SONAME libcudnn.so.9.
    local pkgs="nvidia-cudnn-cu13==9.28.1.4"
    if [ "$(cat "$venv/.liverseg-cudnn-pkgs" 2>/dev/null)" != "$pkgs" ]; then
        # --no-deps: its dependency, cuBLAS, is already pinned by build-env.sh.
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install -q --no-cache-dir --no-deps $pkgs \
            || { echo "cuda/env.sh: pip install $pkgs failed" >&2; return 1; }
        echo "$pkgs" > "$venv/.liverseg-cudnn-pkgs"
    fi
    local purelib cudnn
    purelib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    cudnn="$purelib/nvidia/cudnn/lib"
    [ -e "$cudnn/libcudnn.so.9" ] || { echo "cuda/env.sh: no libcudnn.so.9 under $cudnn" >&2; return 1; }
    # The unversioned link name the linker looks for, beside the toolkit's.
    ln -sf "$cudnn/libcudnn.so.9" "$CUDA_ROOT/lib/libcudnn.so" || return 1
    export LIVERSEG_CUDNN_LIB_DIR="$cudnn"
}

# Runs a command with the driver stub and the wheels' libraries on the
# library path, so a cuda build starts without a GPU (Device::new_cuda
# then fails cleanly). Never use it on a machine with a real GPU.
cuda_run() {
    LD_LIBRARY_PATH="$LIVERSEG_CUDA_STUB_RUNTIME_DIR:$LIVERSEG_CUDA_LIB_DIR:$LIVERSEG_CUDNN_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
}

if [ "${BASH_SOURCE[0]:-$0}" = "$0" ]; then
    echo "tools/cuda/env.sh must be sourced: source $0" >&2
    exit 1
fi
if _liverseg_cuda_extra; then
    unset -f _liverseg_cuda_extra
else
    unset -f _liverseg_cuda_extra
    return 1
fi
