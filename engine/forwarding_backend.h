// engine/forwarding_backend.h: the base of Backend decorators (profiling, tests): every operation and query goes
// to an inner backend. The composite operations (matmuls, matmul_add, matmul_swiglu, rope_qk), the recording of
// passes (begin_pass) and argmax_rows are left to Backend's defaults, which issue the primitive operations one by
// one, so a decorator sees each of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "engine/backend.h"

namespace pginfer {

class ForwardingBackend : public Backend {
 public:
  // Forwards to `inner` (not owned; it must outlive this and be prepared for the models used through it).
  explicit ForwardingBackend(Backend& inner) : inner_(inner) {}

  const char* name() const override { return inner_.name(); }
  Status prepare(const Model& model) override { return inner_.prepare(model); }
  Status alloc(int64_t n, std::unique_ptr<ActivationBuffer>* out) override { return inner_.alloc(n, out); }
  Status create_kv_cache(int64_t n_layer, int64_t capacity, int64_t kv_dim, std::unique_ptr<KvCache>* out) override {
    return inner_.create_kv_cache(n_layer, capacity, kv_dim, out);
  }
  Status create_kv_pool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim,
                        std::unique_ptr<KvPool>* out) override {
    return inner_.create_kv_pool(n_layer, n_blocks, block_size, kv_dim, out);
  }
  bool group_logit_rows(TensorType type) const override { return inner_.group_logit_rows(type); }
  int64_t pass_tokens() const override { return inner_.pass_tokens(); }
  int64_t free_device_memory() override { return inner_.free_device_memory(); }
  Status health() const override { return inner_.health(); }

  void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    inner_.embed(table, ids, n_tokens, out);
  }
  void rms_norm(const float* x, const GgufTensor& weight, float eps, int64_t n_tokens, int64_t dim,
                float* out) override {
    inner_.rms_norm(x, weight, eps, n_tokens, dim, out);
  }
  void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* y) override {
    inner_.matmul(w, bias, x, n_tokens, y);
  }
  void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const RopeParams& params) override {
    inner_.rope(x, pos, n_tokens, n_heads, head_dim, params);
  }
  void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v, const int32_t* pos,
                 int64_t n_tokens, const AttentionParams& params, float* out) override {
    inner_.attention(cache, layer, q, k, v, pos, n_tokens, params, out);
  }
  void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                       const float* v, const int32_t* pos, const AttentionParams& params, float* out) override {
    inner_.attention_batch(chunks, layer, q, k, v, pos, params, out);
  }
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override { inner_.swiglu(gate, up, n, out); }
  void add(const float* a, const float* b, int64_t n, float* out) override { inner_.add(a, b, n, out); }
  void read(const float* src, int64_t n, float* host_dst) override { inner_.read(src, n, host_dst); }
  void write(const float* host_src, int64_t n, float* dst) override { inner_.write(host_src, n, dst); }

 protected:
  Backend& inner() { return inner_; }

 private:
  Backend& inner_;
};

}  // namespace pginfer
