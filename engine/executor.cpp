// engine/executor.cpp: the forward pass over a batch of sequence chunks.
#include "engine/executor.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace pginfer {

int64_t Executor::activation_floats(const ModelConfig& c, int64_t max_tokens) {
  const int64_t B = max_tokens;
  return B * (c.n_embd + std::max(c.n_embd, c.q_dim()) + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff) +
         std::min(max_tokens, kLogitRows) * c.n_vocab;
}

Status Executor::create(const Model& model, Backend& backend, int64_t max_tokens, std::unique_ptr<Executor>* out) {
  const ModelConfig& c = model.config();
  if (max_tokens <= 0) return invalid_argument("an executor needs room for at least one token");
  std::unique_ptr<Executor> e(new Executor(model, backend));
  e->max_tokens_ = max_tokens;
  const int64_t B = max_tokens;
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_embd, &e->x_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * std::max(c.n_embd, c.q_dim()), &e->xn_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.q_dim(), &e->q_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.kv_dim(), &e->k_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.kv_dim(), &e->v_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.q_dim(), &e->attn_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_ff, &e->gate_));
  PGI_RETURN_IF_ERROR(backend.alloc(B * c.n_ff, &e->up_));
  e->logit_rows_ = std::min(max_tokens, kLogitRows);
  PGI_RETURN_IF_ERROR(backend.alloc(e->logit_rows_ * c.n_vocab, &e->logits_));
  *out = std::move(e);
  return Status::ok_status();
}

Status Executor::forward(std::span<const SequenceChunk> chunks) {
  const ModelConfig& c = model_.config();
  Backend& be = backend_;
  // All tokens of the pass, and each one's position in its own sequence.
  ids_.clear();
  positions_.clear();
  for (const SequenceChunk& ch : chunks) {
    for (size_t i = 0; i < ch.ids.size(); ++i) {
      ids_.push_back(ch.ids[i]);
      positions_.push_back((int32_t)(ch.start + (int64_t)i));
    }
  }
  const int64_t n = (int64_t)ids_.size();
  if (n == 0) return Status::ok_status();
  if (n > max_tokens_) {
    return internal_error("a forward pass of " + std::to_string(n) + " tokens exceeds the executor's " +
                          std::to_string(max_tokens_));
  }

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

  be.embed(model_.token_embd(), ids_.data(), n, x);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = model_.layers()[il];
    // Attention block: x += wo * attention(rope(wq * norm(x)), rope(wk * norm(x)), wv * norm(x)).
    be.rms_norm(x, *L.attn_norm, c.norm_eps, n, c.n_embd, xn);
    be.matmul(*L.wq, L.bq, xn, n, q);
    be.matmul(*L.wk, L.bk, xn, n, k);
    be.matmul(*L.wv, L.bv, xn, n, v);
    be.rope(q, positions_.data(), n, c.n_head, c.head_dim, rope);
    be.rope(k, positions_.data(), n, c.n_head_kv, c.head_dim, rope);
    // Each sequence attends to its own cache.
    int64_t offset = 0;
    for (const SequenceChunk& ch : chunks) {
      const int64_t m = (int64_t)ch.ids.size();
      if (m == 0) continue;
      be.attention(*ch.kv, il, q + offset * c.q_dim(), k + offset * c.kv_dim(), v + offset * c.kv_dim(),
                   positions_.data() + offset, m, ap, attn + offset * c.q_dim());
      offset += m;
    }
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

  // Logits of the rows the chunks ask for. Quantized output weights take the rows in groups through one
  // product (the integer kernels round every token on its own, so a row's logits do not depend on its
  // neighbours); float output weights would go through sgemm tiles that sum in another order, so their
  // rows go one at a time, rounding exactly as single-token generation does.
  struct LogitRow {
    int64_t token;  // index among the pass's tokens
    float* dst;     // where its n_vocab logits go
  };
  std::vector<LogitRow> rows;
  int64_t offset = 0;
  for (const SequenceChunk& ch : chunks) {
    const int64_t m = (int64_t)ch.ids.size();
    if (ch.logits != nullptr && m > 0) {
      for (int64_t t = ch.all_logits ? 0 : m - 1; t < m; ++t) {
        rows.push_back({offset + t, ch.logits + (ch.all_logits ? t : 0) * c.n_vocab});
      }
    }
    offset += m;
  }
  const TensorType out_type = model_.output().type;
  const bool float_output = out_type == TensorType::F32 || out_type == TensorType::F16 || out_type == TensorType::BF16;
  const int64_t group = float_output ? 1 : logit_rows_;
  for (size_t r0 = 0; r0 < rows.size(); r0 += (size_t)group) {
    const int64_t g = std::min<int64_t>(group, (int64_t)(rows.size() - r0));
    for (int64_t i = 0; i < g; ++i) {
      be.rms_norm(x + rows[r0 + i].token * c.n_embd, model_.output_norm(), c.norm_eps, 1, c.n_embd,
                  xn + i * c.n_embd);
    }
    be.matmul(model_.output(), nullptr, xn, g, logits_->data());
    for (int64_t i = 0; i < g; ++i) be.read(logits_->data() + i * c.n_vocab, c.n_vocab, rows[r0 + i].dst);
  }
  // A device failure during the pass (its operations have no error path of their own) fails the pass.
  return be.health();
}

}  // namespace pginfer
