// ServerMetadata's `extensions` against what the server answers: every RPC of an extension it
// lists answers (not UNIMPLEMENTED), and every RPC of one it does not list answers UNIMPLEMENTED
// with a message naming it (but for the two harmless CUDA RPCs below). The RPCs come from the service's descriptor, so a method added to
// the protocol without an owner here fails the test.
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "proto/inference.grpc.pb.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

// The protocol's core RPCs, which every server answers.
const std::set<std::string>& CoreRpcs() {
  static const auto* rpcs = new std::set<std::string>{
      "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
      // Streaming is part of Triton's gRPC service without an extension name.
      "ModelStreamInfer"};
  return *rpcs;
}

// Triton's extension names and the RPCs each adds, from Triton's protocol documents
// (docs/protocol/extension_*.md), independent of the server's own table.
const std::map<std::string, std::set<std::string>>& TritonExtensions() {
  static const auto* extensions = new std::map<std::string, std::set<std::string>>{
      {"model_repository", {"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}},
      {"model_repository(unload_dependents)", {"RepositoryModelUnload"}},
      {"model_configuration", {"ModelConfig"}},
      {"statistics", {"ModelStatistics"}},
      {"system_shared_memory",
       {"SystemSharedMemoryStatus", "SystemSharedMemoryRegister",
        "SystemSharedMemoryUnregister"}},
      {"cuda_shared_memory",
       {"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister"}},
      {"trace", {"TraceSetting"}},
      {"logging", {"LogSettings"}},
      // Extensions that add request parameters or HTTP features, no gRPC methods.
      {"classification", {}},
      {"sequence", {}},
      {"schedule_policy", {}},
      {"binary_tensor_data", {}},
      {"parameters", {}},
  };
  return *extensions;
}

// RPCs of an extension that is not listed which still answer OK, as Triton's do: reading the
// CUDA regions (there are none) and unregistering them (nothing to do). Triton's clients call
// both to clean up before they use system shared memory, so refusing them would break clients
// that never touch CUDA. Registering is what the missing extension refuses.
const std::set<std::string>& HarmlessWhenUnlisted() {
  static const auto* rpcs =
      new std::set<std::string>{"CudaSharedMemoryStatus", "CudaSharedMemoryUnregister"};
  return *rpcs;
}

class ProtocolExtensionsTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(testing::TempDir()) / absl::StrCat("coalesce_extensions_", getpid());
    fs::remove_all(root_);
    ASSERT_TRUE(WriteRepositoryModel(root_, "scale", ScaleModelConfig("scale"), 1,
                                     ScaleModelForward(2))
                    .ok());
    auto server = StartRepositoryServer(root_, ControlMode::kExplicit, {"scale"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    fs::remove_all(root_);
  }

  std::set<std::string> ListedExtensions() {
    auto stub = inference::GRPCInferenceService::NewStub(channel_);
    grpc::ClientContext context;
    inference::ServerMetadataResponse metadata;
    EXPECT_TRUE(stub->ServerMetadata(&context, {}, &metadata).ok());
    return {metadata.extensions().begin(), metadata.extensions().end()};
  }

  // Calls unary `method` of the service with an empty request message.
  grpc::Status CallWithEmptyRequest(const std::string& method) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::ByteBuffer request, response;
    grpc::Slice empty;
    request = grpc::ByteBuffer(&empty, 1);
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, absl::StrCat("/inference.GRPCInferenceService/", method), {},
                   &request, &response, [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  fs::path root_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ProtocolExtensionsTest, EveryListedExtensionIsATritonNameWithoutRepeats) {
  auto stub = inference::GRPCInferenceService::NewStub(channel_);
  grpc::ClientContext context;
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub->ServerMetadata(&context, {}, &metadata).ok());
  std::set<std::string> seen;
  for (const std::string& name : metadata.extensions()) {
    EXPECT_EQ(TritonExtensions().count(name), 1u) << "not one of Triton's names: " << name;
    EXPECT_TRUE(seen.insert(name).second) << "listed twice: " << name;
  }
  EXPECT_EQ(seen.count("model_repository"), 1u);
}

TEST_F(ProtocolExtensionsTest, ListedExtensionsAnswerAndOthersAreUnimplementedNamingTheRpc) {
  const std::set<std::string> listed = ListedExtensions();
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          inference::GRPCInferenceService::service_full_name());
  ASSERT_NE(service, nullptr);
  ASSERT_GE(service->method_count(), 20);
  for (int m = 0; m < service->method_count(); ++m) {
    const std::string method = service->method(m)->name();
    SCOPED_TRACE(method);
    std::set<std::string> owners;
    for (const auto& [extension, rpcs] : TritonExtensions()) {
      if (rpcs.count(method) > 0) owners.insert(extension);
    }
    ASSERT_TRUE(CoreRpcs().count(method) > 0 || !owners.empty())
        << "an RPC of the protocol that belongs to no core or extension known to this test";
    if (service->method(m)->client_streaming()) continue;  // ModelStreamInfer: its own tests.
    bool offered = CoreRpcs().count(method) > 0;
    for (const std::string& owner : owners) offered = offered || listed.count(owner) > 0;
    grpc::Status status = CallWithEmptyRequest(method);
    if (offered) {
      EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
    } else if (HarmlessWhenUnlisted().count(method) > 0) {
      EXPECT_TRUE(status.ok()) << status.error_message();
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
      EXPECT_NE(status.error_message().find(method), std::string::npos)
          << "the message should name the RPC: " << status.error_message();
      EXPECT_NE(status.error_message().find("not implemented"), std::string::npos)
          << status.error_message();
    }
  }
}

}  // namespace
}  // namespace coalesce
