// engine/generate.cpp: the generation loop.
#include "engine/generate.h"

#include <memory>

#include "engine/tokenizer.h"
#include "engine/utf8.h"

namespace pginfer {

Status generate(Session& session, const Vocab* vocab, const std::vector<int32_t>& prompt,
                const GenerateOptions& options, GenerateResult* result) {
  *result = GenerateResult();
  PGI_RETURN_IF_ERROR(validate_sampling(options.sampling));
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  if (options.max_tokens < 0) return invalid_argument("max_tokens must not be negative");
  if (session.n_past() != 0) return internal_error("generate() needs an empty session");
  if ((int64_t)prompt.size() + options.max_tokens > session.n_ctx()) {
    return invalid_argument("a prompt of " + std::to_string(prompt.size()) + " tokens plus " +
                            std::to_string(options.max_tokens) + " new tokens exceeds the context of " +
                            std::to_string(session.n_ctx()) + " positions");
  }
  Sampler sampler(options.sampling);
  for (int32_t t : prompt) sampler.accept(t);
  StopMatcher stops(vocab != nullptr ? options.stops : std::vector<std::string>{});
  // The last prompt token goes through the detokenizer first, so that the continuation keeps the
  // leading space it has after the prompt.
  std::unique_ptr<Detokenizer> detok;
  if (vocab != nullptr) {
    detok = std::make_unique<Detokenizer>(*vocab);
    std::string ignored;
    PGI_RETURN_IF_ERROR(detok->next(prompt.back(), &ignored));
  }
  // Hands shown text to the caller, as valid UTF-8 (bytes the model put together wrongly become U+FFFD;
  // a character still incomplete is held back by the stop matcher); false when the caller cancels.
  auto emit = [&](std::string text) {
    if (!is_valid_utf8(text)) text = replace_invalid_utf8(text);
    result->text += text;
    return text.empty() || !options.on_text || options.on_text(text);
  };
  std::vector<float> logits;
  std::vector<int32_t> next = prompt;
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    if (options.should_stop && options.should_stop()) {
      result->finish = FinishReason::Cancelled;
      return Status::ok_status();
    }
    PGI_RETURN_IF_ERROR(session.eval(next, false, &logits));
    const int32_t id = sampler.sample(logits);
    if (vocab != nullptr && options.stop_at_eog && vocab->is_eog(id)) {
      result->finish = FinishReason::EndOfGeneration;
      break;
    }
    sampler.accept(id);
    result->ids.push_back(id);
    next.assign(1, id);
    if (vocab == nullptr) continue;
    std::string piece;
    PGI_RETURN_IF_ERROR(detok->next(id, &piece));
    bool stopped = false;
    if (!emit(stops.push(piece, &stopped))) {
      result->finish = FinishReason::Cancelled;
      return Status::ok_status();
    }
    if (stopped) {
      result->finish = FinishReason::Stop;
      return Status::ok_status();
    }
  }
  if (vocab != nullptr && !emit(stops.flush())) result->finish = FinishReason::Cancelled;
  return Status::ok_status();
}

}  // namespace pginfer
