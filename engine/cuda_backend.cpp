// engine/cuda_backend.cpp: the CUDA implementation of the backend interface, built into the module
// libpginfer_cuda.so (kernels/cuda/CMakeLists.txt) together with the kernels; the engine reaches it only
// through the three exported functions at the end of this file (see cuda_backend.h and cuda_loader.cpp).
//
// Every operation is enqueued on one stream of the backend; `read` waits for it. The Backend interface has no
// error path for operations, so the first CUDA or cuBLAS error is remembered, printed once to stderr, and
// makes later operations no-ops (reads then return zeros); health() reports it, and the executor turns it into
// a failed pass. CUDA and cuBLAS errors report DeviceLost (a kernel fault leaves the context unusable; the
// engine then restarts its process: ServerOptions::on_device_lost); allocation failures OutOfMemory; shapes
// this backend cannot run Internal.
//
// KV caches: a contiguous cache (one sequence, Session) and the paged pool of the serving loop share one layout
// (KvLayers) and one attention kernel; a pass's chunks over one pool attend in one launch (attention_batch),
// their positions and block tables copied to the device together (kernels/cuda/attention.h).
//
// Uploads (token ids, positions, block tables) go through page-locked staging memory (PinnedStaging), so that
// the copies are queued on the stream like kernels instead of waiting for it, and are skipped while the values
// are those already on the device (each layer of a pass passes the same ones).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <span>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/attention_layout.h"
#include "engine/cuda_backend.h"
#include "engine/cuda_memory.h"
#include "engine/cuda_recording.h"
#include "engine/model.h"
#include "kernels/common/dequant_block.h"
#include "kernels/common/elementwise.h"
#include "kernels/common/round_activations.h"
#include "kernels/cuda/add.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_tiled.h"
#include "kernels/cuda/dequant.h"
#include "kernels/cuda/embed.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/round_activations.h"
#include "kernels/cuda/swiglu.h"

