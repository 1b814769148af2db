#!/usr/bin/env bash
# tests/gpu/make_bundle.sh: packs what the GPU suites need to run on another machine (the device machine of
# run_on_device.sh) into build-gpu-bundle/: the test and benchmark binaries, the CUDA module next to them,
# OpenBLAS and its Fortran runtime (which that machine may lack), and the two vocabularies the synthetic models
# copy. cuBLAS is not bundled (hundreds of MiB): the device machine's CUDA toolkit provides it.
#   tests/gpu/make_bundle.sh [BUILD_DIR]   (default build-cuda)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-cuda}
out=$root/build-gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/vocab"
for f in tests/gpu/cuda_ops_test tests/gpu/cuda_model_test tests/gpu/cuda_batcher_test tests/gpu/bench_gpu \
         tests/common_kernels_test infer \
         libpginfer_cuda.so; do
  cp "$build/$f" "$out/bin/"
done
strip --strip-unneeded "$out"/bin/* 2>/dev/null || true
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libstdc++.so.6 libgcc_s.so.1; do
  cp -L "$(ldconfig -p | awk -v l=$lib '$1 == l {print $NF; exit}')" "$out/lib/$lib"
done
cp "$root/../shared/vocab/ggml-vocab-llama-spm.gguf" "$root/../shared/vocab/ggml-vocab-gpt-2.gguf" "$out/vocab/"
du -sh "$out"
