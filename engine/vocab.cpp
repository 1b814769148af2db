// engine/vocab.cpp: reading and checking tokenizer.ggml.* metadata.
#include "engine/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "engine/utf8.h"

namespace pginfer {

namespace {

// Reads a numeric array element of type t at index i (types already checked by the caller).
double array_number(const GgufValue& v, uint64_t i) {
  const uint8_t* p = v.array_data;
  switch (v.array_type) {
    case GgufValueType::F32: { float x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case GgufValueType::F64: { double x; std::memcpy(&x, p + 8 * i, 8); return x; }
    case GgufValueType::I32: { int32_t x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case GgufValueType::U32: { uint32_t x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case GgufValueType::I8: return (int8_t)p[i];
    case GgufValueType::U8: return p[i];
    case GgufValueType::I16: { int16_t x; std::memcpy(&x, p + 2 * i, 2); return x; }
    case GgufValueType::U16: { uint16_t x; std::memcpy(&x, p + 2 * i, 2); return x; }
    case GgufValueType::I64: { int64_t x; std::memcpy(&x, p + 8 * i, 8); return (double)x; }
    case GgufValueType::U64: { uint64_t x; std::memcpy(&x, p + 8 * i, 8); return (double)x; }
    default: return 0;
  }
}

// Texts of control tokens that end a turn in the common chat formats (as llama.cpp recognises them).
constexpr std::string_view kEndOfTurnTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
    "<|end_of_text|>", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",  // DeepSeek
    "</s>",
};

// GPT-2's printable character for byte b: printable Latin-1 bytes stand for themselves, the others
// (controls, space, DEL, NBSP, soft hyphen) for U+0100 onwards in byte order.
uint32_t byte_to_codepoint(uint8_t b) {
  auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174; };
  if (printable(b)) return b;
  uint32_t n = 0;
  for (int c = 0; c < b; ++c) n += !printable(c);
  return 256 + n;
}

// Whether `text` contains `word`, ignoring ASCII case of `text`.
bool contains_lowercase(std::string text, std::string_view word) {
  for (char& c : text) c = (char)std::tolower((unsigned char)c);
  return text.find(word) != std::string::npos;
}

bool is_numeric_array(const GgufValue& v) {
  return v.type == GgufValueType::ARRAY && v.array_type != GgufValueType::STRING &&
         v.array_type != GgufValueType::BOOL && v.array_type != GgufValueType::ARRAY;
}

}  // namespace

Status Vocab::load(const GgufFile& file, std::unique_ptr<Vocab>* out) {
  const std::string where = "\"" + file.path() + "\": ";
  std::unique_ptr<Vocab> v(new Vocab());
  std::string model;
  if (!file.get_string("tokenizer.ggml.model", &model)) {
    return corrupt_file(where + "missing metadata key tokenizer.ggml.model");
  }
  if (model == "llama") {
    v->kind_ = TokenizerKind::SentencePiece;
  } else if (model == "gpt2") {
    v->kind_ = TokenizerKind::BytePairBpe;
  } else {
    return unsupported(where + "unsupported tokenizer \"" + model + "\" (supported: llama, gpt2)");
  }
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->type != GgufValueType::ARRAY || tokens->array_type != GgufValueType::STRING ||
      tokens->array_count == 0 || tokens->array_count > (1u << 24)) {
    return corrupt_file(where + "tokenizer.ggml.tokens must be a non-empty array of strings");
  }
  const uint64_t n = tokens->array_count;
  v->texts_.reserve(n);
  for (std::string_view t : tokens->array_strings) v->texts_.emplace_back(t);

