// engine/backend.h: the interface between the model code and the hardware that runs it.
//
// The forward pass (session.cpp) is written once against this interface; a backend (the CPU one here, the
// CUDA one of cuda_backend.h) implements each operation on memory it allocates itself. Activation
// pointers handed to these operations come from the backend's own `alloc` and may be device pointers: the
// model code never dereferences them, and reads results back with `read`. Weights are passed as the GGUF
// tensors they come from; a backend may keep its own copies of them, prepared in `prepare`.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/arch.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/status.h"

namespace pginfer {

class Model;

// A block of activation memory of a backend (floats).
class ActivationBuffer {
 public:
  virtual ~ActivationBuffer() = default;
  // The first float, in the backend's address space.
  virtual float* data() = 0;
  // Capacity in floats.
  virtual int64_t size() const = 0;
};

class PagedKvCache;

// The keys and values of one sequence for every layer, in a backend's memory. Slots are positions.
class KvCache {
 public:
  virtual ~KvCache() = default;
  // Number of positions it can hold.
  virtual int64_t capacity() const = 0;
  // This cache as a paged view, or null for a contiguous cache (a virtual call rather than dynamic_cast,
  // which is not reliable across the CUDA module's boundary, whose type information is hidden).
  virtual PagedKvCache* as_paged() { return nullptr; }
};

// The paged cache's memory: blocks of block_size() positions (a power of two) for every layer, in a
// backend's memory, shared by many sequences. Which block holds what is decided by the caller (the block
// pool of engine/block_pool.h); sequences use the pool through PagedKvCache views.
class KvPool {
 public:
  virtual ~KvPool() = default;
  // Number of blocks.
  virtual int64_t n_blocks() const = 0;
  // Positions per block.
  virtual int64_t block_size() const = 0;
};

// One sequence's view of a KvPool: position p lives in block blocks[p / block_size] at offset
// p % block_size. The caller keeps the table long enough for every position it evaluates.
class PagedKvCache : public KvCache {
 public:
  // A view of `pool` (which must outlive it) with an empty block table.
  explicit PagedKvCache(KvPool& pool) : pool_(pool) {}
  int64_t capacity() const override { return (int64_t)blocks.size() * pool_.block_size(); }
  PagedKvCache* as_paged() override { return this; }
  // The pool.
  KvPool& pool() { return pool_; }
  // The block table (block ids of the pool, in position order).
  std::vector<int32_t> blocks;

 private:
  KvPool& pool_;
};

// Rotary embedding parameters, GGML's semantics: for dimension pair i of the first n_rot dimensions,
// theta = pos * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i].
struct RopeParams {
  RopeStyle style = RopeStyle::Normal;
  int64_t n_rot = 0;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  const GgufTensor* freq_factors = nullptr;  // optional, n_rot/2 values
};

// Shapes of multi-head attention with grouped keys and values.
struct AttentionParams {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;  // applied to q.k before the softmax

