// Triton's system shared-memory extension end to end: a real server over loopback serving the
// demo shape ([batch, 32, 256] FP32) with an echo model, clients that register /dev/shm objects,
// put inputs there and have outputs written there.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "execution/demo_model.h"
#include "execution/echo_backend.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "server/server.h"
#include "tests/echo_test_server.h"
#include "tests/shm_object.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr int64_t kRowBytes = kEchoRowFloats * sizeof(float);

void SetSlice(google::protobuf::Map<std::string, inference::InferParameter>& params,
              const std::string& region, int64_t offset, int64_t byte_size) {
  params["shared_memory_region"].set_string_param(region);
  if (offset != 0) params["shared_memory_offset"].set_int64_param(offset);
  params["shared_memory_byte_size"].set_int64_param(byte_size);
}

// A one-row echo request whose input is `region`[in_offset, +kRowBytes) and whose output goes
// to `region`[out_offset, +out_bytes).
ModelInferRequest ShmRequest(const std::string& region, int64_t in_offset, int64_t out_offset,
                             int64_t out_bytes = kRowBytes) {
  ModelInferRequest request = EchoRequest(1);
  request.clear_raw_input_contents();
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), region, in_offset, kRowBytes);
  auto* output = request.add_outputs();
  output->set_name("OUTPUT0");
  SetSlice(*output->mutable_parameters(), region, out_offset, out_bytes);
  return request;
}

std::vector<float> Row(float first) {
  std::vector<float> row(kEchoRowFloats);
  for (int64_t i = 0; i < kEchoRowFloats; ++i) row[i] = first + 0.25f * static_cast<float>(i);
  return row;
}

class SharedMemoryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(MakeEchoBackend(), /*max_regions=*/64); }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  void Start(std::unique_ptr<Backend> backend, int max_regions) {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
    ServedModel::Options model_options;
    model_options.num_workers = 1;
    auto model =
        ServedModel::Create(model_options, std::move(backend), metrics.get(), Clock::Real());
    ASSERT_TRUE(model.ok()) << model.status();
    auto registry = std::make_unique<ModelRegistry>();
    ASSERT_TRUE(registry->Add(*std::move(model)).ok());
    Server::Options options;
    options.grpc_address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    options.max_shared_memory_regions = max_regions;
    auto server = Server::Start(options, std::move(registry), std::move(metrics), Clock::Real());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  static void Deadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  grpc::Status Register(const std::string& name, const std::string& key, uint64_t offset,
                        uint64_t byte_size) {
    inference::SystemSharedMemoryRegisterRequest request;
    request.set_name(name);
    request.set_key(key);
    request.set_offset(offset);
    request.set_byte_size(byte_size);
    inference::SystemSharedMemoryRegisterResponse response;
    grpc::ClientContext context;
    Deadline(context);
    return stub_->SystemSharedMemoryRegister(&context, request, &response);
  }

  grpc::Status Unregister(const std::string& name) {
    inference::SystemSharedMemoryUnregisterRequest request;
    request.set_name(name);
    inference::SystemSharedMemoryUnregisterResponse response;
    grpc::ClientContext context;
    Deadline(context);
    return stub_->SystemSharedMemoryUnregister(&context, request, &response);
  }

  grpc::Status Status(const std::string& name, inference::SystemSharedMemoryStatusResponse* out) {
    inference::SystemSharedMemoryStatusRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    Deadline(context);
    return stub_->SystemSharedMemoryStatus(&context, request, out);
  }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    grpc::ClientContext context;
    Deadline(context);
    return stub_->ModelInfer(&context, request, response);
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

// Asserts `status` has `code` and its message contains each of `parts`.
void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                 const std::vector<std::string>& parts) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  for (const std::string& part : parts) {
    EXPECT_NE(status.error_message().find(part), std::string::npos)
        << "'" << part << "' not in: " << status.error_message();
  }
}

