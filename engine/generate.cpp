// engine/generate.cpp: the generation loop.
#include "engine/generate.h"

#include <memory>

#include "engine/tokenizer.h"
#include "engine/utf8.h"

namespace pginfer {

Generation::Generation(const Vocab* vocab, const GenerateOptions& options)
    : vocab_(vocab),
      options_(options),
      sampler_(options.sampling),
      stops_(vocab != nullptr ? options.stops : std::vector<std::string>{}) {}

Status Generation::create(const Vocab* vocab, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                          std::unique_ptr<Generation>* out) {
  PGI_RETURN_IF_ERROR(validate_sampling(options.sampling));
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  if (options.max_tokens < 0) return invalid_argument("max_tokens must not be negative");
  std::unique_ptr<Generation> g(new Generation(vocab, options));
  for (int32_t t : prompt) g->sampler_.accept(t);
  // The last prompt token goes through the detokenizer first, so that the continuation keeps the
  // leading space it has after the prompt.
  if (vocab != nullptr) {
    g->detok_ = std::make_unique<Detokenizer>(*vocab);
    std::string ignored;
    PGI_RETURN_IF_ERROR(g->detok_->next(prompt.back(), &ignored));
  }
  if (options.max_tokens == 0) g->finish(FinishReason::Length);
  *out = std::move(g);
  return Status::ok_status();
}

bool Generation::emit(std::string text) {
  // Valid UTF-8 only: bytes the model put together wrongly become U+FFFD (a character still incomplete
  // is held back by the stop matcher).
  if (!is_valid_utf8(text)) text = replace_invalid_utf8(text);
  result_.text += text;
  return text.empty() || !options_.on_text || options_.on_text(text);
}

void Generation::finish(FinishReason reason) {
  finished_ = true;
  result_.finish = reason;
  if (reason != FinishReason::Stop && reason != FinishReason::Cancelled && vocab_ != nullptr &&
      !emit(stops_.flush())) {
    result_.finish = FinishReason::Cancelled;
  }
}

void Generation::cancel() {
  if (finished_) return;
  finished_ = true;
  result_.finish = FinishReason::Cancelled;
}

void Generation::step(std::span<const float> logits) {
  if (finished_) return;
  step_token(sampler_.sample(logits));
}

void Generation::step_token(int32_t id) {
  if (finished_) return;
  last_sampled_ = id;
  if (vocab_ != nullptr && options_.stop_at_eog && vocab_->is_eog(id)) {
    finish(FinishReason::EndOfGeneration);
    return;
  }
  sampler_.accept(id);
  result_.ids.push_back(id);
  if (vocab_ != nullptr) {
    std::string piece;
    detok_->next(id, &piece);  // the sampled id is inside the vocabulary
    bool stopped = false;
    if (!emit(stops_.push(piece, &stopped))) {
      cancel();
      return;
    }
    if (stopped) {
      finished_ = true;
      result_.finish = FinishReason::Stop;
      return;
    }
  }
  if ((int64_t)result_.ids.size() >= options_.max_tokens) finish(FinishReason::Length);
}

Status generate(Session& session, const Vocab* vocab, const std::vector<int32_t>& prompt,
                const GenerateOptions& options, GenerateResult* result) {
  *result = GenerateResult();
  std::unique_ptr<Generation> g;
  PGI_RETURN_IF_ERROR(Generation::create(vocab, prompt, options, &g));
  if (session.n_past() != 0) return internal_error("generate() needs an empty session");
  if ((int64_t)prompt.size() + options.max_tokens > session.n_ctx()) {
    return invalid_argument("a prompt of " + std::to_string(prompt.size()) + " tokens plus " +
                            std::to_string(options.max_tokens) + " new tokens exceeds the context of " +
                            std::to_string(session.n_ctx()) + " positions");
  }
  std::vector<float> logits;
  std::vector<int32_t> next = prompt;
  while (g->wants_more()) {
    if (options.should_stop && options.should_stop()) {
      g->cancel();
      break;
    }
    PGI_RETURN_IF_ERROR(session.eval(next, false, &logits));
    g->step(logits);
    if (g->wants_more()) next.assign(1, g->next());
  }
  *result = g->result();
  return Status::ok_status();
}

}  // namespace pginfer
