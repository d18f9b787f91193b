#include "engine/infer_request.h"

#include <cassert>
#include <utility>

namespace coalesce {

InferRequest::InferRequest(Options options, DoneCallback done)
    : options_(std::move(options)), done_(std::move(done)) {}

InferRequest::~InferRequest() {
  if (!finished()) {
    Finish(absl::InternalError("request was dropped before it was answered"));
  }
}

void InferRequest::Finish(absl::Status status) {
  assert(!answered_ && "InferRequest::Finish called twice");
  answered_ = true;
  // Move the callback out first: it may destroy the memory this request points into.
  DoneCallback done = std::move(done_);
  done_ = nullptr;
  if (done != nullptr) std::move(done)(std::move(status));
}

DeadReason FinishIfDead(InferRequest& request, absl::Time now) {
  if (request.cancelled()) {
    request.Finish(absl::CancelledError("request was not run: the client cancelled it"));
    return DeadReason::kCancelled;
  }
  if (request.deadline() <= now) {
    request.Finish(absl::DeadlineExceededError("request was not run: its deadline passed"));
    return DeadReason::kDeadlinePassed;
  }
  return DeadReason::kAlive;
}

}  // namespace coalesce
