// coalesce-bench's shared-memory slots against a real server over loopback: every slot's
// request runs through its own slices, and the region is gone once the slots are.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/shared_memory_slots.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;

class SharedMemorySlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartEchoServer(Server::Options());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(5)); }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->ModelInfer(&context, request, response);
  }

  int RegisteredRegions() {
    inference::SystemSharedMemoryStatusRequest request;
    inference::SystemSharedMemoryStatusResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->SystemSharedMemoryStatus(&context, request, &response).ok());
    return static_cast<int>(response.regions().size());
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(SharedMemorySlotsTest, EachSlotRoundTripsThroughItsOwnSlicesAndIsUnregisteredAfter) {
  // The same request a bench would send, and the server's answer to it, size the slots.
  inference::ModelInferRequest request = EchoRequest(1, 0.75f);
  inference::ModelInferResponse probe;
  ASSERT_TRUE(Infer(request, &probe).ok());
  SharedMemorySlots::Options options;
  options.slots = 3;
  {
    auto slots = SharedMemorySlots::Create(options, *stub_, nullptr, request, probe);
    ASSERT_TRUE(slots.ok()) << slots.status();
    EXPECT_EQ(RegisteredRegions(), 1);
    constexpr size_t kBytes = kEchoRowFloats * sizeof(float);
    EXPECT_GE((*slots)->slot_bytes(), static_cast<int64_t>(2 * kBytes));
    for (int s = 0; s < (*slots)->slots(); ++s) {
      const inference::ModelInferRequest& slot_request = (*slots)->request(s);
      EXPECT_EQ(slot_request.raw_input_contents_size(), 0);
      inference::ModelInferResponse response;
      grpc::Status status = Infer(slot_request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(response.raw_output_contents_size(), 1);
      EXPECT_TRUE(response.raw_output_contents(0).empty());
      // The slot's output slice (after its input) holds the echoed input.
      const char* output = (*slots)->slot_data(s) + (*slots)->slot_bytes() / 2;
      EXPECT_EQ(std::memcmp(output, request.raw_input_contents(0).data(), kBytes), 0)
          << "slot " << s;
    }
  }
  EXPECT_EQ(RegisteredRegions(), 0);
}

}  // namespace
}  // namespace coalesce
