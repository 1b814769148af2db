// tests/unit/profiling_backend_test.cpp: the timing decorator (engine/profiling_backend.h): a session through it
// gives the same logits as through the CPU backend alone, and every operation of a pass is counted under its
// kind (each weight's products added over the layers).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/forwarding_backend.h"
#include "engine/model.h"
#include "engine/profiling_backend.h"
#include "engine/session.h"
#include "tests/unit/test_models.h"

namespace pginfer {
namespace {

const OpTime* find(const ProfilingBackend& p, const std::string& kind) {
  for (const auto& [k, t] : p.times()) {
    if (k == kind) return &t;
  }
  return nullptr;
}

TEST(ProfilingBackend, SameLogitsAndEveryOperationCounted) {
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::load(testing::synthetic_model("tiny", TensorType::Q4_K), &model).ok());
  std::unique_ptr<Backend> cpu = make_cpu_backend({2});
  ASSERT_TRUE(cpu->prepare(*model).ok());
  ProfilingBackend profiler(*cpu);
  std::unique_ptr<Session> plain, profiled;
  ASSERT_TRUE(Session::create(*model, *cpu, 64, &plain).ok());
  ASSERT_TRUE(Session::create(*model, profiler, 64, &profiled).ok());
  const std::vector<int32_t> prompt = {1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975};
  std::vector<float> want, got;
  ASSERT_TRUE(plain->eval(prompt, true, &want).ok());
  profiler.reset();
  ASSERT_TRUE(profiled->eval(prompt, true, &got).ok());
  EXPECT_EQ(got, want);

  const int64_t n_layer = model->config().n_layer;
  // The composite operations are timed as they are issued (what a GPU runs as one launch each), one per layer.
  for (const char* kind : {"matmuls attn_q+attn_k+attn_v", "rope_qk", "matmul+add attn_output",
                           "matmul+swiglu ffn_gate+ffn_up", "matmul+add ffn_down", "attention"}) {
    const OpTime* t = find(profiler, kind);
    ASSERT_NE(t, nullptr) << kind;
    EXPECT_EQ(t->calls, n_layer) << kind;
  }
  double total = 0.0;
  for (const auto& [kind, t] : profiler.times()) total += t.seconds;
  EXPECT_GT(total, 0.0);  // the pass took time, and it was recorded
  ASSERT_NE(find(profiler, "rms_norm"), nullptr);
  EXPECT_GE(find(profiler, "rms_norm")->calls, 2 * n_layer + 1);  // two per layer, the output norm's runs
  ASSERT_NE(find(profiler, "embed"), nullptr);
  EXPECT_EQ(find(profiler, "embed")->calls, 1);
  ASSERT_NE(find(profiler, "matmul output"), nullptr);
  // Their parts are the inner backend's: not counted again.
  for (const char* kind : {"matmul attn_q", "matmul ffn_down", "swiglu", "add", "rope"}) {
    EXPECT_EQ(find(profiler, kind), nullptr) << kind;
  }
  const std::string report = profiler.report();
  EXPECT_NE(report.find("matmul+add ffn_down"), std::string::npos);
  EXPECT_NE(report.find("total"), std::string::npos);

  // Decoding continues through it; reset() forgets the prompt's times.
  profiler.reset();
  EXPECT_TRUE(profiler.times().empty());
  ASSERT_TRUE(plain->eval(std::vector<int32_t>{29889}, false, &want).ok());
  ASSERT_TRUE(profiled->eval(std::vector<int32_t>{29889}, false, &got).ok());
  EXPECT_EQ(got, want);
  EXPECT_EQ(find(profiler, "attention")->calls, n_layer);
}

// A CPU backend with a device argmax, as the GPU's: argmax_rows reads the rows and answers.
class ArgmaxBackend : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  bool argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) override {
    std::vector<float> host(n_rows * n_vocab);
    inner().read(rows, n_rows * n_vocab, host.data());
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* row = host.data() + r * n_vocab;
      host_ids[r] = (int32_t)(std::max_element(row, row + n_vocab) - row);
    }
    return true;
  }
};

// argmax_rows goes to the inner backend, which answers or declines (the CPU), and is timed.
TEST(ProfilingBackend, ArgmaxRowsIsTheInnerBackends) {
  std::unique_ptr<Backend> cpu = make_cpu_backend({1});
  std::unique_ptr<ActivationBuffer> rows;
  ASSERT_TRUE(cpu->alloc(2 * 5, &rows).ok());
  const std::vector<float> values = {0, 3, 1, 2, -1, 7, 0, 0, 8, 1};
  cpu->write(values.data(), 10, rows->data());
  int32_t ids[2] = {-1, -1};
  ProfilingBackend over_cpu(*cpu);
  EXPECT_FALSE(over_cpu.argmax_rows(rows->data(), 2, 5, ids));
  ArgmaxBackend device_argmax(*cpu);
  ProfilingBackend profiler(device_argmax);
  ASSERT_TRUE(profiler.argmax_rows(rows->data(), 2, 5, ids));
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  ASSERT_NE(find(profiler, "argmax_rows"), nullptr);
  EXPECT_EQ(find(profiler, "argmax_rows")->calls, 1);
}

}  // namespace
}  // namespace pginfer
