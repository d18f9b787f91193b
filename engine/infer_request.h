#ifndef COALESCE_ENGINE_INFER_REQUEST_H_
#define COALESCE_ENGINE_INFER_REQUEST_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/request_trace.h"

namespace coalesce {

// Where one output of a request is written: memory that the executor scatters the output's
// bytes into, owned by whoever answers the request. The server hands out the memory of the
// answer gRPC sends (server/wire_messages.h), so an output is copied once, from staging to the
// wire; the engine and execution layers see only this interface.
class OutputBuffer {
 public:
  virtual ~OutputBuffer() = default;
  // Room for `bytes` bytes of the output, replacing what an earlier call returned; the caller
  // writes every byte. Aligned to 16 bytes where the memory comes from the heap, so that any
  // element type may be written in place. Valid until the next call or until the buffer goes.
  virtual char* Allocate(int64_t bytes) = 0;
};

// An OutputBuffer over a std::string (tests, benchmarks, in-process callers).
class StringOutput final : public OutputBuffer {
 public:
  // `bytes` must outlive this object.
  explicit StringOutput(std::string* bytes) : bytes_(bytes) {}
  char* Allocate(int64_t bytes) override {
    bytes_->resize(static_cast<size_t>(bytes));
    return bytes_->data();
  }

 private:
  std::string* bytes_;
};

// One client request on its way through queue, batcher and executor.
//
// Ownership moves from stage to stage through std::unique_ptr, so exactly one stage touches a
// request at a time; the class itself is not thread-safe.
//
// Invariant: the request is answered exactly once. `Finish()` answers it; a request destroyed
// unanswered (dropped on a path nobody thought of, or at shutdown) answers INTERNAL from its
// destructor. After `Finish()` the done callback has run and the request must not be used except
// to be destroyed.
class InferRequest {
 public:
  // Receives the final status. Runs exactly once, on whichever thread finishes the request.
  using DoneCallback = absl::AnyInvocable<void(absl::Status) &&>;

  struct Options {
    // Samples in the request: the leading (batch) dimension of every input and output.
    int64_t rows = 1;
    // Bytes of each model input, in the model's input order, row-major, `rows` rows each. The
    // memory must outlive the request (it is the RPC's message, or `owned_inputs`).
    std::vector<absl::string_view> inputs;
    // Storage that `inputs` may point into (inputs decoded from typed contents); kept alive for
    // the request's life. Pointers, so that views into them survive moves.
    std::vector<std::unique_ptr<std::string>> owned_inputs;
    // For a model with variable dimensions: each input's dims without the batch dimension, as
    // sent. Empty for a model whose dims are all fixed. Only requests with equal input_dims
    // share a batch.
    std::vector<std::vector<int64_t>> input_dims;
    // Where to write each model output's bytes, in the model's output order; null for an output
    // the client did not ask for. Must outlive the request.
    std::vector<OutputBuffer*> outputs;
    // When the server received the request (Clock time).
    absl::Time arrival;
    // When the answer is no longer useful; InfiniteFuture() for none.
    absl::Time deadline = absl::InfiniteFuture();
    // 1 is the highest priority.
    int priority = 1;
    // Set (by the RPC layer, from any thread) when the client cancels; may be null. Must
    // outlive the request.
    const std::atomic<bool>* cancelled = nullptr;
    // Where to stamp the request's stages when it is traced; null (the rule) when it is not.
    // Must outlive the request.
    RequestTrace* trace = nullptr;
  };

  InferRequest(Options options, DoneCallback done);
  ~InferRequest();
  InferRequest(const InferRequest&) = delete;
  InferRequest& operator=(const InferRequest&) = delete;

  int64_t rows() const { return options_.rows; }
  absl::Time arrival() const { return options_.arrival; }
  absl::Time deadline() const { return options_.deadline; }
  int priority() const { return options_.priority; }
  bool cancelled() const {
    return options_.cancelled != nullptr && options_.cancelled->load(std::memory_order_acquire);
  }
  absl::string_view input(int i) const { return options_.inputs[i]; }
  const std::vector<std::vector<int64_t>>& input_dims() const { return options_.input_dims; }
  // Stamps the compute stage of a traced request; a pointer check for the others.
  void TraceCompute(absl::Time start, absl::Time end) {
    if (options_.trace == nullptr) return;
    options_.trace->compute_start = start;
    options_.trace->compute_end = end;
  }
  // Traces the request into `trace` (see Options::trace).
  void set_trace(RequestTrace* trace) { options_.trace = trace; }
  // Null when the client did not ask for output `i`.
  OutputBuffer* output(int i) const { return options_.outputs[i]; }

  // Sets the callback that answers the request, for a request built before its answer path was
  // known. Must be called before Finish().
  void set_done(DoneCallback done) { done_ = std::move(done); }

  // Answers the request. Must be called at most once.
  void Finish(absl::Status status);

  bool finished() const { return answered_; }

 private:
  Options options_;
  DoneCallback done_;
  bool answered_ = false;
};

// Why a request may no longer run.
enum class DeadReason {
  kAlive,
  // The client cancelled it.
  kCancelled,
  // Its deadline is at or before now.
  kDeadlinePassed,
};

// Answers `request` if it may no longer run, and says why; leaves a live request untouched.
// Every stage that finds dead requests (the batcher while they wait, the executor before a batch
// runs) answers them here, so a client sees one message for one reason wherever it was found.
// The caller counts the two reasons apart.
DeadReason FinishIfDead(InferRequest& request, absl::Time now);

}  // namespace coalesce

#endif  // COALESCE_ENGINE_INFER_REQUEST_H_