namespace pginfer {

namespace {

// Token counts from which products go through cuBLAS rather than the matrix-vector kernels.
constexpr int64_t kGemmMinTokens = 8;
// Recorded pass shapes kept (least recently replayed dropped first), and the cuBLAS workspace's size (set by us
// so that cuBLAS allocates nothing while a pass is captured).
constexpr size_t kMaxRecordings = 48;
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

// A weight tensor on the device.
struct DeviceTensor {
  const void* data = nullptr;       // the tensor's bytes as in the file
  const float* floats = nullptr;    // 1-D tensors: their values as floats
  const uint16_t* f16 = nullptr;    // quantized matrices: their values as F16, when a copy is kept
};

class CudaBackend : public Backend {
 public:
  CudaBackend(int device, unsigned flags)
      : device_(device),
        graphs_(!(flags & kCudaNoGraphs)),
        f16_copies_(!(flags & kCudaNoF16WeightCopies)),
        early_launch_((flags & kCudaEarlyLaunch) != 0) {}

  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);  // no copy may still read the staging memory
    recordings_.clear();
    if (stream_) cuda::set_early_launch(stream_, false);
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init() {
    if (cudaSetDevice(device_) != cudaSuccess) {
      return internal_error("cannot select CUDA device " + std::to_string(device_));
    }
    if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess) {
      return internal_error("cannot create a CUDA stream: " + std::string(cudaGetErrorString(cudaGetLastError())));
    }
    if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) return internal_error("cannot initialise cuBLAS");
    cublasSetStream(cublas_, stream_);
    cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH);
    if (cublas_workspace_.allocate(kCublasWorkspaceBytes) != cudaSuccess ||
        cublasSetWorkspace(cublas_, cublas_workspace_.get(), kCublasWorkspaceBytes) != CUBLAS_STATUS_SUCCESS) {
      return out_of_memory("cannot allocate the cuBLAS workspace");
    }
    staging_.reserve(size_t{1} << 20);  // without it, uploads wait for the stream (upload_ints)
    // Early launch needs Hopper (compute capability 9) or later; elsewhere kernels launch as usual.
    int major = 0;
    if (early_launch_ && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_) == cudaSuccess &&
        major >= 9) {
      cuda::set_early_launch(stream_, true);
    }
    return Status::ok_status();
  }

  const char* name() const override { return "cuda"; }

  Status prepare(const Model& model) override {
    const std::vector<GgufTensor>& tensors = model.file().tensors();
    // Prepared already? (The backend is not told of a model's end: its device copy is kept until the backend goes;
    // a later model whose tensors sit at the same addresses replaces their entries.)
    if (prepared_.count(model.serial()) != 0) return Status::ok_status();
    // One allocation for every tensor of the file, each at a 256-byte aligned offset, then float copies of
    // the 1-D ones after them.
    std::vector<size_t> offsets(tensors.size()), float_offsets(tensors.size(), SIZE_MAX);
    size_t total = 0;
    auto align = [](size_t n) { return (n + 255) / 256 * 256; };
    for (size_t i = 0; i < tensors.size(); ++i) {
      offsets[i] = total;
      total = align(total + tensors[i].n_bytes);
    }
    std::vector<std::vector<float>> floats(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensor& t = tensors[i];
      if (t.n_dims != 1) continue;
      std::vector<float>& v = floats[i];
      v.resize(t.ne[0]);
      if (t.type == TensorType::F32) {
        std::memcpy(v.data(), t.data, t.ne[0] * sizeof(float));
      } else if (t.type == TensorType::F16) {
        for (int64_t j = 0; j < t.ne[0]; ++j) v[j] = hd_fp16_to_fp32(reinterpret_cast<const uint16_t*>(t.data)[j]);
      } else if (t.type == TensorType::BF16) {
        for (int64_t j = 0; j < t.ne[0]; ++j) v[j] = hd_bf16_to_fp32(reinterpret_cast<const uint16_t*>(t.data)[j]);
      } else if (t.ne[0] % kChunk != 0 || !dequant_row_chunks(t.type, t.data, v.data(), t.ne[0])) {
        return unsupported("tensor " + t.name + ": 1-D tensors of type " + type_name(t.type) +
                           " are not supported by the CUDA backend");
      }
      float_offsets[i] = total;
      total = align(total + v.size() * sizeof(float));
    }
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    auto mem = std::make_unique<DeviceMemory>();
    if (mem->allocate(total) != cudaSuccess) {
      return out_of_memory("cannot allocate " + std::to_string(total >> 20) + " MiB of GPU memory for the weights (" +
                           std::to_string(free_bytes >> 20) + " MiB free)");
    }
    uint8_t* base = static_cast<uint8_t*>(mem->get());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensor& t = tensors[i];
      DeviceTensor d;
      d.data = base + offsets[i];
      if (cudaMemcpy(base + offsets[i], t.data, t.n_bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        return internal_error("cannot copy tensor " + t.name + " to the GPU: " +
                              cudaGetErrorString(cudaGetLastError()));
      }
      if (float_offsets[i] != SIZE_MAX) {
        d.floats = reinterpret_cast<const float*>(base + float_offsets[i]);
        if (cudaMemcpy(base + float_offsets[i], floats[i].data(), floats[i].size() * sizeof(float),
                       cudaMemcpyHostToDevice) != cudaSuccess) {
          return internal_error("cannot copy tensor " + t.name + " to the GPU");
        }
      }
      weights_[&t] = d;
    }
    weight_memory_.push_back(std::move(mem));
    if (f16_copies_) PGI_RETURN_IF_ERROR(keep_f16_copies(model));
    prepared_.insert(model.serial());
    return Status::ok_status();
  }

  Status alloc(int64_t n, std::unique_ptr<ActivationBuffer>* out) override {
    auto b = std::make_unique<CudaBuffer>(n);
    if (b->mem.allocate((size_t)n * sizeof(float)) != cudaSuccess) {
      return out_of_memory("cannot allocate " + std::to_string(n * 4) + " bytes of GPU memory for activations");
    }
    *out = std::move(b);
    return Status::ok_status();
  }

  Status create_kv_cache(int64_t n_layer, int64_t capacity, int64_t kv_dim, std::unique_ptr<KvCache>* out) override {
    auto c = std::make_unique<CudaKvCache>(n_layer, capacity, kv_dim);
    if (!c->kv.allocate()) {
      return out_of_memory("cannot allocate a GPU KV cache of " + std::to_string(capacity) + " positions (" +
                           std::to_string(c->kv.bytes() >> 20) + " MiB, " + std::to_string(free_device_memory() >> 20) +
                           " MiB free)");
    }
    *out = std::move(c);
    return Status::ok_status();
  }

  Status create_kv_pool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim,
                        std::unique_ptr<KvPool>* out) override {
    if (n_layer <= 0 || kv_dim <= 0 || n_blocks <= 0 || n_blocks > INT32_MAX || block_size <= 0 ||
        block_size > (1 << 20) || (block_size & (block_size - 1)) != 0) {
      return invalid_argument("a KV pool needs layers, 1 to 2^31-1 blocks and a power-of-two block size");
    }
    auto pool = std::make_unique<CudaKvPool>(n_layer, n_blocks, block_size, kv_dim);
    if (!pool->kv.allocate()) {
      return out_of_memory("cannot allocate a GPU KV pool of " + std::to_string(n_blocks) + " blocks of " +
                           std::to_string(block_size) + " positions (" + std::to_string(pool->kv.bytes() >> 20) +
                           " MiB, " + std::to_string(free_device_memory() >> 20) + " MiB free)");
    }
    *out = std::move(pool);
    return Status::ok_status();
  }

  int64_t free_device_memory() override {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(device_) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return (int64_t)free_bytes;
  }

  // Logit rows of a pass go through one product whatever the output type: the GPU's batched products round
  // otherwise than one token's in every layer anyway, and each float row alone costs a pass over the matrix.
  bool group_logit_rows(TensorType) const override { return true; }

  // Prompts in passes of up to 2,048 tokens: cuBLAS fills an H100 only with products of that many rows (at 512, a
  // 2048 x 2048 product is 32 tiles of 128 x 256 for 132 multiprocessors).
  int64_t pass_tokens() const override { return 2048; }

  Status health() const override {
    return failed() ? Status(error_code_, "the GPU backend failed: " + error_) : Status::ok_status();
  }

  bool begin_pass(const PassShape& shape) override {
    if (!graphs_ || failed() || mode_ != Mode::kEager) return false;
    size_t inputs = 0;
    if (!pass_key(shape, &key_, &inputs)) return false;
    auto it = recordings_.find(key_);
    if (it != recordings_.end()) {
      current_ = it->second.get();
      // Its previous launch may still read the memory its uploads are staged in.
      if (cudaEventSynchronize(current_->done) != cudaSuccess) {
        fail(std::string("waiting for a CUDA graph: ") + cudaGetErrorString(cudaGetLastError()),
             StatusCode::DeviceLost);
        return false;
      }
      start_recorded_pass(Mode::kReplay);
      return true;
    }
    // A shape is captured the second time it is seen (the first pass sizes the scratch memory), and given up
    // after failing to be captured three times.
    if (sightings_.size() > 4096) sightings_.clear();
    Sighting& seen = sightings_[key_];
    if (++seen.passes < 2 || seen.failures >= 3) return false;
    auto rec = std::make_unique<Recording>();
    if (cudaEventCreateWithFlags(&rec->done, cudaEventDisableTiming) != cudaSuccess || !rec->inputs.reserve(inputs)) {
      cudaGetLastError();
      ++seen.failures;
      return false;
    }
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();
      ++seen.failures;
      return false;
    }
    capturing_ = std::move(rec);
    current_ = capturing_.get();
    start_recorded_pass(Mode::kCapture);
    return true;
  }

  bool end_pass() override {
    const Mode mode = mode_;
    mode_ = Mode::kEager;
    Recording* rec = current_;
    current_ = nullptr;
    if (mode == Mode::kEager) return true;
    bool ran = false;
    if (capturing_) {
      // A capture, complete or discarded; one during which the backend failed leaves nothing worth keeping.
      cudaGraph_t graph = nullptr;
      const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
      if (mode == Mode::kCapture && !failed() && e == cudaSuccess && graph != nullptr &&
          cudaGraphInstantiate(&capturing_->exec, graph, 0) == cudaSuccess) {
        keep_recording(std::move(capturing_));
        ran = launch(rec);
      } else {
        cudaGetLastError();  // a failed capture is not the device's failure
        ++sightings_[key_].failures;
      }
      if (graph != nullptr) cudaGraphDestroy(graph);
      capturing_.reset();
    } else if (mode == Mode::kReplay && op_index_ == rec->ops.size() && upload_index_ == rec->uploads.size()) {
      if (!failed()) ran = launch(rec);
    } else {
      // A replay that departed from its recording: the recording is not trusted again.
      ++sightings_[key_].failures;
      recordings_.erase(key_);
    }
    ++(ran ? (mode == Mode::kCapture ? stats_.captured : stats_.replayed) : stats_.reissued);
    // What the device's upload arrays hold is known again only after the arrays are next written.
    if (!ran) forget_uploaded();
    // After a failure the pass is not issued again: health() reports it.
    return ran || failed();
  }

  PassCounts pass_counts() const override { return stats_; }

  void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    if (!begin_op(kOpEmbed, n_tokens)) return;
    const int32_t* dev_ids = upload_ints(ids, n_tokens, &ids_);
    if (dev_ids == nullptr || replaying()) return;
    const void* rows = weight(table).data;
    if (failed()) return;
    if (!cuda::embed(table.type, rows, row_bytes(table.type, table.ne[0]), table.ne[0], dev_ids, n_tokens,
                     out, stream_)) {
      fail(std::string("embedding of type ") + type_name(table.type) + " is not supported");
    }
    check_launch("embed");
  }

  void rms_norm(const float* x, const GgufTensor& weight_tensor, float eps, int64_t n_tokens, int64_t dim,
                float* out) override {
    if (!begin_op(kOpNorm, n_tokens, dim) || replaying()) return;
    const float* w = weight(weight_tensor).floats;
    if (failed()) return;
    cuda::rms_norm(x, w, eps, n_tokens, dim, out, stream_);
    check_launch("rms_norm");
  }

  void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* y) override {
    const Product one[] = {{&w, bias, y}};
    products(kOpMatmul, one, x, n_tokens, Fusion::kNone, nullptr);
  }

  void matmuls(std::span<const Product> list, const float* x, int64_t n_tokens) override {
    if (!same_input_type(list) || list.size() > (size_t)cuda::kMaxMatvecParts) {
      Backend::matmuls(list, x, n_tokens);
      return;
    }
    products(kOpMatmuls, list, x, n_tokens, Fusion::kNone, nullptr);
  }

  void matmul_add(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* temp,
                  float* y) override {
    const Product one[] = {{&w, bias, y}};
    products(kOpMatmulAdd, one, x, n_tokens, Fusion::kAdd, temp);
  }

  void matmul_swiglu(const GgufTensor& gate, const GgufTensor& up, const float* x, int64_t n_tokens, float* gate_out,
                     float* up_out) override {
    const Product both[] = {{&gate, nullptr, gate_out}, {&up, nullptr, up_out}};
    if (!same_input_type(both) || gate.ne[1] != up.ne[1]) {
      Backend::matmul_swiglu(gate, up, x, n_tokens, gate_out, up_out);
      return;
    }
    products(kOpMatmulSwiglu, both, x, n_tokens, Fusion::kSwiglu, nullptr);
  }

  void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const RopeParams& p) override {
    rope_qk(x, nullptr, pos, n_tokens, n_heads, 0, head_dim, p);
  }

  void rope_qk(float* q, float* k, const int32_t* pos, int64_t n_tokens, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, const RopeParams& p) override {
    if (!begin_op(kOpRope, n_tokens, n_head + n_head_kv)) return;
    const int32_t* dev_pos = upload_ints(pos, n_tokens, &pos_);
    if (dev_pos == nullptr || replaying()) return;
    const float* factors = p.freq_factors ? weight(*p.freq_factors).floats : nullptr;
    if (failed()) return;
    cuda::rope_pair(q, n_head, k, n_head_kv, dev_pos, n_tokens, head_dim, p.n_rot, p.style == RopeStyle::Neox,
                    rope_theta_scale(p.freq_base, p.n_rot), p.freq_scale, factors, stream_);
    check_launch("rope");
  }

  void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v, const int32_t* pos,
                 int64_t n_tokens, const AttentionParams& p, float* out) override {
    const AttentionChunk one{&cache, n_tokens};
    attend(std::span<const AttentionChunk>(&one, 1), layer, q, k, v, pos, p, out);
  }

  void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                       const float* v, const int32_t* pos, const AttentionParams& p, float* out) override {
    // One launch needs the rows of every chunk in one memory: one chunk, or paged views of one pool (the serving
    // loop's passes). Other mixes (the contiguous caches of several sessions) go chunk by chunk.
    const KvPool* pool = nullptr;
    int n_chunks = 0;
    bool one_pool = true;
    for (const AttentionChunk& c : chunks) {
      if (c.n_tokens <= 0) continue;
      ++n_chunks;
      PagedKvCache* paged = c.kv->as_paged();
      if (paged == nullptr || (pool != nullptr && &paged->pool() != pool)) one_pool = false;
      if (paged != nullptr) pool = &paged->pool();
    }
    if (n_chunks > 1 && !one_pool) {
      Backend::attention_batch(chunks, layer, q, k, v, pos, p, out);
      return;
    }
    attend(chunks, layer, q, k, v, pos, p, out);
  }

  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    if (!begin_op(kOpSwiglu, n) || replaying()) return;
    cuda::swiglu(gate, up, n, out, stream_);
    check_launch("swiglu");
  }

  void add(const float* a, const float* b, int64_t n, float* out) override {
    if (!begin_op(kOpAdd, n) || replaying()) return;
    cuda::add(a, b, n, out, stream_);
    check_launch("add");
  }

  void read(const float* src, int64_t n, float* host_dst) override {
    check_outside_pass();
    if (!failed()) {
      cudaError_t e = cudaMemcpyAsync(host_dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_);
      if (e == cudaSuccess) e = synchronize();
      if (e == cudaSuccess) return;
      fail(std::string("reading results: ") + cudaGetErrorString(e), StatusCode::DeviceLost);
    }
    std::memset(host_dst, 0, n * sizeof(float));
  }

  bool argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) override {
    check_outside_pass();
    const size_t bytes = (size_t)n_rows * sizeof(int32_t);
    int32_t* ids = failed() ? nullptr : static_cast<int32_t*>(scratch(&argmax_ids_, bytes));
    if (ids != nullptr) {
      cuda::argmax_rows(rows, n_rows, n_vocab, ids, stream_);
      cudaError_t e = cudaGetLastError();
      if (e == cudaSuccess) e = cudaMemcpyAsync(host_ids, ids, bytes, cudaMemcpyDeviceToHost, stream_);
      if (e == cudaSuccess) e = synchronize();
      if (e == cudaSuccess) return true;
      fail(std::string("finding the largest logits: ") + cudaGetErrorString(e), StatusCode::DeviceLost);
    }
    std::memset(host_ids, 0, bytes);  // meaningless: health() reports the failure
    return true;
  }

  void write(const float* host_src, int64_t n, float* dst) override {
    check_outside_pass();
    if (failed()) return;
    cudaError_t e = cudaMemcpyAsync(dst, host_src, n * sizeof(float), cudaMemcpyHostToDevice, stream_);
    if (e == cudaSuccess) e = synchronize();
    if (e != cudaSuccess) fail(std::string("writing inputs: ") + cudaGetErrorString(e), StatusCode::DeviceLost);
  }

 private:
  // F16 copies of the model's quantized matrices (every layer's and the output's), made on the device, when they
  // take at most a quarter of the memory free now: products of many tokens then skip the dequantization. None
  // otherwise (not an error).
  Status keep_f16_copies(const Model& model) {
    std::vector<const GgufTensor*> matrices;
    for (const LayerWeights& L : model.layers()) {
      for (const GgufTensor* t : {L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down}) matrices.push_back(t);
    }
    matrices.push_back(&model.output());
    size_t bytes = 0;
    std::vector<const GgufTensor*> copied;
    for (const GgufTensor* t : matrices) {
      if (t == nullptr || t->n_dims != 2 || t->type == TensorType::F32 || t->type == TensorType::F16 ||
          t->type == TensorType::BF16 || weights_[t].f16 != nullptr ||
          std::find(copied.begin(), copied.end(), t) != copied.end()) {
        continue;
      }
      copied.push_back(t);
      bytes += ((size_t)t->ne[0] * (size_t)t->ne[1] * 2 + 255) / 256 * 256;
    }
    if (copied.empty() || bytes > (size_t)free_device_memory() / 4) return Status::ok_status();
    auto mem = std::make_unique<DeviceMemory>();
    if (mem->allocate(bytes) != cudaSuccess) return Status::ok_status();
    uint8_t* at = static_cast<uint8_t*>(mem->get());
    for (const GgufTensor* t : copied) {
      DeviceTensor& d = weights_[t];
      const int64_t k = t->ne[0], rows = t->ne[1];
      if (!cuda::dequantize_to_f16(t->type, d.data, row_bytes(t->type, k), rows, k, reinterpret_cast<uint16_t*>(at),
                                   stream_)) {
        continue;  // a type without F16 conversion: dequantized at each product, which then says so
      }
      d.f16 = reinterpret_cast<const uint16_t*>(at);
      at += ((size_t)k * (size_t)rows * 2 + 255) / 256 * 256;
    }
    const cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess) {
      return Status(StatusCode::DeviceLost, std::string("dequantizing weights to F16: ") + cudaGetErrorString(e));
    }
    weight_memory_.push_back(std::move(mem));
    return Status::ok_status();
  }

  // How operations are issued (begin_pass, end_pass).
  enum class Mode {
    kEager,    // launched as they come
    kCapture,  // launched into the stream's capture, which end_pass makes a recording of
    kReplay,   // not launched: their uploads are staged for the replay of a recording at end_pass
    kDiscard,  // ignored: a capture or replay that failed, which the caller issues again after end_pass
  };

  // Operation kinds, for the checks of a replay.
  enum OpKind : int64_t {
    kOpEmbed = 1, kOpNorm, kOpMatmul, kOpMatmuls, kOpMatmulAdd, kOpMatmulSwiglu, kOpRope, kOpAttention, kOpSwiglu,
    kOpAdd
  };

  // x as the CPU's products with weights `w` see it: rounded to Q8_0 or Q8_K values for quantized weights (into
  // scratch memory), so that the backends compute the same sums and differ only in their order; as is otherwise
  // (F16 and BF16 roundings happen on the way: in the matrix-vector kernel, or in the conversion to the cuBLAS
  // operand type, the same round-to-nearest-even). Null after a failure.
  const float* rounded_activations(const GgufTensor& w, const float* x, int64_t n_tokens) {
    const TensorType at = activation_type(w.type);
    if (at != TensorType::Q8_0 && at != TensorType::Q8_K) return x;
    const int64_t k = w.ne[0];
    float* xr = static_cast<float*>(scratch(&act_round_, (size_t)n_tokens * k * sizeof(float)));
    if (xr != nullptr) cuda::round_activations(at, x, n_tokens * k, xr, stream_);
    return xr;
  }

  // What a product operation does with its results besides storing them (products()).
  enum class Fusion {
    kNone,    // y = w x (+ bias), for each product
    kAdd,     // one product, added to y (matmul_add)
    kSwiglu,  // gate and up: gate's y = swiglu(gate x, up x) (matmul_swiglu)
  };

  // Whether products read their input alike: weights of one type and row length.
  static bool same_input_type(std::span<const Product> list) {
    for (const Product& p : list) {
      if (p.w->type != list[0].w->type || p.w->ne[0] != list[0].w->ne[0]) return false;
    }
    return !list.empty();
  }

  // Products of the same input (same_input_type; at most kMaxMatvecParts of them), fused as `fusion` says. Few
  // tokens: one matrix-vector launch, which rounds the activations itself. More: one cuBLAS product each, the
  // activations rounded (rounded_activations) and converted to the operand type once; a sum into y is cuBLAS's beta = 1
  // (without bias; with one, the product goes to `temp`, then the bias and the add), and swiglu a kernel after.
  void products(OpKind kind, std::span<const Product> list, const float* x, int64_t n_tokens, Fusion fusion,
                float* temp) {
    if (n_tokens <= 0 || !begin_op(kind, n_tokens, (int64_t)list.size()) || replaying()) return;
    const GgufTensor& w0 = *list[0].w;
    if (n_tokens < kGemmMinTokens) {  // the kernel rounds the activations itself
      cuda::MatvecJob job;
      job.type = w0.type;
      job.k = w0.ne[0];
      job.row_bytes = row_bytes(w0.type, w0.ne[0]);
      job.x = x;
      job.n_tokens = n_tokens;
      for (const Product& p : list) {
        job.parts[job.n_parts++] = {weight(*p.w).data, p.w->ne[1], p.bias ? weight(*p.bias).floats : nullptr, p.y};
      }
      job.accumulate = fusion == Fusion::kAdd;
      job.swiglu = fusion == Fusion::kSwiglu;
      if (failed()) return;  // a weight was not prepared (weight())
      if (!cuda::matvec(job, stream_)) {
        fail(std::string("matrix-vector products with weights of type ") + type_name(w0.type) + " of " +
             std::to_string(w0.ne[0]) + " columns are not supported");
      }
      check_launch("matvec");
      return;
    }
    x = rounded_activations(w0, x, n_tokens);
    if (x == nullptr) return;
    const void* xg = gemm_activations(w0, x, n_tokens);
    if (xg == nullptr) return;
    for (const Product& p : list) {
      const int64_t rows = p.w->ne[1];
      const bool add_in_gemm = fusion == Fusion::kAdd && p.bias == nullptr;
      float* out = fusion == Fusion::kAdd && !add_in_gemm ? temp : p.y;
      if (!gemm(*p.w, xg, n_tokens, out, add_in_gemm)) return;
      if (p.bias) {
        const float* bias = weight(*p.bias).floats;
        if (failed()) return;
        cuda::add_bias(out, bias, n_tokens, rows, stream_);
      }
      if (out == temp) cuda::add(p.y, temp, n_tokens * rows, p.y, stream_);
    }
    if (fusion == Fusion::kSwiglu) cuda::swiglu(list[0].y, list[1].y, n_tokens * w0.ne[1], list[0].y, stream_);
    check_launch("gemm");
  }

  // x (n_tokens rows, already rounded for quantized weights) as the cuBLAS operand for weights like w: as is for
  // F32, converted to BF16 or F16 (round to nearest even) into scratch otherwise; null after a failure.
  const void* gemm_activations(const GgufTensor& w, const float* x, int64_t n_tokens) {
    if (w.type == TensorType::F32) return x;
    const int64_t n = n_tokens * w.ne[0];
    uint16_t* out = static_cast<uint16_t*>(scratch(&act16_, (size_t)n * 2));
    if (out == nullptr) return nullptr;
    if (w.type == TensorType::BF16) {
      cuda::convert_f32_to_bf16(x, n, out, stream_);
    } else {
      cuda::convert_f32_to_f16(x, n, out, stream_);
    }
    return out;
  }

  // y = w x (y += w x with `accumulate`) through cuBLAS, x given by gemm_activations(w, ...); quantized weights as
  // their F16 copy, or dequantized into scratch. False, the backend failed, on an error.
  bool gemm(const GgufTensor& w, const void* x, int64_t n_tokens, float* y, bool accumulate) {
    const int64_t k = w.ne[0], rows = w.ne[1];
    const DeviceTensor& d = weight(w);
    if (failed()) return false;  // not prepared (weight())
    const void* a = d.data;
    cudaDataType_t operand = CUDA_R_16F;
    if (w.type == TensorType::F32) {
      operand = CUDA_R_32F;
    } else if (w.type == TensorType::BF16) {
      operand = CUDA_R_16BF;
    } else if (w.type != TensorType::F16) {
      a = d.f16;
      if (a == nullptr) {
        uint16_t* wh = static_cast<uint16_t*>(scratch(&weight16_, (size_t)rows * k * 2));
        if (wh == nullptr) return false;
        if (!cuda::dequantize_to_f16(w.type, d.data, row_bytes(w.type, k), rows, k, wh, stream_)) {
          fail(std::string("products with weights of type ") + type_name(w.type) + " are not supported");
          return false;
        }
        a = wh;
      }
    }
    check_launch("gemm operands");
    if (failed()) return false;
    const cublasStatus_t st = cuda::gemm_rows(cublas_, operand, a, x, rows, n_tokens, k, y, accumulate);
    if (st != CUBLAS_STATUS_SUCCESS) {
      fail("cublasGemmEx failed with status " + std::to_string((int)st), StatusCode::DeviceLost);
      return false;
    }
    return true;
  }

  // The key of a pass's recordings: owner, key bound, then per chunk its cache's serial and tokens, then the logit
  // rows. Sets *input_bytes to the page-locked memory its uploads may need. False for a pass that is not recorded.
  bool pass_key(const PassShape& shape, std::vector<int64_t>* key, size_t* input_bytes) const {
    key->clear();
    int64_t n_tokens = 0, block_size = 1, table_entries = 0;
    for (const AttentionChunk& c : shape.chunks) {
      if (PagedKvCache* paged = c.kv->as_paged()) block_size = paged->pool().block_size();
    }
    const int64_t bound = cuda::attention_key_bound(shape.max_kv, block_size);
    key->push_back((int64_t)shape.owner);
    key->push_back(bound);
    key->push_back((int64_t)shape.chunks.size());
    for (const AttentionChunk& c : shape.chunks) {
      if (c.n_tokens <= 0) return false;
      const PagedKvCache* paged = c.kv->as_paged();
      key->push_back((int64_t)(paged ? static_cast<CudaKvPool&>(c.kv->as_paged()->pool()).kv.serial
                                     : static_cast<CudaKvCache&>(*c.kv).kv.serial));
      key->push_back(c.n_tokens);
      n_tokens += c.n_tokens;
      if (paged) table_entries += bound / block_size;
    }
    key->push_back((int64_t)shape.logit_tokens.size());
    key->insert(key->end(), shape.logit_tokens.begin(), shape.logit_tokens.end());
    // Ids, positions (rope), and the attention's positions, table starts and tables, each uploaded once per pass
    // (every layer passes the same values again); twice that, for safety. An upload beyond it fails the capture.
    *input_bytes = (size_t)(4 * n_tokens + table_entries) * sizeof(int32_t) * 2 + 4096;
    return true;
  }

  // Enters a capture or replay of current_.
  void start_recorded_pass(Mode mode) {
    mode_ = mode;
    op_index_ = upload_index_ = 0;
    attn_layout_in_pass_ = false;
    forget_uploaded();
  }

  // Forgets what the upload arrays hold, so that the next upload to each is copied.
  void forget_uploaded() {
    for (IntUpload* u : {&ids_, &pos_, &attn_ints_}) u->host.clear();
  }

  // Keeps a captured recording under key_, dropping the least recently used one when there are too many.
  void keep_recording(std::unique_ptr<Recording> rec) {
    if (recordings_.size() >= kMaxRecordings) {
      auto oldest = recordings_.begin();
      for (auto it = recordings_.begin(); it != recordings_.end(); ++it) {
        if (it->second->last_used < oldest->second->last_used) oldest = it;
      }
      recordings_.erase(oldest);
    }
    recordings_[key_] = std::move(rec);
  }

  // Launches a recording; false (the backend failed) on an error.
  bool launch(Recording* rec) {
    cudaError_t e = cudaGraphLaunch(rec->exec, stream_);
    if (e == cudaSuccess) e = cudaEventRecord(rec->done, stream_);
    if (e != cudaSuccess) {
      fail(std::string("launching a CUDA graph: ") + cudaGetErrorString(e), StatusCode::DeviceLost);
      return false;
    }
    rec->last_used = ++pass_clock_;
    return true;
  }

  // Stops a capture or replay that cannot go on: later operations of the pass are ignored, and end_pass tells
  // the caller to issue them again.
  void discard() {
    if (mode_ == Mode::kCapture || mode_ == Mode::kReplay) mode_ = Mode::kDiscard;
  }

  // First step of every operation: false when it is to be ignored (after a failure, in a discarded pass).
  // Records the operation's kind and launch sizes in a capture, and checks them against the recording in a
  // replay.
  bool begin_op(OpKind kind, int64_t a, int64_t b = 0) {
    if (failed() || mode_ == Mode::kDiscard) return false;
    if (mode_ == Mode::kCapture) {
      current_->ops.insert(current_->ops.end(), {(int64_t)kind, a, b});
    } else if (mode_ == Mode::kReplay) {
      const std::vector<int64_t>& ops = current_->ops;
      if (op_index_ + 3 > ops.size() || ops[op_index_] != kind || ops[op_index_ + 1] != a || ops[op_index_ + 2] != b) {
        discard();
        return false;
      }
      op_index_ += 3;
    }
    return true;
  }

  // Reads and writes wait for the device, which a recorded pass cannot: one inside a pass is the caller's bug,
  // which fails the backend.
  void check_outside_pass() {
    if (mode_ == Mode::kEager) return;
    discard();
    fail("a read or write inside an announced pass (Backend::begin_pass)");
  }

  // Whether operations only stage their uploads (a replay): their kernels are in the recording.
  bool replaying() const { return mode_ == Mode::kReplay; }

  // Reallocates *m with at least `bytes` (its contents are lost); false, with the backend failed, when the
  // device has no room, and false, with the pass discarded, during a capture (which cannot allocate). Recordings
  // may name *m: they are dropped.
  bool grow(DeviceMemory* m, size_t bytes, const std::string& what) {
    if (mode_ != Mode::kEager) {
      discard();
      return false;
    }
    synchronize();
    recordings_.clear();
    if (m->allocate(bytes) != cudaSuccess) {
      fail("cannot allocate " + std::to_string(bytes >> 20) + " MiB of GPU memory for " + what,
           StatusCode::OutOfMemory);
      return false;
    }
    return true;
  }

  bool failed() const { return !error_.empty(); }

  void fail(const std::string& message, StatusCode code = StatusCode::Internal) {
    if (!error_.empty()) return;
    error_ = message;
    error_code_ = code;
    std::fprintf(stderr, "pg_infer CUDA backend: %s; later GPU operations are skipped\n", message.c_str());
  }

  void check_launch(const char* what) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(e), StatusCode::DeviceLost);
  }

  const DeviceTensor& weight(const GgufTensor& t) {
    auto it = weights_.find(&t);
    if (it != weights_.end()) return it->second;
    fail("tensor " + t.name + " was not prepared for the GPU");
    static const DeviceTensor none;
    return none;
  }

  // Waits for everything queued on the stream; the staging memory is then free again.
  cudaError_t synchronize() {
    const cudaError_t e = cudaStreamSynchronize(stream_);
    staging_.reset();
    return e;
  }

  // n host ints in device memory (u's array, grown as needed), copied through page-locked memory without
  // waiting for the stream (the array's previous values stay until the kernels queued before have read them:
  // stream order), or not copied at all when u holds these values already; null after a failure or in a
  // discarded pass. In a capture the copy is recorded, from the recording's own page-locked memory; in a replay
  // only the values are staged there, for the graph's copy to read, and the upload is checked against the
  // recording's.
  const int32_t* upload_ints(const int32_t* host, int64_t n, IntUpload* u) {
    const size_t bytes = (size_t)n * sizeof(int32_t);
    const bool held = (int64_t)u->host.size() == n && std::memcmp(u->host.data(), host, bytes) == 0;
    if (mode_ == Mode::kReplay) {
      const std::vector<UploadStep>& steps = current_->uploads;
      if (upload_index_ >= steps.size() || steps[upload_index_].target != u || steps[upload_index_].n != n ||
          (steps[upload_index_].staged == nullptr && !held)) {
        discard();
        return nullptr;
      }
      if (void* staged = steps[upload_index_].staged) {
        std::memcpy(staged, host, bytes);
        u->host.assign(host, host + n);
      }
      ++upload_index_;
      return static_cast<const int32_t*>(u->mem.get());
    }
    if (held) {
      if (mode_ == Mode::kCapture) current_->uploads.push_back({u, n, nullptr});
      return static_cast<const int32_t*>(u->mem.get());
    }
    if (u->mem.bytes() < bytes && !grow(&u->mem, std::max<size_t>(n, 512) * sizeof(int32_t), "token ids")) {
      return nullptr;
    }
    void* staged;
    if (mode_ == Mode::kCapture) {
      staged = current_->inputs.take(bytes);
      if (staged == nullptr) {
        discard();
        return nullptr;
      }
      current_->uploads.push_back({u, n, staged});
    } else {
      staged = staging_.take(bytes);
      if (staged == nullptr) {
        // Full: once the stream is idle, all of it is free again (grown if this upload alone needs more).
        synchronize();
        if (staging_.reserve(bytes)) staged = staging_.take(bytes);
      }
    }
    // Without page-locked memory, the copy from the caller's array (which waits for the stream) still works.
    const void* src = host;
    if (staged != nullptr) src = std::memcpy(staged, host, bytes);
    const cudaError_t e = cudaMemcpyAsync(u->mem.get(), src, bytes, cudaMemcpyHostToDevice, stream_);
    if (e != cudaSuccess) fail(std::string("copying token ids: ") + cudaGetErrorString(e), StatusCode::DeviceLost);
    u->host.assign(host, host + n);
    return static_cast<const int32_t*>(u->mem.get());
  }

  // Stores the chunks' keys and values of `layer`, then computes their attention (Backend::attention), in one
  // launch of each kernel. Every non-empty chunk's cache must live in one memory: one contiguous cache, or paged
  // views of one pool. Fails the backend, touching nothing, on a position that a cache or block table does not
  // cover or a table entry outside the pool.
  void attend(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k, const float* v,
              const int32_t* pos, const AttentionParams& p, float* out) {
    if (failed()) return;
    // Within an announced pass every layer attends with the same chunks and positions (Executor::run_layers): the
    // first layer's call builds what goes to the device, and the others reuse it.
    AttentionLayout& a = attn_layout_;
    if (!(mode_ != Mode::kEager && attn_layout_in_pass_ && a.built_for(chunks, pos))) {
      const Status st = build_attention_layout(chunks, pos, p.head_dim, &a);
      attn_layout_in_pass_ = st.ok() && mode_ != Mode::kEager;
      if (!st.ok()) {
        fail(st.message());
        return;
      }
    }
    if (a.n_tokens == 0 || !begin_op(kOpAttention, a.n_tokens, a.bound)) return;
    const int32_t* dev = upload_ints(a.ints.data(), (int64_t)a.ints.size(), &attn_ints_);
    if (dev == nullptr || replaying()) return;
    const int32_t* dev_pos = dev;
    cuda::KvSlots slots;
    slots.block_shift = a.block_shift;
    if (a.pool) slots.blocks = dev + a.tables_at;
    if (a.per_token_tables) slots.table_start = dev + a.n_tokens;
    KvLayers* kv = a.pool ? &static_cast<CudaKvPool*>(a.pool)->kv : &static_cast<CudaKvCache*>(a.cache)->kv;
    // Every chunk's new rows are stored before any query reads: both kernels run in order on one stream.
    cuda::kv_store(k, v, dev_pos, a.n_tokens, kv->kv_dim, slots, kv->keys(layer), kv->values(layer), stream_);
    if (a.tiled) {
      cuda::attention_tiled(q, kv->keys(layer), kv->values(layer), slots, dev_pos, dev + a.tiles_at, a.n_tiles,
                            p.n_head, p.n_head_kv, p.head_dim, p.scale, out, stream_);
      check_launch("attention");
      return;
    }
    float* partial = nullptr;
    if (const int64_t n = cuda::attention_scratch_floats(a.n_tokens, p.n_head, p.head_dim, a.bound); n > 0) {
      partial = static_cast<float*>(scratch(&attn_partial_, (size_t)n * sizeof(float)));
      if (!partial) return;
    }
    cuda::attention(q, kv->keys(layer), kv->values(layer), slots, dev_pos, a.n_tokens, p.n_head, p.n_head_kv,
                    p.head_dim, p.scale, a.bound, partial, out, stream_);
    check_launch("attention");
  }

  // At least `bytes` of scratch in *m (grown, never shrunk); null after a failure.
  void* scratch(DeviceMemory* m, size_t bytes) {
    if (m->bytes() >= bytes) return m->get();
    return grow(m, bytes, "scratch") ? m->get() : nullptr;
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::string error_;
  StatusCode error_code_ = StatusCode::Ok;
  std::unordered_map<const GgufTensor*, DeviceTensor> weights_;
  std::unordered_set<uint64_t> prepared_;  // serials of the models prepared
  std::vector<std::unique_ptr<DeviceMemory>> weight_memory_;
  bool graphs_;                    // passes announced by begin_pass are recorded and replayed
  bool f16_copies_;                // prepare() keeps F16 copies of quantized matrices (keep_f16_copies)
  bool early_launch_;              // kernels on stream_ may launch early (cuda::set_early_launch)
  IntUpload ids_, pos_;
  IntUpload attn_ints_;            // an attention call's positions, then (paged) table starts and block tables
  AttentionLayout attn_layout_;    // the last attention call's (attend)
  bool attn_layout_in_pass_ = false;  // attn_layout_ was built in the announced pass in progress
  PinnedStaging staging_;           // where uploads are copied from
  DeviceMemory weight16_, act16_, act_round_, attn_partial_;
  DeviceMemory cublas_workspace_;
  DeviceMemory argmax_ids_;  // argmax_rows' results before they are copied back
  // CUDA graphs (begin_pass): recordings by pass key, the pass in progress, and counts.
  Mode mode_ = Mode::kEager;
  std::map<std::vector<int64_t>, std::unique_ptr<Recording>> recordings_;
  std::map<std::vector<int64_t>, Sighting> sightings_;
  std::vector<int64_t> key_;                 // the announced pass's key
  Recording* current_ = nullptr;             // the recording captured or replayed
  std::unique_ptr<Recording> capturing_;     // the recording being captured, until kept
  size_t op_index_ = 0, upload_index_ = 0;   // a replay's progress through current_'s ops and uploads
  uint64_t pass_clock_ = 0;                  // recordings launched so far
  PassCounts stats_;
};

