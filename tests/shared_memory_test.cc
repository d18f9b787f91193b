// The shared-memory extension's parts without a server: key and bounds checks, the region
// registry, mapping /dev/shm objects, and how a request's tensors name their slices.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/shared_memory_checks.h"
#include "server/shared_memory_manager.h"
#include "server/shared_memory_tensors.h"
#include "server/system_shared_memory_region.h"
#include "tests/shm_object.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr uint64_t kUint64Max = std::numeric_limits<uint64_t>::max();

// --- keys and names ---

TEST(SharedMemoryKeyTest, AcceptsDevShmNamesWithOrWithoutOneLeadingSlash) {
  for (const char* key : {"/input0", "input0", "/a.b_c-1", "x"}) {
    EXPECT_TRUE(CheckSharedMemoryKey("r", key).ok()) << key;
  }
}

TEST(SharedMemoryKeyTest, RefusesKeysThatAreNotDevShmNamesAndNamesTheKey) {
  const std::vector<std::string> keys = {
      "../etc/passwd", "/a/b", "", "/", "//x", "..", "/..", ".", "a..b", "/dev/shm/x",
      std::string("ab\0/../etc/passwd", 17), "tab\there"};
  for (const std::string& key : keys) {
    absl::Status s = CheckSharedMemoryKey("r", key);
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(s.message().find("cannot register shared memory region 'r' - invalid shm key '"),
              absl::string_view::npos)
        << s;
  }
  EXPECT_NE(CheckSharedMemoryKey("r", "/a/b").message().find("'/a/b'"), absl::string_view::npos);
}

