// engine/vocab.h: a model's vocabulary, read from GGUF metadata (tokenizer.ggml.*) and checked at load:
// token texts, scores, types, the special tokens, the flags that shape tokenization, and for byte-level
// BPE the merges, the pre-tokenizer and GPT-2's byte-to-character mapping.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/gguf.h"
#include "engine/pretokenizer.h"
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
  BytePairBpe,    // "gpt2": merges, a pre-tokenizer, bytes mapped to printable characters
};

// A BPE merge of two adjacent tokens.
struct BpeMerge {
  int32_t rank;    // position in tokenizer.ggml.merges: lower merges first
  int32_t result;  // the token the two become
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
  // The token of byte `b`: SentencePiece's byte fallback <0xXX>, or BPE's one-character token of the byte;
  // -1 when the vocabulary has none.
  int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }
  // Control, user-defined and unknown tokens, the longest text first: what special-token parsing looks
  // for (control and unknown ones only with parse_special).
  const std::vector<int32_t>& special_tokens() const { return special_tokens_; }
  // Whether whitespace after special token `id` is dropped when the token is recognised in text (Phi-3's
  // tokens strip what follows them).
  bool rstrip(int32_t id) const { return rstrip_[id]; }
  // The text of token `id` as output shows it: U+2581 or GPT-2's byte characters decoded, byte tokens as
  // their byte, control, unknown and unused tokens empty.
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  // BPE: the merge of tokens `left` and `right`, or nullptr when they do not merge.
  const BpeMerge* merge(int32_t left, int32_t right) const;
  // BPE: the pre-tokenizer (nullptr for SentencePiece).
  const PreTokenizer* pre_tokenizer() const { return pre_tokenizer_.get(); }
  // Special tokens (-1 when absent) and the flags of tokenizer.ggml.*.
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  // End of turn (tokenizer.ggml.eot_token_id, or a token named like <|eot_id|>, <|im_end|>, <|end|>,
  // <end_of_turn>), or -1.
  int32_t eot() const { return eot_; }
  // Padding token (tokenizer.ggml.padding_token_id), or -1.
  int32_t pad() const { return pad_; }
  // Whether `id` ends generation: EOS, EOT, EOM, or another end-of-turn control token of the vocabulary.
  bool is_eog(int32_t id) const;
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

 private:
  Vocab() = default;
  // Reads tokenizer.ggml.merges and the pre-tokenizer, and maps bytes to tokens (BPE).
  Status load_bpe(const GgufFile& file, const std::string& where);
  // Fills pieces_.
  void build_pieces();

  TokenizerKind kind_ = TokenizerKind::SentencePiece;
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string_view, int32_t> by_text_;  // views into texts_
  int32_t byte_tokens_[256];
  std::vector<int32_t> special_tokens_;
  std::vector<bool> rstrip_;          // rstrip() per token
  std::vector<std::string> pieces_;   // piece() per token
  // BPE merges by (left << 32 | right), in an open-addressing table of power-of-two size.
  struct MergeSlot {
    uint64_t key = ~0ull;  // ~0 marks an empty slot
    BpeMerge merge{};
  };
  std::vector<MergeSlot> merges_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t eot_ = -1;
  int32_t pad_ = -1;
  std::vector<int32_t> eog_tokens_;  // sorted
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = true;
};

}  // namespace pginfer
