// engine/synth.h: random-weight models of realistic shapes, written as GGUF files.
//
// They stand in for trained models in tests and benchmarks: same tensor names, shapes, types and metadata
// as a real download of that family, a real tokenizer copied from a vocab GGUF, and weights scaled so that
// activations stay of order one through every layer and greedy output is varied rather than one token
// repeated. Weights depend only on the seed (our own generator), so a seed gives the same file everywhere.
#pragma once

#include <cstdint>
#include <string>

#include "engine/status.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// The shape of a synthetic model.
struct SynthShape {
  const char* name;       // as given to --shape
  const char* arch;       // architecture table row
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
  float rope_base;        // rope.freq_base
  float norm_eps;         // attention.layer_norm_rms_epsilon
  bool tied_output;       // no output.weight: the embedding matrix is reused
  bool llama3_rope;       // writes rope_freqs.weight with Llama 3's scaling (factor 8, 8192 original)
};

// The shape called `name`, or nullptr.
const SynthShape* find_synth_shape(const std::string& name);
// Comma-separated names of every shape, for usage messages.
std::string synth_shape_names();

// What to write.
struct SynthOptions {
  std::string shape;       // a shape name
  TensorType type = TensorType::F16;  // type of the 2-D weight matrices (norms and biases stay F32)
  std::string vocab_path;  // GGUF whose tokenizer.* metadata is copied (sets the vocabulary size)
  uint64_t seed = 1;
  int threads = 0;         // 0: one per core
};

// Writes the model to `out_path`. Matrices whose rows do not split into blocks of `type` (K-quants need
// multiples of 256) are written as Q8_0 instead, as llama.cpp's quantizer falls back for such rows.
Status write_synthetic_model(const SynthOptions& options, const std::string& out_path);

// Converts every 2-D weight matrix of the model at `in_path` to `type` (with the same fallback), keeps
// other tensors and all metadata, and writes `out_path`.
Status convert_model(const std::string& in_path, const std::string& out_path, TensorType type, int threads);

// llama.cpp's general.file_type number for a model whose matrices are `type`.
uint32_t file_type_for(TensorType type);

}  // namespace pginfer