TEST(SharedMemoryKeyTest, BoundsLengthAtNameMax) {
  EXPECT_TRUE(CheckSharedMemoryKey("r", "/" + std::string(255, 'k')).ok());
  EXPECT_TRUE(CheckSharedMemoryKey("r", std::string(255, 'k')).ok());
  absl::Status s = CheckSharedMemoryKey("r", std::string(256, 'k'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("it has 256 characters"), absl::string_view::npos) << s;
}

TEST(SharedMemoryKeyTest, RegionNamesMustBeNonEmptyBoundedAndFreeOfNul) {
  EXPECT_TRUE(CheckSharedMemoryRegionName("input region").ok());
  EXPECT_EQ(CheckSharedMemoryRegionName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSharedMemoryRegionName(std::string(257, 'n')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSharedMemoryRegionName(std::string("a\0b", 3)).code(),
            absl::StatusCode::kInvalidArgument);
}

// --- bounds ---

TEST(SharedMemoryPeerTest, AcceptsLoopbackAndUnixSocketPeers) {
  for (const char* peer : {"ipv4:127.0.0.1:5000", "ipv4:127.1.2.3:1", "ipv6:[::1]:5000",
                           "ipv6:[::ffff:127.0.0.1]:5000", "unix:/run/coalesce.sock",
                           "unix-abstract:coalesce"}) {
    EXPECT_TRUE(CheckLocalPeer("SystemSharedMemoryRegister", peer).ok()) << peer;
  }
}

TEST(SharedMemoryPeerTest, RefusesRemotePeersNamingTheRpcAndThePeer) {
  for (const char* peer : {"ipv4:10.0.0.7:5000", "ipv4:172.17.0.1:40000", "ipv6:[2001:db8::1]:5",
                           "ipv6:[::ffff:10.0.0.7]:5000", "ipv4:1270.0.0.1:5", ""}) {
    absl::Status s = CheckLocalPeer("SystemSharedMemoryRegister", peer);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << peer;
    EXPECT_NE(s.message().find("SystemSharedMemoryRegister"), std::string::npos) << s;
    EXPECT_NE(s.message().find(std::string("'") + peer + "'"), std::string::npos) << s;
  }
}

TEST(SharedMemorySliceTest, AcceptsSlicesUpToTheRegionsEnd) {
  EXPECT_TRUE(CheckSliceInRegion("input 'x'", "r", 64, 0, 64).ok());
  EXPECT_TRUE(CheckSliceInRegion("input 'x'", "r", 64, 60, 4).ok());
  EXPECT_TRUE(CheckSliceInRegion("input 'x'", "r", 64, 64, 0).ok());
}

TEST(SharedMemorySliceTest, OffsetPastTheEndNamesTensorRegionOffsetSizeAndRegionSize) {
  absl::Status s = CheckSliceInRegion("input 'x'", "r", 64, 65, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Invalid offset for shared memory region: 'r' (input 'x': offset 65, byte_size 0; the "
            "region holds 64 bytes)");
  EXPECT_EQ(CheckSliceInRegion("input 'x'", "r", 64, -1, 4).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemorySliceTest, SizeRunningPastTheEndOrWrappingIsRefused) {
  absl::Status past = CheckSliceInRegion("output 'y'", "r", 64, 60, 8);
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(past.message(),
            "Invalid offset + byte size for shared memory region: 'r' (output 'y': offset 60, "
            "byte_size 8; the region holds 64 bytes)");
  // offset + byte_size wraps around int64: a naive sum would look small, or negative.
  EXPECT_EQ(CheckSliceInRegion("input 'x'", "r", 64, 8, kInt64Max).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSliceInRegion("input 'x'", "r", 64, 8, kInt64Max - 4).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSliceInRegion("input 'x'", "r", 64, 0, -8).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryRegistrationTest, RefusesRegionsBeyondTheObjectWithoutOverflow) {
  EXPECT_TRUE(CheckRegistrationFits("r", "/k", 0, 64, 64).ok());
  EXPECT_TRUE(CheckRegistrationFits("r", "/k", 32, 32, 64).ok());
  absl::Status s = CheckRegistrationFits("r", "/k", 32, 33, 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "failed to register shared memory region 'r': invalid args: offset 32 + byte_size 33 "
            "exceeds the 64 bytes of shared-memory object '/k'");
  EXPECT_FALSE(CheckRegistrationFits("r", "/k", kUint64Max - 1, 4, 64).ok());
  EXPECT_FALSE(CheckRegistrationFits("r", "/k", 4, kUint64Max - 1, 64).ok());
  EXPECT_FALSE(CheckRegistrationFits("r", "/k", 0, 0, 64).ok());
}

// --- mapping /dev/shm objects ---

TEST(SystemSharedMemoryRegionTest, MapsASliceAtAnUnalignedOffset) {
  ShmObject object(3 * 4096);
  ASSERT_TRUE(object.ok());
  for (size_t i = 0; i < object.bytes(); ++i) object.data()[i] = static_cast<char>(i % 251);
  auto region = SystemSharedMemoryRegion::Open("r", object.key(), 4097 + 13, 100);
  ASSERT_TRUE(region.ok()) << region.status();
  EXPECT_EQ((*region)->byte_size(), 100);
  EXPECT_EQ((*region)->description().offset, 4110u);
  std::string scratch;
  absl::StatusOr<absl::string_view> bytes = (*region)->Read(0, 100, scratch);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, absl::string_view(object.data() + 4110, 100));
  EXPECT_TRUE(scratch.empty());  // a view into the mapping, not a copy
  ASSERT_TRUE((*region)->Write(99, "Z").ok());
  EXPECT_EQ(object.data()[4110 + 99], 'Z');
  EXPECT_EQ((*region)->Write(99, "ZZ").code(), absl::StatusCode::kInternal);
}

TEST(SystemSharedMemoryRegionTest, RefusesARegionLargerThanTheObject) {
  ShmObject object(4096);
  ASSERT_TRUE(object.ok());
  auto region = SystemSharedMemoryRegion::Open("r", object.key(), 0, 8192);
  ASSERT_FALSE(region.ok());
  EXPECT_EQ(region.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(region.status().message(),
            absl::StrCat("failed to register shared memory region 'r': invalid args: offset 0 + "
                         "byte_size 8192 exceeds the 4096 bytes of shared-memory object '",
                         object.key(), "'"));
}

TEST(SystemSharedMemoryRegionTest, UnknownKeyIsNotFoundAndBadKeyIsNeverOpened) {
  auto missing = SystemSharedMemoryRegion::Open("r", "/coalesce_test_no_such_object", 0, 4);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(
                "Unable to open shared memory region: '/coalesce_test_no_such_object'"),
            absl::string_view::npos)
      << missing.status();
  auto traversal = SystemSharedMemoryRegion::Open("r", "../../etc/passwd", 0, 4);
  EXPECT_EQ(traversal.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- the registry ---

std::unique_ptr<SharedMemoryManager> Manager(int max_regions = 4) {
  SharedMemoryManager::Options options;
  options.max_regions = max_regions;
  return *SharedMemoryManager::Create(options);
}

std::unique_ptr<SharedMemoryRegion> Open(const ShmObject& object, const std::string& name) {
  auto region = SystemSharedMemoryRegion::Open(name, object.key(), 0, object.bytes());
  EXPECT_TRUE(region.ok()) << region.status();
  return region.ok() ? *std::move(region) : nullptr;
}

TEST(SharedMemoryManagerTest, RefusesANegativeLimit) {
  SharedMemoryManager::Options options;
  options.max_regions = -1;
  EXPECT_EQ(SharedMemoryManager::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryManagerTest, RegisteringANameTwiceIsAlreadyExistsInTritonsWords) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "in")).ok());
  absl::Status again = manager->Add(Open(object, "in"));
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(), "shared memory region 'in' already in manager");
  EXPECT_EQ(manager->CheckCanAdd("in").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(manager->size(), 1);
}

TEST(SharedMemoryManagerTest, StatusListsRegionsOrTheNamedOneAndUnknownIsNotFound) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "b")).ok());
  ASSERT_TRUE(manager->Add(Open(object, "a")).ok());
  auto all = manager->Status(SharedMemoryKind::kSystem, "");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");
  EXPECT_EQ((*all)[1].key, object.key());
  EXPECT_EQ((*all)[1].byte_size, 64);
  auto one = manager->Status(SharedMemoryKind::kSystem, "b");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].name, "b");
  auto unknown = manager->Status(SharedMemoryKind::kSystem, "c");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(), "Unable to find system shared memory region: 'c'");
  EXPECT_TRUE(manager->Status(SharedMemoryKind::kCuda, "")->empty());
  EXPECT_EQ(manager->Status(SharedMemoryKind::kCuda, "a").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SharedMemoryManagerTest, UnregisterWithAnEmptyNameRemovesEveryRegionAndUnknownIsFine) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "a")).ok());
  ASSERT_TRUE(manager->Add(Open(object, "b")).ok());
  EXPECT_EQ(manager->Unregister(SharedMemoryKind::kSystem, "nope"), 0);
  EXPECT_EQ(manager->Unregister(SharedMemoryKind::kCuda, ""), 0);
  EXPECT_EQ(manager->Unregister(SharedMemoryKind::kSystem, ""), 2);
  EXPECT_EQ(manager->size(), 0);
}

