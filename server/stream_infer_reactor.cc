#include "server/stream_infer_reactor.h"

#include <string>
#include <utility>

#include "server/inference_service.h"

namespace coalesce {

StreamInferReactor::StreamInferReactor(InferenceService* service,
                                       grpc::CallbackServerContext* context)
    : service_(service), context_(context) {
  if (absl::Status s = service_->Authorize(*context_); !s.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(ToGrpcStatus(s));
    return;
  }
  reading_ = std::make_unique<Call>();
  StartRead(&reading_->request);
}

void StreamInferReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The client half-closed, cancelled, or sent something gRPC could not parse.
    reading_.reset();
    Next next;
    {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      next = DecideNext();
    }
    Do(next);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  std::unique_ptr<Call> call = std::move(reading_);
  reading_ = std::make_unique<Call>();
  // Read the next request before running this one: a stream's requests batch together.
  StartRead(&reading_->request);
  Start(std::move(call));
}

void StreamInferReactor::Start(std::unique_ptr<Call> call) {
  Call* raw = call.get();
  absl::Time deadline = DeadlineOf(*context_, service_->clock()->Now());
  service_->Infer(raw->request, raw->response.mutable_infer_response(), deadline, &cancelled_,
                  [this, call = std::move(call)](absl::Status s) mutable {
                    Answered(std::move(call), s);
                  });
}

void StreamInferReactor::Answered(std::unique_ptr<Call> call, const absl::Status& status) {
  if (!status.ok()) {
    // As Triton does: the error in error_message, with the request's id so the client can tell
    // which request failed; no outputs.
    call->response.set_error_message(std::string(status.message()));
    inference::ModelInferResponse* response = call->response.mutable_infer_response();
    response->Clear();
    response->set_model_name(call->request.model_name());
    response->set_model_version(call->request.model_version());
    response->set_id(call->request.id());
  }
  // The request's inputs point into call->request; the request is finished now, so the message
  // is free to go out with the answer.
  Next next;
  {
    absl::MutexLock lock(&mu_);
    --running_;
    if (!broken_ && !cancelled_.load(std::memory_order_acquire)) {
      answers_.push_back(std::move(call));
    }
    next = DecideNext();
  }
  Do(next);
}

void StreamInferReactor::OnWriteDone(bool ok) {
  Next next;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    answers_.pop_front();
    if (!ok) {
      broken_ = true;
      answers_.clear();
    }
    next = DecideNext();
  }
  Do(next);
}

void StreamInferReactor::OnCancel() { cancelled_.store(true, std::memory_order_release); }

void StreamInferReactor::OnDone() { delete this; }

StreamInferReactor::Next StreamInferReactor::DecideNext() {
  Next next;
  if (cancelled_.load(std::memory_order_acquire)) {
    // Nothing more goes out; the answer being written stays until its write completes.
    answers_.erase(answers_.begin() + (writing_ ? 1 : 0), answers_.end());
  }
  if (!writing_ && !answers_.empty()) {
    writing_ = true;
    next.write = &answers_.front()->response;
  } else if (!writing_ && answers_.empty() && reads_done_ && running_ == 0 && !finished_) {
    finished_ = true;
    next.finish = true;
    if (cancelled_.load(std::memory_order_acquire)) {
      next.status = grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream");
    }
  }
  return next;
}

void StreamInferReactor::Do(const Next& next) {
  if (next.write != nullptr) StartWrite(next.write);
  if (next.finish) Finish(next.status);
}

}  // namespace coalesce
