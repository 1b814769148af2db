// engine/sampler.cpp: the sampling chain and stop strings.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>

namespace pginfer {

namespace {

bool finite_in(float x, float lo, float hi) { return std::isfinite(x) && x >= lo && x <= hi; }

// Bytes at the end of `s` that start a UTF-8 character not yet complete.
size_t incomplete_utf8_tail(const std::string& s) {
  for (size_t back = 1; back <= 4 && back <= s.size(); ++back) {
    const unsigned char c = (unsigned char)s[s.size() - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace

Status validate_sampling(const SamplingParams& p) {
  if (!finite_in(p.temperature, 0.0f, 1e6f)) {
    return invalid_argument("temperature must be a non-negative number, not " + std::to_string(p.temperature));
  }
  if (p.top_k < 0) return invalid_argument("top_k must be 0 (off) or positive, not " + std::to_string(p.top_k));
  if (!(std::isfinite(p.top_p) && p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return invalid_argument("top_p must be in (0, 1], not " + std::to_string(p.top_p));
  }
  if (!finite_in(p.min_p, 0.0f, 1.0f)) return invalid_argument("min_p must be in [0, 1], not " + std::to_string(p.min_p));
  if (!(std::isfinite(p.repeat_penalty) && p.repeat_penalty > 0.0f)) {
    return invalid_argument("repeat_penalty must be positive, not " + std::to_string(p.repeat_penalty));
  }
  if (!finite_in(p.frequency_penalty, -2.0f, 2.0f)) {
    return invalid_argument("frequency_penalty must be in [-2, 2], not " + std::to_string(p.frequency_penalty));
  }
  if (!finite_in(p.presence_penalty, -2.0f, 2.0f)) {
    return invalid_argument("presence_penalty must be in [-2, 2], not " + std::to_string(p.presence_penalty));
  }
  if (p.penalty_last_n < 0) return invalid_argument("penalty_last_n must not be negative");
  return Status::ok_status();
}

int32_t argmax(std::span<const float> logits) {
  const size_t n = logits.size();
  if (n == 0 || std::isnan(logits[0])) return 0;  // nothing compares greater than a NaN first value
  // The largest value, in 8 independent running maxima (NaNs never win a comparison), then the first index
  // holding it: the same answer as one pass keeping the first strict maximum, several times faster (a
  // batch of sequences takes one argmax of 32k-150k logits each per token).
  float lane[8];
  for (float& m : lane) m = logits[0];
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) lane[k] = logits[i + k] > lane[k] ? logits[i + k] : lane[k];
  }
  float best = lane[0];
  for (int k = 1; k < 8; ++k) best = lane[k] > best ? lane[k] : best;
  for (; i < n; ++i) best = logits[i] > best ? logits[i] : best;
  for (size_t j = 0; j < n; ++j) {
    if (logits[j] == best) return (int32_t)j;
  }
  return 0;
}

void Sampler::accept(int32_t token) {
  if (params_.penalty_last_n == 0) return;
  recent_.push_back(token);
  while ((int32_t)recent_.size() > params_.penalty_last_n) recent_.pop_front();
}

double Sampler::next_uniform() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t n = (int32_t)logits.size();
  if (n <= 1) return 0;
  work_.assign(logits.begin(), logits.end());
  // Penalties on the recent tokens (each distinct token once).
  const bool penalize = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                        params_.presence_penalty != 0.0f;
  if (penalize && !recent_.empty()) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : recent_) {
      if (t >= 0 && t < n) ++counts[t];
    }
    for (const auto& [t, c] : counts) {
      float& l = work_[t];
      l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
      l -= (float)c * params_.frequency_penalty + params_.presence_penalty;
    }
  }
  if (params_.temperature == 0.0f) return argmax(work_);

  // Candidates by decreasing logit (ties by id), cut by top-k.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const int32_t k = params_.top_k > 0 ? std::min(params_.top_k, n) : n;
  auto by_logit = [&](int32_t a, int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), by_logit);
  order.resize(k);
  // Probabilities of the candidates (softmax at temperature 1), for top-p and min-p.
  std::vector<double> prob(k);
  double total = 0;
  for (int32_t i = 0; i < k; ++i) total += prob[i] = std::exp((double)work_[order[i]] - work_[order[0]]);
  size_t keep = (size_t)k;
  if (params_.top_p < 1.0f) {
    double cumulative = 0;
    for (size_t i = 0; i < (size_t)k; ++i) {
      cumulative += prob[i] / total;
      if (cumulative >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    size_t i = 1;
    while (i < keep && prob[i] >= params_.min_p * prob[0]) ++i;
    keep = i;
  }
  // Temperature, then a draw.
  std::vector<double> weight(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) {
    sum += weight[i] = std::exp(((double)work_[order[i]] - work_[order[0]]) / params_.temperature);
  }
  double r = next_uniform() * sum;
  for (size_t i = 0; i < keep; ++i) {
    r -= weight[i];
    if (r < 0) return order[i];
  }
  return order[keep - 1];
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::push(std::string_view text, bool* stopped) {
  *stopped = false;
  pending_ += text;
  // The earliest complete stop string ends generation; text before it is released.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    *stopped = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that begins some stop string, and any incomplete UTF-8 character.
  size_t hold = incomplete_utf8_tail(pending_);
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace pginfer