TEST(SharedMemoryManagerTest, AnUnregisteredRegionStaysMappedForWhoeverHoldsIt) {
  ShmObject object(64);
  object.data()[5] = 'q';
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "a")).ok());
  absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> held = manager->Find("a");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(manager->Unregister(SharedMemoryKind::kSystem, "a"), 1);
  absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> gone = manager->Find("a");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(gone.status().message(), "Unable to find shared memory region: 'a'");
  std::string scratch;
  EXPECT_EQ((*held)->Read(5, 1, scratch).value(), "q");
  EXPECT_TRUE((*held)->Write(6, "w").ok());
  EXPECT_EQ(object.data()[6], 'w');
}

TEST(SharedMemoryManagerTest, RefusesRegionsBeyondTheLimitUntilOneIsUnregistered) {
  ShmObject object(64);
  auto manager = Manager(/*max_regions=*/2);
  ASSERT_TRUE(manager->Add(Open(object, "a")).ok());
  ASSERT_TRUE(manager->Add(Open(object, "b")).ok());
  absl::Status full = manager->Add(Open(object, "c"));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("2 regions are registered"), absl::string_view::npos) << full;
  manager->Unregister(SharedMemoryKind::kSystem, "a");
  EXPECT_TRUE(manager->Add(Open(object, "c")).ok());
}

