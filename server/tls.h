#ifndef COALESCE_SERVER_TLS_H_
#define COALESCE_SERVER_TLS_H_

#include <string>

#include "absl/status/statusor.h"

namespace coalesce {

// How the gRPC endpoint secures its connections, as PEM text (not paths: the caller reads the
// files, so that errors name the flag that gave each one). RotatingTlsCredentials serves them.
//
//   all empty                      plaintext (the default; the endpoint is bound to loopback)
//   cert_chain_pem + private_key   TLS: clients verify the server
//   ... + client_ca_pem            mutual TLS: the server also requires a client certificate
//                                  that chains to client_ca_pem, and refuses the connection
//                                  otherwise
struct TlsOptions {
  // The server's certificate chain, leaf first. Empty: plaintext.
  std::string cert_chain_pem;
  // The private key of the chain's leaf. Required with cert_chain_pem, and only with it.
  std::string private_key_pem;
  // Root certificates that client certificates must chain to. Non-empty: mutual TLS (requires
  // cert_chain_pem).
  std::string client_ca_pem;

  bool enabled() const { return !cert_chain_pem.empty(); }
  bool mutual() const { return !client_ca_pem.empty(); }
};

// Checks that the options make sense together and that the PEM parses: certificates are
// certificates and not expired, the key is a private key and belongs to the leaf certificate.
// INVALID_ARGUMENT names the part and what is wrong. Thread-safe.
absl::Status ValidateTls(const TlsOptions& tls);

// One line for logs and --check-config: "off (plaintext)", "TLS (server certificate CN=...,
// expires ...)" or "mutual TLS (...; client certificates must chain to CN=...)".
std::string DescribeTls(const TlsOptions& tls);

}  // namespace coalesce

#endif  // COALESCE_SERVER_TLS_H_
