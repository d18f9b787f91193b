#ifndef COALESCE_CORE_SCHEDULING_H_
#define COALESCE_CORE_SCHEDULING_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/inference.pb.h"

namespace coalesce {

// A model's scheduling defaults (flags, or config.pbtxt's dynamic_batching).
struct SchedulingOptions {
  // Deadline of a request that carries neither a gRPC deadline nor a `timeout` parameter.
  // InfiniteDuration(): no deadline, latency target only.
  absl::Duration default_timeout = absl::InfiniteDuration();
  // Priority levels, 1 (highest) .. priority_levels. Must be >= 1.
  int priority_levels = 1;
  // Level of a request without a `priority` parameter, in 1..priority_levels.
  int default_priority = 1;
};

// When a request must be answered by, and how urgent it is.
struct Scheduling {
  absl::Time deadline = absl::InfiniteFuture();
  int priority = 1;
};

// Reads a request's deadline and priority:
//  - deadline: the earlier of its gRPC deadline (`rpc_deadline`, InfiniteFuture() if none) and
//    arrival + its `timeout` parameter (microseconds, as in Triton's schedule-policy extension);
//    with neither, arrival + options.default_timeout.
//  - priority: its `priority` parameter (1 is highest, as in Triton), or the default; 0 means the
//    default too, as in Triton.
// INVALID_ARGUMENT, naming the parameter, for a negative or non-integer timeout or a priority
// outside 1..priority_levels.
absl::StatusOr<Scheduling> ResolveScheduling(const inference::ModelInferRequest& request,
                                             absl::Time arrival, absl::Time rpc_deadline,
                                             const SchedulingOptions& options);

}  // namespace coalesce

#endif  // COALESCE_CORE_SCHEDULING_H_
