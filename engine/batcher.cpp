// engine/batcher.cpp: the continuous batching loop.
#include "engine/batcher.h"

#include <algorithm>

namespace pginfer {

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

Status Batcher::create(const Model& model, Backend& backend, const Options& options, std::unique_ptr<Batcher>* out) {
  if (options.max_running < 1 || options.max_tokens < options.max_running || options.max_queue < 1) {
    return invalid_argument("batcher limits must allow one job and one token per running sequence");
  }
  std::unique_ptr<Batcher> b(new Batcher(options));
  PGI_RETURN_IF_ERROR(Executor::create(model, backend, options.max_tokens, &b->executor_));
  b->n_vocab_ = model.config().n_vocab;
  try {
    b->logits_.resize(options.max_running * b->n_vocab_);
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stats_.queued.load() >= options_.max_queue) {
      return busy("the queue is full (" + std::to_string(options_.max_queue) + " requests)");
    }
    stats_.queued.fetch_add(1);
    for (size_t i = 0; i < job->sequences.size(); ++i) waiting_.push_back({job, job->sequences[i].get(), i == 0});
  }
  cv_.notify_all();
  return Status::ok_status();
}

void Batcher::finish(Running& r) {
  BatchSequence& s = *r.sequence;
  stats_.requests.fetch_add(1);
  stats_.prompt_tokens.fetch_add((int64_t)s.prompt.size());
  stats_.generated_tokens.fetch_add((int64_t)s.generation->result().ids.size());
  s.session.reset();  // the cache goes now, not when the job's thread wakes up
  r.job->sequence_done();
}

void Batcher::loop() {
  std::vector<Running> running;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running.empty(); });
      if (stopping_) {
        for (Running& r : running) r.job->fail(internal_error("the model was unloaded"));
        for (Running& r : waiting_) r.job->fail(internal_error("the model was unloaded"));
        return;
      }
      // New sequences join, first come first served.
      while (!waiting_.empty() && (int64_t)running.size() < options_.max_running) {
        Running r = waiting_.front();
        waiting_.pop_front();
        if (r.first_of_job) stats_.queued.fetch_sub(1);
        running.push_back(r);
      }
    }
    // Cancelled jobs stop before this pass.
    for (Running& r : running) {
      if (!r.job->cancelled() && r.job->should_stop && r.job->should_stop()) r.job->cancel();
    }
    for (size_t i = 0; i < running.size();) {
      if (running[i].job->cancelled()) {
        running[i].sequence->generation->cancel();
        finish(running[i]);
        running.erase(running.begin() + (long)i);
      } else {
        ++i;
      }
    }
    stats_.running.store((int64_t)running.size());
    if (running.empty()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = pass(running);
    stats_.busy_us.fetch_add(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
    if (!ok) running.clear();
    // Finished sequences leave.
    for (size_t i = 0; i < running.size();) {
      if (!running[i].sequence->generation->wants_more()) {
        finish(running[i]);
        running.erase(running.begin() + (long)i);
      } else {
        ++i;
      }
    }
    stats_.running.store((int64_t)running.size());
  }
}

bool Batcher::pass(std::vector<Running>& running) {
  // Decode tokens first (one per generating sequence), then prompt chunks in arrival order within the
  // remaining budget.
  std::vector<SequenceChunk> chunks;
  std::vector<size_t> owner;  // index into `running` of each chunk
  std::vector<int32_t> decode_ids(running.size());
  int64_t budget = options_.max_tokens;
  for (size_t i = 0; i < running.size(); ++i) {
    BatchSequence& s = *running[i].sequence;
    if (s.session->n_past() < (int64_t)s.prompt.size()) continue;
    decode_ids[i] = s.generation->next();
    SequenceChunk ch;
    ch.kv = &s.session->kv();
    ch.start = s.session->n_past();
    ch.ids = std::span<const int32_t>(&decode_ids[i], 1);
    chunks.push_back(ch);
    owner.push_back(i);
    --budget;
  }
  for (size_t i = 0; i < running.size() && budget > 0; ++i) {
    BatchSequence& s = *running[i].sequence;
    const int64_t done = s.session->n_past();
    const int64_t left = (int64_t)s.prompt.size() - done;
    if (left <= 0) continue;
    const int64_t take = std::min(left, budget);
    SequenceChunk ch;
    ch.kv = &s.session->kv();
    ch.start = done;
    ch.ids = std::span<const int32_t>(s.prompt.data() + done, (size_t)take);
    chunks.push_back(ch);
    owner.push_back(i);
    budget -= take;
  }
  // Logits for every chunk that ends a prompt or decodes.
  for (size_t c = 0; c < chunks.size(); ++c) {
    const BatchSequence& s = *running[owner[c]].sequence;
    const bool ends_prompt = chunks[c].start + (int64_t)chunks[c].ids.size() >= (int64_t)s.prompt.size();
    chunks[c].logits = ends_prompt ? logits_.data() + (int64_t)c * n_vocab_ : nullptr;
  }
  const Status st = executor_->forward(chunks);
  if (!st.ok()) {
    for (Running& r : running) {
      r.sequence->generation->cancel();
      r.sequence->session.reset();
      r.job->fail(st);
    }
    return false;
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    BatchSequence& s = *running[owner[c]].sequence;
    s.session->advance((int64_t)chunks[c].ids.size());
    if (chunks[c].logits != nullptr) {
      s.generation->step(std::span<const float>(chunks[c].logits, (size_t)n_vocab_));
    }
  }
  return true;
}

}  // namespace pginfer