TEST(SharedMemoryManagerTest, ZeroRegionsTurnsTheExtensionOff) {
  auto manager = Manager(/*max_regions=*/0);
  EXPECT_EQ(manager->CheckCanAdd("a").code(), absl::StatusCode::kUnavailable);
}

// --- a request's tensors ---

void SetSlice(google::protobuf::Map<std::string, inference::InferParameter>& params,
              const std::string& region, int64_t offset, int64_t byte_size) {
  params["shared_memory_region"].set_string_param(region);
  params["shared_memory_offset"].set_int64_param(offset);
  params["shared_memory_byte_size"].set_int64_param(byte_size);
}

ModelInferRequest OneInputRequest() {
  ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("IN");
  input->set_datatype("FP32");
  input->add_shape(4);
  return request;
}

TEST(SharedMemoryTensorsTest, ARequestWithoutParametersResolvesToNothing) {
  auto resolved = SharedMemoryTensors::Resolve(nullptr, OneInputRequest());
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(*resolved, nullptr);
}

TEST(SharedMemoryTensorsTest, InputBytesAreAViewIntoTheRegionAtTheOffset) {
  ShmObject object(64);
  for (int i = 0; i < 64; ++i) object.data()[i] = static_cast<char>(i);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "r")).ok());
  ModelInferRequest request = OneInputRequest();
  request.add_inputs()->set_name("RAW");  // no parameters: stays in the message
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "r", 16, 16);
  auto resolved = SharedMemoryTensors::Resolve(manager.get(), request);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_NE(*resolved, nullptr);
  auto inputs = (*resolved)->inputs();
  ASSERT_EQ(inputs.size(), 2u);
  ASSERT_TRUE(inputs[0].has_value());
  EXPECT_FALSE(inputs[1].has_value());
  EXPECT_EQ(inputs[0]->bytes, absl::string_view(object.data() + 16, 16));
  EXPECT_EQ(inputs[0]->source, "shared memory region 'r' (offset 16, byte_size 16)");
}

TEST(SharedMemoryTensorsTest, MalformedParametersAreRefusedInTritonsWords) {
  ModelInferRequest offset_only = OneInputRequest();
  (*offset_only.mutable_inputs(0)->mutable_parameters())["shared_memory_offset"].set_int64_param(
      4);
  EXPECT_EQ(SharedMemoryTensors::Resolve(nullptr, offset_only).status().message(),
            "'shared_memory_offset' can not be specified without 'shared_memory_region' "
            "parameter for tensor 'IN'");

  ModelInferRequest no_size = OneInputRequest();
  (*no_size.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param(
      "r");
  EXPECT_EQ(SharedMemoryTensors::Resolve(nullptr, no_size).status().message(),
            "'shared_memory_byte_size' must be specified along with 'shared_memory_region' "
            "parameter for tensor 'IN'");

  ModelInferRequest wrong_type = OneInputRequest();
  auto& params = *wrong_type.mutable_inputs(0)->mutable_parameters();
  params["shared_memory_region"].set_string_param("r");
  params["shared_memory_byte_size"].set_string_param("16");
  absl::Status s = SharedMemoryTensors::Resolve(nullptr, wrong_type).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "invalid value type for 'shared_memory_byte_size' parameter for tensor 'IN', "
            "expected int64_param.");
}

