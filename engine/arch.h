// engine/arch.h: the table of model families (architectures) and their per-family options.
//
// A family is a row of data, not a fork of the model code: the forward pass (forward.cpp) reads these
// options. Adding a family (phi3, gemma, ...) means adding a row and, only when it needs a new kind of
// operation, a new option.
#pragma once

#include <string_view>

namespace pginfer {

// How rotary position embedding pairs the dimensions of a head.
enum class RopeStyle {
  Normal,  // adjacent pairs (x[2i], x[2i+1]): GGML's mode 0, used by llama-family GGUFs
  Neox,    // halves (x[i], x[i + d/2]): GGML's NEOX mode, used by qwen2, phi3, gemma
};

// Options of one model family.
struct ArchOptions {
  const char* name;           // general.architecture value, also the metadata key prefix
  RopeStyle rope_style;       // pairing of rotary dimensions
  bool attn_qkv_bias;         // q/k/v projections have biases (blk.N.attn_{q,k,v}.bias)
  bool attn_output_bias;      // the output projection has a bias
  bool output_may_be_tied;    // output.weight may be absent, then token_embd.weight is reused
  double default_rope_base;   // rope.freq_base when the file does not say
  double default_norm_eps;    // attention.layer_norm_rms_epsilon when the file does not say
};

// The options of family `name`, or nullptr when we do not support it.
const ArchOptions* find_arch(std::string_view name);

// Comma-separated list of supported family names, for error messages.
const char* supported_arch_names();

}  // namespace pginfer
