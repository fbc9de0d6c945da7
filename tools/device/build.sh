#!/usr/bin/env bash
# tools/device/build.sh — builds what a GPU machine is lent to run:
#   target/device/liverseg                    the CUDA binary (device profile)
#   target/device/fallback/libcurand.so.10    a stand-in for cuRAND
# and prints their sizes (the device tool carries at most 64 MiB).
#
# The fallback: candle opens cuRAND when it opens a CUDA device, but
# liverseg never draws random numbers on the GPU (initial weights and
# noise are made on the CPU). PyTorch's CUDA 13 wheels may not ship cuRAND
# (132 MB, too large to carry), so check.sh puts this small library last
# on the library path: creating, seeding and destroying a generator
# succeed, generating fails with CURAND_STATUS_NOT_INITIALIZED. A real
# libcurand.so.10, when the machine has one, comes first and is used.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
# shellcheck source=tools/cuda/env.sh
source tools/cuda/env.sh
cargo build --profile device -p liverseg-cli --features cuda

fallback=target/device/fallback
mkdir -p "$fallback"
cat > "$fallback/curand_fallback.c" <<'C'
/* The cuRAND entry points candle's CudaRng calls; see tools/device/build.sh. */
typedef int curandStatus_t;
typedef void *curandGenerator_t;
#define OK 0
#define NOT_INITIALIZED 201
curandStatus_t curandCreateGenerator(curandGenerator_t *g, int type) { (void)type; *g = (void *)1; return OK; }
curandStatus_t curandDestroyGenerator(curandGenerator_t g) { (void)g; return OK; }
curandStatus_t curandSetPseudoRandomGeneratorSeed(curandGenerator_t g, unsigned long long s) { (void)g; (void)s; return OK; }
curandStatus_t curandSetStream(curandGenerator_t g, void *s) { (void)g; (void)s; return OK; }
curandStatus_t curandGenerateUniform(void) { return NOT_INITIALIZED; }
curandStatus_t curandGenerateUniformDouble(void) { return NOT_INITIALIZED; }
curandStatus_t curandGenerateNormal(void) { return NOT_INITIALIZED; }
curandStatus_t curandGenerateNormalDouble(void) { return NOT_INITIALIZED; }
C
# The binary asks for these symbols at version node libcurand.so.10.
printf 'libcurand.so.10 { global: curand*; local: *; };\n' > "$fallback/curand.map"
${CC:-cc} -shared -fPIC -O1 -Wl,-soname,libcurand.so.10 -Wl,--version-script="$fallback/curand.map" \
    -o "$fallback/libcurand.so.10" "$fallback/curand_fallback.c"
missing="$(nm -D --undefined-only target/device/liverseg | sed -n 's/.*U \(curand[A-Za-z]*\)@libcurand.so.10/\1/p' \
    | while read -r sym; do nm -D --defined-only "$fallback/libcurand.so.10" | grep -q " $sym@" || echo "$sym"; done)"
[ -z "$missing" ] || { echo "build.sh: the fallback lacks: $missing" >&2; exit 1; }
ls -l target/device/liverseg "$fallback/libcurand.so.10"
echo "carry: target/device/liverseg target/device/fallback"
