#ifndef COALESCE_CORE_INFER_REQUEST_H_
#define COALESCE_CORE_INFER_REQUEST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace coalesce {

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
    // Where to write each model output's bytes, in the model's output order; null for an output
    // the client did not ask for. Must outlive the request.
    std::vector<std::string*> outputs;
    // When the server received the request (Clock time).
    absl::Time arrival;
    // When the answer is no longer useful; InfiniteFuture() for none.
    absl::Time deadline = absl::InfiniteFuture();
  };

  InferRequest(Options options, DoneCallback done);
  ~InferRequest();
  InferRequest(const InferRequest&) = delete;
  InferRequest& operator=(const InferRequest&) = delete;

  int64_t rows() const { return options_.rows; }
  absl::Time arrival() const { return options_.arrival; }
  absl::Time deadline() const { return options_.deadline; }
  absl::string_view input(int i) const { return options_.inputs[i]; }
  // Null when the client did not ask for output `i`.
  std::string* output(int i) const { return options_.outputs[i]; }

  // Answers the request. Must be called at most once.
  void Finish(absl::Status status);

  bool finished() const { return done_ == nullptr; }

 private:
  Options options_;
  DoneCallback done_;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_INFER_REQUEST_H_
