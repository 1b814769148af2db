// engine/sampler.cpp: greedy and temperature sampling.
#include "engine/sampler.h"

#include <cmath>
#include <string>
#include <vector>

namespace pginfer {

Status validate_sampling(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0.0f) {
    return invalid_argument("temperature must be a non-negative number, not " +
                            std::to_string(params.temperature));
  }
  return Status::ok_status();
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = (int32_t)i;
  }
  return best;
}

double Sampler::next_uniform() {
  // splitmix64
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature == 0.0f || logits.size() <= 1) return argmax(logits);
  const float max_logit = logits[argmax(logits)];
  std::vector<double> weights(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    weights[i] = std::exp((double)(logits[i] - max_logit) / params_.temperature);
    total += weights[i];
  }
  double r = next_uniform() * total;
  for (size_t i = 0; i < weights.size(); ++i) {
    r -= weights[i];
    if (r < 0.0) return (int32_t)i;
  }
  return (int32_t)(weights.size() - 1);
}

}  // namespace pginfer
