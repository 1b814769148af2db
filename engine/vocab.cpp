// engine/vocab.cpp: reading and checking tokenizer.ggml.* metadata.
#include "engine/vocab.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

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
};

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
  for (uint64_t i = 0; i < n; ++i) v->by_text_.emplace(v->texts_[i], (int32_t)i);  // first wins on duplicates

  for (uint64_t i = 0; i < n; ++i) {
    if (v->types_[i] == TokenType::Control || v->types_[i] == TokenType::UserDefined) {
      v->special_tokens_.push_back((int32_t)i);
    }
  }
  std::stable_sort(v->special_tokens_.begin(), v->special_tokens_.end(),
                   [&](int32_t a, int32_t b) { return v->texts_[a].size() > v->texts_[b].size(); });
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v->byte_tokens_[b] = v->find(name);
  }
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
  int32_t eom = -1;
  PGI_RETURN_IF_ERROR(special("tokenizer.ggml.eom_token_id", &eom));
  // End-of-generation tokens: EOS, EOT, EOM, and the end-of-turn control tokens by name (the first found
  // is EOT when the metadata names none).
  for (int32_t id : {v->eos_, v->eot_, eom}) {
    if (id >= 0) v->eog_tokens_.push_back(id);
  }
  for (std::string_view name : kEndOfTurnTexts) {
    const int32_t id = v->find(name);
    if (id < 0 || (v->types_[id] != TokenType::Control && v->types_[id] != TokenType::UserDefined)) continue;
    if (v->eot_ < 0 && name != "<|endoftext|>" && name != "<|end_of_text|>") v->eot_ = id;
    v->eog_tokens_.push_back(id);
  }
  std::sort(v->eog_tokens_.begin(), v->eog_tokens_.end());
  v->eog_tokens_.erase(std::unique(v->eog_tokens_.begin(), v->eog_tokens_.end()), v->eog_tokens_.end());
  v->add_bos_ = v->kind_ == TokenizerKind::SentencePiece;
  file.get_bool("tokenizer.ggml.add_bos_token", &v->add_bos_);
  file.get_bool("tokenizer.ggml.add_eos_token", &v->add_eos_);
  v->add_space_prefix_ = v->kind_ == TokenizerKind::SentencePiece;
  file.get_bool("tokenizer.ggml.add_space_prefix", &v->add_space_prefix_);
  *out = std::move(v);
  return Status::ok_status();
}

bool Vocab::is_eog(int32_t id) const {
  return std::binary_search(eog_tokens_.begin(), eog_tokens_.end(), id);
}

int32_t Vocab::find(std::string_view text) const {
  auto it = by_text_.find(text);
  return it == by_text_.end() ? -1 : it->second;
}

}  // namespace pginfer
