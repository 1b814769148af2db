// engine/profiling_backend.cpp: the timing decorator of a Backend.
#include "engine/profiling_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "engine/gguf.h"

namespace pginfer {

namespace {

// A weight's name without its layer and suffix ("blk.3.attn_q.weight" -> "attn_q"), so that every layer's
// products of one weight add up under one kind.
std::string weight_kind(const GgufTensor& w) {
  std::string name = w.name;
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string::npos) name = name.substr(dot + 1);
  }
  constexpr std::string_view kSuffix = ".weight";
  if (name.size() > kSuffix.size() && name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    name.resize(name.size() - kSuffix.size());
  }
  return name;
}

}  // namespace

template <class Op>
void ProfilingBackend::timed(const std::string& kind, Op&& op) {
  const auto t0 = std::chrono::steady_clock::now();
  op();
  wait();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto it = std::find_if(times_.begin(), times_.end(), [&](const auto& e) { return e.first == kind; });
  if (it == times_.end()) it = times_.insert(times_.end(), {kind, OpTime{}});
  it->second.calls += 1;
  it->second.seconds += s;
}

void ProfilingBackend::wait() {
  if (probe_ == nullptr && !inner().alloc(1, &probe_).ok()) return;  // cannot wait: times are enqueue times
  float sink;
  inner().read(probe_->data(), 1, &sink);
}

std::string ProfilingBackend::report() const {
  std::vector<std::pair<std::string, OpTime>> sorted = times_;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0.0;
  for (const auto& [kind, t] : sorted) total += t.seconds;
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%-30s %8s %10s %6s\n", "operation", "calls", "ms", "share");
  out += line;
  for (const auto& [kind, t] : sorted) {
    std::snprintf(line, sizeof line, "%-30s %8lld %10.2f %5.1f%%\n", kind.c_str(), (long long)t.calls, 1e3 * t.seconds,
                  total > 0 ? 100.0 * t.seconds / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-30s %8s %10.2f\n", "total", "", 1e3 * total);
  out += line;
  return out;
}

void ProfilingBackend::embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) {
  timed("embed", [&] { inner().embed(table, ids, n_tokens, out); });
}

void ProfilingBackend::rms_norm(const float* x, const GgufTensor& weight, float eps, int64_t n_tokens, int64_t dim,
                                float* out) {
  timed("rms_norm", [&] { inner().rms_norm(x, weight, eps, n_tokens, dim, out); });
}

void ProfilingBackend::matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens,
                              float* y) {
  timed("matmul " + weight_kind(w), [&] { inner().matmul(w, bias, x, n_tokens, y); });
}

void ProfilingBackend::matmuls(std::span<const Product> products, const float* x, int64_t n_tokens) {
  std::string kind = "matmuls ";
  for (const Product& p : products) kind += (&p == products.data() ? "" : "+") + weight_kind(*p.w);
  timed(kind, [&] { inner().matmuls(products, x, n_tokens); });
}

void ProfilingBackend::matmul_add(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens,
                                  float* scratch, float* y) {
  timed("matmul+add " + weight_kind(w), [&] { inner().matmul_add(w, bias, x, n_tokens, scratch, y); });
}

void ProfilingBackend::matmul_swiglu(const GgufTensor& gate, const GgufTensor& up, const float* x, int64_t n_tokens,
                                     float* gate_out, float* up_out) {
  timed("matmul+swiglu " + weight_kind(gate) + "+" + weight_kind(up),
        [&] { inner().matmul_swiglu(gate, up, x, n_tokens, gate_out, up_out); });
}

void ProfilingBackend::rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                            const RopeParams& params) {
  timed("rope", [&] { inner().rope(x, pos, n_tokens, n_heads, head_dim, params); });
}

void ProfilingBackend::rope_qk(float* q, float* k, const int32_t* pos, int64_t n_tokens, int64_t n_head,
                               int64_t n_head_kv, int64_t head_dim, const RopeParams& params) {
  timed("rope_qk", [&] { inner().rope_qk(q, k, pos, n_tokens, n_head, n_head_kv, head_dim, params); });
}

void ProfilingBackend::attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v,
                                 const int32_t* pos, int64_t n_tokens, const AttentionParams& params, float* out) {
  timed("attention", [&] { inner().attention(cache, layer, q, k, v, pos, n_tokens, params, out); });
}

void ProfilingBackend::attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q,
                                       const float* k, const float* v, const int32_t* pos,
                                       const AttentionParams& params, float* out) {
  timed("attention", [&] { inner().attention_batch(chunks, layer, q, k, v, pos, params, out); });
}

void ProfilingBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  timed("swiglu", [&] { inner().swiglu(gate, up, n, out); });
}

void ProfilingBackend::add(const float* a, const float* b, int64_t n, float* out) {
  timed("add", [&] { inner().add(a, b, n, out); });
}

void ProfilingBackend::read(const float* src, int64_t n, float* host_dst) {
  timed("read", [&] { inner().read(src, n, host_dst); });
}

bool ProfilingBackend::argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) {
  bool found = false;
  timed("argmax_rows", [&] { found = inner().argmax_rows(rows, n_rows, n_vocab, host_ids); });
  return found;
}

void ProfilingBackend::write(const float* host_src, int64_t n, float* dst) {
  timed("write", [&] { inner().write(host_src, n, dst); });
}

}  // namespace pginfer
