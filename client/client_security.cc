#include "client/client_security.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

absl::StatusOr<std::string> Read(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--", flag, ": cannot read '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<ClientSecurity> ClientSecurity::Load(const ClientSecurityOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together (a client certificate and its key)");
  }
  ClientSecurity security;
  security.tls_ = !options.tls_ca_file.empty() || !options.tls_cert_file.empty();
  if (security.tls_) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      absl::StatusOr<std::string> roots = Read("tls_ca_file", options.tls_ca_file);
      if (!roots.ok()) return roots.status();
      ssl.pem_root_certs = *std::move(roots);
    }
    if (!options.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert = Read("tls_cert_file", options.tls_cert_file);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = Read("tls_key_file", options.tls_key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    security.credentials_ = grpc::SslCredentials(ssl);
  } else {
    security.credentials_ = grpc::InsecureChannelCredentials();
  }
  if (!options.auth_token_file.empty()) {
    absl::StatusOr<std::string> token = Read("auth_token_file", options.auth_token_file);
    if (!token.ok()) return token.status();
    std::string trimmed(absl::StripAsciiWhitespace(*token));
    if (trimmed.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_token_file: '", options.auth_token_file, "' is empty"));
    }
    security.authorization_ = absl::StrCat("Bearer ", trimmed);
  }
  return security;
}

}  // namespace coalesce
