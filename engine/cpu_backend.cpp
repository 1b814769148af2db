// engine/cpu_backend.cpp: the CPU implementation of the backend interface.
//
// Products with quantized weights convert the activations to the weight type's vec_dot type once and run
// the SIMD integer dot kernels over bands of rows on every thread, for one token (decoding) as for many
// (prompts): the same operations in the same order as llama.cpp, so prompts and decoding round alike.
// Products of float weights (F32, F16, BF16) with many tokens dequantize bands of rows into a cache-sized
// tile and call sgemm on every thread (kernels/cpu/gemm.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot.h"

namespace pginfer {

namespace {

// Token counts from which a product with float weights (F32, F16, BF16) goes through sgemm.
constexpr int64_t kGemmMinTokens = 8;
// Bytes of quantized weights per band of the integer path with several tokens.
constexpr size_t kBandBytes = 128 * 1024;
// Floats of weight dequantized per sgemm tile (1 MiB), about an L2 cache.
constexpr int64_t kTileFloats = 256 * 1024;

// Host memory as an activation buffer.
class HostBuffer : public ActivationBuffer {
 public:
  explicit HostBuffer(int64_t n) : data_(n) {}
  float* data() override { return data_.data(); }
  int64_t size() const override { return (int64_t)data_.size(); }

 private:
  std::vector<float> data_;
};

// Keys and values as F16, one [capacity][kv_dim] array each per layer.
class CpuKvCache : public KvCache {
 public:
  CpuKvCache(int64_t n_layer, int64_t capacity, int64_t kv_dim)
      : capacity_(capacity), kv_dim_(kv_dim), keys_(n_layer), values_(n_layer) {
    for (int64_t l = 0; l < n_layer; ++l) {
      keys_[l].resize(capacity * kv_dim);
      values_[l].resize(capacity * kv_dim);
    }
  }
  int64_t capacity() const override { return capacity_; }
  int64_t kv_dim() const { return kv_dim_; }
  fp16_t* keys(int64_t layer) { return keys_[layer].data(); }
  fp16_t* values(int64_t layer) { return values_[layer].data(); }

 private:
  int64_t capacity_;
  int64_t kv_dim_;
  std::vector<std::vector<fp16_t>> keys_;
  std::vector<std::vector<fp16_t>> values_;
};

// The paged cache's memory: per layer, keys and values as F16 [n_blocks * block_size][kv_dim].
class CpuKvPool : public KvPool {
 public:
  CpuKvPool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim)
      : n_blocks_(n_blocks), block_size_(block_size), kv_dim_(kv_dim), keys_(n_layer), values_(n_layer) {
    while ((int64_t{1} << shift_) < block_size) ++shift_;
    // Left uninitialised: a block's rows are written before they are read, and untouched pages of a large
    // pool cost no memory until the cache grows into them.
    for (int64_t l = 0; l < n_layer; ++l) {
      keys_[l].reset(new fp16_t[n_blocks * block_size * kv_dim]);
      values_[l].reset(new fp16_t[n_blocks * block_size * kv_dim]);
    }
  }
  int64_t n_blocks() const override { return n_blocks_; }
  int64_t block_size() const override { return block_size_; }
  int block_shift() const { return shift_; }
  int64_t kv_dim() const { return kv_dim_; }
  fp16_t* keys(int64_t layer) { return keys_[layer].get(); }
  fp16_t* values(int64_t layer) { return values_[layer].get(); }

 private:
  int64_t n_blocks_;
  int64_t block_size_;
  int64_t kv_dim_;
  int shift_ = 0;
  std::vector<std::unique_ptr<fp16_t[]>> keys_;
  std::vector<std::unique_ptr<fp16_t[]>> values_;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads), scratch_(threads) {
    gemm_init_single_threaded();
  }

  const char* name() const override { return "cpu"; }

  Status prepare(const Model& model) override {
    // Small 1-D tensors (norm weights, biases, rope factors) that are not F32 get a float copy, once per model (by
    // its serial: a later model's tensors may sit at the addresses of a gone one's, whose copies they replace).
    if (!prepared_.insert(model.serial()).second) return Status::ok_status();
    for (const GgufTensor& t : model.file().tensors()) {
      if (t.n_dims == 1 && t.type != TensorType::F32) {
        std::vector<float> v(t.ne[0]);
        dequantize_row(t.type, t.data, v.data(), t.ne[0]);
        floats_[&t] = std::move(v);
      }
    }
    return Status::ok_status();
  }

