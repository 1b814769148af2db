// engine/tokenizer_bpe.cpp: byte-level BPE: pre-tokenized words, each merged by rank from its bytes.
#include <queue>
#include <string>

#include "engine/tokenizer_impl.h"

namespace pginfer::detail {

namespace {

// A symbol of the word being merged: a token, linked to its neighbours (-1 at the ends).
struct Symbol {
  int32_t id;  // -1: a byte the vocabulary has no token for; -2: merged into its left neighbour
  int prev;
  int next;
};

// A candidate merge of two adjacent symbols.
struct Candidate {
  int32_t rank;
  int left;
  int right;
  int32_t left_id;   // the ids when the candidate was made, to detect stale candidates
  int32_t right_id;
  int32_t result;
};

// Lowest rank first; among equal ranks the leftmost.
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

// Reused buffers of one tokenize_bpe call.
struct Scratch {
  std::vector<Symbol> symbols;
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  std::string encoded;
};

// Merges one word and appends its tokens.
void merge_word(const Vocab& vocab, std::string_view word, Scratch& s, std::vector<int32_t>* out) {
  // A word that is a token as a whole, for pre-tokenizers that skip merges then (Llama 3).
  if (vocab.pre_tokenizer()->ignore_merges()) {
    s.encoded.clear();
    for (unsigned char b : word) {
      const int32_t t = vocab.byte_token(b);
      if (t >= 0) s.encoded += vocab.text(t);
    }
    const int32_t whole = vocab.find(s.encoded);
    if (whole >= 0) {
      out->push_back(whole);
      return;
    }
  }
  s.symbols.clear();
  for (size_t i = 0; i < word.size(); ++i) {
    s.symbols.push_back({vocab.byte_token((unsigned char)word[i]), (int)i - 1,
                         i + 1 == word.size() ? -1 : (int)i + 1});
  }
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t l = s.symbols[left].id, r = s.symbols[right].id;
    if (l < 0 || r < 0) return;
    if (const BpeMerge* m = vocab.merge(l, r)) s.queue.push({m->rank, left, right, l, r, m->result});
  };
  for (int i = 1; i < (int)s.symbols.size(); ++i) consider(i - 1, i);
  while (!s.queue.empty()) {
    const Candidate c = s.queue.top();
    s.queue.pop();
    Symbol& left = s.symbols[c.left];
    Symbol& right = s.symbols[c.right];
    if (left.id != c.left_id || right.id != c.right_id || left.next != c.right) continue;
    left.id = c.result;
    right.id = -2;
    left.next = right.next;
    if (right.next >= 0) s.symbols[right.next].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  for (int i = s.symbols.empty() ? -1 : 0; i != -1; i = s.symbols[i].next) {
    if (s.symbols[i].id >= 0) out->push_back(s.symbols[i].id);
  }
}

}  // namespace

Status tokenize_bpe(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out) {
  std::vector<std::string_view> words;
  PGI_RETURN_IF_ERROR(vocab.pre_tokenizer()->split(text, &words));
  Scratch scratch;
  for (std::string_view word : words) merge_word(vocab, word, scratch, out);
  return Status::ok_status();
}

}  // namespace pginfer::detail
