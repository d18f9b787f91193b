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
#include "server/wire_messages.h"

namespace coalesce {

class InferenceService;

// One ModelStreamInfer call: a bidirectional stream on which every message read is run like a
// ModelInfer call and answered by one response, in completion order (clients match them by id).
// A failed request is answered with error_message set and the stream goes on. So is a message
// that is not a ModelInferRequest at all: its answer has no id, and its error_message says which
// message of the stream it was ("stream message 6: request is not a valid ..."); the framing
// around it is intact, so the requests after it are read and answered as usual.
//
// Requests of one stream are batched with everyone else's: the reader does not wait for an
// answer before reading the next request. Writes go out one at a time, as gRPC requires. At most
// `InferenceService::max_pending_per_stream()` requests may be read and not yet written back;
// at that many the reactor reads nothing more until a write completes, so that a client that
// does not read its answers is held back by HTTP/2 flow control instead of growing the server.
// The stream finishes once the client has half-closed, every request read has been answered and
// every answer written; if the client cancels, queued requests are dropped before they run and
// nothing more is written.
//
// Lifetime: deletes itself in OnDone(), which gRPC calls only after Finish(); Finish() waits
// for every request, so no request outlives the reactor it points into.
//
// Thread-safety: gRPC's callbacks and the requests' answers arrive on many threads; the state
// below is guarded by mu_.
class StreamInferReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `service` must outlive the call (it does: gRPC finishes calls before services go).
  StreamInferReactor(InferenceService* service, grpc::CallbackServerContext* context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // One message read from the stream: the request parsed from it, its answer, and the answer's
  // bytes once serialized (then the messages are freed). The request's inputs point into it.
  struct Call {
    grpc::ByteBuffer request_bytes;
    // Which message of the stream this is, from 1.
    int64_t ordinal = 0;
    ParsedInferRequest request;
    inference::ModelStreamInferResponse response;
    // The answer's raw_output_contents, in the memory the answer is sent from.
    WireOutputs outputs;
    grpc::ByteBuffer response_bytes;
  };

  // Starts reading the next message into a new reading_.
  void ReadNext();
  // Parses and runs `call` (with its own deadline), answering through Answered().
  void Start(std::unique_ptr<Call> call);
  // Serializes `call`'s answer and queues it for writing.
  void Answered(std::unique_ptr<Call> call, const absl::Status& status);
  // What a callback does after it leaves mu_: read on, start the next write, finish the stream,
  // or nothing. Decided in the same critical section as the callback's own change to the state:
  // once a thread unlocks, another may finish the stream and gRPC may delete the reactor, so
  // after unlocking a thread touches the reactor only for the read, write or finish it decided
  // on (a read or write in flight keeps the stream from finishing).
  struct Next {
    bool read = false;
    const grpc::ByteBuffer* write = nullptr;
    bool finish = false;
    grpc::Status status;
  };
  Next DecideNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Do(const Next& next);

  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
  const int64_t max_pending_;
  // Read into by StartRead(); only the reading side touches it (one read at a time).
  std::unique_ptr<Call> reading_;
  // Messages read so far; only the reading side touches it.
  int64_t messages_read_ = 0;
  std::atomic<bool> cancelled_{false};

  absl::Mutex mu_;
  // Requests read and not yet answered.
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  // No read is in flight because max_pending_ requests are pending; the next write that
  // completes starts one.
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  // Answers waiting to be written; the front one is being written while `writing_`.
  std::deque<std::unique_ptr<Call>> answers_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // A write failed (the client went away): the rest are dropped.
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_STREAM_INFER_REACTOR_H_
