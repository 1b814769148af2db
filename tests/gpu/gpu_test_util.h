// tests/gpu/gpu_test_util.h: what the GPU suites share: the CUDA backend or a clear skip, host<->backend
// copies, the normalised mean square error they are judged by, and greedy continuations of whole models.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/test_data.h"
#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"

namespace pginfer::testing {

// The CUDA backend with `options`, or null with *why set when the machine has none (no module, driver or device).
// PG_INFER_TEST_GRAPHS=0 turns CUDA graphs off whatever the options say (run_on_device.sh, to tell a failure of the
// graphs from one of the kernels).
inline std::unique_ptr<Backend> cuda_backend_or_null(std::string* why, CudaBackendOptions options = {}) {
  if (const char* env = std::getenv("PG_INFER_TEST_GRAPHS"); env != nullptr && std::string(env) == "0") {
    options.graphs = false;
  }
  if (cuda_device_count(why) <= 0) {
    if (why->rfind("no CUDA device", 0) == 0) why->erase(0, why->find(':') == std::string::npos ? 0 : why->find(':') + 2);
    return nullptr;
  }
  std::unique_ptr<Backend> b;
  Status st = make_cuda_backend(options, &b);
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

// Options of a CUDA backend that launches every kernel as it is issued (no CUDA graphs).
inline CudaBackendOptions without_graphs() {
  CudaBackendOptions o;
  o.graphs = false;
  return o;
}

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

// n token ids below `vocab`, from a fixed generator started at `seed`.
inline std::vector<int32_t> prompt_ids(int n, int64_t vocab, uint64_t seed = 3) {
  std::vector<int32_t> ids(n);
  for (auto& id : ids) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    id = (int32_t)((seed >> 33) % (uint64_t)vocab);
  }
  return ids;
}

// The greedy continuation of `prompt`: n_new tokens, each the argmax of `backend`'s logits, evaluated one
// sequence at a time with its own contiguous cache (Session).
inline std::vector<int32_t> greedy_tokens(const Model& model, Backend& backend, const std::vector<int32_t>& prompt,
                                          int n_new) {
  std::unique_ptr<Session> s;
  std::vector<int32_t> out;
  EXPECT_TRUE(Session::create(model, backend, (int64_t)prompt.size() + n_new, &s).ok());
  if (s == nullptr) return out;
  std::vector<float> logits;
  std::vector<int32_t> next = prompt;
  for (int i = 0; i < n_new; ++i) {
    const Status st = s->eval(next, false, &logits);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) break;
    out.push_back(argmax(logits));
    next = {out.back()};
  }
  return out;
}

// How many of `tokens`, a continuation of `prompt`, are `backend`'s argmax when it is fed the prompt and the
// tokens before each (teacher forcing: one disagreement costs one token, not the rest of the sequence).
inline int teacher_forced_agreement(const Model& model, Backend& backend, const std::vector<int32_t>& prompt,
                                    const std::vector<int32_t>& tokens) {
  std::unique_ptr<Session> s;
  EXPECT_TRUE(Session::create(model, backend, (int64_t)(prompt.size() + tokens.size()), &s).ok());
  if (s == nullptr) return 0;
  std::vector<float> logits;
  std::vector<int32_t> next = prompt;
  int agree = 0;
  for (int32_t token : tokens) {
    EXPECT_TRUE(s->eval(next, false, &logits).ok());
    agree += argmax(logits) == token;
    next = {token};
  }
  return agree;
}


}  // namespace pginfer::testing
