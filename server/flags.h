#ifndef COALESCE_SERVER_FLAGS_H_
#define COALESCE_SERVER_FLAGS_H_

// coalesce-server's command-line flags (defined in flags.cc, listed by --help), their
// validation, and the options built from them.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "repository/model_repository.h"
#include "server/server.h"
#include "serving/served_model.h"

ABSL_DECLARE_FLAG(std::string, grpc_address);
ABSL_DECLARE_FLAG(std::string, metrics_address);
ABSL_DECLARE_FLAG(std::string, backend);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, precision);
ABSL_DECLARE_FLAG(double, max_precision_error);
ABSL_DECLARE_FLAG(std::string, model_repository);
ABSL_DECLARE_FLAG(std::string, model_control_mode);
ABSL_DECLARE_FLAG(std::vector<std::string>, load_model);
ABSL_DECLARE_FLAG(int, repository_poll_secs);
ABSL_DECLARE_FLAG(bool, allow_links_outside_repository);
ABSL_DECLARE_FLAG(int64_t, max_staging_bytes);
ABSL_DECLARE_FLAG(int, workers);
ABSL_DECLARE_FLAG(int, batches_per_worker);
ABSL_DECLARE_FLAG(bool, exclusive_backend);
ABSL_DECLARE_FLAG(bool, cuda_graphs);
ABSL_DECLARE_FLAG(bool, stage_fp16);
ABSL_DECLARE_FLAG(int64_t, max_batch_size);
ABSL_DECLARE_FLAG(std::string, batch_policy);
ABSL_DECLARE_FLAG(int64_t, max_queue_delay_us);
ABSL_DECLARE_FLAG(std::vector<std::string>, preferred_batch_sizes);
ABSL_DECLARE_FLAG(int64_t, default_timeout_us);
ABSL_DECLARE_FLAG(int, priority_levels);
ABSL_DECLARE_FLAG(int, default_priority);
ABSL_DECLARE_FLAG(int64_t, max_queue_size);
ABSL_DECLARE_FLAG(int, malloc_arena_max);
ABSL_DECLARE_FLAG(absl::Duration, malloc_trim_interval);
ABSL_DECLARE_FLAG(int, max_message_mib);
ABSL_DECLARE_FLAG(int, grpc_max_concurrent_streams);
ABSL_DECLARE_FLAG(int, max_pending_per_stream);
ABSL_DECLARE_FLAG(absl::Duration, grpc_max_connection_idle);
ABSL_DECLARE_FLAG(absl::Duration, grpc_max_connection_age);
ABSL_DECLARE_FLAG(absl::Duration, grpc_keepalive_time);
ABSL_DECLARE_FLAG(absl::Duration, grpc_keepalive_timeout);
ABSL_DECLARE_FLAG(absl::Duration, grpc_handshake_timeout);
ABSL_DECLARE_FLAG(absl::Duration, grpc_listener_check_interval);
ABSL_DECLARE_FLAG(absl::Duration, drain_timeout);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_delay);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(std::string, log_format);
ABSL_DECLARE_FLAG(std::string, grpc_tls_cert);
ABSL_DECLARE_FLAG(std::string, grpc_tls_key);
ABSL_DECLARE_FLAG(std::string, grpc_tls_client_ca);
ABSL_DECLARE_FLAG(std::string, auth_token_file);
ABSL_DECLARE_FLAG(absl::Duration, credential_check_interval);
ABSL_DECLARE_FLAG(bool, check_config);

namespace coalesce {

// Every problem with the flags' values, one message each in the form "--workers must be >= 1,
// got 0", in the order the flags are listed above; empty if all are valid. Checks values and
// combinations (a TLS key without its certificate) but reads no file. Not thread-safe with
// concurrent flag changes.
std::vector<std::string> FlagProblems();

// The model options the flags describe. Call after FlagProblems() found none.
ServedModel::Options ModelOptionsFromFlags();

// --model_control_mode. Call after FlagProblems() found none.
ModelRepository::ControlMode ControlModeFromFlags();

// The TLS material the --grpc_tls_* flags name, read and validated (see ValidateTls()); all
// empty when TLS is off. Errors name the flag and the file.
absl::StatusOr<TlsOptions> TlsOptionsFromFlags();

// A BearerTokenAuthorizer over the token in --auth_token_file, or an empty function when the
// flag is not set. Errors name the flag and the file, never the token.
absl::StatusOr<InferenceService::Authorizer> AuthorizerFromFlags();

// The server options the flags describe, TLS and authorizer included. Call after FlagProblems()
// found none.
absl::StatusOr<Server::Options> ServerOptionsFromFlags();

}  // namespace coalesce

#endif  // COALESCE_SERVER_FLAGS_H_
