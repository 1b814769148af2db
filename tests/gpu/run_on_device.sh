#!/usr/bin/env bash
# tests/gpu/run_on_device.sh: runs the GPU suites and the GPU decode benchmark on a machine with an NVIDIA GPU,
# writing everything to $OUT (or /tmp/gpu-out). Prefers the prebuilt bundle (tests/gpu/make_bundle.sh,
# build-gpu-bundle/); when its binaries cannot run there (driver older than the bundle's CUDA runtime, no
# cuBLAS), it builds with that machine's own toolkit instead (cmake, nvcc, OpenBLAS and GTest needed).
#   tests/gpu/run_on_device.sh [--no-bench] [--build]
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
log=$out/log.txt
bench=1
force_build=0
for a in "$@"; do
  case $a in
    --no-bench) bench=0 ;;
    --build) force_build=1 ;;
  esac
done
say() { echo "$@" | tee -a "$log"; }
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

say "== environment"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$log"
say "nvcc: $(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1 || echo none)"
say "cublas: $(ldconfig -p 2>/dev/null | grep -o '/[^ ]*libcublas.so[^ ]*' | head -3 | tr '\n' ' ')"
ls -d /usr/local/cuda* 2>/dev/null | tee -a "$log"
say "cores: $(nproc)"

bundle=$root/build-gpu-bundle
bin=$bundle/bin
export PG_INFER_SHARED_DIR=$bundle/shared
mkdir -p "$PG_INFER_SHARED_DIR" && ln -sfn "$bundle/vocab" "$PG_INFER_SHARED_DIR/vocab"
# cuBLAS: the toolkit's, else any copy on the machine (a Python wheel's, say).
cublas_dir=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublas.so.13" ] && cublas_dir=$d && break
done
if [ -z "$cublas_dir" ]; then
  f=$(find / -xdev -name 'libcublas.so.13*' 2>/dev/null | head -1)
  [ -n "$f" ] && cublas_dir=$(dirname "$f")
