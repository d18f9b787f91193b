#include "server/connection_limits.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

absl::Status Positive(const char* name, absl::Duration value, bool never_allowed) {
  if (value > absl::ZeroDuration() && (never_allowed || value != absl::InfiniteDuration())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(name, " must be a positive duration",
                                                 never_allowed ? " (or infinite)" : "", ", got ",
                                                 absl::FormatDuration(value)));
}

// gRPC's channel arguments are int milliseconds; INT_MAX is what gRPC itself uses for "never".
int Milliseconds(absl::Duration value) {
  if (value == absl::InfiniteDuration()) return std::numeric_limits<int>::max();
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(value), 1,
                                              std::numeric_limits<int>::max()));
}

}  // namespace

absl::Status ValidateConnectionLimits(const ConnectionLimits& limits) {
  if (limits.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_concurrent_streams must be >= 1, got ",
                                                   limits.max_concurrent_streams));
  }
  if (limits.max_pending_per_stream < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_pending_per_stream must be >= 1, got ",
                                                   limits.max_pending_per_stream));
  }
  for (auto [name, value, never_allowed] :
       {std::tuple{"max_connection_idle", limits.max_connection_idle, true},
        std::tuple{"max_connection_age", limits.max_connection_age, true},
        std::tuple{"max_connection_age_grace", limits.max_connection_age_grace, true},
        std::tuple{"keepalive_time", limits.keepalive_time, true},
        std::tuple{"keepalive_timeout", limits.keepalive_timeout, false},
        std::tuple{"handshake_timeout", limits.handshake_timeout, false},
        std::tuple{"min_client_ping_interval", limits.min_client_ping_interval, false}}) {
    if (absl::Status s = Positive(name, value, never_allowed); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ApplyConnectionLimits(const ConnectionLimits& limits, grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             Milliseconds(limits.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             Milliseconds(limits.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             Milliseconds(limits.max_connection_age_grace));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Milliseconds(limits.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Milliseconds(limits.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             Milliseconds(limits.handshake_timeout));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Milliseconds(limits.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

}  // namespace coalesce