  v->scores_.assign(n, 0.0f);
  if (const GgufValue* scores = file.find("tokenizer.ggml.scores")) {
    if (!is_numeric_array(*scores) || scores->array_count != n) {
      return corrupt_file(where + "tokenizer.ggml.scores must hold one number per token");
    }
    for (uint64_t i = 0; i < n; ++i) v->scores_[i] = (float)array_number(*scores, i);
  } else if (v->kind_ == TokenizerKind::SentencePiece) {
    return corrupt_file(where + "missing tokenizer.ggml.scores (SentencePiece vocabularies need scores)");
  }
  v->types_.assign(n, TokenType::Normal);
  if (const GgufValue* types = file.find("tokenizer.ggml.token_type")) {
    if (!is_numeric_array(*types) || types->array_count != n) {
      return corrupt_file(where + "tokenizer.ggml.token_type must hold one number per token");
    }
    for (uint64_t i = 0; i < n; ++i) {
      const double t = array_number(*types, i);
      if (t < 0 || t > 6 || t != (int)t) {
        return corrupt_file(where + "token " + std::to_string(i) + " has an invalid type " + std::to_string(t));
      }
      v->types_[i] = (TokenType)(int)t;
    }
  }
  v->by_text_.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (v->texts_[i].empty()) continue;  // an empty token can never be matched
    auto [it, added] = v->by_text_.emplace(v->texts_[i], (int32_t)i);
    if (!added) {
      return corrupt_file(where + "tokens " + std::to_string(it->second) + " and " + std::to_string(i) +
                          " have the same text");
    }
  }


  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v->byte_tokens_[b] = v->find(name);
  }
  if (v->kind_ == TokenizerKind::BytePairBpe) PGI_RETURN_IF_ERROR(v->load_bpe(file, where));
  // Reads a special token id; absent is fine, out of range is an error.
  auto special = [&](const char* key, int32_t* slot) -> Status {
    if (file.find(key) == nullptr) return Status::ok_status();
    int64_t id = -1;
    if (!file.get_i64(key, &id) || id < 0 || id >= (int64_t)n) {
      return corrupt_file(where + "metadata key " + key + " is not a token id of this vocabulary");
    }
    *slot = (int32_t)id;
    return Status::ok_status();
  };
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.bos_token_id", &v->bos_));
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.eos_token_id", &v->eos_));
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.eot_token_id", &v->eot_));
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.padding_token_id", &v->pad_));
  int32_t eom = -1;
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.eom_token_id", &eom));
  // End-of-generation tokens: EOS, EOT, EOM, and the end-of-turn control tokens by name (the first found
  // is EOT when the metadata names none).
  for (int32_t id : {v->eos_, v->eot_, eom}) {
    if (id >= 0) v->eog_tokens_.push_back(id);
  }
  for (std::string_view name : kEndOfTurnTexts) {
    const int32_t id = v->find(name);
    if (id < 0) continue;
    // As llama.cpp does, a token named like an end of turn is a control token whatever its stored type
    // (Phi-3 stores </s> as user-defined), so plain text never turns into it.
    v->types_[id] = TokenType::Control;
    if (v->eot_ < 0 && name != "<|endoftext|>" && name != "<|end_of_text|>" && name != "</s>") v->eot_ = id;
    v->eog_tokens_.push_back(id);
  }
  // What special-token parsing looks for, the longest text first.
  for (uint64_t i = 0; i < n; ++i) {
    const TokenType t = v->types_[i];
    if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown) {
      v->special_tokens_.push_back((int32_t)i);
    }
  }
  std::stable_sort(v->special_tokens_.begin(), v->special_tokens_.end(),
                   [&](int32_t a, int32_t b) { return v->texts_[a].size() > v->texts_[b].size(); });
  std::sort(v->eog_tokens_.begin(), v->eog_tokens_.end());
  v->eog_tokens_.erase(std::unique(v->eog_tokens_.begin(), v->eog_tokens_.end()), v->eog_tokens_.end());
  v->add_bos_ = v->kind_ == TokenizerKind::SentencePiece || (v->pre_tokenizer_ && v->pre_tokenizer_->adds_bos());
  file.get_bool("tokenizer.ggml.add_bos_token", &v->add_bos_);
  file.get_bool("tokenizer.ggml.add_eos_token", &v->add_eos_);
  v->add_space_prefix_ = v->kind_ == TokenizerKind::SentencePiece;
  file.get_bool("tokenizer.ggml.add_space_prefix", &v->add_space_prefix_);
  if ((v->add_bos_ && v->bos_ < 0) || (v->add_eos_ && v->eos_ < 0)) {
    return corrupt_file(where + "the vocabulary asks to add BOS or EOS but does not name the token");
  }
  // Phi-3's special tokens drop the whitespace that follows them (as its tokenizer.json says and llama.cpp
  // applies by model name), except the sequence markers.
  v->rstrip_.assign(n, false);
  std::string model_name;
  file.get_string("general.name", &model_name);
  if (contains_lowercase(model_name, "phi-3") || contains_lowercase(model_name, "phi3")) {
    for (int32_t id : v->special_tokens_) v->rstrip_[id] = true;
    if (v->find("</s>") >= 0) v->rstrip_[v->find("</s>")] = true;
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (v->find(t) >= 0) v->rstrip_[v->find(t)] = false;
    }
  }
  v->build_pieces();
  *out = std::move(v);
  return Status::ok_status();
}

