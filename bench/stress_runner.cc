#include "bench/stress_runner.h"

#include <chrono>
#include <thread>
#include <utility>

namespace coalesce::stress {

namespace {
constexpr char kModelInfer[] = "/inference.GRPCInferenceService/ModelInfer";
}  // namespace

Runner::Runner(std::shared_ptr<grpc::Channel> channel)
    : channel_(channel),
      stub_(inference::GRPCInferenceService::NewStub(channel)),
      generic_(channel) {}

void Runner::Launch(Call* call, inference::GRPCInferenceService::Stub* stub) {
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto done = [this, call](grpc::Status status) { Answer(call, std::move(status)); };
  if (call->generic) {
    generic_.UnaryCall(&call->context, kModelInfer, grpc::StubOptions(), &call->raw_request,
                       &call->raw_response, std::move(done));
  } else {
    (stub != nullptr ? stub : stub_.get())
        ->async()
        ->ModelInfer(&call->context, &call->request, &call->response, std::move(done));
  }
  if (call->cancel_after_us >= 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(call->cancel_after_us));
    call->context.TryCancel();
  }
}

void Runner::Answer(Call* call, grpc::Status status) {
  if (call->answers.fetch_add(1, std::memory_order_acq_rel) != 0) return;
  call->status = std::move(status);
  absl::MutexLock lock(&mu_);
  --in_flight_;
  finished_.push_back(call);
  changed_.SignalAll();
}

void Runner::WaitInFlightBelow(int64_t limit, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (in_flight_ >= limit && !changed_.WaitWithDeadline(&mu_, deadline)) {
  }
}

bool Runner::WaitAll(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (in_flight_ > 0 && !changed_.WaitWithDeadline(&mu_, deadline)) {
  }
  return in_flight_ == 0;
}

void Runner::WaitAny(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (finished_.empty() && !changed_.WaitWithDeadline(&mu_, deadline)) {
  }
}

std::vector<Call*> Runner::TakeFinished() {
  absl::MutexLock lock(&mu_);
  return std::exchange(finished_, {});
}

int64_t Runner::in_flight() {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

}  // namespace coalesce::stress
