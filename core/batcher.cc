#include "core/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(const Options& options) {
  if (options.queue == nullptr || options.policy == nullptr || options.sink == nullptr ||
      options.latency == nullptr || options.clock == nullptr) {
    return absl::InvalidArgumentError(
        "batcher needs a queue, a policy, a sink, a latency model and a clock");
  }
  return std::unique_ptr<Batcher>(new Batcher(options));
}

Batcher::~Batcher() { Stop(); }

absl::Time Batcher::RunOnce() { return RunRound(options_.clock->Now()); }

void Batcher::Drain() {
  drained_.clear();
  options_.queue->PopAll(drained_);
  if (drained_.empty()) return;
  size_t old_size = pending_.size();
  for (auto& request : drained_) {
    PendingRequest view{request->arrival(), request->deadline(), request->rows(),
                        request->priority()};
    pending_.push_back({view, std::move(request)});
  }
  // The queue is FIFO per producer only: sort the newcomers, then merge them in.
  std::stable_sort(pending_.begin() + old_size, pending_.end(),
                   [](const Entry& a, const Entry& b) { return ComesBefore(a.view, b.view); });
  std::inplace_merge(pending_.begin(), pending_.begin() + old_size, pending_.end(),
                     [](const Entry& a, const Entry& b) { return ComesBefore(a.view, b.view); });
}

void Batcher::DropDead(absl::Time now) {
  const size_t before = pending_.size();
  for (Entry& e : pending_) {
    switch (FinishIfDead(*e.request, now)) {
      case DeadReason::kAlive:
        continue;
      case DeadReason::kCancelled:
        if (options_.metrics != nullptr) options_.metrics->RecordCancelled();
        break;
      case DeadReason::kDeadlinePassed:
        if (options_.metrics != nullptr) options_.metrics->RecordExpired();
        break;
    }
    e.request.reset();
  }
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                [](const Entry& e) { return e.request == nullptr; }),
                 pending_.end());
  options_.queue->Release(static_cast<int64_t>(before - pending_.size()));
}

absl::Time Batcher::RunRound(absl::Time now) {
  Drain();
  while (true) {
    DropDead(now);
    view_.clear();
    for (const Entry& e : pending_) view_.push_back(e.view);
    BatchDecision decision = options_.policy->Decide(now, view_, options_.sink->idle_workers(),
                                                     *options_.latency);
    if (decision.shed.empty() && decision.batch.empty()) return decision.wake_at;

    // Take the shed and batched requests out, keeping the rest in order.
    std::vector<bool> taken(pending_.size(), false);
    for (int64_t i : decision.shed) {
      Entry& e = pending_[i];
      taken[i] = true;
      if (options_.metrics != nullptr) options_.metrics->RecordShed();
      e.request->Finish(absl::DeadlineExceededError(absl::StrCat(
          "shed before running: ", e.view.rows, " sample(s) need about ",
          absl::FormatDuration(options_.latency->Predict(e.view.rows)),
          " but the deadline is ", absl::FormatDuration(e.view.deadline - now), " away")));
    }
    Batch batch;
    const InferRequest* first = nullptr;
    for (int64_t i : decision.batch) {
      // Tensors of different sizes cannot share a batch: such a request waits for the next.
      if (first != nullptr && !pending_[i].request->SameShapeAs(*first)) continue;
      taken[i] = true;
      batch.rows += pending_[i].view.rows;
      batch.requests.push_back(std::move(pending_[i].request));
      first = batch.requests.front().get();
    }
    std::vector<Entry> rest;
    rest.reserve(pending_.size());
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (!taken[i]) rest.push_back(std::move(pending_[i]));
    }
    options_.queue->Release(static_cast<int64_t>(pending_.size() - rest.size()));
    pending_ = std::move(rest);
    if (!batch.requests.empty()) options_.sink->Dispatch(std::move(batch));
  }
}

void Batcher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Batcher::Loop() {
  while (true) {
    bool stopping = stopping_.load(std::memory_order_acquire);
    absl::Time now = options_.clock->Now();
    absl::Time wake_at = RunRound(now);
    if (stopping) {
      // Every pending request is overdue for dispatch now; the policy's delay rule must not
      // hold any back. Dispatch in order as workers free up.
      while (!pending_.empty() && options_.sink->idle_workers() > 0) {
        Batch batch;
        size_t taken = 0;
        const InferRequest* first = pending_.front().request.get();
        while (taken < pending_.size() &&
               (taken == 0 || (batch.rows + pending_[taken].view.rows <= options_.max_batch_size &&
                               pending_[taken].request->SameShapeAs(*first)))) {
          batch.rows += pending_[taken].view.rows;
          batch.requests.push_back(std::move(pending_[taken].request));
          ++taken;
        }
        pending_.erase(pending_.begin(), pending_.begin() + taken);
        options_.queue->Release(static_cast<int64_t>(taken));
        options_.sink->Dispatch(std::move(batch));
      }
      // Everything popped has been released once pending_ is empty: size() counts the rest.
      if (pending_.empty() && options_.queue->size() == 0) return;
    }
    options_.queue->WaitFor(stopping ? absl::Milliseconds(5) : wake_at - options_.clock->Now());
  }
}

void Batcher::Stop() {
  if (stopping_.exchange(true)) return;
  options_.queue->Wake();
  if (thread_.joinable()) thread_.join();
}

}  // namespace coalesce
