// engine/session.cpp: the transformer forward pass, written once for every backend and family.
#include "engine/session.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace pginfer {

namespace {

// Tokens per forward pass; longer inputs are split (llama.cpp's default micro-batch is 512 too).
constexpr int64_t kMaxBatch = 512;

}  // namespace

Status Session::create(const Model& model, Backend& backend, int64_t n_ctx, std::unique_ptr<Session>* out) {
  const ModelConfig& c = model.config();
  if (n_ctx <= 0) n_ctx = c.n_ctx_train;
  if (n_ctx > (int64_t)1 << 24) return invalid_argument("context length " + std::to_string(n_ctx) + " is too large");
  std::unique_ptr<Session> s(new Session(model, backend));
  s->n_ctx_ = n_ctx;
  s->max_batch_ = std::min(kMaxBatch, n_ctx);
  const int64_t B = s->max_batch_;
  PGI_RETURN_IF_ERROR(backend.create_kv_cache(c.n_layer, n_ctx, c.kv_dim(), &s->kv_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_embd, &s->x_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * std::max(c.n_embd, c.q_dim()), &s->xn_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.q_dim(), &s->q_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.kv_dim(), &s->k_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.kv_dim(), &s->v_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.q_dim(), &s->attn_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_ff, &s->gate_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_ff, &s->up_));
  PGI_RETURN_IF_ERROR(backend.alloc(c.n_vocab, &s->logits_));
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
  for (int64_t done = 0; done < n;) {
    const int64_t chunk = std::min(max_batch_, n - done);
    const bool last_chunk = done + chunk == n;
    float* out = all_logits ? logits->data() + done * n_vocab : (last_chunk ? logits->data() : nullptr);
    PGI_RETURN_IF_ERROR(forward(ids.data() + done, chunk, all_logits, out));
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

Status Session::forward(const int32_t* ids, int64_t n, bool all_logits, float* logits_out) {
  const ModelConfig& c = model_.config();
  Backend& be = backend_;
  positions_.resize(n);
  for (int64_t i = 0; i < n; ++i) positions_[i] = (int32_t)(n_past_ + i);

  float* x = x_->data();
  float* xn = xn_->data();
  float* q = q_->data();
  float* k = k_->data();
  float* v = v_->data();
  float* attn = attn_->data();
  float* gate = gate_->data();
  float* up = up_->data();

  RopeParams rope;
  rope.style = c.arch->rope_style;
  rope.n_rot = c.n_rot;
  rope.freq_base = c.rope_freq_base;
  rope.freq_scale = c.rope_freq_scale;
  rope.freq_factors = model_.rope_freqs();
  AttentionParams ap;
  ap.n_head = c.n_head;
  ap.n_head_kv = c.n_head_kv;
  ap.head_dim = c.head_dim;
  ap.scale = 1.0f / std::sqrt((float)c.head_dim);

  be.embed(model_.token_embd(), ids, n, x);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = model_.layers()[il];
    // Attention block: x += wo * attention(rope(wq * norm(x)), rope(wk * norm(x)), wv * norm(x)).
    be.rms_norm(x, *L.attn_norm, c.norm_eps, n, c.n_embd, xn);
    be.matmul(*L.wq, L.bq, xn, n, q);
    be.matmul(*L.wk, L.bk, xn, n, k);
    be.matmul(*L.wv, L.bv, xn, n, v);
    be.rope(q, positions_.data(), n, c.n_head, c.head_dim, rope);
    be.rope(k, positions_.data(), n, c.n_head_kv, c.head_dim, rope);
    be.attention(*kv_, il, q, k, v, positions_.data(), n, ap, attn);
    be.matmul(*L.wo, L.bo, attn, n, xn);
    be.add(x, xn, n * c.n_embd, x);
    // Feed-forward block: x += down(silu(gate * norm(x)) * (up * norm(x))).
    be.rms_norm(x, *L.ffn_norm, c.norm_eps, n, c.n_embd, xn);
    be.matmul(*L.ffn_gate, nullptr, xn, n, gate);
    be.matmul(*L.ffn_up, nullptr, xn, n, up);
    be.swiglu(gate, up, n * c.n_ff, gate);
    be.matmul(*L.ffn_down, nullptr, gate, n, xn);
    be.add(x, xn, n * c.n_embd, x);
  }
  n_past_ += n;

  if (logits_out == nullptr) return Status::ok_status();
  // Logits of every token, or of the last one only.
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  be.rms_norm(x + first * c.n_embd, model_.output_norm(), c.norm_eps, rows, c.n_embd, xn);
  if (rows == 1) {
    be.matmul(model_.output(), nullptr, xn, 1, logits_->data());
    be.read(logits_->data(), c.n_vocab, logits_out);
  } else {
    // Every token's logits go through the one-token product, so scoring rounds exactly as generation
    // does; the output matrix stays in cache between tokens of a small vocabulary.
    for (int64_t t = 0; t < rows; ++t) {
      be.matmul(model_.output(), nullptr, xn + t * c.n_embd, 1, logits_->data());
      be.read(logits_->data(), c.n_vocab, logits_out + t * c.n_vocab);
    }
  }
  return Status::ok_status();
}

}  // namespace pginfer
