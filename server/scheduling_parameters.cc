#include "server/scheduling_parameters.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

// An integer parameter sent as int64_param or uint64_param; error for any other kind.
absl::StatusOr<std::optional<int64_t>> IntegerParameter(
    const inference::ModelInferRequest& request, const std::string& name) {
  auto it = request.parameters().find(name);
  if (it == request.parameters().end()) return std::optional<int64_t>();
  const inference::InferParameter& p = it->second;
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      return std::optional<int64_t>(p.int64_param());
    case inference::InferParameter::kUint64Param:
      if (p.uint64_param() > static_cast<uint64_t>(INT64_MAX)) break;
      return std::optional<int64_t>(static_cast<int64_t>(p.uint64_param()));
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("parameter '", name, "' must be a non-negative int64_param or uint64_param"));
}

}  // namespace

absl::StatusOr<Scheduling> ResolveScheduling(const inference::ModelInferRequest& request,
                                             absl::Time arrival, absl::Time rpc_deadline,
                                             const SchedulingOptions& options) {
  Scheduling scheduling;
  absl::StatusOr<std::optional<int64_t>> timeout = IntegerParameter(request, "timeout");
  if (!timeout.ok()) return timeout.status();
  if (timeout->has_value() && **timeout < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter 'timeout' must be >= 0 microseconds, got ", **timeout));
  }
  absl::Time from_parameter = absl::InfiniteFuture();
  if (timeout->has_value()) from_parameter = arrival + absl::Microseconds(**timeout);
  scheduling.deadline = std::min(rpc_deadline, from_parameter);
  if (scheduling.deadline == absl::InfiniteFuture()) {
    scheduling.deadline = arrival + options.default_timeout;
  }

  absl::StatusOr<std::optional<int64_t>> priority = IntegerParameter(request, "priority");
  if (!priority.ok()) return priority.status();
  scheduling.priority = options.default_priority;
  if (priority->has_value() && **priority != 0) {
    if (**priority < 1 || **priority > options.priority_levels) {
      return absl::InvalidArgumentError(absl::StrCat("parameter 'priority' is ", **priority,
                                                     ", outside 1..", options.priority_levels,
                                                     " (the model's priority levels)"));
    }
    scheduling.priority = static_cast<int>(**priority);
  }
  return scheduling;
}

}  // namespace coalesce
