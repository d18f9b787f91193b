#ifndef COALESCE_ENGINE_SCHEDULING_H_
#define COALESCE_ENGINE_SCHEDULING_H_

#include "absl/time/time.h"

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

// When a request must be answered by, and how urgent it is (read from the request by the
// server: ResolveScheduling() in server/scheduling_parameters.h).
struct Scheduling {
  absl::Time deadline = absl::InfiniteFuture();
  int priority = 1;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_SCHEDULING_H_