Status Vocab::load_bpe(const GgufFile& file, const std::string& where) {
  std::string pre;
  file.get_string("tokenizer.ggml.pre", &pre);
  Status st = PreTokenizer::create(pre, &pre_tokenizer_);
  if (!st.ok()) return Status(st.code(), where + st.message());
  // Bytes are the one-character tokens of their GPT-2 characters.
  for (int b = 0; b < 256; ++b) {
    std::string c;
    append_utf8(byte_to_codepoint((uint8_t)b), &c);
    byte_tokens_[b] = find(c);
  }
  const GgufValue* merges = file.find("tokenizer.ggml.merges");
  if (merges == nullptr || merges->type != GgufValueType::ARRAY || merges->array_type != GgufValueType::STRING) {
    return corrupt_file(where + "a BPE vocabulary needs tokenizer.ggml.merges, an array of strings");
  }
  size_t slots = 16;
  while (slots < 2 * merges->array_count) slots *= 2;
  merges_.assign(slots, MergeSlot{});
  for (uint64_t i = 0; i < merges->array_count; ++i) {
    const std::string_view m = merges->array_strings[i];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    const int32_t left = space == std::string_view::npos ? -1 : find(m.substr(0, space));
    const int32_t right = space == std::string_view::npos ? -1 : find(m.substr(space + 1));
    const int32_t result =
        left < 0 || right < 0 ? -1 : find(std::string(m.substr(0, space)) + std::string(m.substr(space + 1)));
    if (result < 0) {
      return corrupt_file(where + "merge " + std::to_string(i) + " (\"" + std::string(m.substr(0, 40)) +
                          "\") does not join two tokens of the vocabulary into a token");
    }
    const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (slots - 1);
    while (merges_[slot].key != ~0ull && merges_[slot].key != key) slot = (slot + 1) & (slots - 1);
    if (merges_[slot].key == key) continue;  // a repeated merge keeps its first (lowest) rank
    merges_[slot].key = key;
    merges_[slot].merge = BpeMerge{(int32_t)i, result};
  }
  return Status::ok_status();
}

const BpeMerge* Vocab::merge(int32_t left, int32_t right) const {
  if (merges_.empty()) return nullptr;
  const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  const size_t mask = merges_.size() - 1;
  for (size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;; slot = (slot + 1) & mask) {
    if (merges_[slot].key == key) return &merges_[slot].merge;
    if (merges_[slot].key == ~0ull) return nullptr;
  }
}

void Vocab::build_pieces() {
  // GPT-2's characters back to their bytes.
  std::unordered_map<uint32_t, uint8_t> char_to_byte;
  for (int b = 0; b < 256; ++b) char_to_byte[byte_to_codepoint((uint8_t)b)] = (uint8_t)b;
  pieces_.assign(texts_.size(), std::string());
  for (size_t id = 0; id < texts_.size(); ++id) {
    const std::string& t = texts_[id];
    std::string& piece = pieces_[id];
    switch (types_[id]) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::Unused:
        continue;
      case TokenType::Byte:
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && std::isxdigit((unsigned char)t[3]) &&
            std::isxdigit((unsigned char)t[4])) {
          piece.assign(1, (char)std::stoi(t.substr(3, 2), nullptr, 16));
        }
        continue;
      case TokenType::UserDefined:
        piece = t;  // shown as written
        continue;
      default: break;
    }
    if (kind_ == TokenizerKind::SentencePiece) {
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
          piece += ' ';
          i += 3;
        } else {
          piece += t[i++];
        }
      }
      continue;
    }
    // BPE: each character stands for a byte; a character outside the mapping is kept as it is.
    for (size_t i = 0; i < t.size();) {
      size_t len = valid_utf8_prefix(std::string_view(t).substr(i));
      if (len == 0) len = 1;
      uint32_t cp = 0;
      if (len == 1) {
        cp = (unsigned char)t[i];
      } else {
        cp = (unsigned char)t[i] & (0xFF >> (len + 1));
        for (size_t k = 1; k < len; ++k) cp = (cp << 6) | ((unsigned char)t[i + k] & 0x3F);
      }
      auto it = char_to_byte.find(cp);
      if (it != char_to_byte.end()) {
        piece += (char)it->second;
      } else {
        piece.append(t, i, len);
      }
      i += len;
    }
  }
}

bool Vocab::is_eog(int32_t id) const {
  return std::binary_search(eog_tokens_.begin(), eog_tokens_.end(), id);
}

int32_t Vocab::find(std::string_view text) const {
  auto it = by_text_.find(text);
  return it == by_text_.end() ? -1 : it->second;
}

}  // namespace pginfer
