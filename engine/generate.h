// engine/generate.h: the generation loop shared by every front end (the infer tool, later the engine
// server): evaluate a prompt, sample tokens one by one, stream their text, and stop at an end-of-generation
// token, a stop string or the token limit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer {

// What to generate and when to stop.
struct GenerateOptions {
  SamplingParams sampling;          // validated by generate()
  int64_t max_tokens = 128;         // new tokens at most
  std::vector<std::string> stops;   // text that ends generation (not included in the output)
  bool stop_at_eog = true;          // an end-of-generation token (EOS, EOT, ...) ends generation unprinted
  // Called with each piece of text as soon as it is final (held back while it may still become a stop
  // string or ends inside a UTF-8 character). Returning false abandons the generation (cancelled).
  std::function<bool(std::string_view piece)> on_text;
  // Asked before every forward pass; returning true abandons the generation (cancelled).
  std::function<bool()> should_stop;
};

// Why generation ended.
enum class FinishReason { Length, EndOfGeneration, Stop, Cancelled };

// What generate() produced.
struct GenerateResult {
  std::vector<int32_t> ids;  // the sampled tokens, without a final end-of-generation token
  std::string text;          // their text, without the stop string; always valid UTF-8
  FinishReason finish = FinishReason::Length;
};

// Generates after `prompt` (not empty) in `session`, which must be empty. The prompt plus max_tokens must
// fit the session's context. `vocab` gives the text (the first piece keeps the space it has after the
// prompt's last token); without one (nullptr) only ids are produced, and stop strings and end-of-generation
// tokens do not apply.
Status generate(Session& session, const Vocab* vocab, const std::vector<int32_t>& prompt,
                const GenerateOptions& options, GenerateResult* result);

}  // namespace pginfer
