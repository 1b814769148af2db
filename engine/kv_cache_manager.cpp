// engine/kv_cache_manager.cpp: block tables over the pool, prefix lookups along the hash chain, publication
// of full blocks, and the token-level hit accounting.
#include "engine/kv_cache_manager.h"

#include <string>

namespace pginfer {

namespace {

int32_t ceil_div(int64_t a, int32_t b) { return (int32_t)((a + b - 1) / b); }

std::string rid(RequestId id) { return "request " + std::to_string(id); }

}  // namespace

Status KvCacheManager::add_request(RequestId id, bool prefix_caching) {
  auto [it, inserted] = requests_.try_emplace(id);
  if (!inserted) return invalid_argument(rid(id) + " already holds kv blocks");
  it->second.prefix_caching = prefix_caching;
  return Status();
}

PrefixHit KvCacheManager::get_computed_blocks(RequestId id, std::span<const int32_t> tokens) {
  PrefixHit hit;
  auto it = requests_.find(id);
  if (it == requests_.end() || !it->second.prefix_caching || tokens.empty()) return hit;
  const int32_t bs = block_size();
  // Never the whole prompt: the block holding the last token is always computed.
  const int32_t max_blocks = (int32_t)((tokens.size() - 1) / (size_t)bs);
  BlockHash parent = kRootBlockHash;
  for (int32_t i = 0; i < max_blocks; ++i) {
    std::span<const int32_t> block_tokens = tokens.subspan((size_t)i * (size_t)bs, (size_t)bs);
    BlockHash h = hash_block(parent, extra_key_, block_tokens);
    BlockId b = pool_->find_cached(h, parent, extra_key_, block_tokens);
    if (b < 0) break;
    hit.blocks.push_back(b);
    hit.hashes.push_back(h);
    parent = h;
  }
  hit.num_tokens = (int32_t)hit.blocks.size() * bs;
  return hit;
}

int32_t KvCacheManager::blocks_needed(RequestId id, int32_t num_computed, int32_t num_new_tokens,
                                      const PrefixHit& hit) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return -1;
  const int64_t total = (int64_t)num_computed + hit.num_tokens + num_new_tokens;
  int32_t fresh = ceil_div(total, block_size()) - (int32_t)it->second.table.size() - (int32_t)hit.blocks.size();
  if (fresh < 0) fresh = 0;
  int32_t revived = 0;
  for (BlockId b : hit.blocks)
    if (b >= 0 && b < pool_->num_blocks() && pool_->block(b).ref_count == 0) ++revived;
  return fresh + revived;
}

Status KvCacheManager::allocate_slots(RequestId id, std::span<const int32_t> tokens, int32_t num_computed,
                                      int32_t num_new_tokens, const PrefixHit& hit, bool* allocated) {
  *allocated = false;
  auto it = requests_.find(id);
  if (it == requests_.end()) return invalid_argument(rid(id) + " is not registered with the kv cache");
  Entry& e = it->second;
  const int32_t bs = block_size();
  if (num_computed < 0 || num_new_tokens < 0)
    return invalid_argument(rid(id) + ": negative token counts for kv allocation");
  const int64_t total = (int64_t)num_computed + hit.num_tokens + num_new_tokens;
  if (total > (int64_t)tokens.size())
    return invalid_argument(rid(id) + ": " + std::to_string(total) + " kv positions asked for but only " +
                            std::to_string(tokens.size()) + " tokens are known");
  if (!hit.blocks.empty()) {
    if (!e.table.empty() || num_computed != 0)
      return invalid_argument(rid(id) + ": a prefix hit can only start an empty block table");
    if (hit.num_tokens != (int32_t)hit.blocks.size() * bs || hit.hashes.size() != hit.blocks.size())
      return invalid_argument(rid(id) + ": malformed prefix hit");
    for (size_t i = 0; i < hit.blocks.size(); ++i) {
      BlockId b = hit.blocks[i];
      if (b < 0 || b >= pool_->num_blocks() || !pool_->block(b).has_hash || pool_->block(b).hash != hit.hashes[i])
        return invalid_argument(rid(id) + ": stale prefix hit (block evicted since the lookup)");
    }
  }
  if ((int64_t)e.table.size() * bs < num_computed)
    return invalid_argument(rid(id) + ": block table does not cover its " + std::to_string(num_computed) +
                            " computed tokens");
  const int32_t need = blocks_needed(id, num_computed, num_new_tokens, hit);
  if (need > pool_->num_free()) return Status();  // no room: nothing changed

  const bool first = e.table.empty();
  for (size_t i = 0; i < hit.blocks.size(); ++i) {
    PGI_RETURN_IF_ERROR(pool_->touch(hit.blocks[i]));
    e.table.push_back(hit.blocks[i]);
  }
  if (!hit.blocks.empty()) {
    e.hashes = hit.hashes;
    e.num_published = (int32_t)hit.blocks.size();
  }
  int32_t fresh = ceil_div(total, bs) - (int32_t)e.table.size();
  if (fresh > 0) PGI_RETURN_IF_ERROR(pool_->allocate(fresh, &e.table));
  if (first && total > 0) {
    ++stats_.admissions;
    stats_.prompt_tokens += (int64_t)tokens.size();
    stats_.hit_tokens += hit.num_tokens;
  }
  if (e.prefix_caching) PGI_RETURN_IF_ERROR(publish(e, tokens, (int32_t)(total / bs)));
  *allocated = true;
  return Status();
}

Status KvCacheManager::publish(Entry& e, std::span<const int32_t> tokens, int32_t num_full) {
  const int32_t bs = block_size();
  for (int32_t i = e.num_published; i < num_full; ++i) {
    BlockHash parent = i == 0 ? kRootBlockHash : e.hashes[(size_t)i - 1];
    std::span<const int32_t> block_tokens = tokens.subspan((size_t)i * (size_t)bs, (size_t)bs);
    BlockHash h = hash_block(parent, extra_key_, block_tokens);
    e.hashes.push_back(h);
    // A block already cached under h elsewhere keeps that place; this one stays private (cached = false).
    if (!pool_->block(e.table[(size_t)i]).has_hash)
      PGI_RETURN_IF_ERROR(pool_->cache_block(e.table[(size_t)i], h, parent, extra_key_, block_tokens));
    e.num_published = i + 1;
  }
  return Status();
}

Status KvCacheManager::free(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return invalid_argument(rid(id) + " is not registered with the kv cache");
  std::vector<BlockId> reversed(it->second.table.rbegin(), it->second.table.rend());
  requests_.erase(it);
  return pool_->free(reversed);
}

Status KvCacheManager::discard(RequestId id, int32_t num_valid_tokens) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return invalid_argument(rid(id) + " is not registered with the kv cache");
  const std::vector<BlockId>& table = it->second.table;
  const size_t first_bad = num_valid_tokens <= 0 ? 0 : (size_t)(num_valid_tokens / block_size());
  for (size_t i = first_bad; i < table.size(); ++i) pool_->uncache(table[i]);
  return free(id);
}

std::span<const BlockId> KvCacheManager::block_table(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second.table;
}

}  // namespace pginfer
