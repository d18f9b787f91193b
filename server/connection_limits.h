#ifndef COALESCE_SERVER_CONNECTION_LIMITS_H_
#define COALESCE_SERVER_CONNECTION_LIMITS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace coalesce {

// What one client connection of the gRPC endpoint may hold, and how long an unused or dead one
// lives. Bounds what a client that stops reading its answers, or stops talking, costs the
// server (docs/security.md, "Transport limits").
struct ConnectionLimits {
  // Calls in progress at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). A
  // call's stream stays open until its answer has been sent, so this also bounds the unary
  // answers a client that does not read can make the connection hold.
  int max_concurrent_streams = 128;
  // Requests of one ModelStreamInfer stream read and not yet answered on the wire; at this many
  // the server reads no more from the stream until an answer has been written, and HTTP/2 flow
  // control holds the client back.
  int max_pending_per_stream = 64;
  // A connection with no call in progress for this long is closed (GOAWAY); clients reconnect
  // when they next call. InfiniteDuration(): never.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // A connection is closed (GOAWAY, calls in progress get max_connection_age_grace to finish)
  // after this long, so that clients spread over replicas again. InfiniteDuration(): never.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // The server pings a connection that has been quiet this long, and closes it if the ping is
  // not answered within keepalive_timeout: a client that vanished without closing (a killed
  // pod, a dropped network) stops holding the connection.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // A connection that has not completed its handshake (TLS, and the client's HTTP/2 preface and
  // SETTINGS) this long after it was accepted is closed: a client sending a byte at a time, or
  // nothing, does not hold it. gRPC's default is 120 s.
  absl::Duration handshake_timeout = absl::Seconds(20);
  // Clients may ping this often without a call in progress (gRPC's server default is 5 min;
  // clients that keep connections alive commonly ping every 10 to 30 s); more often counts as a
  // strike, and the second strike closes the connection (gRPC's default).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
};

// INVALID_ARGUMENT naming the field and value when a limit is out of range: the counts must be
// >= 1, the durations positive (InfiniteDuration() where "never" is allowed).
absl::Status ValidateConnectionLimits(const ConnectionLimits& limits);

// Sets `limits` on `builder`'s channel arguments (all but max_pending_per_stream, which is the
// service's).
void ApplyConnectionLimits(const ConnectionLimits& limits, grpc::ServerBuilder& builder);

}  // namespace coalesce

#endif  // COALESCE_SERVER_CONNECTION_LIMITS_H_
