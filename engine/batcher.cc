#include "engine/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/padding.h"

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

absl::Time Batcher::RunOnce() { return RunRound(options_.clock->Now(), DecideMode::kServe); }

void Batcher::Drain() {
  drained_.clear();
  options_.queue->PopAll(drained_);
  if (drained_.empty()) return;
  // Keys are compared only among pending requests. Once the table holds more than twice as many
  // shapes as there are pending requests, forget it and key the pending ones afresh: clients
  // sending ever new dims cannot grow it, and the re-keying is paid for by the shapes added.
  if (shape_keys_.size() > 2 * pending_.size() + 64) {
    shape_keys_.clear();
    for (Entry& e : pending_) e.view.shape = ShapeKey(*e.request, e.view.bucket);
  }
  size_t old_size = pending_.size();
  for (auto& request : drained_) {
    PendingRequest view = ViewOf(*request);
    pending_.push_back({view, std::move(request)});
  }
  // The queue is FIFO per producer only: sort the newcomers, then merge them in.
  std::stable_sort(pending_.begin() + old_size, pending_.end(),
                   [](const Entry& a, const Entry& b) { return ComesBefore(a.view, b.view); });
  std::inplace_merge(pending_.begin(), pending_.begin() + old_size, pending_.end(),
                     [](const Entry& a, const Entry& b) { return ComesBefore(a.view, b.view); });
}

PendingRequest Batcher::ViewOf(const InferRequest& request) {
  PendingRequest view{request.arrival(), request.deadline(), request.rows(), request.priority()};
  if (options_.padding != nullptr) {
    const PaddedLength padded = LengthOf(*options_.padding, request.input_dims());
    view.length = padded.length;
    view.bucket = padded.bucket;
  }
  view.shape = ShapeKey(request, view.bucket);
  return view;
}

int64_t Batcher::ShapeKey(const InferRequest& request, int64_t bucket) {
  if (request.input_dims().empty()) return 0;
  const int64_t next = static_cast<int64_t>(shape_keys_.size()) + 1;
  if (bucket > 0) {
    return shape_keys_.try_emplace(WithLength(*options_.padding, request.input_dims(), bucket),
                                   next).first->second;
  }
  return shape_keys_.try_emplace(request.input_dims(), next).first->second;
}

void Batcher::DropDead(absl::Time now) {
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
  RemoveTaken();
}

void Batcher::RemoveTaken() {
  auto taken = std::remove_if(pending_.begin(), pending_.end(),
                              [](const Entry& e) { return e.request == nullptr; });
  options_.queue->Release(static_cast<int64_t>(pending_.end() - taken));
  pending_.erase(taken, pending_.end());
}

absl::Time Batcher::RunRound(absl::Time now, DecideMode mode) {
  Drain();
  while (true) {
    DropDead(now);
    view_.clear();
    for (const Entry& e : pending_) view_.push_back(e.view);
    BatchDecision decision = options_.policy->Decide(now, view_, options_.sink->idle_workers(),
                                                     *options_.latency, mode);
    if (decision.shed.empty() && decision.batch.empty()) return decision.wake_at;

    for (int64_t i : decision.shed) {
      Entry& e = pending_[i];
      if (options_.metrics != nullptr) options_.metrics->RecordShed();
      e.request->Finish(absl::DeadlineExceededError(absl::StrCat(
          "shed before running: ", e.view.rows, " sample(s) need about ",
          absl::FormatDuration(options_.latency->Predict(e.view.rows)),
          " but the deadline is ", absl::FormatDuration(e.view.deadline - now), " away")));
      e.request.reset();
    }
    Batch batch;
    for (int64_t i : decision.batch) {
      batch.rows += pending_[i].view.rows;
      batch.requests.push_back(std::move(pending_[i].request));
    }
    RemoveTaken();
    if (!batch.requests.empty()) options_.sink->Dispatch(std::move(batch));
  }
}

void Batcher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Batcher::Loop() {
  while (true) {
    // Read before the round, so that a Stop() during it is followed by a flushing round.
    bool stopping = stopping_.load(std::memory_order_acquire);
    absl::Time wake_at =
        RunRound(options_.clock->Now(), stopping ? DecideMode::kFlush : DecideMode::kServe);
    // Everything popped has been released once pending_ is empty: size() counts the rest.
    if (stopping && pending_.empty() && options_.queue->size() == 0) return;
    // A flush waits only for workers to free up.
    options_.queue->WaitFor(stopping ? absl::Milliseconds(5) : wake_at - options_.clock->Now());
  }
}

void Batcher::Stop() {
  if (stopping_.exchange(true)) return;
  options_.queue->Wake();
  if (thread_.joinable()) thread_.join();
}

}  // namespace coalesce
