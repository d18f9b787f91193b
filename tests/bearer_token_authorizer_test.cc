// BearerTokenAuthorizer on metadata values and token files, without a server.
#include "server/bearer_token_authorizer.h"

#include <stdlib.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

constexpr char kToken[] = "abc123-secret";

BearerTokenAuthorizer Authorizer() {
  auto authorizer = BearerTokenAuthorizer::Create(kToken);
  EXPECT_TRUE(authorizer.ok()) << authorizer.status();
  return *authorizer;
}

std::string WriteTemp(const std::string& contents) {
  char path[] = "/tmp/coalesce-token-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << contents;
  return path;
}

TEST(BearerTokenAuthorizerTest, AcceptsTheTokenWithTheBearerSchemeInAnyCase) {
  EXPECT_TRUE(Authorizer().CheckValues({"Bearer abc123-secret"}).ok());
  EXPECT_TRUE(Authorizer().CheckValues({"bearer abc123-secret"}).ok());
  EXPECT_TRUE(Authorizer().CheckValues({"BEARER  abc123-secret "}).ok());
}

TEST(BearerTokenAuthorizerTest, MissingMetadataSaysWhatIsExpected) {
  absl::Status status = Authorizer().CheckValues({});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message(),
            "no 'authorization' metadata; expected metadata 'authorization: Bearer <token>'");
}

TEST(BearerTokenAuthorizerTest, WrongTokenIsRefusedWithoutEchoingEitherToken) {
  for (const char* value : {"Bearer abc123-secreT", "Bearer abc123-secret2", "Bearer abc",
                            "Bearer x"}) {
    absl::Status status = Authorizer().CheckValues({value});
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << value;
    EXPECT_EQ(status.message(), "bearer token in 'authorization' metadata is not valid") << value;
  }
}

TEST(BearerTokenAuthorizerTest, BareTokenWithoutSchemeIsRefusedWithoutEchoingIt) {
  absl::Status status = Authorizer().CheckValues({kToken});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message().find(kToken), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("does not start with 'Bearer '"), absl::string_view::npos)
      << status;
}

TEST(BearerTokenAuthorizerTest, EmptyBearerAndRepeatedMetadataAreRefused) {
  EXPECT_EQ(Authorizer().CheckValues({"Bearer "}).message(),
            "'authorization: Bearer' carries no token; expected metadata "
            "'authorization: Bearer <token>'");
  absl::Status twice = Authorizer().CheckValues({"Bearer abc123-secret", "Bearer abc123-secret"});
  EXPECT_EQ(twice.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(twice.message(), "expected one 'authorization' metadata entry, got 2");
}

TEST(BearerTokenAuthorizerTest, CreateRefusesEmptyTokensAndOnesNoHeaderCanCarry) {
  EXPECT_EQ(BearerTokenAuthorizer::Create("").status().message(),
            "bearer token: expected a token, got none");
  EXPECT_EQ(BearerTokenAuthorizer::Create("two words").status().message(),
            "bearer token: expected printable ASCII without spaces, got byte 32 at offset 3");
}

TEST(BearerTokenAuthorizerTest, ReadTokenFileTrimsWhitespace) {
  std::string path = WriteTemp("  abc123-secret\n\n");
  auto token = BearerTokenAuthorizer::ReadTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, kToken);
}

TEST(BearerTokenAuthorizerTest, ReadTokenFileRefusesWhitespaceOnlyAndMissingFiles) {
  std::string path = WriteTemp(" \n\t\n");
  auto empty = BearerTokenAuthorizer::ReadTokenFile(path);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(),
            "--auth_token_file: '" + path + "' holds no token (4 bytes, all whitespace)");
  auto missing = BearerTokenAuthorizer::ReadTokenFile("/nonexistent/token");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "--auth_token_file: cannot read '/nonexistent/token': No such file or directory");
}

TEST(BearerTokenAuthorizerTest, ReplacedTokenIsAdmittedByEveryCopyAndTheOldOneIsNot) {
  BearerTokenAuthorizer kept = Authorizer();
  // What an InferenceService holds: a copy, inside a function.
  std::function<absl::Status(const std::vector<absl::string_view>&)> served =
      [copy = kept](const std::vector<absl::string_view>& values) {
        return copy.CheckValues(values);
      };
  ASSERT_TRUE(kept.ReplaceToken("rotated-token").ok());
  EXPECT_TRUE(served({"Bearer rotated-token"}).ok());
  EXPECT_EQ(served({"Bearer abc123-secret"}).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(kept.CheckValues({"Bearer rotated-token"}).ok());
}

TEST(BearerTokenAuthorizerTest, ReplacementThatNoHeaderCanCarryKeepsTheToken) {
  BearerTokenAuthorizer authorizer = Authorizer();
  EXPECT_EQ(authorizer.ReplaceToken("").code(), absl::StatusCode::kInvalidArgument);
  absl::Status spaced = authorizer.ReplaceToken("two words");
  EXPECT_EQ(spaced.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spaced.message().find("two words"), absl::string_view::npos) << spaced;
  EXPECT_TRUE(authorizer.CheckValues({"Bearer abc123-secret"}).ok());
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcabc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
}

}  // namespace
}  // namespace coalesce
