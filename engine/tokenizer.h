// engine/tokenizer.h: text to token ids and back, for a Vocab.
//
// SentencePiece-style vocabularies (tokenizer.ggml.model "llama") are tokenized as llama.cpp does: spaces
// become U+2581, a space is prefixed when the vocabulary asks for it, adjacent pieces are merged by
// score (the highest first, the leftmost among equals) while the merged text is a token, and pieces
// that are not tokens fall back to their bytes (<0xXX>). Byte-level BPE ("gpt2") is not implemented yet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer {

// Tokenizes `text` (UTF-8; invalid bytes fall back to byte tokens) into *out. With add_special, BOS
// and EOS are added as the vocabulary's flags say. The texts of user-defined tokens always become those
// tokens (as in llama.cpp); the texts of control tokens (<s>, <|im_start|>, ...) only with parse_special,
// so that user text never produces them by accident.
Status tokenize(const Vocab& vocab, std::string_view text, bool add_special, std::vector<int32_t>* out,
                bool parse_special = false);

// The text of one token as it appears in output: U+2581 becomes a space, byte tokens become their
// byte, control tokens become nothing.
std::string token_to_piece(const Vocab& vocab, int32_t id);

// Turns tokens into text one at a time (for streaming), removing the space the tokenizer prefixed from
// the first piece that has text.
class Detokenizer {
 public:
  // A detokenizer at the start of a sequence; `vocab` must outlive it.
  explicit Detokenizer(const Vocab& vocab) : vocab_(vocab) {}
  // Appends the text of token `id` to *out. An id outside the vocabulary is an error.
  Status next(int32_t id, std::string* out);

 private:
  const Vocab& vocab_;
  bool first_text_ = true;  // no piece with text seen yet
};

// The text of a sequence of tokens, as a Detokenizer gives it. Ids outside the vocabulary are an error.
Status detokenize(const Vocab& vocab, const std::vector<int32_t>& ids, std::string* out);

}  // namespace pginfer
