// engine/profiling_backend.h: a Backend that runs another and times its operations by kind (the embedding,
// norms, each weight's products, rope, attention, ...), for benchmarks: `infer bench --profile` prints where a
// pass's time goes, on the CPU or the GPU. The composite operations (matmuls, matmul_add, matmul_swiglu, rope_qk,
// argmax_rows) go to the inner backend as such and are timed as one kind each ("matmuls attn_q+attn_k+attn_v",
// "matmul+add ffn_down", ...), so that a profile times what the backend runs (on the GPU, one fused launch each)
// rather than the separate operations of Backend's defaults. Passes are not announced (begin_pass): the profiler
// waits after every operation, which a recorded pass cannot.
//
// After each operation it waits for the device (a one-float read from it), so an operation's time is the
// device's time for it plus one round trip: the sum is larger than an unprofiled pass, most of all for many
// small operations on a GPU. Results are unchanged (the inner backend computes everything).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/forwarding_backend.h"

namespace pginfer {

// Calls and seconds of one kind of operation.
struct OpTime {
  int64_t calls = 0;
  double seconds = 0.0;
};

class ProfilingBackend : public ForwardingBackend {
 public:
  // Times `inner` (not owned; it must outlive this and be prepared for the models used through it).
  explicit ProfilingBackend(Backend& inner) : ForwardingBackend(inner) {}

  // Operation kinds in the order first seen, with their calls and seconds since construction or reset().
  const std::vector<std::pair<std::string, OpTime>>& times() const { return times_; }
  // Forgets the times.
  void reset() { times_.clear(); }
  // A table of the kinds, slowest first: calls, milliseconds, share of the total.
  std::string report() const;

  void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) override;
  void rms_norm(const float* x, const GgufTensor& weight, float eps, int64_t n_tokens, int64_t dim,
                float* out) override;
  void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* y) override;
  void matmuls(std::span<const Product> products, const float* x, int64_t n_tokens) override;
  void matmul_add(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* scratch,
                  float* y) override;
  void matmul_swiglu(const GgufTensor& gate, const GgufTensor& up, const float* x, int64_t n_tokens, float* gate_out,
                     float* up_out) override;
  void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const RopeParams& params) override;
  void rope_qk(float* q, float* k, const int32_t* pos, int64_t n_tokens, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, const RopeParams& params) override;
  void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v, const int32_t* pos,
                 int64_t n_tokens, const AttentionParams& params, float* out) override;
  void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                       const float* v, const int32_t* pos, const AttentionParams& params, float* out) override;
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override;
  void add(const float* a, const float* b, int64_t n, float* out) override;
  void read(const float* src, int64_t n, float* host_dst) override;
  bool argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) override;
  void write(const float* host_src, int64_t n, float* dst) override;

 private:
  // Runs `op`, waits for the device, and adds the time to kind `kind`.
  template <class Op>
  void timed(const std::string& kind, Op&& op);
  // Waits until the inner backend has finished every operation enqueued so far.
  void wait();

  std::unique_ptr<ActivationBuffer> probe_;              // one float of device memory, read to wait
  std::vector<std::pair<std::string, OpTime>> times_;    // per kind, in the order first seen
};

}  // namespace pginfer
