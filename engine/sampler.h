// engine/sampler.h: choosing the next token from logits: greedy, or temperature sampling with a seed.
//
// Random numbers come from our own generator (splitmix64), never from the standard library's
// distributions, so a seed gives the same tokens on every machine and compiler.
#pragma once

#include <cstdint>
#include <span>

#include "engine/status.h"

namespace pginfer {

// Parameters of one request's sampling.
struct SamplingParams {
  float temperature = 0.0f;  // 0 means greedy
  uint64_t seed = 0;         // seed of the generator
};

// Checks sampling parameters; the message names the bad one.
Status validate_sampling(const SamplingParams& params);

// Index of the largest logit (the first of equal ones).
int32_t argmax(std::span<const float> logits);

// A per-request token chooser.
class Sampler {
 public:
  // A sampler with validated `params`.
  explicit Sampler(const SamplingParams& params) : params_(params), state_(params.seed) {}
  // Chooses a token from one row of logits.
  int32_t sample(std::span<const float> logits);

 private:
  // Next uniform double in [0, 1).
  double next_uniform();

  SamplingParams params_;
  uint64_t state_;
};

}  // namespace pginfer
