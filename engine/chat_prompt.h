// engine/chat_prompt.h: the token ids of a chat: messages formatted with a chat template, then tokenized
// with special tokens recognised, one BOS at most.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/chat_template.h"
#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer {

// Formats `messages` with `tmpl` (adding the assistant's turn opening) and tokenizes the text with
// special-token parsing. As llama.cpp's chat code does, a BOS text that begins the formatted prompt is
// dropped when the tokenizer adds BOS itself, so that it is never doubled.
Status chat_prompt_ids(const Vocab& vocab, const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                       std::vector<int32_t>* out);

}  // namespace pginfer
