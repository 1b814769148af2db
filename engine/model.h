// engine/model.h: a loaded model: its hyperparameters (ModelConfig) and its weights (views into the GGUF
// memory map), validated against each other so that the forward pass can trust every shape.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/arch.h"
#include "engine/gguf.h"
#include "engine/status.h"

namespace pginfer {

// Hyperparameters read from a GGUF file's metadata (keys prefixed by the architecture name).
struct ModelConfig {
  std::string arch_name;            // general.architecture
  const ArchOptions* arch = nullptr;  // its row in the architecture table
  int64_t n_vocab = 0;              // rows of token_embd.weight
  int64_t n_embd = 0;               // embedding_length
  int64_t n_layer = 0;              // block_count
  int64_t n_head = 0;               // attention.head_count
  int64_t n_head_kv = 0;            // attention.head_count_kv (GQA); defaults to n_head
  int64_t head_dim = 0;             // attention.key_length; defaults to n_embd / n_head
  int64_t n_ff = 0;                 // feed_forward_length
  int64_t n_ctx_train = 0;          // context_length
  int64_t n_rot = 0;                // rope.dimension_count; defaults to head_dim
  float norm_eps = 1e-5f;           // attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  // rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / rope.scaling.factor for linear scaling, else 1
  std::string rope_scaling = "none";  // rope.scaling.type as read ("none", "linear"); llama3 scaling
                                      // comes as the rope_freqs.weight tensor instead

  // Width of the query projection (n_head * head_dim) and of the key/value projections.
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// The weights of one transformer block. Optional tensors are nullptr when absent.
struct LayerWeights {
  const GgufTensor* attn_norm = nullptr;
  const GgufTensor* wq = nullptr;
  const GgufTensor* wk = nullptr;
  const GgufTensor* wv = nullptr;
  const GgufTensor* wo = nullptr;
  const GgufTensor* bq = nullptr;  // optional (required when the family has q/k/v biases)
  const GgufTensor* bk = nullptr;
  const GgufTensor* bv = nullptr;
  const GgufTensor* bo = nullptr;  // optional
  const GgufTensor* ffn_norm = nullptr;
  const GgufTensor* ffn_gate = nullptr;
  const GgufTensor* ffn_up = nullptr;
  const GgufTensor* ffn_down = nullptr;
};

// A model opened from a GGUF file. Immutable after load and shared by every session that uses it.
class Model {
 public:
  // Opens `path`, checks the architecture, reads the hyperparameters and finds and checks every weight.
  static Status load(const std::string& path, std::unique_ptr<Model>* out);
  // Builds a model over an already opened file (takes ownership).
  static Status from_file(std::unique_ptr<GgufFile> file, std::unique_ptr<Model>* out);

  // Hyperparameters.
  const ModelConfig& config() const { return config_; }
  // The underlying file (metadata, tensors).
  const GgufFile& file() const { return *file_; }
  // Global weights; `output` is token_embd when the output matrix is tied.
  const GgufTensor& token_embd() const { return *token_embd_; }
  const GgufTensor& output_norm() const { return *output_norm_; }
  const GgufTensor& output() const { return *output_; }
  // Whether the output matrix is the embedding matrix.
  bool output_tied() const { return output_ == token_embd_; }
  // Per-dimension-pair rope frequency divisors (llama3 scaling), or nullptr.
  const GgufTensor* rope_freqs() const { return rope_freqs_; }
  // Block weights, n_layer of them.
  const std::vector<LayerWeights>& layers() const { return layers_; }

  // A number no other model of the process gets: backends know the models they prepared by it (an address, of the
  // model or of its tensors, may be reused by a later model).
  uint64_t serial() const { return serial_; }

  // Number of weight values in the file (every tensor counted once).
  int64_t parameter_count() const;
  // The most common type among 2-D weight matrices, by parameter count ("q8_0", ...).
  TensorType main_weight_type() const;

 private:
  Model();
  Status read_config();
  Status bind_weights();

  const uint64_t serial_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  const GgufTensor* token_embd_ = nullptr;
  const GgufTensor* output_norm_ = nullptr;
  const GgufTensor* output_ = nullptr;
  const GgufTensor* rope_freqs_ = nullptr;
  std::vector<LayerWeights> layers_;
};

}  // namespace pginfer
