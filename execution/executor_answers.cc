// Executor's answers: a successful batch answered OK, requests that died while they waited
// dropped, and a failed batch split and retried until each of its requests is answered.

#include "execution/executor.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <numeric>
#include <utility>

namespace coalesce {

bool Executor::RetriesOnSplit(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

void Executor::DropDead(Batch& batch) {
  const absl::Time now = clock_->Now();
  // Compacts in place: the common batch has no dead request and must not allocate.
  size_t kept = 0;
  for (size_t i = 0; i < batch.requests.size(); ++i) {
    std::unique_ptr<InferRequest>& request = batch.requests[i];
    const int64_t rows = request->rows();
    switch (FinishIfDead(*request, now)) {
      case DeadReason::kAlive:
        if (kept != i) batch.requests[kept] = std::move(request);
        ++kept;
        continue;
      case DeadReason::kCancelled:
        metrics_->RecordCancelled();
        break;
      case DeadReason::kDeadlinePassed:
        metrics_->RecordExpired();
        break;
    }
    batch.rows -= rows;
  }
  batch.requests.resize(kept);
}

void Executor::FailAll(Batch& batch, const absl::Status& status) {
  for (const auto& request : batch.requests) request->Finish(status);
}

void Executor::RetrySplit(int worker, WorkerBuffers& buffers, Batch batch) {
  metrics_->RecordSplitBatch();
  // Parts waiting to run, in the order they were split off: the bisection goes level by level,
  // so a budget that runs out leaves the deepest parts unsplit, not a whole half.
  std::deque<Batch> parts;
  int budget = options_.max_retry_executions;
  auto split = [&](Batch& failed) {
    const size_t half = failed.requests.size() / 2;
    Batch first, second;
    for (size_t j = 0; j < failed.requests.size(); ++j) {
      Batch& to = j < half ? first : second;
      to.rows += failed.requests[j]->rows();
      to.requests.push_back(std::move(failed.requests[j]));
    }
    parts.push_back(std::move(first));
    parts.push_back(std::move(second));
    budget -= 2;  // Spent now, so a part dropped before it runs never lets the budget grow.
  };
  split(batch);
  while (!parts.empty()) {
    Batch part = std::move(parts.front());
    parts.pop_front();
    DropDead(part);
    if (part.requests.empty()) continue;
    BoundAgain(worker);
    metrics_->RecordRetryExecution();
    const absl::Status status = Execute(worker, buffers, part, /*retry=*/true);
    if (status.ok()) continue;
    if (part.requests.size() > 1 && budget >= 2 && RetriesOnSplit(status)) {
      split(part);
    } else {
      FailAll(part, status);
    }
  }
}

void Executor::Answer(Batch& batch, const BackendCall& call) {
  // Each answer serialises its response on the answering thread: split like the scatter.
  const int64_t answer_bytes =
      std::accumulate(call.output_bytes.begin(), call.output_bytes.end(), int64_t{0});
  ForEachRequest(batch, answer_bytes,
                 [&](size_t j) { batch.requests[j]->Finish(absl::OkStatus()); });
}

}  // namespace coalesce
