// engine/executor.cpp: the forward pass over a batch of sequence chunks.
#include "engine/executor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "engine/sampler.h"

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

namespace {

// A number for each executor, never reused (backends key recordings of passes by it; an address may be).
uint64_t next_executor_id() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

}  // namespace

Executor::Executor(const Model& model, Backend& backend) : model_(model), backend_(backend), id_(next_executor_id()) {}

Status Executor::forward(std::span<const SequenceChunk> chunks) {
  const ModelConfig& c = model_.config();
  Backend& be = backend_;
  // All tokens of the pass, each one's position in its own sequence, and the rows of logits asked for.
  ids_.clear();
  positions_.clear();
  attention_chunks_.clear();
  logit_requests_.clear();
  for (const SequenceChunk& ch : chunks) {
    const int64_t first = (int64_t)ids_.size(), m = (int64_t)ch.ids.size();
    for (int64_t i = 0; i < m; ++i) {
      ids_.push_back(ch.ids[i]);
      positions_.push_back((int32_t)(ch.start + i));
    }
    if (m > 0) attention_chunks_.push_back({ch.kv, m});
    if (ch.logits != nullptr && m > 0) {
      for (int64_t t = ch.all_logits ? 0 : m - 1; t < m; ++t) {
        logit_requests_.push_back({first + t, ch.logits + (ch.all_logits ? t : 0) * c.n_vocab, nullptr});
      }
    } else if (ch.argmax != nullptr && m > 0) {
      logit_requests_.push_back({first + m - 1, nullptr, ch.argmax});
    }
  }
  const int64_t n = (int64_t)ids_.size();
  if (n == 0) return Status::ok_status();
  if (n > max_tokens_) {
    return internal_error("a forward pass of " + std::to_string(n) + " tokens exceeds the executor's " +
                          std::to_string(max_tokens_));
  }
  // Logits in groups of rows through one product where the backend allows it (Backend::group_logit_rows).
  const int64_t group = be.group_logit_rows(model_.output().type) ? logit_rows_ : 1;
  const int64_t n_rows = (int64_t)logit_requests_.size();
  if (n_rows > group) {
    // Several groups, each read back before the next is computed: the operations run as issued.
    run_layers();
    for (int64_t r0 = 0; r0 < n_rows; r0 += group) {
      const int64_t g = std::min(group, n_rows - r0);
      compute_logits(r0, g);
      read_logits(r0, g);
    }
    return be.health();
  }
  // One group at most: the whole pass is announced to the backend, which may record and replay it.
  logit_tokens_.clear();
  for (const LogitRow& row : logit_requests_) logit_tokens_.push_back(row.token);
  PassShape shape;
  shape.owner = id_;
  shape.chunks = attention_chunks_;
  shape.logit_tokens = logit_tokens_;
  shape.max_kv = (int64_t)*std::max_element(positions_.begin(), positions_.end()) + 1;
  const bool recorded = be.begin_pass(shape);
  run_layers();
  if (n_rows > 0) compute_logits(0, n_rows);
  if (recorded && !be.end_pass()) {
    run_layers();
    if (n_rows > 0) compute_logits(0, n_rows);
  }
  if (n_rows > 0) read_logits(0, n_rows);
  // A device failure during the pass (its operations have no error path of their own) fails the pass.
  return be.health();
}

void Executor::run_layers() {
  const ModelConfig& c = model_.config();
  Backend& be = backend_;
  const int64_t n = (int64_t)ids_.size();
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
  const AttentionParams ap = AttentionParams::of(c);

  be.embed(model_.token_embd(), ids_.data(), n, x);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = model_.layers()[il];
    // Attention block: x += wo * attention(rope(wq * norm(x)), rope(wk * norm(x)), wv * norm(x)).
    be.rms_norm(x, *L.attn_norm, c.norm_eps, n, c.n_embd, xn);
    const Product qkv[] = {{L.wq, L.bq, q}, {L.wk, L.bk, k}, {L.wv, L.bv, v}};
    be.matmuls(qkv, xn, n);
    be.rope_qk(q, k, positions_.data(), n, c.n_head, c.n_head_kv, c.head_dim, rope);
    // Each sequence attends to its own cache; every chunk of the pass in one call (see forward() in the header
    // for the order of stores and reads it relies on).
    be.attention_batch(attention_chunks_, il, q, k, v, positions_.data(), ap, attn);
    be.matmul_add(*L.wo, L.bo, attn, n, xn, x);
    // Feed-forward block: x += down(silu(gate * norm(x)) * (up * norm(x))).
    be.rms_norm(x, *L.ffn_norm, c.norm_eps, n, c.n_embd, xn);
    be.matmul_swiglu(*L.ffn_gate, *L.ffn_up, xn, n, gate, up);
    be.matmul_add(*L.ffn_down, nullptr, gate, n, xn, x);
  }
}

void Executor::compute_logits(int64_t r0, int64_t g) {
  const ModelConfig& c = model_.config();
  const LogitRow* rows = logit_requests_.data() + r0;
  float* x = x_->data();
  float* xn = xn_->data();
  // Runs of rows that are consecutive tokens are normalised by one call.
  for (int64_t i = 0, run; i < g; i += run) {
    for (run = 1; i + run < g && rows[i + run].token == rows[i].token + run; ++run) {
    }
    backend_.rms_norm(x + rows[i].token * c.n_embd, model_.output_norm(), c.norm_eps, run, c.n_embd,
                      xn + i * c.n_embd);
  }
  backend_.matmul(model_.output(), nullptr, xn, g, logits_->data());
}

void Executor::read_logits(int64_t r0, int64_t g) {
  const int64_t V = model_.config().n_vocab;
  const LogitRow* rows = logit_requests_.data() + r0;
  for (int64_t i = 0, run; i < g; i += run) {
    if (rows[i].dst != nullptr) {
      // Runs whose destinations follow each other are read back by one call.
      for (run = 1; i + run < g && rows[i + run].dst == rows[i].dst + run * V; ++run) {
      }
      backend_.read(logits_->data() + i * V, run * V, rows[i].dst);
      continue;
    }
    // Runs of rows asking for their argmax: by the backend where the logits are, else on the host.
    for (run = 1; i + run < g && rows[i + run].dst == nullptr; ++run) {
    }
    best_ids_.resize(run);
    const float* src = logits_->data() + i * V;
    if (!backend_.argmax_rows(src, run, V, best_ids_.data())) {
      host_rows_.resize(run * V);
      backend_.read(src, run * V, host_rows_.data());
      for (int64_t r = 0; r < run; ++r) best_ids_[r] = argmax(std::span<const float>(host_rows_.data() + r * V, V));
    }
    for (int64_t r = 0; r < run; ++r) *rows[i + r].best = best_ids_[r];
  }
}

}  // namespace pginfer
