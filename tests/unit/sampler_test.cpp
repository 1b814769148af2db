// tests/unit/sampler_test.cpp: the sampling chain's statistics and cuts, reproducible seeds, penalties,
// parameter checks, and stop strings that span tokens.
#include <gtest/gtest.h>

#include <random>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "engine/sampler.h"

namespace pginfer {
namespace {

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back((float)std::log(p));
  return l;
}

std::map<int32_t, int> draw(const SamplingParams& params, const std::vector<float>& logits, int n) {
  Sampler s(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  return counts;
}

const std::vector<float> kLogits = logits_of({0.40, 0.25, 0.15, 0.10, 0.06, 0.04});

// plain_argmax(): greedy sampling whose penalties cannot change the logits, so that the argmax suffices.
TEST(Sampler, PlainArgmaxOnlyWhenGreedyWithoutPenalties) {
  SamplingParams p;
  EXPECT_TRUE(Sampler(p).plain_argmax());
  p.temperature = 0.5f;
  EXPECT_FALSE(Sampler(p).plain_argmax());
  p.temperature = 0.0f;
  p.repeat_penalty = 1.1f;
  EXPECT_FALSE(Sampler(p).plain_argmax());
  p.penalty_last_n = 0;  // the penalties look at no token
  EXPECT_TRUE(Sampler(p).plain_argmax());
  p.penalty_last_n = 64;
  p.repeat_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  EXPECT_FALSE(Sampler(p).plain_argmax());
  p.presence_penalty = 0.0f;
  p.frequency_penalty = -0.5f;
  EXPECT_FALSE(Sampler(p).plain_argmax());
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({.temperature = 0.0f});
  EXPECT_EQ(s.sample(kLogits), 0);
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);  // the first of equal ones
}

// argmax equals one pass keeping the first strict maximum, on every length (the 8-lane part and the tail),
// with ties, NaNs (never chosen, except a NaN first value) and infinities.
TEST(Sampler, ArgmaxEqualsTheFirstStrictMaximum) {
  auto naive = [](const std::vector<float>& v) {
    int32_t best = 0;
    for (size_t i = 1; i < v.size(); ++i) {
      if (v[i] > v[best]) best = (int32_t)i;
    }
    return best;
  };
  std::mt19937 rng(4);
  for (int round = 0; round < 3000; ++round) {
    std::vector<float> v(1 + rng() % 40);
    for (float& x : v) {
      const uint32_t r = rng() % 20;
      x = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : r == 3 ? -0.0f : (float)(int)(rng() % 7) - 3.0f;
    }
    ASSERT_EQ(argmax(v), naive(v)) << "round " << round;
  }
}

TEST(Sampler, TemperatureOneFollowsTheDistribution) {
  auto counts = draw({.temperature = 1.0f, .seed = 11}, kLogits, 20000);
  const double expected[] = {0.40, 0.25, 0.15, 0.10, 0.06, 0.04};
  for (int t = 0; t < 6; ++t) EXPECT_NEAR(counts[t] / 20000.0, expected[t], 0.015) << t;
}

TEST(Sampler, TopKTopPAndMinPCutTheRightTokens) {
  auto only = [](const std::map<int32_t, int>& counts) {
    std::set<int32_t> s;
    for (const auto& [t, c] : counts) s.insert(t);
    return s;
  };
  EXPECT_EQ(only(draw({.temperature = 1.0f, .top_k = 2, .seed = 1}, kLogits, 3000)), (std::set<int32_t>{0, 1}));
  // Cumulative 0.40, 0.65, 0.80, 0.90: top_p 0.7 keeps three tokens, 0.81 four.
  EXPECT_EQ(only(draw({.temperature = 1.0f, .top_p = 0.7f, .seed = 2}, kLogits, 3000)), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(only(draw({.temperature = 1.0f, .top_p = 0.81f, .seed = 3}, kLogits, 4000)),
            (std::set<int32_t>{0, 1, 2, 3}));
  // min_p 0.3: keep p >= 0.12, i.e. tokens 0, 1, 2.
  EXPECT_EQ(only(draw({.temperature = 1.0f, .min_p = 0.3f, .seed = 4}, kLogits, 3000)), (std::set<int32_t>{0, 1, 2}));
  // Inside the kept set, probabilities are renormalised: with top_k 2, 0.40 / 0.65 = 0.615.
  auto counts = draw({.temperature = 1.0f, .top_k = 2, .seed = 5}, kLogits, 20000);
  EXPECT_NEAR(counts[0] / 20000.0, 0.40 / 0.65, 0.015);
}

TEST(Sampler, SeedRepeatsExactly) {
  std::vector<int32_t> a, b, c;
  Sampler s1({.temperature = 0.8f, .seed = 42}), s2({.temperature = 0.8f, .seed = 42}), s3({.temperature = 0.8f, .seed = 43});
  for (int i = 0; i < 200; ++i) a.push_back(s1.sample(kLogits)), b.push_back(s2.sample(kLogits)), c.push_back(s3.sample(kLogits));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Sampler, PenaltiesMoveTheChoice) {
  // Logits 2.0 and 1.9: a repeat penalty of 1.2 turns 2.0 into 1.67, so token 1 wins.
  const std::vector<float> logits = {2.0f, 1.9f, -1.0f};
  Sampler rep({.repeat_penalty = 1.2f});
  rep.accept(0);
  EXPECT_EQ(rep.sample(logits), 1);
  Sampler freq({.frequency_penalty = 0.06f});
  freq.accept(0);
  EXPECT_EQ(freq.sample(logits), 0);  // 2.0 - 0.06 > 1.9
  freq.accept(0);
  EXPECT_EQ(freq.sample(logits), 1);  // 2.0 - 0.12 < 1.9
  Sampler presence({.presence_penalty = 0.2f, .penalty_last_n = 1});
  presence.accept(0);
  presence.accept(2);  // the window of 1 forgets token 0
  EXPECT_EQ(presence.sample(logits), 0);
}

TEST(Sampler, ParametersAreChecked) {
  EXPECT_TRUE(validate_sampling({}).ok());
  EXPECT_NE(validate_sampling({.temperature = -1.0f}).message().find("temperature"), std::string::npos);
  EXPECT_FALSE(validate_sampling({.temperature = NAN}).ok());
  EXPECT_NE(validate_sampling({.top_k = -1}).message().find("top_k"), std::string::npos);
  EXPECT_NE(validate_sampling({.top_p = 0.0f}).message().find("top_p must be in (0, 1]"), std::string::npos);
  EXPECT_FALSE(validate_sampling({.top_p = 1.5f}).ok());
  EXPECT_FALSE(validate_sampling({.min_p = -0.1f}).ok());
  EXPECT_FALSE(validate_sampling({.repeat_penalty = 0.0f}).ok());
  EXPECT_FALSE(validate_sampling({.frequency_penalty = 3.0f}).ok());
  EXPECT_FALSE(validate_sampling({.penalty_last_n = -1}).ok());
}

TEST(StopMatcher, StopStringsSpanningTokensAreCutAndHeldBack) {
  StopMatcher m({"\n\nUser:", "END"});
  bool stopped = false;
  std::string shown;
  for (const char* piece : {"Hello", " world", "\n", "\nUs", "er", ": more"}) {
    shown += m.push(piece, &stopped);
    if (stopped) break;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(shown, "Hello world");
  // A prefix that does not complete is released later.
  StopMatcher n({"END"});
  EXPECT_EQ(n.push("abcE", &stopped), "abc");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(n.push("Nx", &stopped), "ENx");
  EXPECT_EQ(n.flush(), "");
  // A UTF-8 character split across tokens is held until complete.
  StopMatcher u({});
  EXPECT_EQ(u.push("caf\xC3", &stopped), "caf");
  EXPECT_EQ(u.push("\xA9!", &stopped), "\xC3\xA9!");
}

}  // namespace
}  // namespace pginfer
