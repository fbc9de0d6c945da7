# build-env.sh — set up a CUDA 13.0 *build* environment (no GPU, no system
# CUDA toolkit needed) so that `cargo build --release --features cuda` works for
# a crate that uses candle-core / candle-nn 0.11 with their `cuda` feature.
#
# The project's shared build script (../shared/tools/cuda-build-env.sh),
# kept here so a clean clone builds; tools/cuda/env.sh sources it and adds
# cuDNN. Usage:  source tools/cuda/build-env.sh   (must be sourced, not run)
#          cargo build --release --features cuda
#
# Everything comes from PyPI wheels (NVIDIA publishes nvcc, headers and the
# CUDA libraries there) installed into a Python venv:
#   $LIVERSEG_CUDA_VENV   venv location (default: liverseg-cuda-venv in /tmp),
#                         about 1.2 GiB once installed.
#   $CUDA_COMPUTE_CAP     GPU arch to compile candle's kernels for (default 90,
#                         i.e. H100/H200; there is no GPU here to detect it).
#
# Why CUDA 13.0 exactly: the GPU machines run driver 580 (CUDA 13.0). PTX made
# by a newer nvcc (13.1+) carries a newer PTX ISA version that driver 580
# refuses to load (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). So every wheel below is
# pinned to a 13.0 release, including nvidia-nvvm, which nvcc would otherwise
# pull in at its newest version.
#
# What the resulting binary needs at run time (on the GPU machine):
#   libcuda.so.1 (the driver's), libcudart.so.13, libcublas.so.13,
#   libcublasLt.so.13, libcurand.so.10 and, if NVRTC is used, libnvrtc.so.13.
#   PyTorch's CUDA 13 wheels ship all but libcuda under
#   <site-packages>/nvidia/cu13/lib; put that folder on LD_LIBRARY_PATH.
# On a machine without a GPU the binary will not even start (libcuda.so.1 is
# missing) unless LD_LIBRARY_PATH also holds $LIVERSEG_CUDA_STUB_RUNTIME_DIR
# (set below): it holds a libcuda.so.1 stub whose every call returns
# CUDA_ERROR_STUB_LIBRARY, so `Device::new_cuda(0)` fails cleanly. Never put
# that folder on the path on a machine with a real GPU.

