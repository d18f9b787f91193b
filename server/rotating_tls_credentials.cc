#include "server/rotating_tls_credentials.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

constexpr char kIdentityFile[] = "identity.pem";
constexpr char kClientCaFile[] = "client-ca.pem";

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " '", path, "': ", std::strerror(errno)));
}

// The private key, then the chain: one file, so that one rename replaces both. gRPC reads the
// first private key and the certificates from it and skips the other blocks.
std::string IdentityPem(const TlsOptions& tls) {
  std::string pem = tls.private_key_pem;
  if (!pem.empty() && pem.back() != '\n') pem += '\n';
  return pem + tls.cert_chain_pem;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RotatingTlsCredentials>> RotatingTlsCredentials::Create(
    const TlsOptions& tls, const std::string& parent_dir) {
  if (!tls.enabled()) {
    return absl::FailedPreconditionError(
        "TLS credentials: expected a certificate chain and key, got none (plaintext)");
  }
  if (absl::Status s = ValidateTls(tls); !s.ok()) return s;
  std::string parent = parent_dir;
  if (parent.empty()) {
    std::error_code error;
    parent = std::filesystem::temp_directory_path(error).string();
    if (error) parent = "/tmp";
  }
  // mkdtemp() makes the directory with mode 0700.
  std::string dir = absl::StrCat(parent, "/coalesce-tls-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    return ErrnoError("TLS credentials: cannot make a private directory in", parent);
  }
  std::unique_ptr<RotatingTlsCredentials> rotating(
      new RotatingTlsCredentials(std::move(dir), tls.mutual()));
  {
    absl::MutexLock lock(&rotating->mu_);
    if (absl::Status s = rotating->WriteLocked(tls); !s.ok()) return s;
    rotating->current_ = tls;
  }
  const std::string identity = absl::StrCat(rotating->dir_, "/", kIdentityFile);
  rotating->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity, identity,
      rotating->mutual_ ? absl::StrCat(rotating->dir_, "/", kClientCaFile) : "", kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(rotating->provider_);
  options.watch_identity_key_cert_pairs();
  if (rotating->mutual_) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  rotating->credentials_ = grpc::experimental::TlsServerCredentials(options);
  return rotating;
}

RotatingTlsCredentials::~RotatingTlsCredentials() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status RotatingTlsCredentials::Replace(const TlsOptions& tls) {
  if (!tls.enabled()) {
    return absl::FailedPreconditionError(
        "TLS: the endpoint serves TLS; turning it off needs a restart");
  }
  if (tls.mutual() != mutual_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS: the endpoint serves ", mutual_ ? "mutual TLS" : "TLS without client certificates",
        "; a client CA can be ", mutual_ ? "replaced but not removed" : "added only",
        " by a restart"));
  }
  if (absl::Status s = ValidateTls(tls); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (absl::Status s = WriteLocked(tls); !s.ok()) return s;
  current_ = tls;
  return absl::OkStatus();
}

std::string RotatingTlsCredentials::Describe() const {
  absl::MutexLock lock(&mu_);
  return DescribeTls(current_);
}

absl::Status RotatingTlsCredentials::WriteLocked(const TlsOptions& tls) {
  // gRPC reads both files at each refresh; the order they change in does not matter.
  if (mutual_) {
    if (absl::Status s = WriteFileLocked(kClientCaFile, tls.client_ca_pem); !s.ok()) return s;
  }
  return WriteFileLocked(kIdentityFile, IdentityPem(tls));
}

absl::Status RotatingTlsCredentials::WriteFileLocked(const std::string& name,
                                                     const std::string& contents) {
  const std::string path = absl::StrCat(dir_, "/", name);
  const std::string temporary = absl::StrCat(path, ".new");
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("TLS credentials: cannot write", temporary);
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status error = ErrnoError("TLS credentials: cannot write", temporary);
      close(fd);
      return error;
    }
    written += static_cast<size_t>(n);
  }
  // gRPC compares whole seconds: two versions written within one second must still differ.
  last_mtime_ = std::max(std::time(nullptr), last_mtime_ + 1);
  const timespec times[2] = {{last_mtime_, 0}, {last_mtime_, 0}};
  if (futimens(fd, times) != 0) {
    absl::Status error = ErrnoError("TLS credentials: cannot stamp", temporary);
    close(fd);
    return error;
  }
  if (close(fd) != 0) return ErrnoError("TLS credentials: cannot write", temporary);
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return ErrnoError("TLS credentials: cannot rename onto", path);
  }
  return absl::OkStatus();
}

}  // namespace coalesce
