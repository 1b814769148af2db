// tests/gpu/gpu_test_util.h: what the GPU suites share: the CUDA backend or a clear skip, host<->backend
// copies, and the normalised mean square error they are judged by.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/test_data.h"
#include "engine/backend.h"
#include "engine/cuda_backend.h"

namespace pginfer::testing {

// The CUDA backend, or null with *why set when the machine has none (no module, driver or device).
inline std::unique_ptr<Backend> cuda_backend_or_null(std::string* why) {
  if (cuda_device_count(why) <= 0) {
    if (why->rfind("no CUDA device", 0) == 0) why->erase(0, why->find(':') == std::string::npos ? 0 : why->find(':') + 2);
    return nullptr;
  }
  std::unique_ptr<Backend> b;
  Status st = make_cuda_backend({}, &b);
  if (!st.ok()) {
    *why = st.message();
    return nullptr;
  }
  return b;
}

// Skips the current test, saying why, when there is no CUDA device; else sets *out.
#define PGI_REQUIRE_CUDA(out)                                               \
  do {                                                                      \
    std::string _why;                                                       \
    out = ::pginfer::testing::cuda_backend_or_null(&_why);                  \
    if (out == nullptr) GTEST_SKIP() << "no CUDA device: " << _why;         \
  } while (0)

// A buffer of `b` holding `host`.
inline std::unique_ptr<ActivationBuffer> upload(Backend& b, const std::vector<float>& host) {
  std::unique_ptr<ActivationBuffer> buf;
  EXPECT_TRUE(b.alloc((int64_t)host.size(), &buf).ok());
  b.write(host.data(), (int64_t)host.size(), buf->data());
  return buf;
}

// n floats of a buffer of `b`.
inline std::vector<float> download(Backend& b, const float* src, int64_t n) {
  std::vector<float> out(n);
  b.read(src, n, out.data());
  return out;
}

// sum (a - ref)^2 / sum ref^2 (0 when both are zero).
inline double nmse(const std::vector<float>& a, const std::vector<float>& ref) {
  double d = 0, s = 0;
  for (size_t i = 0; i < ref.size(); ++i) d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]), s += (double)ref[i] * ref[i];
  if (s == 0) return d == 0 ? 0.0 : INFINITY;
  return d / s;
}


}  // namespace pginfer::testing
