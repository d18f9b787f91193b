#include "client/client_security_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM roots to trust: connect with TLS (the server's --grpc_tls_cert issuer).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate, for a server with --grpc_tls_client_ca (mutual TLS).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the server's bearer token, sent as 'authorization: Bearer <token>'.");

namespace coalesce {

ClientSecurityOptions ClientSecurityOptionsFromFlags() {
  ClientSecurityOptions options;
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  return options;
}

}  // namespace coalesce
