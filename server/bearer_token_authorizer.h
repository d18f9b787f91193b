#ifndef COALESCE_SERVER_BEARER_TOKEN_AUTHORIZER_H_
#define COALESCE_SERVER_BEARER_TOKEN_AUTHORIZER_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace coalesce {

// Admits a call only if it carries the metadata `authorization: Bearer <token>` with the one
// configured token (RFC 6750; the scheme's case does not matter). Every refusal is
// UNAUTHENTICATED with a message that says what was missing or wrong, and never contains the
// expected token. Tokens are compared in time independent of where they differ.
//
// Use as an InferenceService::Authorizer: `service.set_authorizer(*authorizer)`.
//
// Thread-safe. Copies share one token: ReplaceToken() on any copy changes what every copy
// admits, so the copy an InferenceService holds is rotated through one its owner kept.
class BearerTokenAuthorizer {
 public:
  // The metadata key (gRPC keys are lower case).
  static constexpr char kMetadataKey[] = "authorization";

  // `token` must be non-empty printable ASCII without spaces (what a client can send in a
  // header); INVALID_ARGUMENT otherwise, without the token in the message.
  static absl::StatusOr<BearerTokenAuthorizer> Create(std::string token);

  // The token stored in `path`: its contents with leading and trailing whitespace (a final
  // newline, say) removed. An unreadable file, or one that holds only whitespace, is an error
  // naming `path`.
  static absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

  // Makes `token` the one every copy admits, from the next check on; calls already admitted
  // stay admitted. Checked as Create() checks it; on error the current token stays.
  absl::Status ReplaceToken(std::string token);

  // Checks a call's metadata.
  absl::Status operator()(const grpc::CallbackServerContext& context) const {
    return Check(context);
  }
  absl::Status Check(const grpc::ServerContextBase& context) const;

  // Checks the values of every `authorization` entry a call carried (normally one).
  absl::Status CheckValues(const std::vector<absl::string_view>& values) const;

 private:
  // The token the copies share. A check copies the pointer under the lock and compares
  // outside it, so a replacement never waits for a comparison nor frees a token in use.
  struct SharedToken {
    explicit SharedToken(std::shared_ptr<const std::string> token) : value(std::move(token)) {}
    absl::Mutex mu;
    std::shared_ptr<const std::string> value ABSL_GUARDED_BY(mu);
  };

  explicit BearerTokenAuthorizer(std::shared_ptr<const std::string> token)
      : token_(std::make_shared<SharedToken>(std::move(token))) {}

  std::shared_ptr<const std::string> current() const;

  std::shared_ptr<SharedToken> token_;
};

// True iff `a` and `b` are equal, in time that depends on their lengths only, not on where they
// first differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace coalesce

#endif  // COALESCE_SERVER_BEARER_TOKEN_AUTHORIZER_H_