  Status alloc(int64_t n, std::unique_ptr<ActivationBuffer>* out) override {
    try {
      *out = std::make_unique<HostBuffer>(n);
    } catch (const std::bad_alloc&) {
      return out_of_memory("cannot allocate " + std::to_string(n * 4) + " bytes of activations");
    }
    return Status::ok_status();
  }

  Status create_kv_cache(int64_t n_layer, int64_t capacity, int64_t kv_dim,
                         std::unique_ptr<KvCache>* out) override {
    try {
      *out = std::make_unique<CpuKvCache>(n_layer, capacity, kv_dim);
    } catch (const std::bad_alloc&) {
      return out_of_memory("cannot allocate a KV cache of " + std::to_string(capacity) + " positions");
    }
    return Status::ok_status();
  }

  Status create_kv_pool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim,
                        std::unique_ptr<KvPool>* out) override {
    if (n_blocks <= 0 || block_size <= 0 || (block_size & (block_size - 1)) != 0) {
      return invalid_argument("a KV pool needs blocks and a power-of-two block size");
    }
    try {
      *out = std::make_unique<CpuKvPool>(n_layer, n_blocks, block_size, kv_dim);
    } catch (const std::bad_alloc&) {
      return out_of_memory("cannot allocate a KV pool of " + std::to_string(n_blocks) + " blocks");
    }
    return Status::ok_status();
  }

  void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    converted_ = {};
    const int64_t dim = table.ne[0];
    const size_t stride = row_bytes(table.type, dim);
    for (int64_t t = 0; t < n_tokens; ++t) {
      dequantize_row(table.type, table.data + (size_t)ids[t] * stride, out + t * dim, dim);
    }
  }

  void rms_norm(const float* x, const GgufTensor& weight, float eps, int64_t n_tokens, int64_t dim,
                float* out) override {
    converted_ = {};
    const float* w = floats_of(weight);
    for_tokens(n_tokens, [&](int64_t t) { rms_norm_row(x + t * dim, w, eps, dim, out + t * dim); });
  }

  void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens,
              float* y) override {
    const int64_t k = w.ne[0];
    const int64_t rows = w.ne[1];
    const size_t stride = row_bytes(w.type, k);
    // Quantized weights always take the integer path, whatever the number of tokens: it sums in
    // llama.cpp's order, and sgemm's order would not round the same (kernels/cpu/gemm.h).
    const bool quantized = w.type != TensorType::F32 && w.type != TensorType::F16 && w.type != TensorType::BF16;
    if (quantized || n_tokens < kGemmMinTokens) {
      matmul_dot(w.type, k, rows, w.data, stride, x, n_tokens, y);
    } else {
      matmul_gemm(w.type, k, rows, w.data, stride, x, n_tokens, y);
    }
    if (bias != nullptr) {
      const float* b = floats_of(*bias);
      for (int64_t t = 0; t < n_tokens; ++t) add_row(y + t * rows, b, rows, y + t * rows);
    }
    // A product that wrote over its own input's memory leaves no valid conversion of it.
    const uintptr_t xb = reinterpret_cast<uintptr_t>(x), yb = reinterpret_cast<uintptr_t>(y);
    if (yb < xb + n_tokens * k * sizeof(float) && xb < yb + n_tokens * rows * sizeof(float)) converted_ = {};
  }

  void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const RopeParams& p) override {
    converted_ = {};
    const float* factors = p.freq_factors ? floats_of(*p.freq_factors) : nullptr;
    const bool neox = p.style == RopeStyle::Neox;
    for_tokens(n_tokens, [&](int64_t t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        rope_head(x + (t * n_heads + h) * head_dim, head_dim, p.n_rot, neox, pos[t], p.freq_base,
                  p.freq_scale, factors);
      }
    });
  }

  void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v, const int32_t* pos,
                 int64_t n_tokens, const AttentionParams& p, float* out) override {
    const AttentionChunk chunk{&cache, n_tokens};
    attention_batch(std::span<const AttentionChunk>(&chunk, 1), layer, q, k, v, pos, p, out);
  }

  // Every chunk's keys and values stored first (in chunk order), then one parallel loop over every token and
  // head of the call: each (token, head) computes exactly what a call per chunk computes, since no chunk
  // reads a row that a later chunk writes (Backend::attention_batch), with one dispatch for all sequences.
  void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                       const float* v, const int32_t* pos, const AttentionParams& p, float* out) override {
    converted_ = {};
    const int64_t kv_dim = p.n_head_kv * p.head_dim, q_dim = p.n_head * p.head_dim;
    views_.clear();
    token_view_.clear();
    int64_t offset = 0;
    for (const AttentionChunk& c : chunks) {
      const RowsOfLayer rows = rows_of(*c.kv, layer);
      for (int64_t t = offset; t < offset + c.n_tokens; ++t) {
        fp16_t* kd = rows.keys + rows.slot(pos[t]) * rows.kv_dim;
        fp16_t* vd = rows.values + rows.slot(pos[t]) * rows.kv_dim;
        for (int64_t i = 0; i < kv_dim; ++i) {
          kd[i] = fp32_to_fp16(k[t * kv_dim + i]);
          vd[i] = fp32_to_fp16(v[t * kv_dim + i]);
        }
        token_view_.push_back((int32_t)views_.size());
      }
      views_.push_back(rows);
      offset += c.n_tokens;
    }
    const int64_t group = p.n_head / p.n_head_kv;
    pool_.parallel_for(offset * p.n_head, [&](int64_t task, int thread) {
      const int64_t t = task / p.n_head;
      const int64_t h = task % p.n_head;
      const int64_t kvh = h / group;
      const RowsOfLayer& rows = views_[token_view_[t]];
      const int64_t n_kv = (int64_t)pos[t] + 1;
      std::vector<float>& scores = scratch_[thread].scores;
      if ((int64_t)scores.size() < n_kv) scores.resize(n_kv);
      KvRows key_rows, value_rows;
      key_rows.base = rows.keys + kvh * p.head_dim;
      value_rows.base = rows.values + kvh * p.head_dim;
      key_rows.stride = value_rows.stride = rows.kv_dim;
      key_rows.blocks = value_rows.blocks = rows.blocks;
      key_rows.block_shift = value_rows.block_shift = rows.shift;
      attend_head_f16(q + t * q_dim + h * p.head_dim, key_rows, value_rows, n_kv, p.head_dim, p.scale, scores.data(),
                      out + t * q_dim + h * p.head_dim);
    });
  }

  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    converted_ = {};
    for_chunks(n, [&](int64_t b, int64_t e) { swiglu_row(gate + b, up + b, e - b, out + b); });
  }

  void add(const float* a, const float* b, int64_t n, float* out) override {
    converted_ = {};
    for_chunks(n, [&](int64_t s, int64_t e) { add_row(a + s, b + s, e - s, out + s); });
  }

  void read(const float* src, int64_t n, float* host_dst) override {
    std::memcpy(host_dst, src, n * sizeof(float));
  }

  void write(const float* host_src, int64_t n, float* dst) override {
    converted_ = {};
    std::memcpy(dst, host_src, n * sizeof(float));
  }

 private:
  // Per-thread scratch memory, grown on demand.
  struct Scratch {
    std::vector<float> tile;
    std::vector<float> scores;
  };

  const float* floats_of(const GgufTensor& t) const {
    if (t.type == TensorType::F32) return reinterpret_cast<const float*>(t.data);
    return floats_.at(&t).data();
  }

  // Where one layer's rows of a cache lie: slot = position in a contiguous cache, through the block table in a
  // paged one.
  struct RowsOfLayer {
    fp16_t* keys = nullptr;
    fp16_t* values = nullptr;
    int64_t kv_dim = 0;
    const int32_t* blocks = nullptr;
    int shift = 0;
    int64_t slot(int64_t position) const {
      return blocks == nullptr ? position
                               : ((int64_t)blocks[position >> shift] << shift) | (position & ((1 << shift) - 1));
    }
  };

  static RowsOfLayer rows_of(KvCache& cache, int64_t layer) {
    RowsOfLayer r;
    if (PagedKvCache* paged = cache.as_paged()) {
      CpuKvPool& pool = static_cast<CpuKvPool&>(paged->pool());
      r.keys = pool.keys(layer);
      r.values = pool.values(layer);
      r.kv_dim = pool.kv_dim();
      r.blocks = paged->blocks.data();
      r.shift = pool.block_shift();
    } else {
      CpuKvCache& c = static_cast<CpuKvCache&>(cache);
      r.keys = c.keys(layer);
      r.values = c.values(layer);
      r.kv_dim = c.kv_dim();
    }
    return r;
  }

  // Runs fn(t) for every token, in parallel when there are several.
  template <typename Fn>
  void for_tokens(int64_t n_tokens, Fn&& fn) {
    if (n_tokens == 1) {
      fn(0);
      return;
    }
    pool_.parallel_for(n_tokens, [&](int64_t t, int) { fn(t); });
  }

  // Runs fn(begin, end) over [0, n) in a few large chunks.
  template <typename Fn>
  void for_chunks(int64_t n, Fn&& fn) {
    constexpr int64_t kChunk = 1 << 16;
    if (n <= kChunk) {
      fn(0, n);
      return;
    }
    const int64_t n_chunks = (n + kChunk - 1) / kChunk;
    pool_.parallel_for(n_chunks, [&](int64_t c, int) { fn(c * kChunk, std::min(n, (c + 1) * kChunk)); });
  }

  // Integer path: activations converted to the vec_dot type, SIMD dot products over bands of rows; with
  // many tokens, each band stays in cache while every token passes over it.
  void matmul_dot(TensorType type, int64_t k, int64_t rows, const uint8_t* w, size_t stride, const float* x,
                  int64_t n_tokens, float* y) {
    const TensorType vt = vec_dot_type(type);
    const size_t act_bytes = row_bytes(vt, k);
    // The q, k and v projections (and gate and up) take the same input one after the other: it is converted
    // and packed once (converted_ is dropped by every operation that may write activations).
    const ConvertedInput input{x, n_tokens, k, type};
    if (!(input == converted_)) {
      act_.resize(act_bytes * n_tokens);
      for_tokens(n_tokens, [&](int64_t t) { quantize_row(vt, x + t * k, act_.data() + t * act_bytes, k); });
      tokens_.set(type, k, act_.data(), act_bytes, n_tokens);
      converted_ = input;
    }
    int64_t band;
    if (n_tokens == 1) {
      // Bands small enough to balance threads, large enough to amortise dispatch.
      band = std::max<int64_t>(16, rows / (pool_.size() * 16)) / 4 * 4;
    } else {
      // About 128 KiB of weights per band, a multiple of 4 rows.
      band = std::clamp<int64_t>((int64_t)(kBandBytes / stride) / 4 * 4, 4, 256);
    }
    const int64_t n_bands = (rows + band - 1) / band;
    pool_.parallel_for(n_bands, [&](int64_t b, int) {
      const int64_t r0 = b * band;
      const int64_t nr = std::min(band, rows - r0);
      dot_rows_tokens(type, k, w + r0 * stride, stride, nr, tokens_, y + r0, rows);
    });
  }

  // Prompt path: activations rounded like the dot path, then dequantized tiles times sgemm.
  void matmul_gemm(TensorType type, int64_t k, int64_t rows, const uint8_t* w, size_t stride,
                   const float* x, int64_t n_tokens, float* y) {
    // F32 weights take the activations as they are; F16/BF16 ones a rounded copy.
    const float* xa = x;
    if (vec_dot_type(type) != TensorType::F32) {
      xr_.assign(x, x + n_tokens * k);
      for_tokens(n_tokens, [&](int64_t t) { round_activations(type, xr_.data() + t * k, k); });
      xa = xr_.data();
    }
    // The band depends on the shape only, never on the thread count, so that results do not either
    // (sgemm's summation order may depend on the width it is given).
    const int64_t band = std::clamp<int64_t>(kTileFloats / k / 16 * 16, 16, 128);
    const int64_t n_bands = (rows + band - 1) / band;
    pool_.parallel_for(n_bands, [&](int64_t b, int thread) {
      std::vector<float>& tile = scratch_[thread].tile;
      if ((int64_t)tile.size() < band * k) tile.resize(band * k);
      const int64_t r0 = b * band;
      const int64_t r1 = std::min(rows, r0 + band);
      gemm_rows(type, k, w, stride, r0, r1, xa, n_tokens, y, rows, tile.data());
    });
  }

  ThreadPool pool_;
  std::vector<Scratch> scratch_;
  std::vector<uint8_t> act_;  // quantized activations of the current product
  TokenActivations tokens_;   // the same, prepared for dot_rows_tokens
  // Which input act_ and tokens_ hold: its address, tokens, length and the weight type it was prepared for.
  struct ConvertedInput {
    const float* x = nullptr;
    int64_t n_tokens = 0;
    int64_t k = 0;
    TensorType type = TensorType::F32;
    bool operator==(const ConvertedInput&) const = default;
  };
  ConvertedInput converted_;  // empty (x null) after any operation that may write activations
  std::vector<RowsOfLayer> views_;    // an attention call's caches, one per chunk
  std::vector<int32_t> token_view_;   // each token's entry in views_
  std::vector<float> xr_;     // rounded activations of the current product
  std::unordered_map<const GgufTensor*, std::vector<float>> floats_;
  std::unordered_set<uint64_t> prepared_;  // serials of the models prepared
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options) {
  int threads = options.threads;
  if (threads <= 0) threads = (int)std::max(1u, std::thread::hardware_concurrency());
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace pginfer