  // A model's: its head counts and size, scale 1 / sqrt(head_dim).
  static AttentionParams of(const ModelConfig& c) {
    return {c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt((float)c.head_dim)};
  }
};

// One sequence's share of a batched attention call (Backend::attention_batch): its cache and its number of
// tokens, whose rows follow the previous chunk's in the call's q, k, v, positions and output.
struct AttentionChunk {
  KvCache* kv = nullptr;  // the sequence's cache
  int64_t n_tokens = 0;   // its tokens in the call
};

// A forward pass, described before its operations are issued (Backend::begin_pass): two passes of one owner
// with equal shapes issue the same operations on the same buffers, weights and caches, and differ only in the
// token ids, positions and block tables they pass.
struct PassShape {
  uint64_t owner = 0;                       // the executor issuing it (its buffers, its model's weights); never reused
  std::span<const AttentionChunk> chunks;   // every non-empty chunk, in order
  std::span<const int64_t> logit_tokens;    // the tokens (indices in the pass) whose logits it computes, in order
  int64_t max_kv = 0;                       // the largest position of the pass plus one
};

// One of several products of the same input (Backend::matmuls): y = w x (+ bias).
struct Product {
  const GgufTensor* w = nullptr;
  const GgufTensor* bias = nullptr;  // optional
  float* y = nullptr;
};

// Passes a backend recorded and replayed (Backend::begin_pass), for tests and statistics.
struct PassCounts {
  int64_t captured = 0;  // recorded and run
  int64_t replayed = 0;  // run from a recording
  int64_t reissued = 0;  // end_pass() returned false: the caller issued the operations again
};

// One compute device. Methods other than those returning Status cannot fail on valid shapes: the model
// code checks shapes before calling them.
class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", "cuda".
  virtual const char* name() const = 0;
  // Readies a model's weights (conversions of small tensors, uploads). Called once per model.
  virtual Status prepare(const Model& model) = 0;
  // Allocates activation memory for `n` floats.
  virtual Status alloc(int64_t n, std::unique_ptr<ActivationBuffer>* out) = 0;
  // Allocates a KV cache of `n_layer` layers x `capacity` positions x `kv_dim` values for keys and values.
  virtual Status create_kv_cache(int64_t n_layer, int64_t capacity, int64_t kv_dim,
                                 std::unique_ptr<KvCache>* out) = 0;
  // Allocates a paged KV pool of `n_blocks` blocks of `block_size` positions (a power of two) for `n_layer`
  // layers of `kv_dim` values; OutOfMemory when it does not fit. Both backends have one (the serving loop
  // needs it); a backend without paged attention would say Unsupported.
  virtual Status create_kv_pool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim,
                                std::unique_ptr<KvPool>* out) {
    return unsupported(std::string("the ") + name() + " backend has no paged KV cache");
  }
  // Whether the executor may compute many rows of logits in one product with output weights of `type`. By
  // default not for float weights, whose batched products (the CPU's sgemm, the GPU's GEMM) round otherwise
  // than one token's, so that a sequence's logits do not depend on its neighbours; the CPU's quantized products
  // round every token on its own. (Grouping float rows on the GPU, where each costs a pass over the output
  // matrix, waits for a GPU run of branch gpu-batched-attention.)
  virtual bool group_logit_rows(TensorType type) const {
    return !(type == TensorType::F32 || type == TensorType::F16 || type == TensorType::BF16);
  }
  // Most tokens of one sequence a Session evaluates in one forward pass: 512 by default (llama.cpp's micro-batch);
  // a GPU's products fill the device only with more rows.
  virtual int64_t pass_tokens() const { return 512; }
  // Bytes of device memory free now, for sizing a KV pool; -1 for a backend computing in host memory.
  virtual int64_t free_device_memory() { return -1; }
  // The first failure of an operation that has no error path of its own (a device error, scratch memory
  // that could not be allocated), after which the backend's results are meaningless; Ok while none.
  virtual Status health() const { return Status::ok_status(); }

  // Announces a forward pass whose operations follow, up to end_pass(), with no read or write between. True
  // when the backend records them instead of running them one by one, to run them as one unit at end_pass()
  // (CUDA graphs, say: a pass of a shape seen before replays that shape's recording with the new ids, positions
  // and block tables). By default false: operations run as they are issued.
  virtual bool begin_pass(const PassShape& shape) { return false; }
  // Runs what was recorded since begin_pass() returned true. False when the recording could not be made or
  // replayed: nothing of it ran, the backend runs operations as issued again, and the caller issues the pass's
  // operations once more.
  virtual bool end_pass() { return true; }
  // What became of the passes announced so far.
  virtual PassCounts pass_counts() const { return {}; }

  // out[t] = row ids[t] of `table` as floats (ids already checked to be in range).
  virtual void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) = 0;
  // out[t] = x[t] / rms(x[t]) * weight, per token of `dim` values.
  virtual void rms_norm(const float* x, const GgufTensor& weight, float eps, int64_t n_tokens,
                        int64_t dim, float* out) = 0;
  // y[t][r] = dot(row r of w, x[t]) (+ bias[r]) for every token t; w is rows x cols with cols = ne[0].
  virtual void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens,
                      float* y) = 0;
  // Several products of the same input x (q, k and v, say), which a backend may compute in one launch. By
  // default one matmul() each.
  virtual void matmuls(std::span<const Product> products, const float* x, int64_t n_tokens) {
    for (const Product& p : products) matmul(*p.w, p.bias, x, n_tokens, p.y);
  }
  // y += w x (+ bias) (the residual stream), `scratch` holding n_tokens rows of w's output if needed; the same
  // values as matmul() into scratch and then add(). By default just that.
  virtual void matmul_add(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens,
                          float* scratch, float* y) {
    matmul(w, bias, x, n_tokens, scratch);
    add(y, scratch, n_tokens * w.ne[1], y);
  }
  // gate_out = swiglu(gate x, up x) (the feed-forward's first half), up_out holding n_tokens rows of up's output if
  // needed; gate and up have the same rows. By default both products, then swiglu().
  virtual void matmul_swiglu(const GgufTensor& gate, const GgufTensor& up, const float* x, int64_t n_tokens,
                             float* gate_out, float* up_out) {
    const Product both[] = {{&gate, nullptr, gate_out}, {&up, nullptr, up_out}};
    matmuls(both, x, n_tokens);
    swiglu(gate_out, up_out, n_tokens * gate.ne[1], gate_out);
  }
  // Rotates the first n_rot dimensions of each of `n_heads` heads of each token, at positions pos[t].
  virtual void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                    const RopeParams& params) = 0;
  // rope() of the queries (n_head heads per token) and the keys (n_head_kv heads), which a backend may do in one
  // launch. By default two rope() calls.
  virtual void rope_qk(float* q, float* k, const int32_t* pos, int64_t n_tokens, int64_t n_head, int64_t n_head_kv,
                       int64_t head_dim, const RopeParams& params) {
    rope(q, pos, n_tokens, n_head, head_dim, params);
    rope(k, pos, n_tokens, n_head_kv, head_dim, params);
  }
  // Stores k and v of each token at position pos[t] of layer `layer` (slot pos[t] of a contiguous cache; of
  // a PagedKvCache, the slot its block table gives), then computes causal attention of each query over
  // positions 0..pos[t], its own call's tokens included; out[t] has n_head * head_dim values.
  virtual void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v,
                         const int32_t* pos, int64_t n_tokens, const AttentionParams& params,
                         float* out) = 0;
  // attention() for the chunks of several sequences at once (a forward pass's), in one call per layer. Equal to
  // calling attention() for each chunk in order, provided that no two chunks write the same row and no chunk
  // reads a row that a later chunk writes: a backend may store every chunk's keys and values before any query
  // reads (one launch for all), so a chunk may read rows an earlier chunk of the call writes (a shared prefix
  // block). This default runs the chunks one after the other.
  virtual void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                               const float* v, const int32_t* pos, const AttentionParams& params, float* out) {
    const int64_t q_dim = params.n_head * params.head_dim, kv_dim = params.n_head_kv * params.head_dim;
    int64_t offset = 0;
    for (const AttentionChunk& c : chunks) {
      if (c.n_tokens > 0) {
        attention(*c.kv, layer, q + offset * q_dim, k + offset * kv_dim, v + offset * kv_dim, pos + offset, c.n_tokens,
                  params, out + offset * q_dim);
      }
      offset += c.n_tokens;
    }
  }
  // out = silu(gate) * up, elementwise.
  virtual void swiglu(const float* gate, const float* up, int64_t n, float* out) = 0;
  // out = a + b, elementwise (out may alias a or b).
  virtual void add(const float* a, const float* b, int64_t n, float* out) = 0;
  // Copies n floats from backend memory to host memory.
  virtual void read(const float* src, int64_t n, float* host_dst) = 0;
  // host_ids[r] = argmax() (sampler.h: the first index of the largest value, NaNs never chosen, 0 when the row
  // starts with one) of each of n_rows rows of n_vocab logits in backend memory, computed where they are, so that
  // only the ids are copied. False when the backend does not (the caller reads the rows).
  virtual bool argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) { return false; }
  // Copies n floats from host memory to backend memory (tests, and inputs computed on the host).
  virtual void write(const float* host_src, int64_t n, float* dst) = 0;
};

// Options of the CPU backend.
struct CpuBackendOptions {
  int threads = 0;  // 0 means one per online core
};

// Creates the CPU backend (OpenBLAS for batched products, SIMD kernels for decoding).
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options);

}  // namespace pginfer
