#ifndef COALESCE_SERVER_STREAM_INFER_REACTOR_H_
#define COALESCE_SERVER_STREAM_INFER_REACTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/inference.pb.h"

namespace coalesce {

class InferenceService;

// One ModelStreamInfer call: a bidirectional stream on which every request read is run like a
// ModelInfer call and answered by one response, in completion order (clients match them by id).
// A failed request is answered with error_message set and the stream goes on; a request that
// cannot even be parsed ends the stream, as gRPC does.
//
// Requests of one stream are batched with everyone else's: the reader does not wait for an
// answer before reading the next request. Writes go out one at a time, as gRPC requires. The
// stream finishes once the client has half-closed, every request read has been answered and
// every answer written; if the client cancels, queued requests are dropped before they run and
// nothing more is written.
//
// Lifetime: deletes itself in OnDone(), which gRPC calls only after Finish(); Finish() waits
// for every request, so no request outlives the reactor it points into.
//
// Thread-safety: gRPC's callbacks and the requests' answers arrive on many threads; the state
// below is guarded by mu_.
class StreamInferReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  // `service` must outlive the call (it does: gRPC finishes calls before services go).
  StreamInferReactor(InferenceService* service, grpc::CallbackServerContext* context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // One request read from the stream and its answer; owns the message the request's inputs
  // point into.
  struct Call {
    inference::ModelInferRequest request;
    inference::ModelStreamInferResponse response;
  };

  // Runs `call` (with its own deadline), answering through Answered().
  void Start(std::unique_ptr<Call> call);
  // Queues `call`'s answer for writing.
  void Answered(std::unique_ptr<Call> call, const absl::Status& status);
  // What a callback does after it leaves mu_: start the next write, finish the stream, or
  // nothing. Decided in the same critical section as the callback's own change to the state:
  // once a thread unlocks, another may finish the stream and gRPC may delete the reactor, so
  // after unlocking a thread touches the reactor only for the write or finish it decided on
  // (a write in flight keeps the stream from finishing).
  struct Next {
    const inference::ModelStreamInferResponse* write = nullptr;
    bool finish = false;
    grpc::Status status;
  };
  Next DecideNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Do(const Next& next);

  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
  // Read into by StartRead(); only the reading side touches it (one read at a time).
  std::unique_ptr<Call> reading_;
  std::atomic<bool> cancelled_{false};

  absl::Mutex mu_;
  // Requests read and not yet answered.
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  // Answers waiting to be written; the front one is being written while `writing_`.
  std::deque<std::unique_ptr<Call>> answers_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // A write failed (the client went away): the rest are dropped.
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_STREAM_INFER_REACTOR_H_
