// engine/chat_prompt.cpp: chat messages to prompt ids.
#include "engine/chat_prompt.h"

#include "engine/tokenizer.h"

namespace pginfer {

Status chat_prompt_ids(const Vocab& vocab, const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                       std::vector<int32_t>* out) {
  std::string text;
  PGI_RETURN_IF_ERROR(apply_chat_template(tmpl, messages, /*add_generation_prompt=*/true, &text));
  if (vocab.add_bos() && vocab.bos() >= 0) {
    const std::string& bos = vocab.text(vocab.bos());
    if (!bos.empty() && text.compare(0, bos.size(), bos) == 0) text.erase(0, bos.size());
  }
  PGI_RETURN_IF_ERROR(tokenize(vocab, text, /*add_special=*/true, out, /*parse_special=*/true));
  if (out->empty()) return invalid_argument("the formatted chat prompt is empty");
  return Status::ok_status();
}

}  // namespace pginfer
