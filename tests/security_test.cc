// TLS, mutual TLS and bearer tokens end to end, and their rotation while serving: real gRPC over
// loopback against the echo demo model, with certificates made for the run by the openssl tool.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "proto/inference.grpc.pb.h"
#include "client/client_security.h"
#include "server/bearer_token_authorizer.h"
#include "server/rotating_tls_credentials.h"
#include "server/server.h"
#include "tests/echo_test_server.h"
#include "tests/raw_calls.h"
#include "tests/test_certificates.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferResponse;

constexpr char kToken[] = "s3cr3t-t0ken-4-tests";

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = MakeTestCertificates();
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new TestCertificates(*std::move(certs));
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  void Start(Server::Options options) {
    auto server = StartEchoServer(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  static Server::Options Tls(bool mutual) {
    Server::Options options;
    options.tls.cert_chain_pem = certs_->server_cert;
    options.tls.private_key_pem = certs_->server_key;
    if (mutual) options.tls.client_ca_pem = certs_->ca_cert;
    return options;
  }

  static std::shared_ptr<grpc::ChannelCredentials> ClientTls(const std::string& root,
                                                             const std::string& cert = "",
                                                             const std::string& key = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = root;
    options.pem_cert_chain = cert;
    options.pem_private_key = key;
    return grpc::SslCredentials(options);
  }

  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()), credentials);
  }

  // One echo inference of two rows; on success checks that the values came back.
  static grpc::Status Infer(const std::shared_ptr<grpc::Channel>& channel,
                            std::optional<std::string> authorization = std::nullopt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (authorization) context.AddMetadata("authorization", *authorization);
    ModelInferResponse response;
    grpc::Status status =
        GRPCInferenceService::NewStub(channel)->ModelInfer(&context, EchoRequest(2, 1.5f),
                                                           &response);
    if (status.ok()) {
      EXPECT_EQ(response.raw_output_contents_size(), 1);
      const std::string& out = response.raw_output_contents(0);
      EXPECT_EQ(out.size(), 2 * kEchoRowFloats * sizeof(float));
      float last;
      std::memcpy(&last, out.data() + out.size() - sizeof(float), sizeof(float));
      EXPECT_EQ(last, 1.5f);
    }
    return status;
  }

  static TestCertificates* certs_;
  std::unique_ptr<Server> server_;
};

TestCertificates* SecurityTest::certs_ = nullptr;

