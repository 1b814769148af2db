// engine/executor.h: the transformer forward pass over a batch of sequences, written once for every
// backend and family. Tokens of all sequences go through the embedding, norms, products and feed-forward
// together (the weights are read once per pass); attention runs per sequence against that sequence's own
// KV cache. A Session is a one-sequence user of it; the engine's batching loop puts many sequences
// (prompt chunks and single decode tokens) into one pass.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/status.h"

namespace pginfer {

// One sequence's share of a forward pass.
struct SequenceChunk {
  KvCache* kv = nullptr;            // the sequence's cache (from Backend::create_kv_cache for this model)
  int64_t start = 0;                // position of the first token (the sequence's evaluated length)
  std::span<const int32_t> ids;     // tokens to evaluate, already checked against the vocabulary
  float* logits = nullptr;          // host memory for logits, or nullptr for none
  bool all_logits = false;          // logits of every token (ids.size() rows) instead of the last one only
  int32_t* argmax = nullptr;        // instead of logits: receives the argmax of the last token's (sampler.h)
};

// Runs forward passes of at most max_tokens() tokens; owns the activation buffers they need.
class Executor {
 public:
  // An executor for `model` on `backend` (prepared for it) for passes of up to `max_tokens` tokens.
  static Status create(const Model& model, Backend& backend, int64_t max_tokens, std::unique_ptr<Executor>* out);

  // Evaluates every chunk in one pass: writes their keys and values at positions start.. of their caches
  // and fills the logits they ask for. The chunks' tokens together must not exceed max_tokens(), and each
  // cache must have room for its chunk (the caller checks both). In each layer all chunks attend through one
  // Backend::attention_batch call, which gives what attending in chunk order gives, each chunk writing its
  // keys and values first: a chunk may read rows that an earlier chunk of the same pass writes (paged blocks
  // of a shared prefix), never rows that a later one writes, and no two chunks write the same row. The
  // scheduler orders chunks by the time their requests started and a shared block is written by one chunk
  // only, which guarantees that. Fails with the backend's health() when one of its operations failed during
  // the pass.
  Status forward(std::span<const SequenceChunk> chunks);

  // Largest number of tokens in one pass.
  int64_t max_tokens() const { return max_tokens_; }
  // Floats of activation memory create() allocates on the backend for `model` and `max_tokens`.
  static int64_t activation_floats(const ModelConfig& c, int64_t max_tokens);

 private:
  Executor(const Model& model, Backend& backend);

  // Rows of logits computed by one product (quantized output weights; see forward()).
  static constexpr int64_t kLogitRows = 64;

  // A row of logits a pass computes.
  struct LogitRow {
    int64_t token;   // index among the pass's tokens
    float* dst;      // host memory for its n_vocab logits, or null
    int32_t* best;   // else: where the index of its largest logit goes
  };

  // Issues the pass's embedding and layers (over ids_, positions_, attention_chunks_).
  void run_layers();
  // Issues the final norm and output product of logit rows r0 .. r0 + g - 1 of the pass, into logits_.
  void compute_logits(int64_t r0, int64_t g);
  // Reads those rows back to their destinations (their argmax only, for rows that ask for it).
  void read_logits(int64_t r0, int64_t g);

  const Model& model_;
  Backend& backend_;
  const uint64_t id_;  // PassShape::owner: a number no other executor of the process gets
  int64_t max_tokens_ = 0;
  int64_t logit_rows_ = 0;  // rows logits_ holds
  std::unique_ptr<ActivationBuffer> x_, xn_, q_, k_, v_, attn_, gate_, up_, logits_;
  std::vector<int32_t> ids_, positions_;
  std::vector<AttentionChunk> attention_chunks_;  // the pass's non-empty chunks, for attention_batch
  std::vector<LogitRow> logit_requests_;      // the rows of logits the pass's chunks ask for, in order
  std::vector<int64_t> logit_tokens_;             // their tokens, for an announced pass (PassShape::logit_tokens)
  std::vector<int32_t> best_ids_;                 // argmax rows' results, before they go to their chunks
  std::vector<float> host_rows_;                  // argmax rows read back when the backend has no argmax_rows
};

}  // namespace pginfer