TEST_F(SharedMemoryIntegrationTest, RoundTripReadsInputsAndWritesOutputsThroughTheRegion) {
  ShmObject object(2 * kRowBytes + 100);
  ASSERT_TRUE(object.ok());
  const std::vector<float> input = Row(-3.5f);
  object.WriteFloats(0, input);
  // The output goes right after the input.
  ASSERT_TRUE(Register("io", object.key(), 0, object.bytes()).ok());

  ModelInferResponse response;
  grpc::Status status = Infer(ShmRequest("io", 0, kRowBytes), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(object.ReadFloats(kRowBytes, kEchoRowFloats), input);
  ASSERT_EQ(response.outputs_size(), 1);
  const auto& output = response.outputs(0);
  EXPECT_EQ(output.name(), "OUTPUT0");
  EXPECT_EQ(output.datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(output.shape().begin(), output.shape().end()),
            (std::vector<int64_t>{1, DemoModel::kTokens, DemoModel::kWidth}));
  // The bytes are in the region, not the message; the empty entry keeps the indexes lined up.
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_TRUE(response.raw_output_contents(0).empty());
  EXPECT_EQ(output.parameters().at("shared_memory_region").string_param(), "io");
  EXPECT_EQ(output.parameters().at("shared_memory_byte_size").int64_param(), kRowBytes);

  inference::SystemSharedMemoryStatusResponse listed;
  ASSERT_TRUE(Status("", &listed).ok());
  ASSERT_EQ(listed.regions().size(), 1u);
  const auto& region = listed.regions().at("io");
  EXPECT_EQ(region.name(), "io");
  EXPECT_EQ(region.key(), object.key());
  EXPECT_EQ(region.offset(), 0u);
  EXPECT_EQ(region.byte_size(), object.bytes());

  ASSERT_TRUE(Unregister("io").ok());
  inference::SystemSharedMemoryStatusResponse after;
  ASSERT_TRUE(Status("", &after).ok());
  EXPECT_TRUE(after.regions().empty());
  ExpectError(Infer(ShmRequest("io", 0, kRowBytes), &response), grpc::StatusCode::NOT_FOUND,
              {"Unable to find shared memory region: 'io'"});
}

TEST_F(SharedMemoryIntegrationTest, RegionAtAnOffsetIntoTheObjectAddressesFromItsStart) {
  ShmObject object(3 * kRowBytes);
  ASSERT_TRUE(object.ok());
  const std::vector<float> input = Row(7.0f);
  object.WriteFloats(kRowBytes + 12, input);
  // Region = object bytes [12, 12 + 2 rows): input at region offset kRowBytes, output at 0.
  ASSERT_TRUE(Register("shifted", object.key(), 12, 2 * kRowBytes).ok());
  ModelInferResponse response;
  grpc::Status status = Infer(ShmRequest("shifted", kRowBytes, 0), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(object.ReadFloats(12, kEchoRowFloats), input);
}

TEST_F(SharedMemoryIntegrationTest, InputOnlyInSharedMemoryAnswersInRawOutputContents) {
  ShmObject object(kRowBytes);
  const std::vector<float> input = Row(1.0f);
  object.WriteFloats(0, input);
  ASSERT_TRUE(Register("in", object.key(), 0, kRowBytes).ok());
  ModelInferRequest request = EchoRequest(1);
  request.clear_raw_input_contents();
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "in", 0, kRowBytes);
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  ASSERT_EQ(response.raw_output_contents(0).size(), static_cast<size_t>(kRowBytes));
  EXPECT_EQ(std::memcmp(response.raw_output_contents(0).data(), input.data(), kRowBytes), 0);
}

TEST_F(SharedMemoryIntegrationTest, OffsetPastTheEndIsInvalidArgumentNamingEverything) {
  ShmObject object(kRowBytes);
  ASSERT_TRUE(Register("r", object.key(), 0, kRowBytes).ok());
  ModelInferResponse response;
  ExpectError(Infer(ShmRequest("r", kRowBytes + 8, 0), &response),
              grpc::StatusCode::INVALID_ARGUMENT,
              {"Invalid offset for shared memory region: 'r'", "input 'INPUT0'",
               absl::StrCat("offset ", kRowBytes + 8), absl::StrCat("byte_size ", kRowBytes),
               absl::StrCat("the region holds ", kRowBytes, " bytes")});
}

TEST_F(SharedMemoryIntegrationTest, ASizeThatWrapsAroundIsInvalidArgument) {
  ShmObject object(kRowBytes);
  ASSERT_TRUE(Register("r", object.key(), 0, kRowBytes).ok());
  ModelInferRequest request = ShmRequest("r", 0, 0);
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "r", 64,
           std::numeric_limits<int64_t>::max() - 32);
  ModelInferResponse response;
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT,
              {"Invalid offset + byte size for shared memory region: 'r'", "input 'INPUT0'"});
}

TEST_F(SharedMemoryIntegrationTest, AnInputSliceOfTheWrongSizeNamesExpectedBytes) {
  ShmObject object(2 * kRowBytes);
  ASSERT_TRUE(Register("r", object.key(), 0, 2 * kRowBytes).ok());
  ModelInferRequest request = ShmRequest("r", 0, kRowBytes);
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "r", 0, kRowBytes - 4);
  ModelInferResponse response;
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT,
              {"input 'INPUT0': shared memory region 'r'", absl::StrCat("expected ", kRowBytes)});
}

