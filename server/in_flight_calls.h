#ifndef COALESCE_SERVER_IN_FLIGHT_CALLS_H_
#define COALESCE_SERVER_IN_FLIGHT_CALLS_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/support/server_interceptor.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace coalesce {

// Counts the gRPC calls in flight whose method starts with a prefix (one service's), from the
// moment gRPC matches a call to its method until gRPC has finished with it. Server::Shutdown()
// uses it to drain while the listener still accepts, so that calls made meanwhile are answered
// by the service (UNAVAILABLE) rather than caught in gRPC's own shutdown.
//
// Install with MakeInterceptorFactory() on the ServerBuilder; the counter must outlive the
// grpc::Server. Thread-safe.
class InFlightCalls {
 public:
  // `method_prefix`: "/inference.GRPCInferenceService/", say. Other methods (health checking,
  // reflection, long-lived watches) are not counted.
  explicit InFlightCalls(std::string method_prefix) : method_prefix_(std::move(method_prefix)) {}

  // A factory for ServerBuilder::experimental().SetInterceptorCreators(); its interceptors count
  // into this object.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeInterceptorFactory();

  int64_t count() const;

  // Blocks until no counted call is in flight or `deadline` passes; returns whether none is.
  bool AwaitIdle(absl::Time deadline) const;

 private:
  class Factory;
  class Interceptor;

  void Started();
  void Finished();

  const std::string method_prefix_;
  mutable absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_IN_FLIGHT_CALLS_H_
