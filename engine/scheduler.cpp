// engine/scheduler.cpp: step planning (decodes, prefill chunks, preemption, fair admission) and applying
// the executor's outputs.
#include "engine/scheduler.h"

#include <algorithm>
#include <limits>

namespace pginfer {

namespace {

std::string rid(RequestId id) { return "request " + std::to_string(id); }

}  // namespace

Status Scheduler::create(KvCacheManager* kv, const SchedulerOptions& options, std::unique_ptr<Scheduler>* out) {
  if (kv == nullptr) return invalid_argument("scheduler needs a kv cache manager");
  if (options.max_num_batched_tokens <= 0)
    return invalid_argument("max_num_batched_tokens must be positive, got " +
                            std::to_string(options.max_num_batched_tokens));
  if (options.max_num_seqs <= 0)
    return invalid_argument("max_num_seqs must be positive, got " + std::to_string(options.max_num_seqs));
  if (options.max_prefill_chunk < 0)
    return invalid_argument("max_prefill_chunk must not be negative, got " +
                            std::to_string(options.max_prefill_chunk));
  out->reset(new Scheduler(kv, options));
  return Status();
}

Status Scheduler::add_request(SchedRequestSpec spec) {
  const RequestId id = spec.id;
  if (requests_.count(id)) return invalid_argument(rid(id) + " already exists");
  if (spec.prompt.empty()) {
    ++stats_.rejected;
    return invalid_argument(rid(id) + " has an empty prompt");
  }
  if (spec.max_new_tokens < 1) {
    ++stats_.rejected;
    return invalid_argument(rid(id) + ": max_new_tokens must be at least 1, got " +
                            std::to_string(spec.max_new_tokens));
  }
  // The last sampled token never needs K/V: prompt + max_new_tokens - 1 positions at most.
  const BlockPool* pool = kv_->pool();
  const int64_t capacity = (int64_t)pool->num_blocks() * pool->block_size();
  const int64_t positions = (int64_t)spec.prompt.size() + spec.max_new_tokens - 1;
  if (positions > capacity) {
    ++stats_.rejected;
    return invalid_argument(rid(id) + " needs " + std::to_string(positions) + " kv cache slots (" +
                            std::to_string(spec.prompt.size()) + " prompt tokens plus " +
                            std::to_string(spec.max_new_tokens) + " new tokens) but the whole pool holds " +
                            std::to_string(capacity) + " (" + std::to_string(pool->num_blocks()) + " blocks of " +
                            std::to_string(pool->block_size()) + " tokens)");
  }
  auto r = std::make_unique<Req>();
  r->num_prompt = (int32_t)spec.prompt.size();
  r->tokens = std::move(spec.prompt);
  spec.prompt.clear();
  r->tokens.reserve((size_t)r->num_prompt + (size_t)spec.max_new_tokens);
  r->arrival = next_arrival_++;
  r->spec = std::move(spec);
  waiting_.push_back(r.get());
  requests_.emplace(id, std::move(r));
  return Status();
}

Status Scheduler::abort_request(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return not_found(rid(id) + " does not exist");
  return finish(*it->second, FinishCause::Aborted, nullptr);
}

void Scheduler::add_chunk(Req& r, int32_t n, bool prefill, StepPlan* plan) {
  ScheduledChunk c;
  c.id = r.spec.id;
  c.start_pos = r.num_computed;
  c.tokens.assign(r.tokens.begin() + r.num_computed, r.tokens.begin() + r.num_computed + n);
  std::span<const BlockId> table = kv_->block_table(c.id);
  c.block_table.assign(table.begin(), table.end());
  c.sample = r.num_computed + n == (int32_t)r.tokens.size();
  c.is_prefill = prefill;
  r.num_computed += n;
  plan->num_tokens += n;
  plan->chunks.push_back(std::move(c));
}

void Scheduler::leave_session(uint64_t session) {
  auto it = running_per_session_.find(session);
  if (it != running_per_session_.end() && --it->second <= 0) running_per_session_.erase(it);
}

RequestId Scheduler::preempt_newest(StepPlan* plan, int32_t* budget) {
  Req* v = running_.back();
  running_.pop_back();
  leave_session(v->spec.session_id);
  const RequestId id = v->spec.id;
  // Tail first; its published blocks stay cached, except those this step would have written (a victim
  // already planned in this step): their K/V will never exist.
  (void)kv_->discard(id, v->num_confirmed);
  for (size_t i = 0; i < plan->chunks.size(); ++i) {
    if (plan->chunks[i].id != id) continue;
    const int32_t n = (int32_t)plan->chunks[i].tokens.size();
    *budget += n;
    plan->num_tokens -= n;
    plan->chunks.erase(plan->chunks.begin() + (ptrdiff_t)i);
    break;
  }
  v->num_computed = 0;
  v->num_confirmed = 0;
  v->running = false;
  v->preempted = true;
  waiting_.push_front(v);
  plan->preempted.push_back(id);
  ++stats_.preemptions;
  return id;
}

size_t Scheduler::pick_waiting() const {
  if (waiting_.front()->preempted) return 0;
  size_t best = 0;
  int32_t best_running = std::numeric_limits<int32_t>::max();
  uint64_t best_arrival = std::numeric_limits<uint64_t>::max();
  for (size_t i = 0; i < waiting_.size(); ++i) {
    const Req* r = waiting_[i];
    if (r->preempted) return i;  // preempted requests sit at the front; defensive
    auto it = running_per_session_.find(r->spec.session_id);
    const int32_t n = it == running_per_session_.end() ? 0 : it->second;
    if (n < best_running || (n == best_running && r->arrival < best_arrival)) {
      best = i;
      best_running = n;
      best_arrival = r->arrival;
    }
  }
  return best;
}

Status Scheduler::step(StepPlan* plan) {
  *plan = StepPlan();
  int32_t budget = options_.max_num_batched_tokens;
  const int32_t cap =
      options_.max_prefill_chunk > 0 ? options_.max_prefill_chunk : std::numeric_limits<int32_t>::max();

  // 1-2. Running requests: decodes, then prefill chunks, each in start order; preempt the newest on no room.
  auto is_prefill = [](const Req* r) {
    return r->num_computed < r->num_prompt || (int32_t)r->tokens.size() - r->num_computed > 1;
  };
  std::vector<Req*> order;
  order.reserve(running_.size());
  for (Req* r : running_) if (!is_prefill(r)) order.push_back(r);
  for (Req* r : running_) if (is_prefill(r)) order.push_back(r);
  for (Req* r : order) {
    if (budget <= 0) break;
    if (!r->running) continue;  // preempted earlier in this step
    const bool prefill = is_prefill(r);
    const int32_t remaining = (int32_t)r->tokens.size() - r->num_computed;
    if (remaining <= 0) return internal_error(rid(r->spec.id) + " is running with nothing to compute");
    int32_t n = std::min(remaining, budget);
    if (prefill) n = std::min(n, cap);
    bool self_preempted = false;
    for (;;) {
      bool ok = false;
      PGI_RETURN_IF_ERROR(kv_->allocate_slots(r->spec.id, r->tokens, r->num_computed, n, PrefixHit(), &ok));
      if (ok) break;
      if (preempt_newest(plan, &budget) == r->spec.id) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) continue;
    add_chunk(*r, n, prefill, plan);
    budget -= n;
  }

  // 3. Waiting requests, when nothing was preempted.
  while (plan->preempted.empty() && budget > 0 && !waiting_.empty() &&
         (int32_t)running_.size() < options_.max_num_seqs) {
    const size_t idx = pick_waiting();
    Req* r = waiting_[idx];
    const RequestId id = r->spec.id;
    PGI_RETURN_IF_ERROR(kv_->add_request(id, r->spec.prefix_caching));
    PrefixHit hit = kv_->get_computed_blocks(id, r->tokens);
    const int32_t n = std::min({(int32_t)r->tokens.size() - hit.num_tokens, budget, cap});
    bool ok = false;
    Status st = kv_->allocate_slots(id, r->tokens, 0, n, hit, &ok);
    if (!st.ok() || !ok) {
      (void)kv_->free(id);  // nothing was taken; forget the registration
      if (!st.ok()) return st;
      break;  // no room: no overtaking
    }
    waiting_.erase(waiting_.begin() + (ptrdiff_t)idx);
    running_.push_back(r);
    ++running_per_session_[r->spec.session_id];
    r->running = true;
    r->preempted = false;
    r->num_computed = hit.num_tokens;
    r->num_confirmed = hit.num_tokens;
    add_chunk(*r, n, true, plan);
    budget -= n;
  }
  if (!plan->chunks.empty()) ++stats_.steps;
  return Status();
}

Status Scheduler::finish(Req& r, FinishCause reason, StepResult* result) {
  const RequestId id = r.spec.id;
  Status st;
  if (kv_->has_request(id)) st = kv_->discard(id, r.num_confirmed);
  if (r.running) {
    running_.erase(std::find(running_.begin(), running_.end(), &r));
    leave_session(r.spec.session_id);
  } else {
    auto it = std::find(waiting_.begin(), waiting_.end(), &r);
    if (it != waiting_.end()) waiting_.erase(it);
  }
  if (result) {
    FinishedRequest f;
    f.id = id;
    f.reason = reason;
    f.output.assign(r.tokens.begin() + r.num_prompt, r.tokens.end());
    result->finished.push_back(std::move(f));
  }
  ++stats_.finished;
  requests_.erase(id);  // r is gone from here on
  return st;
}

Status Scheduler::update_from_output(const StepPlan& plan, std::span<const StepOutput> outputs, StepResult* result) {
  *result = StepResult();
  std::unordered_map<RequestId, const StepOutput*> by_id;
  for (const StepOutput& o : outputs) {
    auto in_plan = std::find_if(plan.chunks.begin(), plan.chunks.end(),
                                [&](const ScheduledChunk& c) { return c.id == o.id; });
    if (in_plan == plan.chunks.end())
      return invalid_argument("step output for " + rid(o.id) + " which was not scheduled");
    by_id[o.id] = &o;
  }
  Status first_error;
  for (const ScheduledChunk& c : plan.chunks) {
    auto it = requests_.find(c.id);
    if (it == requests_.end() || !it->second->running) continue;  // aborted since the plan
    Req& r = *it->second;
    r.num_confirmed = c.start_pos + (int32_t)c.tokens.size();
    auto o = by_id.find(c.id);
    const StepOutput* out = o == by_id.end() ? nullptr : o->second;
    Status st;
    if (c.sample) {
      if (out == nullptr || out->token < 0) {
        st = finish(r, FinishCause::Failed, result);
        if (first_error.ok()) first_error = internal_error("no sampled token for " + rid(c.id));
        continue;
      }
      r.tokens.push_back(out->token);
      result->new_tokens.emplace_back(c.id, out->token);
      const auto& stops = r.spec.stop_tokens;
      if (std::find(stops.begin(), stops.end(), out->token) != stops.end())
        st = finish(r, FinishCause::StopToken, result);
      else if ((int32_t)r.tokens.size() - r.num_prompt >= r.spec.max_new_tokens)
        st = finish(r, FinishCause::Length, result);
      else if (out->finish)
        st = finish(r, FinishCause::Caller, result);
    } else if (out != nullptr && out->finish) {
      st = finish(r, FinishCause::Caller, result);
    }
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  return first_error;
}

Status Scheduler::fail_step(const StepPlan& plan, StepResult* result) {
  *result = StepResult();
  Status first_error;
  for (const ScheduledChunk& c : plan.chunks) {
    auto it = requests_.find(c.id);
    if (it == requests_.end() || !it->second->running) continue;
    Status st = kv_->discard(c.id, c.start_pos);
    if (!st.ok() && first_error.ok()) first_error = st;
    st = finish(*it->second, FinishCause::Failed, result);
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  return first_error;
}

std::vector<RequestId> Scheduler::running_ids() const {
  std::vector<RequestId> ids;
  for (const Req* r : running_) ids.push_back(r->spec.id);
  return ids;
}

std::vector<RequestId> Scheduler::waiting_ids() const {
  std::vector<RequestId> ids;
  for (const Req* r : waiting_) ids.push_back(r->spec.id);
  return ids;
}

std::span<const int32_t> Scheduler::tokens_of(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second->tokens;
}

int32_t Scheduler::num_computed_of(RequestId id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? -1 : it->second->num_computed;
}

Status Scheduler::check_invariants() const {
  if ((int32_t)running_.size() > options_.max_num_seqs)
    return internal_error("more running requests than max_num_seqs");
  if (kv_->num_requests() != (int32_t)running_.size())
    return internal_error("kv cache holds " + std::to_string(kv_->num_requests()) + " requests, " +
                          std::to_string(running_.size()) + " are running");
  if (running_.size() + waiting_.size() != requests_.size()) return internal_error("requests lost between queues");
  int64_t per_session = 0;
  for (const auto& [session, n] : running_per_session_) per_session += n;
  if (per_session != (int64_t)running_.size()) return internal_error("per-session running counts are wrong");
  const int32_t bs = kv_->block_size();
  for (const Req* r : running_) {
    const int64_t covered = (int64_t)kv_->block_table(r->spec.id).size() * bs;
    if (!r->running || covered < r->num_computed || r->num_computed > (int32_t)r->tokens.size())
      return internal_error(rid(r->spec.id) + ": block table covers " + std::to_string(covered) + " of " +
                            std::to_string(r->num_computed) + " computed positions");
  }
  for (const Req* r : waiting_)
    if (r->running || r->num_computed != 0 || kv_->has_request(r->spec.id))
      return internal_error(rid(r->spec.id) + " waits while holding kv state");
  return Status();
}

}  // namespace pginfer
