// engine/tokenizer_impl.h: the algorithms behind tokenize(), one file each, for engine/tokenizer.cpp.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer::detail {

// SentencePiece-style: merges adjacent pieces of `text` (spaces already U+2581) by score, the highest
// first and the leftmost among equals, while the joined text is a token; what is left over that is not a
// token becomes byte tokens. Appends to *out.
void tokenize_spm(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out);

// Byte-level BPE: pre-tokenizes `text` (valid UTF-8) into words and merges each word's bytes by rank, the
// lowest first and the leftmost among equals. Appends to *out.
Status tokenize_bpe(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out);

}  // namespace pginfer::detail
