// Triton's CUDA shared-memory extension through the server, with the CUDA runtime replaced by
// host memory behind the same CudaIpcOpener interface: registration, status, inputs copied from
// and outputs copied to "device" memory, and the refusals. (tests/gpu/ checks the real thing.)
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "execution/cuda_ipc_memory.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "server/cuda_shared_memory_region.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;

// "Device" memory: host bytes shared with the test.
class HostBackedMemory final : public CudaIpcMemory {
 public:
  explicit HostBackedMemory(std::shared_ptr<std::string> bytes) : bytes_(std::move(bytes)) {}
  int64_t byte_size() const override { return static_cast<int64_t>(bytes_->size()); }
  absl::Status CopyToHost(int64_t offset, int64_t size, char* host) const override {
    std::memcpy(host, bytes_->data() + offset, size);
    return absl::OkStatus();
  }
  absl::Status CopyFromHost(int64_t offset, absl::string_view bytes) const override {
    std::memcpy(bytes_->data() + offset, bytes.data(), bytes.size());
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::string> bytes_;
};

// Opens "handles" that name entries of `allocations`, refusing a byte_size past the entry.
CudaIpcOpener FakeOpener(std::map<std::string, std::shared_ptr<std::string>>* allocations) {
  return [allocations](absl::string_view handle, int64_t device_id, int64_t byte_size)
             -> absl::StatusOr<std::unique_ptr<CudaIpcMemory>> {
    auto it = allocations->find(std::string(handle));
    if (it == allocations->end()) return absl::InvalidArgumentError("no such handle");
    if (byte_size > static_cast<int64_t>(it->second->size())) {
      return absl::InvalidArgumentError(absl::StrCat("byte_size ", byte_size, " exceeds the ",
                                                     it->second->size(), " bytes"));
    }
    return std::make_unique<HostBackedMemory>(it->second);
  };
}

constexpr int64_t kRowBytes = kEchoRowFloats * sizeof(float);

TEST(CudaSharedMemoryRegionTest, WithoutAnOpenerTheBuildHasNoCuda) {
  auto region = CudaSharedMemoryRegion::Open(CudaIpcOpener(), "g", std::string(64, '\0'), 0, 16);
  EXPECT_EQ(region.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(region.status().message().find("this build of coalesce has no CUDA"),
            absl::string_view::npos);
}

TEST(CudaSharedMemoryRegionTest, ReadsCopyToTheHostAndWritesCopyBack) {
  std::map<std::string, std::shared_ptr<std::string>> allocations;
  allocations["h"] = std::make_shared<std::string>("0123456789");
  auto region = CudaSharedMemoryRegion::Open(FakeOpener(&allocations), "g", "h", 0, 10);
  ASSERT_TRUE(region.ok()) << region.status();
  EXPECT_EQ((*region)->description().kind, SharedMemoryKind::kCuda);
  std::string scratch;
  absl::StatusOr<absl::string_view> bytes = (*region)->Read(2, 3, scratch);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "234");
  EXPECT_EQ(bytes->data(), scratch.data());  // a host copy, not device memory
  ASSERT_TRUE((*region)->Write(8, "xy").ok());
  EXPECT_EQ(*allocations["h"], "01234567xy");
  EXPECT_EQ((*region)->Write(9, "xy").code(), absl::StatusCode::kInternal);
  auto too_big = CudaSharedMemoryRegion::Open(FakeOpener(&allocations), "g", "h", 0, 11);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(too_big.status().message(),
            "failed to register shared memory region 'g': byte_size 11 exceeds the 10 bytes");
}

class CudaSharedMemoryServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Server::Options options;
    options.cuda_ipc_opener = FakeOpener(&allocations_);
    auto server = StartEchoServer(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(5)); }

  grpc::Status Register(const std::string& name, const std::string& handle, uint64_t bytes) {
    inference::CudaSharedMemoryRegisterRequest request;
    request.set_name(name);
    request.set_raw_handle(handle);
    request.set_device_id(0);
    request.set_byte_size(bytes);
    inference::CudaSharedMemoryRegisterResponse response;
    grpc::ClientContext context;
    return stub_->CudaSharedMemoryRegister(&context, request, &response);
  }
  inference::CudaSharedMemoryStatusResponse Status() {
    inference::CudaSharedMemoryStatusRequest request;
    inference::CudaSharedMemoryStatusResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->CudaSharedMemoryStatus(&context, request, &response).ok());
    return response;
  }

  std::map<std::string, std::shared_ptr<std::string>> allocations_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(CudaSharedMemoryServerTest, RoundTripCopiesInputsFromAndOutputsToDeviceMemory) {
  std::vector<float> input(kEchoRowFloats);
  for (int64_t i = 0; i < kEchoRowFloats; ++i) input[i] = 0.5f * static_cast<float>(i) - 7.0f;
  auto device = std::make_shared<std::string>(2 * kRowBytes, '\0');
  std::memcpy(device->data(), input.data(), kRowBytes);
  allocations_["handle-1"] = device;
  ASSERT_TRUE(Register("gpu", "handle-1", 2 * kRowBytes).ok());
  auto status = Status();
  ASSERT_EQ(status.regions().size(), 1u);
  EXPECT_EQ(status.regions().at("gpu").byte_size(), static_cast<uint64_t>(2 * kRowBytes));
  EXPECT_EQ(status.regions().at("gpu").device_id(), 0u);

  inference::ModelInferRequest request = EchoRequest(1);
  request.clear_raw_input_contents();
  auto& in = *request.mutable_inputs(0)->mutable_parameters();
  in["shared_memory_region"].set_string_param("gpu");
  in["shared_memory_byte_size"].set_int64_param(kRowBytes);
  auto* output = request.add_outputs();
  output->set_name("OUTPUT0");
  auto& out = *output->mutable_parameters();
  out["shared_memory_region"].set_string_param("gpu");
  out["shared_memory_offset"].set_int64_param(kRowBytes);
  out["shared_memory_byte_size"].set_int64_param(kRowBytes);
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  grpc::Status infer = stub_->ModelInfer(&context, request, &response);
  ASSERT_TRUE(infer.ok()) << infer.error_message();
  EXPECT_TRUE(response.raw_output_contents(0).empty());
  EXPECT_EQ(std::memcmp(device->data() + kRowBytes, input.data(), kRowBytes), 0);

  // The name space is shared with system shared memory, as in Triton.
  inference::SystemSharedMemoryStatusRequest system_request;
  system_request.set_name("gpu");
  inference::SystemSharedMemoryStatusResponse system_status;
  grpc::ClientContext system_context;
  grpc::Status wrong_kind =
      stub_->SystemSharedMemoryStatus(&system_context, system_request, &system_status);
  EXPECT_EQ(wrong_kind.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(wrong_kind.error_message(),
            "The region named 'gpu' is registered as CUDA shared memory, not system shared memory");

  inference::CudaSharedMemoryUnregisterRequest unregister;
  inference::CudaSharedMemoryUnregisterResponse unregistered;
  grpc::ClientContext unregister_context;
  ASSERT_TRUE(stub_->CudaSharedMemoryUnregister(&unregister_context, unregister, &unregistered)
                  .ok());
  EXPECT_TRUE(Status().regions().empty());
}

TEST_F(CudaSharedMemoryServerTest, RefusesUnknownHandlesOversizedRegionsAndTakenNames) {
  allocations_["h"] = std::make_shared<std::string>(64, '\0');
  grpc::Status unknown = Register("a", "nope", 16);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(unknown.error_message(), "failed to register shared memory region 'a': no such handle");
  EXPECT_EQ(Register("a", "h", 65).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Register("a", "h", 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Register("a", "h", 64).ok());
  grpc::Status twice = Register("a", "h", 64);
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(twice.error_message(), "shared memory region 'a' already in manager");
}

}  // namespace
}  // namespace coalesce
