#ifndef COALESCE_SERVER_SCHEDULING_PARAMETERS_H_
#define COALESCE_SERVER_SCHEDULING_PARAMETERS_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/scheduling.h"
#include "proto/inference.pb.h"

namespace coalesce {

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

#endif  // COALESCE_SERVER_SCHEDULING_PARAMETERS_H_
