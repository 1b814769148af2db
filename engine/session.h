// engine/session.h: one sequence being evaluated by a model on a backend: its KV cache, its position,
// and the forward pass that turns token ids into logits.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/status.h"

namespace pginfer {

// Evaluates tokens of one sequence, keeping keys and values of everything evaluated so far.
class Session {
 public:
  // Creates a session of `n_ctx` positions (0 means the model's training context) on `backend`, which
  // must have been prepared for `model`. Both must outlive the session.
  static Status create(const Model& model, Backend& backend, int64_t n_ctx, std::unique_ptr<Session>* out);

  // Evaluates `ids` at positions n_past() .. n_past() + ids.size() - 1 as one batch (internally in chunks
  // of at most max_batch() tokens). With all_logits, `logits` receives ids.size() rows of n_vocab values;
  // otherwise only the row of the last token. Errors: empty input, an id outside the vocabulary, or more
  // tokens than the context has room for (nothing is evaluated then).
  Status eval(std::span<const int32_t> ids, bool all_logits, std::vector<float>* logits);

  // Forgets every position from `n_past` on, so that they can be evaluated again.
  Status rewind(int64_t n_past);

  // Positions evaluated so far.
  int64_t n_past() const { return n_past_; }
  // Capacity in positions.
  int64_t n_ctx() const { return n_ctx_; }
  // Largest number of tokens evaluated in one forward pass.
  int64_t max_batch() const { return max_batch_; }
  // The model.
  const Model& model() const { return model_; }

 private:
  Session(const Model& model, Backend& backend) : model_(model), backend_(backend) {}
  Status forward(const int32_t* ids, int64_t n_tokens, bool all_logits, float* logits_out);

  const Model& model_;
  Backend& backend_;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  int64_t max_batch_ = 0;
  std::unique_ptr<KvCache> kv_;
  // Activations of one forward pass, sized for max_batch_ tokens.
  std::unique_ptr<ActivationBuffer> x_, xn_, q_, k_, v_, attn_, gate_, up_, logits_;
  std::vector<int32_t> positions_;
};

}  // namespace pginfer
