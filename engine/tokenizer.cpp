// engine/tokenizer.cpp: tokenize() — invalid UTF-8, special tokens, BOS/EOS — over the algorithms of
// tokenizer_spm.cpp and tokenizer_bpe.cpp; detokenization from the vocabulary's pieces.
#include "engine/tokenizer.h"

#include <cctype>
#include <list>

#include "engine/tokenizer_impl.h"
#include "engine/utf8.h"

namespace pginfer {

namespace {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

// A part of the text after special tokens are found: a token, or raw text still to tokenize.
struct Fragment {
  int32_t token;          // -1 for raw text
  std::string_view text;  // the raw text
};

// Splits `text` at the special tokens it contains, as llama.cpp does: the tokens are taken longest first,
// each splitting every raw fragment at all its occurrences, and a token with rstrip drops the whitespace
// after it. User-defined tokens are always recognised; control and unknown ones only with
// parse_special.
std::list<Fragment> partition_special(const Vocab& vocab, std::string_view text, bool parse_special) {
  std::list<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, text});
  for (int32_t id : vocab.special_tokens()) {
    if (!parse_special && vocab.type(id) != TokenType::UserDefined) continue;
    const std::string& token_text = vocab.text(id);
    if (token_text.empty()) continue;
    for (auto it = fragments.begin(); it != fragments.end(); ++it) {
      if (it->token >= 0) continue;
      const size_t at = it->text.find(token_text);
      if (at == std::string_view::npos) continue;
      const std::string_view left = it->text.substr(0, at);
      std::string_view right = it->text.substr(at + token_text.size());
      if (vocab.rstrip(id)) {
        while (!right.empty() && std::isspace((unsigned char)right.front())) right.remove_prefix(1);
      }
      // Replace the fragment by left, token, right; the loop goes on with right.
      if (!left.empty()) fragments.insert(it, {-1, left});
      fragments.insert(it, {id, {}});
      if (right.empty()) {
        it = std::prev(fragments.erase(it));
      } else {
        it->text = right;
        --it;  // look at right again for further occurrences
      }
    }
  }
  return fragments;
}

}  // namespace

Status tokenize(const Vocab& vocab, std::string_view text, bool add_special, std::vector<int32_t>* out,
                bool parse_special) {
  out->clear();
  // Invalid UTF-8 from the user becomes U+FFFD, byte by byte.
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = replace_invalid_utf8(text);
    text = repaired;
  }
  if (add_special && vocab.add_bos()) out->push_back(vocab.bos());
  bool after_special = true;  // SentencePiece prefixes a space to raw text at the start or after a token
  std::string escaped;
  for (const Fragment& f : partition_special(vocab, text, parse_special)) {
    if (f.token >= 0) {
      out->push_back(f.token);
      after_special = true;
      continue;
    }
    if (vocab.kind() == TokenizerKind::BytePairBpe) {
      PGI_RETURN_IF_ERROR(detail::tokenize_bpe(vocab, f.text, out));
      continue;
    }
    escaped.clear();
    if (vocab.add_space_prefix() && after_special) escaped += kSpaceMark;
    for (char c : f.text) {
      if (c == ' ') {
        escaped += kSpaceMark;
      } else {
        escaped += c;
      }
    }
    detail::tokenize_spm(vocab, escaped, out);
    after_special = false;
  }
  if (add_special && vocab.add_eos()) out->push_back(vocab.eos());
  return Status::ok_status();
}

std::string token_to_piece(const Vocab& vocab, int32_t id) { return vocab.piece(id); }

Status Detokenizer::next(int32_t id, std::string* out) {
  if (id < 0 || id >= vocab_.size()) {
    return invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_.size()) + " tokens");
  }
  const std::string& piece = vocab_.piece(id);
  if (first_text_ && !piece.empty()) {
    first_text_ = false;
    if (vocab_.add_space_prefix() && piece[0] == ' ') {
      out->append(piece, 1);
      return Status::ok_status();
    }
  }
  *out += piece;
  return Status::ok_status();
}

Status detokenize(const Vocab& vocab, const std::vector<int32_t>& ids, std::string* out) {
  out->clear();
  Detokenizer d(vocab);
  for (int32_t id : ids) PGI_RETURN_IF_ERROR(d.next(id, out));
  return Status::ok_status();
}

}  // namespace pginfer
