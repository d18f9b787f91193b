#ifndef COALESCE_BENCH_STRESS_RUNNER_H_
#define COALESCE_BENCH_STRESS_RUNNER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/stress_traffic.h"
#include "proto/inference.grpc.pb.h"

namespace coalesce::stress {

// Starts stress calls with gRPC's callback API and collects them as they finish.
//
// The runner does not own the calls: each must stay alive until it has finished, or forever
// if it never does (a lost call may still be answered later). A call's first answer records
// its status and hands it to finished(); any further answer only increments `answers`, so
// duplicates are visible to whoever still holds the call.
//
// Thread-safety: Launch(), the Wait*() methods and TakeFinished() are called from one thread;
// answers arrive on gRPC's threads.
class Runner {
 public:
  explicit Runner(std::shared_ptr<grpc::Channel> channel);

  // Starts `call` on the runner's channel, or on `stub`'s when given (a channel of its own).
  // A call with cancel_after_us >= 0 is cancelled that long after it starts; the caller's
  // thread sleeps meanwhile.
  void Launch(Call* call, inference::GRPCInferenceService::Stub* stub = nullptr);

  // Blocks until fewer than `limit` calls are in flight, or `timeout` passes.
  void WaitInFlightBelow(int64_t limit, absl::Duration timeout);
  // Blocks until no call is in flight or `timeout` passes; returns whether all finished.
  bool WaitAll(absl::Duration timeout);
  // Blocks until a call finishes or `timeout` passes.
  void WaitAny(absl::Duration timeout);
  // Calls that finished since the last call, in the order they finished.
  std::vector<Call*> TakeFinished();
  int64_t in_flight();

 private:
  void Answer(Call* call, grpc::Status status);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  grpc::GenericStub generic_;

  absl::Mutex mu_;
  // Signalled whenever a call finishes.
  absl::CondVar changed_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Call*> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_STRESS_RUNNER_H_
