// engine/generate.h: the generation loop shared by every front end (the infer tool, later the engine
// server): evaluate a prompt, sample tokens one by one, stream their text, and stop at an end-of-generation
// token, a stop string or the token limit.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/status.h"
#include "engine/tokenizer.h"
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

// One generation, a token at a time: given the logits after the last evaluated token it samples the next
// one, turns it into text, watches stop strings and end-of-generation tokens, and streams the text that
// is final. generate() drives one for a single session; the engine's batching loop drives many, one
// forward pass for all of them.
class Generation {
 public:
  // A generation after `prompt` (not empty); `vocab` as for generate(). Checks the options.
  static Status create(const Vocab* vocab, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                       std::unique_ptr<Generation>* out);

  // Whether it wants another token: false once it has finished (result().finish says why).
  bool wants_more() const { return !finished_; }
  // Takes the logits after the last evaluated token (the prompt's last, then next()'s) and samples.
  void step(std::span<const float> logits);
  // Whether the token step() samples is always the argmax of the logits (greedy without penalties): the caller may
  // then find it where the logits are (Backend::argmax_rows) and pass it to step_token().
  bool samples_argmax() const { return sampler_.plain_argmax(); }
  // step() for a token already chosen (the argmax, when samples_argmax()).
  void step_token(int32_t id);
  // The token to evaluate next, while wants_more().
  int32_t next() const { return result_.ids.back(); }
  // The token the last step() sampled (an end-of-generation token included), or -1 before any.
  int32_t last_sampled() const { return last_sampled_; }
  // Ends the generation early as cancelled.
  void cancel();
  // What it produced so far (complete once !wants_more()).
  const GenerateResult& result() const { return result_; }

 private:
  Generation(const Vocab* vocab, const GenerateOptions& options);
  // Shows text to the caller; false when the caller cancels.
  bool emit(std::string text);
  // Ends with `reason`, flushing held-back text unless the generation was stopped or cancelled.
  void finish(FinishReason reason);

  const Vocab* vocab_;
  GenerateOptions options_;
  Sampler sampler_;
  StopMatcher stops_;
  std::unique_ptr<Detokenizer> detok_;
  GenerateResult result_;
  int32_t last_sampled_ = -1;
  bool finished_ = false;
};

// Generates after `prompt` (not empty) in `session`, which must be empty. The prompt plus max_tokens must
// fit the session's context. `vocab` gives the text (the first piece keeps the space it has after the
// prompt's last token); without one (nullptr) only ids are produced, and stop strings and end-of-generation
// tokens do not apply.
Status generate(Session& session, const Vocab* vocab, const std::vector<int32_t>& prompt,
                const GenerateOptions& options, GenerateResult* result);

}  // namespace pginfer
