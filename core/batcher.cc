#include "core/batcher.h"

#include <algorithm>
#include <utility>

namespace coalesce {

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(RequestQueue* queue,
                                                         const BatchPolicy* policy,
                                                         BatchSink* sink, Clock* clock) {
  if (queue == nullptr || policy == nullptr || sink == nullptr || clock == nullptr) {
    return absl::InvalidArgumentError("batcher needs a queue, a policy, a sink and a clock");
  }
  return std::unique_ptr<Batcher>(new Batcher(queue, policy, sink, clock));
}

Batcher::Batcher(RequestQueue* queue, const BatchPolicy* policy, BatchSink* sink, Clock* clock)
    : queue_(queue), policy_(policy), sink_(sink), clock_(clock) {}

Batcher::~Batcher() { Stop(); }

absl::Time Batcher::RunOnce() { return RunRound(clock_->Now()); }

absl::Time Batcher::RunRound(absl::Time now) {
  drained_.clear();
  queue_->PopAll(drained_);
  if (!drained_.empty()) {
    // The queue is FIFO per producer only; keep pending in arrival order across producers.
    bool ordered = pending_.empty() || pending_.back()->arrival() <= drained_.front()->arrival();
    for (auto& request : drained_) pending_.push_back(std::move(request));
    if (!ordered || !std::is_sorted(pending_.begin(), pending_.end(),
                                    [](const auto& a, const auto& b) {
                                      return a->arrival() < b->arrival();
                                    })) {
      std::stable_sort(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
        return a->arrival() < b->arrival();
      });
    }
  }

  while (true) {
    view_.clear();
    for (const auto& request : pending_) {
      view_.push_back({request->arrival(), request->deadline(), request->rows()});
    }
    BatchDecision decision = policy_->Decide(now, view_, sink_->idle_workers());
    if (decision.count <= 0) return decision.wake_at;
    Batch batch;
    int64_t count = std::min<int64_t>(decision.count, pending_.size());
    for (int64_t i = 0; i < count; ++i) {
      batch.rows += pending_.front()->rows();
      batch.requests.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    sink_->Dispatch(std::move(batch));
  }
}

void Batcher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Batcher::Loop() {
  while (true) {
    bool stopping = stopping_.load(std::memory_order_acquire);
    // While stopping, every pending request is overdue: the delay rule fires at once.
    absl::Time wake_at = RunRound(stopping ? absl::InfiniteFuture() : clock_->Now());
    if (stopping && pending_.empty() && queue_->size() == 0) return;
    queue_->WaitFor(stopping ? absl::Milliseconds(10) : wake_at - clock_->Now());
  }
}

void Batcher::Stop() {
  if (stopping_.exchange(true)) return;
  queue_->Wake();
  if (thread_.joinable()) thread_.join();
}

}  // namespace coalesce