TEST(SharedMemoryTensorsTest, AnUnknownRegionIsNotFoundNamingTheTensor) {
  auto manager = Manager();
  ModelInferRequest request = OneInputRequest();
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "nowhere", 0, 16);
  absl::Status s = SharedMemoryTensors::Resolve(manager.get(), request).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "Unable to find shared memory region: 'nowhere' (named by input 'IN')");
}

TEST(SharedMemoryTensorsTest, ASliceOutsideItsRegionIsRefusedBeforeAnythingIsRead) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "r")).ok());
  ModelInferRequest request = OneInputRequest();
  SetSlice(*request.mutable_inputs(0)->mutable_parameters(), "r", 56, 16);
  absl::Status s = SharedMemoryTensors::Resolve(manager.get(), request).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Invalid offset + byte size for shared memory region: 'r' (input 'IN': offset 56, "
            "byte_size 16; the region holds 64 bytes)");
}

// A request asking for output OUT in region `region` at `offset`, `byte_size` bytes.
ModelInferRequest OutputRequest(int64_t offset, int64_t byte_size) {
  ModelInferRequest request = OneInputRequest();
  auto* output = request.add_outputs();
  output->set_name("OUT");
  SetSlice(*output->mutable_parameters(), "r", offset, byte_size);
  return request;
}

// A response with output OUT (FP32 [shape]) whose bytes are `bytes`.
ModelInferResponse Response(int64_t shape, const std::string& bytes) {
  ModelInferResponse response;
  auto* output = response.add_outputs();
  output->set_name("OUT");
  output->set_datatype("FP32");
  output->add_shape(shape);
  response.add_raw_output_contents(bytes);
  return response;
}

TEST(SharedMemoryTensorsTest, OutputsAreWrittenIntoTheRegionAndLeaveAnEmptyRawEntry) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "r")).ok());
  auto resolved = SharedMemoryTensors::Resolve(manager.get(), OutputRequest(8, 32));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ModelInferResponse response = Response(4, "0123456789abcdef");
  ASSERT_TRUE((*resolved)->CheckOutputsFit(response).ok());
  ASSERT_TRUE((*resolved)->WriteOutputs(response).ok());
  EXPECT_EQ(std::string(object.data() + 8, 16), "0123456789abcdef");
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.raw_output_contents(0), "");
  const auto& params = response.outputs(0).parameters();
  EXPECT_EQ(params.at("shared_memory_region").string_param(), "r");
  EXPECT_EQ(params.at("shared_memory_offset").int64_param(), 8);
  EXPECT_EQ(params.at("shared_memory_byte_size").int64_param(), 16);
}

TEST(SharedMemoryTensorsTest, AnOutputLargerThanItsSliceIsRefusedBeforeAndAfterCompute) {
  ShmObject object(64);
  auto manager = Manager();
  ASSERT_TRUE(manager->Add(Open(object, "r")).ok());
  auto resolved = SharedMemoryTensors::Resolve(manager.get(), OutputRequest(0, 12));
  ASSERT_TRUE(resolved.ok());
  ModelInferResponse response = Response(4, std::string(16, 'x'));
  absl::Status before = (*resolved)->CheckOutputsFit(response);
  EXPECT_EQ(before.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(before.message(),
            "shared memory size specified with the request for output 'OUT' (12 bytes) should be "
            "at least 16 bytes to hold the results (region 'r', offset 0)");
  // A variable-size output (-1) is only known after compute.
  ModelInferResponse variable = Response(-1, std::string(16, 'x'));
  EXPECT_TRUE((*resolved)->CheckOutputsFit(variable).ok());
  EXPECT_EQ((*resolved)->WriteOutputs(variable).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(object.data()[0], '\0');  // nothing written
}

}  // namespace
}  // namespace coalesce
