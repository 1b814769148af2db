// engine/session.h: one sequence being evaluated by a model on a backend: its KV cache and its position.
// It evaluates tokens with its own executor (engine/executor.h), or lends its cache to a shared executor
// that batches many sequences (then the caller advances its position).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/executor.h"
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

  // The sequence's KV cache, for a shared executor's chunks.
  KvCache& kv() { return *kv_; }
  // Marks `n` more positions as evaluated (after a shared executor evaluated them); n must fit.
  void advance(int64_t n) { n_past_ += n; }

 private:
  Session(const Model& model, Backend& backend) : model_(model), backend_(backend) {}

  const Model& model_;
  Backend& backend_;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  int64_t max_batch_ = 0;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Executor> executor_;  // created on the first eval
};

}  // namespace pginfer
