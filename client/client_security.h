#ifndef COALESCE_CLIENT_CLIENT_SECURITY_H_
#define COALESCE_CLIENT_CLIENT_SECURITY_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace coalesce {

// How a client reaches a server that uses TLS, mutual TLS or a bearer token (see
// docs/security.md): the files named by coalesce-client's and coalesce-bench's --tls_* and
// --auth_token_file flags. All empty: plaintext, no token.
struct ClientSecurityOptions {
  // PEM roots to trust; set to use TLS. Empty with a client certificate set: the system roots.
  std::string tls_ca_file;
  // PEM client certificate and its key, for a server that requires them (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  // A file holding the server's bearer token (surrounding whitespace ignored).
  std::string auth_token_file;
};

// The channel credentials and per-call metadata that ClientSecurityOptions describe.
// Immutable once loaded; thread-safe.
class ClientSecurity {
 public:
  // Reads the files. INVALID_ARGUMENT naming the flag for a certificate without its key (or the
  // reverse); NOT_FOUND naming the file for one that cannot be read; an empty token file is
  // INVALID_ARGUMENT.
  static absl::StatusOr<ClientSecurity> Load(const ClientSecurityOptions& options);

  const std::shared_ptr<grpc::ChannelCredentials>& credentials() const { return credentials_; }
  bool tls() const { return tls_; }

  // Adds the token (if any) to a call's metadata, as `authorization: Bearer <token>`.
  void Apply(grpc::ClientContext& context) const {
    if (!authorization_.empty()) context.AddMetadata("authorization", authorization_);
  }

 private:
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  bool tls_ = false;
  std::string authorization_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_CLIENT_SECURITY_H_
