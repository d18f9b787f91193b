#include "server/in_flight_calls.h"

#include "absl/strings/match.h"

namespace coalesce {

// One per counted call: gRPC creates it when the call is matched to its method and deletes it
// with the call, after the status has been sent or the call cancelled.
class InFlightCalls::Interceptor final : public grpc::experimental::Interceptor {
 public:
  explicit Interceptor(InFlightCalls* calls) : calls_(calls) { calls_->Started(); }
  ~Interceptor() override { calls_->Finished(); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  InFlightCalls* const calls_;
};

class InFlightCalls::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(InFlightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // No interceptor (nullptr) for methods that are not counted.
    if (info->method() == nullptr || !absl::StartsWith(info->method(), calls_->method_prefix_)) {
      return nullptr;
    }
    return new Interceptor(calls_);
  }

 private:
  InFlightCalls* const calls_;
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
InFlightCalls::MakeInterceptorFactory() {
  return std::make_unique<Factory>(this);
}

void InFlightCalls::Started() {
  absl::MutexLock lock(&mu_);
  ++count_;
}

void InFlightCalls::Finished() {
  absl::MutexLock lock(&mu_);
  --count_;
}

int64_t InFlightCalls::count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

bool InFlightCalls::AwaitIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

}  // namespace coalesce
