// engine/tokenizer_spm.cpp: the SentencePiece-style merge by score.
#include <queue>
#include <string>

#include "engine/tokenizer_impl.h"
#include "engine/utf8.h"

namespace pginfer::detail {

namespace {

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

}  // namespace

void tokenize_spm(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out) {
  std::vector<Piece> pieces;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8_sequence_length((unsigned char)text[off]), text.size() - off);
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

}  // namespace pginfer::detail
