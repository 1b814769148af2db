// engine/sampler.h: choosing the next token from logits, and stopping generation on stop strings.
//
// The chain follows llama.cpp's default order: repetition/frequency/presence penalties over the recent
// tokens, then top-k, top-p and min-p on the probabilities, then temperature, then a draw. Temperature 0
// is greedy (argmax after penalties). Random numbers come from our own generator (splitmix64), never
// from the standard library's distributions, so a seed gives the same tokens on every machine.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace pginfer {

// Parameters of one request's sampling.
struct SamplingParams {
  float temperature = 0.0f;        // 0 means greedy
  int32_t top_k = 0;               // keep the k most likely tokens; 0 keeps all
  float top_p = 1.0f;              // keep the smallest set whose probability reaches p; 1 keeps all
  float min_p = 0.0f;              // drop tokens less likely than min_p times the most likely; 0 keeps all
  float repeat_penalty = 1.0f;     // recent tokens' logits: divided when positive, multiplied when negative
  float frequency_penalty = 0.0f;  // minus this times a recent token's count
  float presence_penalty = 0.0f;   // minus this once for every recent token
  int32_t penalty_last_n = 64;     // how many recent tokens the penalties look at
  uint64_t seed = 0;               // seed of the generator
};

// Checks sampling parameters; the message names the bad one and its allowed range.
Status validate_sampling(const SamplingParams& params);

// Index of the largest logit (the first of equal ones).
int32_t argmax(std::span<const float> logits);

// A per-request token chooser, with the history its penalties need.
class Sampler {
 public:
  // A sampler with validated `params`.
  explicit Sampler(const SamplingParams& params) : params_(params), state_(params.seed) {}
  // Records a token of the context (prompt or generated) for the penalties.
  void accept(int32_t token);
  // Chooses a token from one row of logits (does not accept it).
  int32_t sample(std::span<const float> logits);
  // Whether sample() is argmax() of the logits as given: greedy, with no penalty that would change them.
  bool plain_argmax() const {
    return params_.temperature == 0.0f && (params_.penalty_last_n == 0 || (params_.repeat_penalty == 1.0f &&
                                                                           params_.frequency_penalty == 0.0f &&
                                                                           params_.presence_penalty == 0.0f));
  }

 private:
  // Next uniform double in [0, 1).
  double next_uniform();

  SamplingParams params_;
  uint64_t state_;
  std::deque<int32_t> recent_;  // the last penalty_last_n accepted tokens
  std::vector<float> work_;     // logits after penalties
};

// Watches generated text for stop strings, which may span tokens. Text that could still turn out to
// begin a stop string, or that ends inside a UTF-8 character, is held back until it is decided.
class StopMatcher {
 public:
  // Empty strings in `stops` are ignored.
  explicit StopMatcher(std::vector<std::string> stops);
  // Adds generated text; returns the text that can be shown now. When a stop string completes, *stopped
  // is set and the returned text ends just before it.
  std::string push(std::string_view text, bool* stopped);
  // At the end of generation: the text still held back.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

}  // namespace pginfer
