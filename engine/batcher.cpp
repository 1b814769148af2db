// engine/batcher.cpp: the continuous batching loop.
#include "engine/batcher.h"

#include <algorithm>

namespace pginfer {

namespace {

// Nanoseconds since `t0`.
int64_t ns_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

bool BatchJob::wait_for(std::chrono::milliseconds timeout, std::vector<std::string>* streamed) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto done = [&] { return !error_.ok() || finished_ == (int)sequences.size() || !pending_.empty(); };
  cv_.wait_for(lock, timeout, done);
  for (std::string& piece : pending_) streamed->push_back(std::move(piece));
  pending_.clear();
  return !error_.ok() || finished_ == (int)sequences.size();
}

Status BatchJob::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

bool BatchJob::stream(std::string_view text) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.emplace_back(text);
  }
  cv_.notify_all();
  return !cancelled_;
}

void BatchJob::sequence_done() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++finished_;
  }
  cv_.notify_all();
}

void BatchJob::fail(const Status& st) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_.ok()) error_ = st;
  }
  cv_.notify_all();
}

SchedulerOptions Batcher::scheduler_options(const Options& options) {
  SchedulerOptions so;
  so.max_num_batched_tokens = (int32_t)options.max_tokens;
  so.max_num_seqs = (int32_t)options.max_running;
  return so;
}

Status Batcher::create(const Model& model, Backend& backend, const Options& options, std::unique_ptr<Batcher>* out) {
  if (options.max_running < 1 || options.max_tokens < options.max_running || options.max_queue < 1 ||
      options.kv_blocks < 1 || options.kv_blocks > INT32_MAX) {
    return invalid_argument("batcher limits must allow one job, one token per running sequence and a KV block");
  }
  const ModelConfig& c = model.config();
  std::unique_ptr<Batcher> b(new Batcher(options));
  PGI_RETURN_IF_ERROR(backend.create_kv_pool(c.n_layer, options.kv_blocks, options.block_size, c.kv_dim(), &b->kv_pool_));
  PGI_RETURN_IF_ERROR(BlockPool::create((int32_t)options.kv_blocks, (int32_t)options.block_size, &b->blocks_));
  b->kv_ = std::make_unique<KvCacheManager>(b->blocks_.get(), options.model_key);
  PGI_RETURN_IF_ERROR(Scheduler::create(b->kv_.get(), scheduler_options(options), &b->scheduler_));
  PGI_RETURN_IF_ERROR(Executor::create(model, backend, options.max_tokens, &b->executor_));
  b->n_vocab_ = c.n_vocab;
  b->publish_stats();
  try {
    b->logits_.resize(options.max_running * b->n_vocab_);
    b->best_ids_.resize(options.max_running);
    b->worker_ = std::thread([p = b.get()] { p->loop(); });
  } catch (const std::exception&) {
    return out_of_memory("cannot start the batching loop");
  }
  *out = std::move(b);
  return Status::ok_status();
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status Batcher::submit(std::shared_ptr<BatchJob> job) {
  if (job->sequences.empty()) return invalid_argument("a job without sequences");
  // A sequence longer than the whole pool can never run.
  const int64_t pool_positions = options_.kv_blocks * options_.block_size;
  for (const auto& seq : job->sequences) {
    const int64_t needed = (int64_t)seq->prompt.size() + seq->max_tokens;
    if (needed > pool_positions) {
      return out_of_memory("the request needs " + std::to_string(needed) + " positions of KV cache; the model's pool holds " +
                           std::to_string(pool_positions));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stats_.queued.load() >= options_.max_queue) {
      return busy("the queue is full (" + std::to_string(options_.max_queue) + " requests)");
    }
    for (const auto& seq : job->sequences) arrivals_.push_back({job, seq.get()});
    stats_.queued.fetch_add((int64_t)job->sequences.size());
  }
  cv_.notify_all();
  return Status::ok_status();
}

void Batcher::publish_stats() {
  stats_.blocks_free.store(blocks_->num_free());
  stats_.blocks_used.store(blocks_->num_used());
  stats_.prefix_prompt_tokens.store(kv_->stats().prompt_tokens);
  stats_.prefix_hit_tokens.store(kv_->stats().hit_tokens);
  stats_.preemptions.store(scheduler_->stats().preemptions);
  stats_.running.store(scheduler_->num_running());
  stats_.queued.store(scheduler_->num_waiting() + (int64_t)arrivals_.size());
}

void Batcher::finished(RequestId id) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  BatchSequence& s = *it->second.sequence;
  stats_.requests.fetch_add(1);
  stats_.prompt_tokens.fetch_add((int64_t)s.prompt.size());
  stats_.generated_tokens.fetch_add((int64_t)s.generation->result().ids.size());
  std::shared_ptr<BatchJob> job = it->second.job;
  live_.erase(it);
  job->sequence_done();
}