# Do the work in a function so that `return` works and nothing leaks except the
# exported variables.
_liverseg_cuda_env() {
    local venv="${LIVERSEG_CUDA_VENV:-/tmp/liverseg-cuda-venv}"
    local py="${PYTHON:-python3}"

    # 1. The venv: only a private place for pip to install the wheels into.
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { echo "cuda-build-env: cannot create venv $venv" >&2; return 1; }
    fi

    # 2. The wheels, pinned to CUDA 13.0 (see above). What each one gives:
    #    nvidia-cuda-nvcc     nvcc, ptxas, fatbinary, nvlink (bin/)
    #    nvidia-nvvm          cicc + libdevice, the device compiler nvcc calls
    #    nvidia-cuda-crt      crt/ headers nvcc needs (host_config.h, ...)
    #    nvidia-cuda-runtime  cuda.h, cuda_runtime.h, cuda_fp16/bf16/fp8.h and
    #                         libcudart.so.13 (candle-kernels links cudart)
    #    nvidia-cuda-cccl     CCCL headers (cuda/std, cub, thrust) used by the
    #                         CUDA 13 headers
    #    nvidia-cuda-nvrtc    libnvrtc.so.13 (cudarc links nvrtc)
    #    nvidia-cublas        libcublas.so.13 + libcublasLt.so.13
    #    nvidia-curand        libcurand.so.10
    #    A marker file records the set, so re-sourcing skips pip.
    local pkgs="nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35"
    if [ "$(cat "$venv/.liverseg-cuda-pkgs" 2>/dev/null)" != "$pkgs" ]; then
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install -q --no-cache-dir $pkgs \
            || { echo "cuda-build-env: pip install failed" >&2; return 1; }
        echo "$pkgs" > "$venv/.liverseg-cuda-pkgs"
    fi

    # 3. The wheels all land in one toolkit-shaped folder, nvidia/cu13 under
    #    site-packages, with bin/ include/ lib/ nvvm/ like a real CUDA install.
    local purelib root
    purelib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    root="$purelib/nvidia/cu13"
    [ -x "$root/bin/nvcc" ] || { echo "cuda-build-env: no nvcc under $root" >&2; return 1; }

    # 4. Link-time names. The linker looks for libX.so, but wheels ship only the
    #    versioned libX.so.N files, so add the unversioned links a toolkit has.
    #    The binary still records the versioned SONAMEs (libcublas.so.13, ...).
    local l
    for l in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
        [ -e "$root/lib/$l" ] || { echo "cuda-build-env: missing $root/lib/$l" >&2; return 1; }
        ln -sf "$l" "$root/lib/${l%%.so*}.so"
    done

    # 5. libcuda.so is the driver itself: no wheel ships it, nor a link stub.
    #    An empty stub is not enough (the link fails with undefined cu*
    #    symbols), so build one that defines every driver API name declared in
    #    the wheel's cuda.h (preprocessed twice: once as applications see it,
    #    which gives the _v2/_v3 names cudarc binds, and once with
    #    __CUDA_API_VERSION_INTERNAL for the legacy names). Each returns 34,
    #    CUDA_ERROR_STUB_LIBRARY. Its SONAME is libcuda.so.1, so the binary asks
    #    for the real driver library at run time. It goes in lib/stubs, where
    #    cudarc's build script looks, as with a real toolkit.
    local stubs="$root/lib/stubs"
    if [ ! -e "$stubs/libcuda.so" ] || [ "$root/include/cuda.h" -nt "$stubs/libcuda.so" ]; then
        mkdir -p "$stubs" || return 1
        { echo '#include <cuda.h>' | ${CC:-cc} -E -P -I"$root/include" -x c -
          echo '#include <cuda.h>' | ${CC:-cc} -E -P -D__CUDA_API_VERSION_INTERNAL -I"$root/include" -x c -
        } | tr -s ' \n\t' ' ' | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' \
          | sed 's/[[:space:]]*($//' | sort -u \
          | awk '{ printf "int %s(void) { return 34; }\n", $1 }' > "$stubs/libcuda_stub.c" \
          || { echo "cuda-build-env: cannot list driver symbols from cuda.h" >&2; return 1; }
        ${CC:-cc} -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda_stub.c" \
            || { echo "cuda-build-env: cannot build libcuda stub" >&2; return 1; }
    fi
    # The same stub under its run-time name, for running cuda builds (tests)
    # on a machine with no driver; see the header. Not put on any path here.
    mkdir -p "$venv/cuda-stub-runtime" && ln -sf "$stubs/libcuda.so" "$venv/cuda-stub-runtime/libcuda.so.1"

    # 6. The variables the build scripts read:
    #    CUDA_ROOT/CUDA_HOME  cudarc's build.rs adds <root>/lib and <root>/lib/stubs
    #                         to the link search path; cudaforge (candle-kernels'
    #                         build helper) finds nvcc and include/ from them.
    #    PATH, NVCC           the nvcc that compiles candle's kernels to PTX
    #                         (and sm_XX code for its static MoE/GGUF kernels).
    #    CUDARC_CUDA_VERSION  pins cudarc's API level to 13.0 instead of parsing
    #                         `nvcc --version` (candle asks cudarc to detect it).
    #    CUDA_COMPUTE_CAP     target arch; cudaforge would ask nvidia-smi.
    #    Changing any of them re-runs candle-kernels' build script, which takes
    #    about 6 minutes on 2 cores, so keep them the same between builds.
    export CUDA_ROOT="$root"
    export CUDA_HOME="$root"
    export NVCC="$root/bin/nvcc"
    case ":$PATH:" in *":$root/bin:"*) ;; *) export PATH="$root/bin:$PATH" ;; esac
    export CUDARC_CUDA_VERSION=13000
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    # For running a cuda build here: LD_LIBRARY_PATH="$LIVERSEG_CUDA_STUB_RUNTIME_DIR:$LIVERSEG_CUDA_LIB_DIR"
    export LIVERSEG_CUDA_LIB_DIR="$root/lib"
    export LIVERSEG_CUDA_STUB_RUNTIME_DIR="$venv/cuda-stub-runtime"
    echo "cuda-build-env: nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CUDA_ROOT=$CUDA_ROOT, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
}

if [ "${BASH_SOURCE[0]:-$0}" = "$0" ] && [ -z "${ZSH_EVAL_CONTEXT:-}" ]; then
    echo "cuda-build-env.sh must be sourced: source ${0}" >&2
    exit 1
fi
if _liverseg_cuda_env; then
    unset -f _liverseg_cuda_env
else
    unset -f _liverseg_cuda_env
    return 1
fi
