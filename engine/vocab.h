// engine/vocab.h: a model's vocabulary, read from GGUF metadata (tokenizer.ggml.*) and checked at load:
// token texts, scores, types, the special tokens, and the flags that shape tokenization.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/gguf.h"
#include "engine/status.h"

namespace pginfer {

// Token types as GGUF stores them (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

// The tokenizer algorithm named by tokenizer.ggml.model.
enum class TokenizerKind {
  SentencePiece,  // "llama": scores, byte fallback, the U+2581 space
  BytePairBpe,    // "gpt2": merges and a pre-tokenizer (not implemented yet)
};

// An immutable vocabulary.
class Vocab {
 public:
  // Reads and validates the vocabulary of `file`. Inconsistent metadata (counts that differ, types out
  // of range, special ids outside the vocabulary, duplicate texts) is an error naming the problem.
  static Status load(const GgufFile& file, std::unique_ptr<Vocab>* out);

  // Algorithm.
  TokenizerKind kind() const { return kind_; }
  // Number of tokens.
  int32_t size() const { return (int32_t)texts_.size(); }
  // Text, score and type of token `id` (0 <= id < size()).
  const std::string& text(int32_t id) const { return texts_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  TokenType type(int32_t id) const { return types_[id]; }
  // The token whose text is exactly `text`, or -1.
  int32_t find(std::string_view text) const;
  // The byte-fallback token of byte `b` (<0xXX>), or -1 when the vocabulary has none.
  int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }
  // Control and user-defined tokens, the longest text first: what special-token parsing looks for.
  const std::vector<int32_t>& special_tokens() const { return special_tokens_; }
  // Special tokens (-1 when absent) and the flags of tokenizer.ggml.*.
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  // End of turn (tokenizer.ggml.eot_token_id, or a token named like <|eot_id|>, <|im_end|>, <|end|>,
  // <end_of_turn>), or -1.
  int32_t eot() const { return eot_; }
  // Whether `id` ends generation: EOS, EOT, EOM, or another end-of-turn control token of the vocabulary.
  bool is_eog(int32_t id) const;
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

 private:
  Vocab() = default;

  TokenizerKind kind_ = TokenizerKind::SentencePiece;
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string_view, int32_t> by_text_;  // views into texts_
  int32_t byte_tokens_[256];
  std::vector<int32_t> special_tokens_;
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t eot_ = -1;
  std::vector<int32_t> eog_tokens_;  // sorted
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = true;
};

}  // namespace pginfer
