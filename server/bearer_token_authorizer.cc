#include "server/bearer_token_authorizer.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/file_contents.h"

namespace coalesce {
namespace {

constexpr absl::string_view kScheme = "Bearer ";
constexpr char kExpected[] = "expected metadata 'authorization: Bearer <token>'";

// What a client can send in a header: non-empty printable ASCII without spaces. The message
// never holds the token.
absl::Status CheckToken(absl::string_view token) {
  if (token.empty()) return absl::InvalidArgumentError("bearer token: expected a token, got none");
  for (size_t i = 0; i < token.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(token[i]);
    if (c <= ' ' || c >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bearer token: expected printable ASCII without spaces, got byte ", static_cast<int>(c),
          " at offset ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Every byte of `b` is compared against a byte of `a` whatever the contents, and the result is
  // accumulated without branching, so timing reveals the lengths at most.
  if (a.empty()) return b.empty();
  volatile unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i % a.size()] ^ b[i]);
  }
  return difference == 0;
}

absl::StatusOr<BearerTokenAuthorizer> BearerTokenAuthorizer::Create(std::string token) {
  if (absl::Status s = CheckToken(token); !s.ok()) return s;
  return BearerTokenAuthorizer(std::make_shared<const std::string>(std::move(token)));
}

absl::Status BearerTokenAuthorizer::ReplaceToken(std::string token) {
  if (absl::Status s = CheckToken(token); !s.ok()) return s;
  auto replacement = std::make_shared<const std::string>(std::move(token));
  absl::MutexLock lock(&token_->mu);
  token_->value.swap(replacement);
  // The old token is freed here or by the last check still comparing against it.
  return absl::OkStatus();
}

std::shared_ptr<const std::string> BearerTokenAuthorizer::current() const {
  absl::ReaderMutexLock lock(&token_->mu);
  return token_->value;
}

absl::StatusOr<std::string> BearerTokenAuthorizer::ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFileContents(path, "--auth_token_file");
  if (!contents.ok()) return contents.status();
  std::string token(absl::StripAsciiWhitespace(*contents));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth_token_file: '", path, "' holds no token (", contents->size(),
        " bytes, all whitespace)"));
  }
  if (absl::Status s = CheckToken(token); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--auth_token_file: '", path, "': ",
                                                    s.message()));
  }
  return token;
}

absl::Status BearerTokenAuthorizer::Check(const grpc::ServerContextBase& context) const {
  std::vector<absl::string_view> values;
  auto range = context.client_metadata().equal_range(kMetadataKey);
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return CheckValues(values);
}

absl::Status BearerTokenAuthorizer::CheckValues(const std::vector<absl::string_view>& values) const {
  if (values.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("no 'authorization' metadata; ", kExpected));
  }
  if (values.size() > 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "expected one 'authorization' metadata entry, got ", values.size()));
  }
  absl::string_view value = values[0];
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    // The value may be a bare token: never echo it.
    return absl::UnauthenticatedError(absl::StrCat(
        "'authorization' metadata does not start with 'Bearer ' (", value.size(), " bytes); ",
        kExpected));
  }
  absl::string_view presented = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (presented.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("'authorization: Bearer' carries no token; ",
                                                   kExpected));
  }
  if (!ConstantTimeEquals(*current(), presented)) {
    return absl::UnauthenticatedError("bearer token in 'authorization' metadata is not valid");
  }
  return absl::OkStatus();
}

}  // namespace coalesce