void Batcher::loop() {
  for (;;) {
    std::deque<std::pair<std::shared_ptr<BatchJob>, BatchSequence*>> arrived;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !arrivals_.empty() || !scheduler_->idle(); });
      if (stopping_) {
        for (auto& [id, l] : live_) l.job->fail(internal_error("the model was unloaded"));
        for (auto& [job, seq] : arrivals_) job->fail(internal_error("the model was unloaded"));
        return;
      }
      arrived.swap(arrivals_);
    }
    // New sequences go to the scheduler, which admits them as room allows.
    for (auto& [job, seq] : arrived) {
      SchedRequestSpec spec;
      spec.id = next_id_++;
      spec.session_id = (uint64_t)(uintptr_t)job.get();
      spec.prompt = seq->prompt;
      spec.max_new_tokens = (int32_t)std::max<int64_t>(1, seq->max_tokens);
      spec.prefix_caching = seq->prefix_caching;
      const Status st = scheduler_->add_request(std::move(spec));
      if (!st.ok()) {
        job->fail(st);
        continue;
      }
      Live l;
      l.job = job;
      l.sequence = seq;
      l.view = std::make_unique<PagedKvCache>(*kv_pool_);
      live_.emplace(next_id_ - 1, std::move(l));
    }
    // Cancelled jobs leave before the step.
    std::vector<RequestId> cancelled;
    for (auto& [id, l] : live_) {
      if (!l.job->cancelled() && l.job->should_stop && l.job->should_stop()) l.job->cancel();
      if (l.job->cancelled()) cancelled.push_back(id);
    }
    for (RequestId id : cancelled) {
      scheduler_->abort_request(id);
      live_.at(id).sequence->generation->cancel();
      finished(id);
    }
    if (!scheduler_->idle()) {
      const auto t0 = std::chrono::steady_clock::now();
      const bool scheduled = step();
      stats_.busy_us.fetch_add(ns_since(t0) / 1000);
      // Nothing could run (should not happen: a request that fits the pool always fits an empty one): do
      // not spin.
      if (!scheduled) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    publish_stats();
  }
}

bool Batcher::step() {
  StepPlan plan;
  auto t0 = std::chrono::steady_clock::now();
  Status st = scheduler_->step(&plan);
  stats_.schedule_ns.fetch_add(ns_since(t0));
  if (!st.ok() || plan.chunks.empty()) {
    if (!st.ok()) {  // a bookkeeping bug: fail everything rather than loop
      for (auto& [id, l] : live_) l.job->fail(st);
    }
    return false;
  }
  std::vector<SequenceChunk> chunks(plan.chunks.size());
  for (size_t c = 0; c < plan.chunks.size(); ++c) {
    const ScheduledChunk& sc = plan.chunks[c];
    Live& l = live_.at(sc.id);
    l.view->blocks = sc.block_table;
    chunks[c].kv = l.view.get();
    chunks[c].start = sc.start_pos;
    chunks[c].ids = sc.tokens;
    // A greedy generation needs only the argmax, which the backend finds where the logits are.
    if (sc.sample && l.sequence->generation->samples_argmax()) {
      chunks[c].argmax = &best_ids_[c];
    } else if (sc.sample) {
      chunks[c].logits = logits_.data() + (int64_t)c * n_vocab_;
    }
  }
  st = executor_->forward(chunks);
  if (st.ok() && options_.simulate_device_lost) st = device_lost("the GPU failed (simulated by a test)");
  StepResult result;
  if (!st.ok()) {
    scheduler_->fail_step(plan, &result);
    for (const ScheduledChunk& sc : plan.chunks) {
      live_.at(sc.id).job->fail(st);
      live_.at(sc.id).sequence->generation->cancel();
    }
    for (const FinishedRequest& f : result.finished) finished(f.id);
    if (st.code() == StatusCode::DeviceLost && options_.on_device_lost && !device_lost_reported_) {
      device_lost_reported_ = true;
      options_.on_device_lost(st);
    }
    return true;
  }
  // Sample where the chunk reached the last known token; the generation decides whether to go on.
  std::vector<StepOutput> outputs;
  for (size_t c = 0; c < plan.chunks.size(); ++c) {
    const ScheduledChunk& sc = plan.chunks[c];
    if (!sc.sample) continue;
    Generation& g = *live_.at(sc.id).sequence->generation;
    if (chunks[c].argmax != nullptr) {
      g.step_token(best_ids_[c]);
    } else {
      g.step(std::span<const float>(chunks[c].logits, (size_t)n_vocab_));
    }
    StepOutput o;
    o.id = sc.id;
    o.token = g.last_sampled();
    o.finish = !g.wants_more();
    outputs.push_back(o);
  }
  t0 = std::chrono::steady_clock::now();
  st = scheduler_->update_from_output(plan, outputs, &result);
  stats_.schedule_ns.fetch_add(ns_since(t0));
  for (const FinishedRequest& f : result.finished) {
    Live& l = live_.at(f.id);
    if (l.sequence->generation->wants_more()) l.sequence->generation->cancel();  // ended by the scheduler
    if (f.reason == FinishCause::Failed) l.job->fail(internal_error("a step of the batching loop failed"));
    finished(f.id);
  }
  return true;
}

}  // namespace pginfer
