// engine/pretokenizer.h: the pre-tokenizers of byte-level BPE vocabularies: the regular expressions
// that cut text into words before merges apply, chosen by tokenizer.ggml.pre.
//
// Each pre-tokenizer is a list of regular expressions (PCRE2, Unicode properties, JIT-compiled) applied
// in turn as llama.cpp does: every expression splits each piece left by the previous one into its matches
// and the text between them (nothing is dropped), and an expression only sees one piece at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace pginfer {

// A compiled pre-tokenizer; immutable and safe to share between threads.
class PreTokenizer {
 public:
  // The pre-tokenizer called `name` (tokenizer.ggml.pre; "" and "default" are the default). An unknown
  // name is an Unsupported error listing the known ones.
  static Status create(std::string_view name, std::unique_ptr<PreTokenizer>* out);
  ~PreTokenizer();

  // Appends the words of `text` (valid UTF-8) to *words, as views into `text`, in order; together they
  // cover `text` exactly.
  Status split(std::string_view text, std::vector<std::string_view>* words) const;

  // The name it was created with.
  const std::string& name() const { return name_; }
  // Whether a word that is a token as a whole becomes that token without merges (Llama 3 style).
  bool ignore_merges() const { return ignore_merges_; }
  // Whether vocabularies with this pre-tokenizer add BOS when the metadata does not say.
  bool adds_bos() const { return adds_bos_; }

  // Every supported name, comma separated (for messages).
  static std::string supported_names();

 private:
  PreTokenizer() = default;

  struct Regex;  // a compiled expression
  std::string name_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool ignore_merges_ = false;
  bool adds_bos_ = false;
};

}  // namespace pginfer