fi
say "libcublas.so.13 in: ${cublas_dir:-nowhere}"
export LD_LIBRARY_PATH=$bundle/lib${cublas_dir:+:$cublas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

probe() { "$bin/cuda_model_test" --gtest_filter='CudaBackendLoading.*' 2>&1 | grep -E "unavailable|OK|FAIL" | head -3; }
use_build=$force_build
if [ $use_build = 0 ]; then
  p=$(probe)
  say "bundle probe: $p"
  if ! echo "$p" | grep -q "OK" || echo "$p" | grep -q "unavailable"; then use_build=1; fi
fi
if [ $use_build = 1 ]; then
  nvcc_bin=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
  if [ -z "$nvcc_bin" ]; then say "no nvcc here: cannot build either"; exit 3; fi
  say "== building here with $nvcc_bin ($(elapsed) s)"
  b=$root/build-device
  cmake -S "$root" -B "$b" -DCMAKE_BUILD_TYPE=Release -DPG_INFER_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
    -DCMAKE_CUDA_ARCHITECTURES=90 >> "$log" 2>&1 || { say "configure failed"; tail -30 "$log"; exit 4; }
  cmake --build "$b" -j"$(nproc)" --target cuda_ops_test cuda_model_test cuda_batcher_test bench_gpu \
    common_kernels_test infer >> "$log" 2>&1 || { say "build failed"; grep -E "error" "$log" | head -30; exit 5; }
  mkdir -p "$b/bin" && cp "$b"/tests/gpu/{cuda_ops_test,cuda_model_test,cuda_batcher_test,bench_gpu} \
    "$b"/tests/common_kernels_test \
    "$b"/infer "$b"/libpginfer_cuda.so "$b/bin/"
  bin=$b/bin
  say "built ($(elapsed) s): $(probe)"
fi

# The benchmark's models are written in the background while the suites run (mostly on the GPU).
synth_pid=""
if [ $bench = 1 ]; then
  ( "$bin/infer" synth --shape tinyllama-1.1b --type F16 --vocab "$bundle/vocab/ggml-vocab-llama-spm.gguf" \
      -o /tmp/tinyllama-1.1b-F16.gguf --seed 1 &&
    "$bin/infer" synth --shape qwen2-0.5b --type Q8_0 --vocab "$bundle/vocab/ggml-vocab-gpt-2.gguf" \
      -o /tmp/qwen2-0.5b-Q8_0.gguf --seed 1 ) > "$out/synth.txt" 2>&1 &
  synth_pid=$!
fi

say "== infer generate --device (tiny Q4_K, 24 greedy tokens) ($(elapsed) s)"
"$bin/infer" synth --shape tiny --type Q4_K --vocab "$bundle/vocab/ggml-vocab-llama-spm.gguf" -o /tmp/tiny-q4k.gguf \
  > /dev/null 2>&1
for d in cpu cuda auto; do
  say "$d: $("$bin/infer" generate -m /tmp/tiny-q4k.gguf --prompt-ids "1 450 4996 17354" -n 24 --ids --device $d 2>&1)"
done

say "== common_kernels_test ($(elapsed) s)"
"$bin/common_kernels_test" 2>&1 | tail -3 | tee -a "$log"
say "== cuda_ops_test ($(elapsed) s)"
timeout 120 "$bin/cuda_ops_test" > "$out/cuda_ops_test.txt" 2>&1; say "rc=$?"
grep -E "^\[ +(NMSE|OK|FAILED|PASSED|SKIPPED) +\]|Failure|Expected|Which is|actual" "$out/cuda_ops_test.txt" | grep -v "^\[ NMSE" | tail -30 | tee -a "$log"
say "== cuda_model_test ($(elapsed) s)"
timeout 150 "$bin/cuda_model_test" > "$out/cuda_model_test.txt" 2>&1; rc=$?; say "rc=$rc"
grep -E "AGREE|GRAPHS|FAILED|PASSED|SKIPPED|Failure|Expected|Which is" "$out/cuda_model_test.txt" | tail -45 | tee -a "$log"
if [ $rc != 0 ]; then
  # Failures: again without CUDA graphs, to tell theirs from the kernels'.
  say "== cuda_model_test without CUDA graphs ($(elapsed) s)"
  PG_INFER_TEST_GRAPHS=0 timeout 150 "$bin/cuda_model_test" --gtest_filter='-CudaGraphs.*' \
    > "$out/cuda_model_test_nographs.txt" 2>&1; say "rc=$?"
  grep -E "FAILED|PASSED|Failure" "$out/cuda_model_test_nographs.txt" | tail -12 | tee -a "$log"
fi
say "== cuda_batcher_test ($(elapsed) s)"
if [ -x "$bin/cuda_batcher_test" ]; then
  timeout 120 "$bin/cuda_batcher_test" > "$out/cuda_batcher_test.txt" 2>&1; say "rc=$?"
  grep -E "AGREE|GRAPHS|FAILED|PASSED|SKIPPED|Failure|Expected|Which is|differ" "$out/cuda_batcher_test.txt" | tail -30 | tee -a "$log"
else
  say "no cuda_batcher_test in $bin (a bundle older than the test: run with --build)"
fi
if [ $bench = 1 ]; then
  say "== bench_gpu ($(elapsed) s)"
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  peak=3350
  case $name in *H200*) peak=4800 ;; *H100*PCIe*) peak=2000 ;; *A100*) peak=2039 ;; esac
  wait $synth_pid; say "models written ($(elapsed) s): $(tail -2 "$out/synth.txt" | tr '\n' ' ')"
  left=$(( ${BUDGET_S:-190} - $(elapsed) ))
  [ $left -lt 20 ] && { say "no time left for the benchmark"; exit 0; }
  timeout $left "$bin/bench_gpu" --vocab-dir "$bundle/vocab" --work /tmp --peak-gbs $peak --prompt 2048 --gen 64 \
    2>&1 | tee "$out/bench_gpu.txt" | tee -a "$log"
  rc=${PIPESTATUS[0]}
  say "rc=$rc"
  # A crash (signal) with CUDA graphs: the figures without them, so that the run still measures something.
  left=$(( ${BUDGET_S:-190} - $(elapsed) ))
  if [ "$rc" -ge 128 ] && [ "$rc" != 124 ] && [ $left -ge 60 ]; then
    say "== bench_gpu --graphs 0 ($(elapsed) s)"
    timeout $left "$bin/bench_gpu" --vocab-dir "$bundle/vocab" --work /tmp --peak-gbs $peak --prompt 2048 --gen 64 \
      --graphs 0 2>&1 | tee "$out/bench_gpu_nographs.txt" | tee -a "$log"
  fi
  # Where a prefill and a decode spend their time, by operation (each timed to completion).
  say "== infer bench --profile, tinyllama-1.1b F16 on the GPU ($(elapsed) s)"
  timeout 60 "$bin/infer" bench -m /tmp/tinyllama-1.1b-F16.gguf --device cuda --prompt 2048 --gen 16 --profile 2>&1 \
    | tee "$out/profile.txt" | tee -a "$log" > /dev/null
  # The peer: HF transformers on the same shape (the device image has torch and transformers).
  left=$(( ${BUDGET_S:-190} - $(elapsed) ))
  if [ $left -ge 30 ] && command -v python3 >/dev/null; then
    say "== bench_hf ($(elapsed) s)"
    PYTHONUNBUFFERED=1 timeout $left python3 "$root/tests/bench/bench_hf.py" --infer "$bin/infer" \
      --model /tmp/tinyllama-1.1b-F16.gguf --ours "$out/bench_gpu.txt" 2>&1 | tail -8 | tee -a "$log"
  fi
fi
say "== done in $(elapsed) s"