TEST_F(SecurityTest, TlsServesClientsThatTrustItsCa) {
  Start(Tls(/*mutual=*/false));
  grpc::Status status = Infer(Channel(ClientTls(certs_->ca_cert)));
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST_F(SecurityTest, PlaintextClientCannotTalkToTlsServer) {
  Start(Tls(/*mutual=*/false));
  grpc::Status status = Infer(Channel(grpc::InsecureChannelCredentials()));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(SecurityTest, ClientThatDoesNotTrustTheServerCaRefusesIt) {
  Start(Tls(/*mutual=*/false));
  std::string other_ca = test_certificates_internal::ReadAll(certs_->Path("other-ca.crt"));
  grpc::Status status = Infer(Channel(ClientTls(other_ca)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(SecurityTest, MutualTlsRefusesClientWithoutCertificate) {
  Start(Tls(/*mutual=*/true));
  grpc::Status status = Infer(Channel(ClientTls(certs_->ca_cert)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(SecurityTest, MutualTlsRefusesClientCertificateFromAnotherCa) {
  Start(Tls(/*mutual=*/true));
  grpc::Status status = Infer(Channel(
      ClientTls(certs_->ca_cert, certs_->other_client_cert, certs_->other_client_key)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(SecurityTest, MutualTlsServesClientCertificateFromItsCa) {
  Start(Tls(/*mutual=*/true));
  grpc::Status status =
      Infer(Channel(ClientTls(certs_->ca_cert, certs_->client_cert, certs_->client_key)));
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST_F(SecurityTest, StartRefusesKeyThatDoesNotMatchTheCertificate) {
  Server::Options options = Tls(/*mutual=*/false);
  options.tls.private_key_pem = certs_->client_key;
  auto server = StartEchoServer(options);
  ASSERT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("does not belong to the certificate"),
            absl::string_view::npos)
      << server.status();
}

TEST_F(SecurityTest, StartRefusesCertificateWithoutKeyAndClientCaWithoutCertificate) {
  Server::Options no_key = Tls(/*mutual=*/false);
  no_key.tls.private_key_pem.clear();
  EXPECT_EQ(StartEchoServer(no_key).status().message(),
            "TLS: a certificate chain needs its private key too");
  Server::Options ca_only;
  ca_only.tls.client_ca_pem = certs_->ca_cert;
  EXPECT_EQ(StartEchoServer(ca_only).status().code(), absl::StatusCode::kInvalidArgument);
}

// Rotation in process, through Server::ReloadTls() (the binary's SIGHUP is tested in
// credential_reload_test.cc).
class TlsReloadTest : public SecurityTest {
 protected:
  // A channel of its own (no connection shared with another channel).
  std::shared_ptr<grpc::Channel> FreshChannel(
      std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                     credentials, args);
  }

  // Infers through new channels until one is served; the last status after 30 s otherwise.
  grpc::Status AwaitServed(const std::function<std::shared_ptr<grpc::ChannelCredentials>()>& make) {
    grpc::Status status;
    for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;
         absl::SleepFor(absl::Milliseconds(50))) {
      status = Infer(FreshChannel(make()));
      if (status.ok()) break;
    }
    return status;
  }
};

TEST_F(TlsReloadTest, MutualTlsReloadReplacesClientCaAndCertificateForNewConnectionsOnly) {
  Start(Tls(/*mutual=*/true));
  auto open = FreshChannel(ClientTls(certs_->ca_cert, certs_->client_cert, certs_->client_key));
  ASSERT_TRUE(Infer(open).ok());

  TlsOptions rotated;
  rotated.cert_chain_pem = certs_->other_server_cert;
  rotated.private_key_pem = certs_->other_server_key;
  rotated.client_ca_pem = certs_->other_ca_cert;
  ASSERT_TRUE(server_->ReloadTls(rotated).ok());
  EXPECT_NE(server_->DescribeServedTls().find("mutual TLS"), std::string::npos);

  grpc::Status served = AwaitServed([] {
    return ClientTls(certs_->other_ca_cert, certs_->other_client_cert, certs_->other_client_key);
  });
  EXPECT_TRUE(served.ok()) << served.error_message();
  // A client of the old CA: refused, whichever CA it trusts for the server.
  EXPECT_EQ(Infer(FreshChannel(ClientTls(certs_->other_ca_cert, certs_->client_cert,
                                         certs_->client_key)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Infer(FreshChannel(ClientTls(certs_->ca_cert, certs_->client_cert,
                                         certs_->client_key)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // The connection opened before keeps serving.
  EXPECT_TRUE(Infer(open).ok());
}

TEST_F(TlsReloadTest, ReloadThatDoesNotValidateKeepsTheCertificateAndSaysWhy) {
  Start(Tls(/*mutual=*/false));
  TlsOptions garbage;
  garbage.cert_chain_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n";
  garbage.private_key_pem = certs_->server_key;
  absl::Status status = server_->ReloadTls(garbage);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;

  TlsOptions other_key;
  other_key.cert_chain_pem = certs_->other_server_cert;
  other_key.private_key_pem = certs_->server_key;
  status = server_->ReloadTls(other_key);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("does not belong to the certificate"), std::string::npos);

  // The mode is fixed at start: gRPC cannot change it on a listening port.
  TlsOptions mutual = Tls(/*mutual=*/true).tls;
  EXPECT_EQ(server_->ReloadTls(mutual).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server_->ReloadTls(TlsOptions()).code(), absl::StatusCode::kFailedPrecondition);

  // Nothing to await: what is checked is that nothing changes. gRPC re-reads its copies every
  // RotatingTlsCredentials::kRefreshSeconds; after two refreshes, the old certificate serves.
  absl::SleepFor(absl::Seconds(2 * RotatingTlsCredentials::kRefreshSeconds) +
                 absl::Milliseconds(500));
  grpc::Status kept = Infer(FreshChannel(ClientTls(certs_->ca_cert)));
  EXPECT_TRUE(kept.ok()) << kept.error_message();
}

TEST_F(TlsReloadTest, PlaintextServerRefusesToTurnTlsOnByReload) {
  Start(Server::Options());
  EXPECT_TRUE(server_->ReloadTls(TlsOptions()).ok());
  EXPECT_EQ(server_->ReloadTls(Tls(/*mutual=*/false).tls).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Infer(Channel(grpc::InsecureChannelCredentials())).ok());
}

TEST(RotatingTlsCredentialsTest, KeepsItsCopiesInAPrivateDirectoryThatItRemoves) {
  auto certs = MakeTestCertificates();
  ASSERT_TRUE(certs.ok()) << certs.status();
  TlsOptions tls;
  tls.cert_chain_pem = certs->server_cert;
  tls.private_key_pem = certs->server_key;
  tls.client_ca_pem = certs->ca_cert;
  auto rotating = RotatingTlsCredentials::Create(tls, certs->dir);
  ASSERT_TRUE(rotating.ok()) << rotating.status();
  const std::filesystem::path dir = (*rotating)->directory();
  EXPECT_EQ(dir.parent_path(), std::filesystem::path(certs->dir));
  EXPECT_EQ(std::filesystem::status(dir).permissions(), std::filesystem::perms::owner_all);
  EXPECT_EQ(std::filesystem::status(dir / "identity.pem").permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  rotating->reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

class TokenTest : public SecurityTest {
 protected:
  void SetUp() override {
    auto authorizer = BearerTokenAuthorizer::Create(kToken);
    ASSERT_TRUE(authorizer.ok()) << authorizer.status();
    authorizer_.emplace(*std::move(authorizer));
    Server::Options options;
    options.authorizer = *authorizer_;
    Start(options);
    channel_ = Channel(grpc::InsecureChannelCredentials());
  }

  // Shares its token with the server's copy.
  std::optional<BearerTokenAuthorizer> authorizer_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(TokenTest, ReplacedTokenIsRequiredFromTheNextCallOn) {
  ASSERT_TRUE(Infer(channel_, absl::StrCat("Bearer ", kToken)).ok());
  ASSERT_TRUE(authorizer_->ReplaceToken("rotated-t0ken").ok());
  EXPECT_TRUE(Infer(channel_, "Bearer rotated-t0ken").ok());
  EXPECT_EQ(Infer(channel_, absl::StrCat("Bearer ", kToken)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TokenTest, CallWithoutTokenIsUnauthenticated) {
  grpc::Status status = Infer(channel_);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(),
            "no 'authorization' metadata; expected metadata 'authorization: Bearer <token>'");
}

TEST_F(TokenTest, CallWithWrongTokenIsUnauthenticatedWithoutEchoingEitherToken) {
  grpc::Status status = Infer(channel_, "Bearer not-the-token");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "bearer token in 'authorization' metadata is not valid");
  EXPECT_EQ(status.error_message().find(kToken), std::string::npos);
}

TEST_F(TokenTest, CallWithRightTokenIsServed) {
  grpc::Status status = Infer(channel_, absl::StrCat("Bearer ", kToken));
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST_F(TokenTest, HealthCheckingNeedsNoToken) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* service : {"", "inference.GRPCInferenceService"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

// The token is checked before the request is parsed: bytes that are no request, sent without
// a token, are refused for the token, not for the bytes.
TEST_F(TokenTest, InferenceWithoutTokenIsRefusedBeforeItsRequestIsParsed) {
  grpc::ClientContext unary_context;
  grpc::ByteBuffer response;
  grpc::Status unary =
      RawUnaryCall(channel_, &unary_context, "ModelInfer", BytesOf(kNotAProtobuf), &response);
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::UNAUTHENTICATED) << unary.error_message();

  grpc::ClientContext stream_context;
  std::unique_ptr<RawStream> stream = RawModelStreamInfer(channel_, &stream_context);
  stream->Write(BytesOf(kNotAProtobuf));
  stream->WritesDone();
  grpc::Status streamed = stream->Finish();
  EXPECT_EQ(streamed.error_code(), grpc::StatusCode::UNAUTHENTICATED) << streamed.error_message();
}

TEST_F(TokenTest, MetadataCallsNeedTheTokenToo) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ServerMetadataResponse response;
  grpc::Status status =
      GRPCInferenceService::NewStub(channel_)->ServerMetadata(&context, {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// coalesce-client and coalesce-bench reach a server with mutual TLS and a token through
// ClientSecurity, built from the same files their flags name.
TEST_F(SecurityTest, ClientSecurityFromFilesReachesAMutualTlsServerWithAToken) {
  auto authorizer = BearerTokenAuthorizer::Create(kToken);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  Server::Options options = Tls(/*mutual=*/true);
  options.authorizer = *authorizer;
  Start(options);
  const std::string token_file = certs_->Path("token");
  std::ofstream(token_file) << "  " << kToken << "\n";

  ClientSecurityOptions files;
  files.tls_ca_file = certs_->Path("ca.crt");
  files.tls_cert_file = certs_->Path("client.crt");
  files.tls_key_file = certs_->Path("client.key");
  files.auth_token_file = token_file;
  absl::StatusOr<ClientSecurity> security = ClientSecurity::Load(files);
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_TRUE(security->tls());
  auto channel = Channel(security->credentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  security->Apply(context);
  ModelInferResponse response;
  grpc::Status status =
      GRPCInferenceService::NewStub(channel)->ModelInfer(&context, EchoRequest(1, 2.5f), &response);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();

  // Without the token file: the same TLS channel, refused.
  files.auth_token_file.clear();
  absl::StatusOr<ClientSecurity> no_token = ClientSecurity::Load(files);
  ASSERT_TRUE(no_token.ok());
  grpc::ClientContext bare;
  bare.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  no_token->Apply(bare);
  EXPECT_EQ(GRPCInferenceService::NewStub(Channel(no_token->credentials()))
                ->ModelInfer(&bare, EchoRequest(1, 2.5f), &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ClientSecurityTest, RefusesHalfACertificateAndMissingOrEmptyFiles) {
  ClientSecurityOptions cert_only;
  cert_only.tls_cert_file = "/nonexistent/client.crt";
  EXPECT_EQ(ClientSecurity::Load(cert_only).status().code(), absl::StatusCode::kInvalidArgument);
  ClientSecurityOptions missing;
  missing.tls_ca_file = "/nonexistent/ca.crt";
  absl::Status status = ClientSecurity::Load(missing).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("--tls_ca_file"), std::string::npos) << status;
  const std::string empty = testing::TempDir() + "/coalesce_empty_token";
  std::ofstream(empty) << " \n";
  ClientSecurityOptions empty_token;
  empty_token.auth_token_file = empty;
  EXPECT_EQ(ClientSecurity::Load(empty_token).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing set: plaintext.
  absl::StatusOr<ClientSecurity> plain = ClientSecurity::Load({});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls());
}

}  // namespace
}  // namespace coalesce