void copy_message(const std::string& s, char* out, size_t len) {
  if (len == 0) return;
  std::snprintf(out, len, "%s", s.c_str());
}

}  // namespace

}  // namespace pginfer

// The module's exported interface (see engine/cuda_loader.cpp).
extern "C" {

__attribute__((visibility("default"))) int pginfer_cuda_module_abi() { return pginfer::kCudaModuleAbi; }

__attribute__((visibility("default"))) int pginfer_cuda_device_count(char* why, size_t why_len) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    pginfer::copy_message(std::string("no CUDA device: ") + cudaGetErrorString(e), why, why_len);
    cudaGetLastError();
    return 0;
  }
  if (n == 0) pginfer::copy_message("no CUDA device: the driver reports none", why, why_len);
  return n;
}

__attribute__((visibility("default"))) int pginfer_cuda_create_backend(int device, unsigned flags,
                                                                       pginfer::Backend** out,
                                                                       char* why, size_t why_len) {
  using namespace pginfer;
  *out = nullptr;
  char reason[400] = {0};
  const int n = pginfer_cuda_device_count(reason, sizeof reason);
  if (n <= 0) {
    copy_message(reason, why, why_len);
    return (int)StatusCode::Unsupported;
  }
  if (device < 0 || device >= n) {
    copy_message("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)", why,
                 why_len);
    return (int)StatusCode::InvalidArgument;
  }
  try {
    auto b = std::make_unique<CudaBackend>(device, flags);
    Status st = b->init();
    if (!st.ok()) {
      copy_message(st.message(), why, why_len);
      return (int)st.code();
    }
    *out = b.release();
    return 0;
  } catch (const std::exception& e) {
    copy_message(std::string("cannot create the CUDA backend: ") + e.what(), why, why_len);
    return (int)StatusCode::Internal;
  }
}

}  // extern "C"
