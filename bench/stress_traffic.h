#ifndef COALESCE_BENCH_STRESS_TRAFFIC_H_
#define COALESCE_BENCH_STRESS_TRAFFIC_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/inference.grpc.pb.h"

namespace coalesce::stress {

// The model under test as the server's ModelMetadata describes it. Stress traffic needs FP32
// inputs and outputs with fixed dims (the demo model and its echo twin); FromMetadata() refuses
// anything else with a message naming the tensor.
struct ModelShape {
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;  // Without the batch dimension.
    int64_t row_bytes = 0;
  };
  std::string name;
  bool batched = false;
  std::vector<Tensor> inputs;
  std::vector<Tensor> outputs;

  static absl::StatusOr<ModelShape> FromMetadata(const inference::ModelMetadataResponse& m);
};

// How a valid answer is checked.
enum class Check {
  // Each output row equals the input row bit for bit (the echo backend: output i = input i).
  kEcho,
  // Each output row is finite and within tolerance of the row the server returned for the same
  // input sent alone before the run started.
  kReference,
};

// Rows of random input (uniform in [-1, 1)) and the output rows each must produce. Valid
// requests are built from pool rows, so an answer that belongs to another request is caught.
class SamplePool {
 public:
  SamplePool(const ModelShape& model, int rows, uint64_t seed);

  int rows() const { return rows_; }
  absl::string_view input(int tensor, int row) const;
  absl::string_view expected(int tensor, int row) const;

  // Fills the expected outputs: copies of the inputs (kEcho), or one batch-1 call per row
  // (kReference). Fails if a reference call fails or returns non-finite values.
  absl::Status Prepare(Check check, inference::GRPCInferenceService::Stub& stub);

 private:
  const ModelShape& model_;
  const int rows_;
  std::vector<std::string> inputs_;    // One string per input tensor, rows_ rows.
  std::vector<std::string> expected_;  // One string per output tensor, rows_ rows.
};

// What a call may end with: the right answer (when `answer_allowed`) or one of `errors`.
struct Expectation {
  bool answer_allowed = false;
  std::vector<grpc::StatusCode> errors;
};

// One call of stress traffic and what happened to it. Owned by the Runner while in flight.
struct Call {
  std::string kind;
  Expectation expect;
  // Pool rows of a valid request, in order; empty for requests that cannot be answered.
  std::vector<int> rows;
  // Sent through the generic stub as raw bytes (malformed messages) when `generic` is set.
  bool generic = false;
  grpc::ByteBuffer raw_request;
  grpc::ByteBuffer raw_response;
  inference::ModelInferRequest request;
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  // Microseconds after the start at which to TryCancel(), or -1 for never.
  int64_t cancel_after_us = -1;
  std::atomic<int> answers{0};
  grpc::Status status;  // The first answer's status.
};

// What a finished (or never finished) call amounts to.
enum class Verdict { kAnswered, kExpectedError, kWrong, kLost, kDuplicated };

// Judges `call`; for kWrong, `why` says what was wrong.
Verdict Judge(const Call& call, const ModelShape& model, const SamplePool& pool, Check check,
              double atol, double rtol, std::string* why);

// Builds the calls of stress traffic. Not thread-safe (one per thread).
class TrafficBuilder {
 public:
  TrafficBuilder(const ModelShape& model, const SamplePool& pool, int64_t max_batch_size,
                 int64_t max_message_bytes, uint64_t seed);

  // A valid request of `rows` random pool rows; typed contents instead of raw bytes if `typed`.
  std::unique_ptr<Call> Valid(int rows, bool typed = false);
  // A valid request that may also be refused RESOURCE_EXHAUSTED (a flood past the queue bound).
  std::unique_ptr<Call> Flood();
  // A valid request cancelled `after_us` microseconds after it starts: answer or CANCELLED.
  std::unique_ptr<Call> Cancelled(int64_t after_us);
  // A valid request with a 1 µs deadline: DEADLINE_EXCEEDED.
  std::unique_ptr<Call> ImpossibleDeadline();
  // A request bigger than the server's message limit: RESOURCE_EXHAUSTED.
  std::unique_ptr<Call> Oversized();
  // Every kind of invalid request the protocol can carry, each with its expected code.
  std::vector<std::unique_ptr<Call>> Invalid();
  // Bytes that are not a valid ModelInferRequest (random, or a valid one cut short), sent
  // through the generic stub: UNIMPLEMENTED or INTERNAL (unparsable), INVALID_ARGUMENT or
  // NOT_FOUND.
  std::unique_ptr<Call> Garbage();

 private:
  std::unique_ptr<Call> Base(const std::string& kind, int rows, bool typed);

  const ModelShape& model_;
  const SamplePool& pool_;
  const int64_t max_batch_size_;
  const int64_t max_message_bytes_;
  std::mt19937_64 rng_;
  int64_t next_id_ = 0;
};

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_STRESS_TRAFFIC_H_