TEST_F(SharedMemoryIntegrationTest, AnUnknownRegionIsNotFoundInTritonsWords) {
  ModelInferResponse response;
  ExpectError(Infer(ShmRequest("ghost", 0, 0), &response), grpc::StatusCode::NOT_FOUND,
              {"Unable to find shared memory region: 'ghost'"});
}

TEST_F(SharedMemoryIntegrationTest, KeysOutsideDevShmAreRefusedNamingTheKey) {
  for (const std::string& key : {std::string("../etc/passwd"), std::string("/a/b"),
                                 std::string(""), std::string("/dev/shm/../../etc/passwd")}) {
    ExpectError(Register("r", key, 0, 16), grpc::StatusCode::INVALID_ARGUMENT,
                {"cannot register shared memory region 'r' - invalid shm key '" + key + "'"});
  }
  inference::SystemSharedMemoryStatusResponse listed;
  ASSERT_TRUE(Status("", &listed).ok());
  EXPECT_TRUE(listed.regions().empty());
}

TEST_F(SharedMemoryIntegrationTest, RegisteringANameTwiceIsAlreadyExists) {
  ShmObject object(64);
  ASSERT_TRUE(Register("r", object.key(), 0, 64).ok());
  ExpectError(Register("r", object.key(), 0, 32), grpc::StatusCode::ALREADY_EXISTS,
              {"shared memory region 'r' already in manager"});
}

TEST_F(SharedMemoryIntegrationTest, ARegionBiggerThanTheObjectIsInvalidArgument) {
  ShmObject object(64);
  ExpectError(Register("r", object.key(), 0, 65), grpc::StatusCode::INVALID_ARGUMENT,
              {"failed to register shared memory region 'r': invalid args", "exceeds the 64 bytes"});
  ExpectError(Register("r", object.key(), std::numeric_limits<uint64_t>::max() - 8, 16),
              grpc::StatusCode::INVALID_ARGUMENT, {"invalid args"});
  ExpectError(Register("r", "/coalesce_test_no_such_key", 0, 16), grpc::StatusCode::NOT_FOUND,
              {"Unable to open shared memory region: '/coalesce_test_no_such_key'"});
}

TEST_F(SharedMemoryIntegrationTest, StatusOfAnUnknownNameIsNotFound) {
  inference::SystemSharedMemoryStatusResponse listed;
  ExpectError(Status("nope", &listed), grpc::StatusCode::NOT_FOUND,
              {"Unable to find system shared memory region: 'nope'"});
}

TEST_F(SharedMemoryIntegrationTest, AnOutputRegionTooSmallIsRefusedBeforeCompute) {
  ShmObject object(2 * kRowBytes);
  std::memset(object.data(), 0x5a, object.bytes());
  object.WriteFloats(0, Row(2.0f));
  ASSERT_TRUE(Register("r", object.key(), 0, object.bytes()).ok());
  ModelInferResponse response;
  ExpectError(Infer(ShmRequest("r", 0, kRowBytes, kRowBytes - 1), &response),
              grpc::StatusCode::INVALID_ARGUMENT,
              {"shared memory size specified with the request for output 'OUTPUT0' (",
               absl::StrCat("should be at least ", kRowBytes, " bytes")});
  EXPECT_EQ(object.data()[kRowBytes], 0x5a);  // untouched
}

TEST_F(SharedMemoryIntegrationTest, UnregisterWithAnEmptyNameUnregistersEveryRegion) {
  ShmObject object(64);
  ASSERT_TRUE(Register("a", object.key(), 0, 64).ok());
  ASSERT_TRUE(Register("b", object.key(), 32, 32).ok());
  ASSERT_TRUE(Unregister("").ok());
  inference::SystemSharedMemoryStatusResponse listed;
  ASSERT_TRUE(Status("", &listed).ok());
  EXPECT_TRUE(listed.regions().empty());
}

