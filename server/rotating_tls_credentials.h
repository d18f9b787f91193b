#ifndef COALESCE_SERVER_ROTATING_TLS_CREDENTIALS_H_
#define COALESCE_SERVER_ROTATING_TLS_CREDENTIALS_H_

#include <ctime>
#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/tls.h"

namespace coalesce {

// The credentials of a TLS or mutual TLS gRPC endpoint, replaceable while it serves: new
// connections get the replacement, connections already open keep what they negotiated.
//
// gRPC 1.51 replaces credentials only through FileWatcherCertificateProvider, which re-reads
// files every refresh interval and hands whatever it read to the TLS layer unchecked: a garbage
// PEM, a key of another certificate, or a key and a chain read halfway through their
// replacement leave the endpoint without a handshaker, and every new connection fails until the
// files are right again. So gRPC never watches the operator's files. It watches copies in a
// private directory (mode 0700, made by Create(), removed by the destructor) that only ever
// hold material ValidateTls() accepted: Replace() validates, then writes.
//
// The key and the certificate chain share one file (identity.pem: key first, then chain), so
// that one rename() replaces both; each version gets a modification time (whole seconds, what
// gRPC compares) other than the one before, so that gRPC's own check of the time before and
// after its two reads of the file retries a read that a rename crossed. The client CA lies
// beside it (client-ca.pem).
//
// Thread-safe.
class RotatingTlsCredentials {
 public:
  // How often gRPC re-reads the copies: the longest a replacement takes to reach new
  // connections.
  static constexpr unsigned kRefreshSeconds = 1;

  // `tls` must turn TLS on and pass ValidateTls(). The private directory is made in
  // `parent_dir` (the system's temporary directory, $TMPDIR or /tmp, when empty). Mutual TLS
  // or not is fixed here: gRPC cannot change it on a listening port.
  static absl::StatusOr<std::unique_ptr<RotatingTlsCredentials>> Create(
      const TlsOptions& tls, const std::string& parent_dir = "");
  // Removes the private directory. Destroy after the server that serves the credentials.
  ~RotatingTlsCredentials();

  RotatingTlsCredentials(const RotatingTlsCredentials&) = delete;
  RotatingTlsCredentials& operator=(const RotatingTlsCredentials&) = delete;

  // What to serve with (grpc::ServerBuilder::AddListeningPort).
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }
  // The private directory gRPC watches.
  const std::string& directory() const { return dir_; }

  // Validates `tls` and, if it passes, makes it what new connections get within
  // kRefreshSeconds. Otherwise the current material stays and the error says why:
  // INVALID_ARGUMENT from ValidateTls(), FAILED_PRECONDITION for TLS turned off or a change
  // between TLS and mutual TLS, INTERNAL if the private copy cannot be written.
  absl::Status Replace(const TlsOptions& tls);

  // DescribeTls() of the material being served.
  std::string Describe() const;

 private:
  RotatingTlsCredentials(std::string dir, bool mutual) : dir_(std::move(dir)), mutual_(mutual) {}

  // Writes `tls` into the private directory, each file by a rename.
  absl::Status WriteLocked(const TlsOptions& tls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `contents` to `name` in the private directory (mode 0600) by a rename, stamped with
  // a modification time later than the last one written.
  absl::Status WriteFileLocked(const std::string& name, const std::string& contents)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string dir_;
  const bool mutual_;
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;

  // Serialises replacements.
  mutable absl::Mutex mu_;
  TlsOptions current_ ABSL_GUARDED_BY(mu_);
  std::time_t last_mtime_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_ROTATING_TLS_CREDENTIALS_H_
