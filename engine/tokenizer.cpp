// engine/tokenizer.cpp: the SentencePiece-style tokenizer and detokenization.
#include "engine/tokenizer.h"

#include <queue>

namespace pginfer {

namespace {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

// Bytes of the UTF-8 sequence that starts with byte c (1 for continuation or invalid bytes).
size_t utf8_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// A piece of the text being merged: a byte range, linked to its neighbours (-1 at the ends).
struct Piece {
  size_t offset;
  size_t length;  // 0 once merged into its left neighbour
  int prev;
  int next;
};

// A candidate merge of two adjacent pieces whose joined text is a token.
struct Merge {
  int left;
  int right;
  float score;
  size_t length;  // of the joined text, to detect stale candidates
};

// Highest score first; among equal scores the leftmost.
struct MergeOrder {
  bool operator()(const Merge& a, const Merge& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

void tokenize_spm(const Vocab& vocab, const std::string& text, std::vector<int32_t>* out) {
  std::vector<Piece> pieces;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8_length((unsigned char)text[off]), text.size() - off);
    const int index = (int)pieces.size();
    pieces.push_back({off, len, index - 1, off + len == text.size() ? -1 : index + 1});
    off += len;
  }
  std::priority_queue<Merge, std::vector<Merge>, MergeOrder> queue;
  auto try_merge = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view joined(text.data() + pieces[left].offset, pieces[left].length + pieces[right].length);
    const int32_t id = vocab.find(joined);
    if (id < 0) return;
    queue.push({left, right, vocab.score(id), joined.size()});
  };
  for (int i = 1; i < (int)pieces.size(); ++i) try_merge(i - 1, i);
  while (!queue.empty()) {
    const Merge m = queue.top();
    queue.pop();
    Piece& left = pieces[m.left];
    Piece& right = pieces[m.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != m.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) pieces[right.next].prev = m.left;
    try_merge(left.prev, m.left);
    try_merge(m.left, left.next);
  }
  for (int i = pieces.empty() ? -1 : 0; i != -1; i = pieces[i].next) {
    const std::string_view piece(text.data() + pieces[i].offset, pieces[i].length);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (unsigned char b : piece) {
      const int32_t byte_id = vocab.byte_token(b);
      if (byte_id >= 0) out->push_back(byte_id);  // a vocabulary without byte tokens drops the byte
    }
  }
}

}  // namespace

Status tokenize(const Vocab& vocab, std::string_view text, bool add_special, std::vector<int32_t>* out,
                bool parse_special) {
  out->clear();
  if (vocab.kind() != TokenizerKind::SentencePiece) {
    return unsupported("byte-level BPE tokenization is not implemented yet");
  }
  if (add_special && vocab.add_bos() && vocab.bos() >= 0) out->push_back(vocab.bos());
  // Split the text at special-token texts (the longest match at each position), tokenizing the raw text
  // between them; a raw fragment after a special token (or at the start) gets the space prefix.
  const std::vector<int32_t>& specials = vocab.special_tokens();
  bool after_special = true;
  size_t raw_start = 0;
  auto flush_raw = [&](size_t end) {
    if (end > raw_start) {
      std::string escaped;
      if (vocab.add_space_prefix() && after_special) escaped += kSpaceMark;
      for (char c : text.substr(raw_start, end - raw_start)) {
        if (c == ' ') {
          escaped += kSpaceMark;
        } else {
          escaped += c;
        }
      }
      tokenize_spm(vocab, escaped, out);
      after_special = false;
    }
  };
  for (size_t pos = 0; pos < text.size();) {
    int32_t match = -1;
    for (int32_t id : specials) {  // longest first
      if (!parse_special && vocab.type(id) != TokenType::UserDefined) continue;
      const std::string& t = vocab.text(id);
      if (!t.empty() && text.compare(pos, t.size(), t) == 0) {
        match = id;
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    flush_raw(pos);
    out->push_back(match);
    after_special = true;
    pos += vocab.text(match).size();
    raw_start = pos;
  }
  flush_raw(text.size());
  if (add_special && vocab.add_eos() && vocab.eos() >= 0) out->push_back(vocab.eos());
  return Status::ok_status();
}

std::string token_to_piece(const Vocab& vocab, int32_t id) {
  switch (vocab.type(id)) {
    case TokenType::Control:
    case TokenType::Unknown:
    case TokenType::Unused:
      return "";
    case TokenType::Byte: {
      const std::string& t = vocab.text(id);  // "<0xXX>"
      if (t.size() == 6) return std::string(1, (char)std::stoi(t.substr(3, 2), nullptr, 16));
      return "";
    }
    default: break;
  }
  std::string piece;
  const std::string& t = vocab.text(id);
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      piece += ' ';
      i += kSpaceMark.size();
    } else {
      piece += t[i++];
    }
  }
  return piece;
}

Status Detokenizer::next(int32_t id, std::string* out) {
  if (id < 0 || id >= vocab_.size()) {
    return invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_.size()) + " tokens");
  }
  std::string piece = token_to_piece(vocab_, id);
  if (first_text_ && !piece.empty()) {
    if (vocab_.add_space_prefix() && piece[0] == ' ') piece.erase(0, 1);
    first_text_ = false;
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
