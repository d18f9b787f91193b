#include "server/stream_infer_reactor.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/inference_service.h"
#include "server/wire_messages.h"

namespace coalesce {

StreamInferReactor::StreamInferReactor(InferenceService* service,
                                       grpc::CallbackServerContext* context)
    : service_(service), context_(context), max_pending_(service->max_pending_per_stream()) {
  // Before anything is read: a caller without the token never has a message parsed.
  if (absl::Status s = service_->Authorize(*context_); !s.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(ToGrpcStatus(s));
    return;
  }
  ReadNext();
}

void StreamInferReactor::ReadNext() {
  reading_ = std::make_unique<Call>();
  StartRead(&reading_->request_bytes);
}

void StreamInferReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The client half-closed or cancelled (messages that do not parse arrive as bytes, so they
    // are not mistaken for the end of the stream).
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
  std::unique_ptr<Call> call = std::move(reading_);
  call->ordinal = ++messages_read_;
  bool read_on;
  {
    absl::MutexLock lock(&mu_);
    ++running_;
    read_on = running_ + static_cast<int64_t>(answers_.size()) < max_pending_;
    read_paused_ = !read_on;
  }
  // Read the next request before running this one: a stream's requests batch together. Once
  // paused, a completed write reads on (DecideNext()); from here on only that thread reads.
  if (read_on) ReadNext();
  Start(std::move(call));
}

void StreamInferReactor::Start(std::unique_ptr<Call> call) {
  Call* raw = call.get();
  if (absl::Status s = ParseInferRequest(raw->request_bytes, &raw->request); !s.ok()) {
    Answered(std::move(call), absl::Status(s.code(), absl::StrCat("stream message ",
                                                                  raw->ordinal, ": ",
                                                                  s.message())));
    return;
  }
  absl::Time deadline = DeadlineOf(*context_, service_->clock()->Now());
  service_->Infer(raw->request, raw->response.mutable_infer_response(), &raw->outputs, deadline,
                  &cancelled_,
                  [this, call = std::move(call)](absl::Status s) mutable {
                    Answered(std::move(call), s);
                  });
}

void StreamInferReactor::Answered(std::unique_ptr<Call> call, const absl::Status& status) {
  absl::Status serialized;
  if (status.ok()) {
    serialized = call->outputs.Serialize(call->response.infer_response(), /*in_stream=*/true,
                                         &call->response_bytes);
  } else {
    // As Triton does: the error in error_message, with the request's id so the client can tell
    // which request failed; no outputs.
    call->response.set_error_message(std::string(status.message()));
    inference::ModelInferResponse* response = call->response.mutable_infer_response();
    response->Clear();
    response->set_model_name(call->request.message().model_name());
    response->set_model_version(call->request.message().model_version());
    response->set_id(call->request.message().id());
    serialized = SerializeMessage(call->response, &call->response_bytes);
  }
  if (absl::Status s = std::move(serialized); !s.ok()) {
    inference::ModelStreamInferResponse error;
    error.set_error_message(std::string(s.message()));
    *error.mutable_infer_response()->mutable_id() = call->request.message().id();
    SerializeMessage(error, &call->response_bytes).IgnoreError();
  }
  // The request's inputs pointed into call->request (and the bytes it holds); the request is
  // finished now, so the messages go, and only the answer's bytes wait for the client.
  call->request.Clear();
  call->response = inference::ModelStreamInferResponse();
  call->outputs.Clear();
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
  if (read_paused_ && !reads_done_ &&
      running_ + static_cast<int64_t>(answers_.size()) < max_pending_) {
    read_paused_ = false;
    next.read = true;
  }
  if (!writing_ && !answers_.empty()) {
    writing_ = true;
    next.write = &answers_.front()->response_bytes;
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
  if (next.read) ReadNext();
  if (next.write != nullptr) StartWrite(next.write);
  if (next.finish) Finish(next.status);
}

}  // namespace coalesce
