// engine/session.cpp: one sequence: its cache, its position, evaluation in chunks of Backend::pass_tokens().
#include "engine/session.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace pginfer {

Status Session::create(const Model& model, Backend& backend, int64_t n_ctx, std::unique_ptr<Session>* out) {
  const ModelConfig& c = model.config();
  if (n_ctx <= 0) n_ctx = c.n_ctx_train;
  if (n_ctx > (int64_t)1 << 24) return invalid_argument("context length " + std::to_string(n_ctx) + " is too large");
  std::unique_ptr<Session> s(new Session(model, backend));
  s->n_ctx_ = n_ctx;
  // Tokens per forward pass, as the backend prefers; longer inputs are split.
  s->max_batch_ = std::min(std::max<int64_t>(1, backend.pass_tokens()), n_ctx);
  PGI_RETURN_IF_ERROR(backend.create_kv_cache(c.n_layer, n_ctx, c.kv_dim(), &s->kv_));
  *out = std::move(s);
  return Status::ok_status();
}

Status Session::eval(std::span<const int32_t> ids, bool all_logits, std::vector<float>* logits) {
  const int64_t n = (int64_t)ids.size();
  const int64_t n_vocab = model_.config().n_vocab;
  if (n == 0) return invalid_argument("no tokens to evaluate");
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= n_vocab) {
      return invalid_argument("token id " + std::to_string(ids[i]) + " is outside the vocabulary of " +
                              std::to_string(n_vocab) + " tokens");
    }
  }
  if (n > n_ctx_ - n_past_) {
    return invalid_argument(std::to_string(n) + " tokens do not fit in the context: " +
                            std::to_string(n_past_) + " of " + std::to_string(n_ctx_) +
                            " positions are in use");
  }
  try {
    logits->assign((all_logits ? n : 1) * n_vocab, 0.0f);
  } catch (const std::bad_alloc&) {
    return out_of_memory("cannot allocate logits for " + std::to_string(n) + " tokens");
  }
  if (executor_ == nullptr) PGI_RETURN_IF_ERROR(Executor::create(model_, backend_, max_batch_, &executor_));
  for (int64_t done = 0; done < n;) {
    const int64_t chunk = std::min(max_batch_, n - done);
    const bool last_chunk = done + chunk == n;
    float* out = all_logits ? logits->data() + done * n_vocab : (last_chunk ? logits->data() : nullptr);
    SequenceChunk ch;
    ch.kv = kv_.get();
    ch.start = n_past_;
    ch.ids = ids.subspan(done, chunk);
    ch.logits = out;
    ch.all_logits = all_logits;
    PGI_RETURN_IF_ERROR(executor_->forward(std::span<const SequenceChunk>(&ch, 1)));
    n_past_ += chunk;
    done += chunk;
  }
  return Status::ok_status();
}

Status Session::rewind(int64_t n_past) {
  if (n_past < 0 || n_past > n_past_) {
    return invalid_argument("cannot rewind to position " + std::to_string(n_past));
  }
  n_past_ = n_past;
  return Status::ok_status();
}

}  // namespace pginfer
