#!/usr/bin/env bash
# Sets everything up and runs the main job on the built-in default: installs dependencies, builds, writes a
# synthetic TinyLlama-1.1B-shaped Q8_0 model (random weights, the real Llama 2 vocabulary from ../shared),
# prints what it is, generates 32 tokens greedily and measures speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
make -j"$(nproc)"
model="${PG_INFER_DEMO_MODEL:-build/demo-tinyllama-1.1b-q8_0.gguf}"
if [ ! -f "$model" ]; then
  build/infer synth --shape tinyllama-1.1b --type Q8_0 --vocab ../shared/vocab/ggml-vocab-llama-spm.gguf -o "$model"
fi
build/infer info -m "$model"
echo "generated token ids:"
build/infer generate -m "$model" --prompt-ids "1 450 4996 17354 1701 29916" -n 32 --ids
build/infer bench -m "$model" --prompt 128 --gen 32 --json