TEST_F(SharedMemoryIntegrationTest, CudaRegistrationIsUnimplementedWithoutCudaAndNotListed) {
  inference::CudaSharedMemoryRegisterRequest request;
  request.set_name("gpu");
  request.set_raw_handle(std::string(64, '\0'));
  request.set_byte_size(16);
  inference::CudaSharedMemoryRegisterResponse response;
  grpc::ClientContext context;
  Deadline(context);
  ExpectError(stub_->CudaSharedMemoryRegister(&context, request, &response),
              grpc::StatusCode::UNIMPLEMENTED,
              {"CudaSharedMemoryRegister", "this build of coalesce has no CUDA"});
  inference::CudaSharedMemoryStatusRequest status_request;
  inference::CudaSharedMemoryStatusResponse status;
  grpc::ClientContext status_context;
  Deadline(status_context);
  // Status and Unregister answer as having nothing, as Triton's do: its clients clean up with
  // them before using system shared memory.
  ASSERT_TRUE(stub_->CudaSharedMemoryStatus(&status_context, status_request, &status).ok());
  EXPECT_TRUE(status.regions().empty());
  inference::CudaSharedMemoryUnregisterRequest unregister_request;
  inference::CudaSharedMemoryUnregisterResponse unregistered;
  grpc::ClientContext unregister_context;
  Deadline(unregister_context);
  EXPECT_TRUE(
      stub_->CudaSharedMemoryUnregister(&unregister_context, unregister_request, &unregistered)
          .ok());
  inference::ServerMetadataRequest metadata_request;
  inference::ServerMetadataResponse metadata;
  grpc::ClientContext metadata_context;
  Deadline(metadata_context);
  ASSERT_TRUE(stub_->ServerMetadata(&metadata_context, metadata_request, &metadata).ok());
  std::vector<std::string> extensions(metadata.extensions().begin(),
                                      metadata.extensions().end());
  EXPECT_NE(std::find(extensions.begin(), extensions.end(), "system_shared_memory"),
            extensions.end());
  EXPECT_EQ(std::find(extensions.begin(), extensions.end(), "cuda_shared_memory"),
            extensions.end());
}

TEST_F(SharedMemoryIntegrationTest, ZeroRegionsTurnsRegistrationOff) {
  Start(MakeEchoBackend(), /*max_regions=*/0);
  ShmObject object(64);
  ExpectError(Register("r", object.key(), 0, 64), grpc::StatusCode::UNAVAILABLE,
              {"shared memory is turned off"});
}

// The echo model, slowed down, so that requests wait in the queue while regions come and go.
class SlowEchoBackend : public Backend {
 public:
  SlowEchoBackend() : echo_(MakeEchoBackend()) {}
  const ModelMetadata& metadata() const override { return echo_->metadata(); }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    absl::SleepFor(absl::Microseconds(500));
    return echo_->Execute(worker, rows, inputs, outputs);
  }
  std::string DeviceDescription() const override { return "slow echo"; }

 private:
  std::unique_ptr<EchoBackend> echo_;
};

TEST_F(SharedMemoryIntegrationTest, UnregisteringUnderLoadAnswersEveryRequestOnceCorrectly) {
  Start(std::make_unique<SlowEchoBackend>(), /*max_regions=*/64);
  constexpr int kClients = 16;
  constexpr int kRequestsPerClient = 40;
  // Each client its own input and output slot; the region spans them all.
  ShmObject object(2 * kClients * kRowBytes);
  ASSERT_TRUE(object.ok());
  for (int c = 0; c < kClients; ++c) object.WriteFloats(2 * c * kRowBytes, Row(100.0f * c));
  ASSERT_TRUE(Register("shared", object.key(), 0, object.bytes()).ok());

  std::atomic<int> ok{0};
  std::atomic<int> not_found{0};
  std::atomic<int> wrong{0};
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    // Unregister and register again, over and over, while requests are queued and running.
    while (!stop.load()) {
      Unregister("shared");
      absl::SleepFor(absl::Microseconds(300));
      Register("shared", object.key(), 0, object.bytes());
      absl::SleepFor(absl::Microseconds(300));
    }
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      const std::vector<float> expected = Row(100.0f * c);
      const int64_t out = (2 * c + 1) * kRowBytes;
      for (int i = 0; i < kRequestsPerClient; ++i) {
        std::memset(object.data() + out, 0, kRowBytes);
        ModelInferResponse response;
        grpc::Status status = Infer(ShmRequest("shared", 2 * c * kRowBytes, out), &response);
        if (status.ok() && object.ReadFloats(out, kEchoRowFloats) == expected) {
          ok.fetch_add(1);
        } else if (status.error_code() == grpc::StatusCode::NOT_FOUND &&
                   status.error_message().find("Unable to find shared memory region: 'shared'") !=
                       std::string::npos) {
          not_found.fetch_add(1);
        } else {
          ADD_FAILURE() << "client " << c << ": " << status.error_code() << " "
                        << status.error_message();
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  stop.store(true);
  churn.join();

  EXPECT_EQ(ok.load() + not_found.load(), kClients * kRequestsPerClient);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(ok.load(), 0);
  // The server is still serving.
  Unregister("shared");
  ASSERT_TRUE(Register("shared", object.key(), 0, object.bytes()).ok());
  ModelInferResponse response;
  EXPECT_TRUE(Infer(ShmRequest("shared", 0, kRowBytes), &response).ok());
}

}  // namespace
}  // namespace coalesce
