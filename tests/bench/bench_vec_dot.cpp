// tests/bench/bench_vec_dot.cpp: single-thread throughput of dot_rows for every weight type and SIMD level.
//
// The matrix is one transformer projection of a 1.1B model: `rows` weight rows of `n` values (default
// 5632 x 2048, as TinyLlama's ffn_up; `bench_vec_dot 2048 5632` for ffn_down). "stream" reads a different
// copy of the matrix each pass, with more copies than the last-level cache holds (weights from memory, as
// decoding reads them); "cached" repeats one copy (from cache when it fits). GB/s counts weight bytes.
// Usage: bench_vec_dot [rows n [seconds_per_case]]
//        bench_vec_dot --tokens T [rows n]: dot_rows_tokens, T tokens at once (activations prepared once, rows
//        in bands of about 128 KiB as the CPU backend takes them), in GMAC/s, for every weight type.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot.h"
#include "kernels/cpu/vec_dot_impl.h"

using namespace pginfer;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The shortest time per call of pass(i) (i counting the calls), over 3 rounds of at least min_seconds / 3.
template <typename Pass>
double best_seconds_per_pass(Pass&& pass, double min_seconds) {
  double best = 1e30;
  int64_t i = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int64_t passes = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    do {
      pass(i++);
      ++passes;
      elapsed = seconds_since(t0);
    } while (elapsed < min_seconds / 3);
    best = std::min(best, elapsed / passes);
  }
  return best;
}

// GB/s of dot_rows over `copies` matrices taken in turn, for at least `min_seconds`.
double measure(SimdLevel level, TensorType type, int64_t n, int64_t rows, const std::vector<uint8_t>& w,
               size_t matrix_bytes, int copies, const std::vector<uint8_t>& act, double min_seconds) {
  const size_t stride = row_bytes(type, n);
  std::vector<float> out(rows);
  auto pass = [&](int64_t i) {
    dot_rows_level(level, type, n, w.data() + (i % copies) * matrix_bytes, stride, rows, act.data(), out.data());
  };
  for (int c = 0; c < copies; ++c) pass(c);  // warm-up over every copy (page faults, caches)
  return (double)matrix_bytes / best_seconds_per_pass(pass, min_seconds) / 1e9;
}

}  // namespace

// GMAC/s of dot_rows_tokens with n_tokens tokens on a `rows` x n matrix of `type`, one thread, from cache.
double measure_tokens(TensorType type, int64_t n, int64_t rows, int64_t n_tokens, double min_seconds) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t stride = row_bytes(type, n);
  std::vector<uint8_t> w(stride * rows);
  std::vector<float> row(n);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& x : row) x = 0.02f * normal(rng);
    quantize_row(type, row.data(), w.data() + r * stride, n);
  }
  const TensorType vt = vec_dot_type(type);
  const size_t act_bytes = row_bytes(vt, n);
  std::vector<uint8_t> acts(act_bytes * n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (float& x : row) x = normal(rng);
    quantize_row(vt, row.data(), acts.data() + t * act_bytes, n);
  }
  TokenActivations prepared;
  prepared.set(type, n, acts.data(), act_bytes, n_tokens);
  std::vector<float> out(rows * n_tokens);
  const int64_t band = std::max<int64_t>(4, (int64_t)(128 * 1024 / stride) / 4 * 4);
  auto pass = [&](int64_t) {
    for (int64_t r0 = 0; r0 < rows; r0 += band) {
      dot_rows_tokens(type, n, w.data() + r0 * stride, stride, std::min(band, rows - r0), prepared, out.data() + r0,
                      rows);
    }
  };
  pass(0);
  return (double)rows * n * n_tokens / best_seconds_per_pass(pass, min_seconds) / 1e9;
}

int main(int argc, char** argv) {
  if (argc > 2 && std::string(argv[1]) == "--tokens") {
    const int64_t n_tokens = std::atoll(argv[2]);
    const int64_t rows = argc > 4 ? std::atoll(argv[3]) : 3072, n = argc > 4 ? std::atoll(argv[4]) : 768;
    std::printf("dot_rows_tokens, %lld tokens, %lld rows x %lld values, one thread; GMAC/s\n", (long long)n_tokens,
                (long long)rows, (long long)n);
    for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      std::printf("%-6s %8.1f\n", type_name(type), measure_tokens(type, n, rows, n_tokens, 0.6));
      std::fflush(stdout);
    }
    return 0;
  }
  const int64_t rows = argc > 2 ? std::atoll(argv[1]) : 5632;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 2048;
  const double min_seconds = argc > 3 ? std::atof(argv[3]) : 0.6;
  const TensorType types[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                              TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
  const SimdLevel top = machine_simd_level();
  std::printf("dot_rows, %lld rows x %lld values, one thread; machine level %s; GB/s of weights\n", (long long)rows,
              (long long)n, simd_level_name(top));
  std::printf("%-6s %-7s %10s %10s\n", "type", "level", "stream", "cached");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> row(n);
  for (TensorType type : types) {
    const size_t stride = row_bytes(type, n), matrix_bytes = stride * rows;
    // Enough copies to exceed 96 MB, more than the last-level caches of the machines we run on.
    const int copies = (int)std::max<size_t>(2, (96u << 20) / matrix_bytes + 1);
    std::vector<uint8_t> w(matrix_bytes * copies);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& x : row) x = 0.02f * normal(rng);
      quantize_row(type, row.data(), w.data() + r * stride, n);
    }
    for (int c = 1; c < copies; ++c) std::copy(w.begin(), w.begin() + matrix_bytes, w.begin() + c * matrix_bytes);
    const TensorType vt = vec_dot_type(type);
    std::vector<uint8_t> act(row_bytes(vt, n));
    for (float& x : row) x = normal(rng);
    quantize_row(vt, row.data(), act.data(), n);
    for (int l = 0; l <= (int)top; ++l) {
      const SimdLevel level = (SimdLevel)l;
      const double stream = measure(level, type, n, rows, w, matrix_bytes, copies, act, min_seconds);
      const double cached = measure(level, type, n, rows, w, matrix_bytes, 1, act, min_seconds);
      std::printf("%-6s %-7s %10.2f %10.2f\n", type_name(type), simd_level_name(level), stream, cached);
      std::fflush(stdout);
    }
  }
  return 0;
}
