// The inference calls' own handling of their bytes (server/wire_messages.h).
//
// Requests: ParseInferRequest() reads what protobuf reads from the whole message however gRPC
// sliced it, views each raw_input_contents entry that lies whole in one slice where it lies (no
// copy before the gather) and copies only one that straddles slices; bytes that are not a
// request get the same error in every split.
//
// Answers serialized from WireOutputs (the executor's scatter writing into the slices gRPC sends)
// are the bytes protobuf writes for the same message with raw_output_contents filled in, as the
// server answered before: Triton's clients parse them. Checked on the serializer alone and over
// loopback, for ModelInfer and ModelStreamInfer, with raw and typed-contents requests, several
// outputs (one FP16-staged), a subset of outputs and error answers.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "execution/backend.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "proto/inference.pb.h"
#include "server/wire_messages.h"
#include "tests/raw_calls.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;

std::string Flatten(const grpc::ByteBuffer& bytes) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(bytes.Dump(&slices).ok());
  std::string flat;
  for (const grpc::Slice& slice : slices) {
    flat.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return flat;
}

// `size` bytes counting up from `first`.
std::string Pattern(size_t size, int first) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(first + i);
  return bytes;
}

// A response with every field of ModelInferResponse but raw_output_contents set.
ModelInferResponse Fields() {
  ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("7");
  response.set_id("request-1");
  (*response.mutable_parameters())["p"].set_int64_param(3);
  for (const char* name : {"A", "B", "C", "D"}) {
    auto* output = response.add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(2);
    output->add_shape(-1);
  }
  return response;
}

// Serializes `response` with `contents` as WireOutputs, as the server now does, and with them in
// raw_output_contents, as it did before; the bytes must be the same.
void ExpectSameBytes(const std::vector<std::string>& contents, bool in_stream) {
  ModelInferResponse fields = Fields();
  WireOutputs outputs;
  for (const std::string& content : contents) {
    char* memory = outputs.Add()->Allocate(static_cast<int64_t>(content.size()));
    if (!content.empty()) std::memcpy(memory, content.data(), content.size());
  }
  grpc::ByteBuffer wire;
  ASSERT_TRUE(outputs.Serialize(fields, in_stream, &wire).ok());

  ModelStreamInferResponse whole;
  ModelInferResponse& old = *whole.mutable_infer_response();
  old = fields;
  for (const std::string& content : contents) old.add_raw_output_contents(content);
  const std::string expected = in_stream ? whole.SerializeAsString() : old.SerializeAsString();
  EXPECT_EQ(Flatten(wire), expected);
  // And protobuf reads back every entry.
  ModelStreamInferResponse parsed;
  ASSERT_TRUE(in_stream ? parsed.ParseFromString(Flatten(wire))
                        : parsed.mutable_infer_response()->ParseFromString(Flatten(wire)));
  ASSERT_EQ(parsed.infer_response().raw_output_contents_size(), static_cast<int>(contents.size()));
  for (size_t k = 0; k < contents.size(); ++k) {
    EXPECT_EQ(parsed.infer_response().raw_output_contents(k), contents[k]);
  }
}

TEST(WireOutputsTest, SerializesAsProtobufDoes) {
  // Lengths whose varints take 1, 2 and 3 bytes, an empty entry, and none at all; in and out of
  // a stream's envelope (whose own length then takes 3 bytes).
  const std::vector<std::vector<std::string>> cases = {
      {}, {Pattern(0, 0)}, {Pattern(5, 1)}, {Pattern(300, 2), Pattern(0, 3), Pattern(70000, 4)},
      {Pattern(127, 5), Pattern(128, 6), Pattern(16383, 7), Pattern(16384, 8)}};
  for (const auto& contents : cases) {
    for (bool in_stream : {false, true}) {
      SCOPED_TRACE(absl::StrCat(contents.size(), " outputs, in_stream ", in_stream));
      ExpectSameBytes(contents, in_stream);
    }
  }
}

TEST(WireOutputsTest, MoveIntoPutsTheEntriesInTheMessage) {
  WireOutputs outputs;
  std::memcpy(outputs.Add()->Allocate(3), "abc", 3);
  outputs.Add()->Allocate(0);
  ModelInferResponse response;
  outputs.MoveInto(&response);
  EXPECT_EQ(outputs.size(), 0);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.raw_output_contents(0), "abc");
  EXPECT_EQ(response.raw_output_contents(1), "");
}

TEST(WireOutputsTest, AllocatedMemoryIsAlignedForAnyElement) {
  WireOutputs outputs;
  for (int64_t bytes : {1, 4, 12, 4096}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(outputs.Add()->Allocate(bytes)) % 16, 0u);
  }
}

// A request as a client's bytes, built piece by piece (serialized messages one after another
// parse as one, merged), with where each raw_input_contents entry's content lies in them.
struct WireRequest {
  void Add(const ModelInferRequest& fields) { bytes += fields.SerializeAsString(); }
  void AddRaw(const std::string& content) {
    ModelInferRequest entry;
    entry.add_raw_input_contents(content);
    bytes += entry.SerializeAsString();
    raw.emplace_back(bytes.size() - content.size(), bytes.size());
  }

  std::string bytes;
  // [begin, end) of each entry's content in `bytes`, in order.
  std::vector<std::pair<size_t, size_t>> raw;
};

// What a client sends, as protobuf writes it (raw_input_contents last): several inputs with
// parameters, request parameters and outputs, and raw entries whose lengths take 1, 2 and 3
// bytes, one of them empty.
WireRequest Typical() {
  ModelInferRequest fields;
  fields.set_model_name("model");
  fields.set_model_version("3");
  fields.set_id("request-42");
  (*fields.mutable_parameters())["priority"].set_int64_param(2);
  (*fields.mutable_parameters())["timeout"].set_int64_param(5000);
  (*fields.mutable_parameters())["tag"].set_string_param("abc");
  for (const char* name : {"A", "B", "C", "D"}) {
    auto* input = fields.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(-1);
    (*input->mutable_parameters())["binary"].set_bool_param(true);
  }
  auto* output = fields.add_outputs();
  output->set_name("Y");
  (*output->mutable_parameters())["classification"].set_int64_param(3);
  WireRequest request;
  request.Add(fields);
  request.AddRaw(Pattern(100, 1));
  request.AddRaw(Pattern(0, 0));
  request.AddRaw(Pattern(20000, 2));
  request.AddRaw(Pattern(3, 3));
  return request;
}

// A request whose raw_input_contents lie between its other fields (protobuf writes them last; a
// client may not), with a field this version does not know (a tag of two bytes). `large`: the
// size of its last entry.
WireRequest Interleaved(size_t large) {
  ModelInferRequest head;
  head.set_model_name("m");
  head.set_id("id-1");
  ModelInferRequest tail;
  auto* input = tail.add_inputs();
  input->set_name("X");
  input->set_datatype("FP32");
  input->add_shape(1);
  (*tail.mutable_parameters())["priority"].set_int64_param(2);
  tail.add_outputs()->set_name("Y");
  WireRequest request;
  request.AddRaw(Pattern(150, 1));
  request.Add(head);
  request.bytes += "\xa0\x06\x05";  // Field 100, varint 5.
  request.AddRaw(Pattern(0, 0));
  request.AddRaw(Pattern(large, 2));
  request.Add(tail);
  return request;
}

// `message` serialized with its maps in key order, so that equal messages give equal bytes.
std::string Canonical(const ModelInferRequest& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream output(&stream);
    output.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&output);
  }
  return bytes;
}

// What protobuf reads from the whole of some bytes: the message without raw_input_contents,
// serialized canonically, and those apart.
struct ProtobufReads {
  explicit ProtobufReads(const std::string& bytes) {
    ModelInferRequest message;
    parses = message.ParseFromString(bytes);
    raw.assign(message.raw_input_contents().begin(), message.raw_input_contents().end());
    message.clear_raw_input_contents();
    fields = Canonical(message);
  }

  bool parses;
  std::string fields;
  std::vector<std::string> raw;
};

testing::AssertionResult SameAs(const ProtobufReads& expected, const ParsedInferRequest& parsed) {
  if (parsed.message().raw_input_contents_size() != 0) {
    return testing::AssertionFailure() << "the message holds raw_input_contents";
  }
  if (Canonical(parsed.message()) != expected.fields) {
    return testing::AssertionFailure() << "fields differ: " << parsed.message().DebugString();
  }
  if (parsed.raw_inputs().size() != expected.raw.size()) {
    return testing::AssertionFailure() << parsed.raw_inputs().size() << " raw inputs, not "
                                       << expected.raw.size();
  }
  for (size_t k = 0; k < expected.raw.size(); ++k) {
    if (parsed.raw_inputs()[k] != expected.raw[k]) {
      return testing::AssertionFailure() << "raw input " << k << " differs";
    }
  }
  return testing::AssertionSuccess();
}

// The error a request that does not parse gets, as before.
absl::Status NotARequest(size_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat(
      "request is not a valid ModelInferRequest: ", bytes, " bytes that do not parse as one"));
}

// Some bytes as gRPC hands them over, in slices cut at `cuts` (ascending). Each slice is a
// static slice over a copy of its part, apart from the others (gRPC would merge adjacent static
// slices), so that the address of a raw input tells where it was read: in place, or in a copy.
// The slices hold no reference: a buffer from Buffer() must not outlive this object.
class SlicedBytes {
 public:
  SlicedBytes(const std::string& bytes, std::vector<size_t> cuts) : begins_(std::move(cuts)) {
    begins_.insert(begins_.begin(), 0);
    for (size_t k = 0; k < begins_.size(); ++k) {
      const size_t end = k + 1 < begins_.size() ? begins_[k + 1] : bytes.size();
      // A byte more than the part, so that no two parts' memory meets.
      parts_.push_back(std::make_unique<char[]>(end - begins_[k] + 1));
      std::memcpy(parts_.back().get(), bytes.data() + begins_[k], end - begins_[k]);
      slices_.emplace_back(parts_.back().get(), end - begins_[k], grpc::Slice::STATIC_SLICE);
    }
  }

  grpc::ByteBuffer Buffer() const { return grpc::ByteBuffer(slices_.data(), slices_.size()); }
  // Where the byte at `position` lies in the slices.
  const char* At(size_t position) const {
    size_t k = begins_.size() - 1;
    while (begins_[k] > position || (begins_[k] == position && k > 0 && Empty(k))) --k;
    return parts_[k].get() + (position - begins_[k]);
  }
  // Whether `view` lies in one slice.
  bool InOneSlice(absl::string_view view) const {
    for (const grpc::Slice& slice : slices_) {
      const char* begin = reinterpret_cast<const char*>(slice.begin());
      if (view.data() >= begin && view.data() + view.size() <= begin + slice.size()) return true;
    }
    return false;
  }

 private:
  bool Empty(size_t k) const { return slices_[k].size() == 0; }

  std::vector<size_t> begins_;
  std::vector<std::unique_ptr<char[]>> parts_;
  std::vector<grpc::Slice> slices_;
};

// Cuts every `size` bytes of `total`.
std::vector<size_t> EveryBytes(size_t size, size_t total) {
  std::vector<size_t> cuts;
  for (size_t cut = size; cut < total; cut += size) cuts.push_back(cut);
  return cuts;
}

// How many of `request`'s non-empty raw entries `cuts` leave whole in one slice.
int WholeEntries(const WireRequest& request, const std::vector<size_t>& cuts) {
  int whole = 0;
  for (const auto& [begin, end] : request.raw) {
    bool cut = false;
    for (size_t at : cuts) cut = cut || (begin < at && at < end);
    whole += begin < end && !cut;
  }
  return whole;
}

// Parses `request` cut at `cuts`: what protobuf reads from the whole, each non-empty entry whole
// in one slice viewed where it lies there, and `whole` (when given) of them.
testing::AssertionResult ParsesInPlace(const WireRequest& request, const ProtobufReads& expected,
                                       const std::vector<size_t>& cuts, int whole = -1) {
  const SlicedBytes sliced(request.bytes, cuts);
  grpc::ByteBuffer buffer = sliced.Buffer();
  ParsedInferRequest parsed;
  if (absl::Status status = ParseInferRequest(buffer, &parsed); !status.ok()) {
    return testing::AssertionFailure() << status;
  }
  if (buffer.Length() != 0) return testing::AssertionFailure() << "the bytes were not consumed";
  if (testing::AssertionResult same = SameAs(expected, parsed); !same) return same;
  int viewed = 0;
  for (size_t k = 0; k < request.raw.size(); ++k) {
    const absl::string_view raw = parsed.raw_inputs()[k];
    if (raw.empty() || !sliced.InOneSlice(raw)) continue;
    if (raw.data() != sliced.At(request.raw[k].first)) {
      return testing::AssertionFailure() << "raw input " << k << " viewed at the wrong place";
    }
    ++viewed;
  }
  const int expected_whole = WholeEntries(request, cuts);
  if (viewed != expected_whole || (whole >= 0 && viewed != whole)) {
    return testing::AssertionFailure() << viewed << " entries viewed in place, "
                                       << expected_whole << " whole in one slice";
  }
  return testing::AssertionSuccess();
}

TEST(ParseInferRequestTest, OneSliceIsReadInPlace) {
  for (const WireRequest& request : {Typical(), Interleaved(70000)}) {
    const ProtobufReads expected(request.bytes);
    ASSERT_TRUE(expected.parses);
    // Every non-empty entry viewed where it lies.
    EXPECT_TRUE(ParsesInPlace(request, expected, {}, request.raw.size() - 1));
  }
}

TEST(ParseInferRequestTest, EveryCutIsReadAsProtobufReadsTheWhole) {
  // Two slices cut at every position: inside a tag, a length, an entry, a nested message.
  for (const WireRequest& request : {Typical(), Interleaved(20000)}) {
    const ProtobufReads expected(request.bytes);
    ASSERT_TRUE(expected.parses);
    for (size_t cut = 0; cut <= request.bytes.size(); ++cut) {
      ASSERT_TRUE(ParsesInPlace(request, expected, {cut})) << "cut at " << cut;
    }
  }
}

TEST(ParseInferRequestTest, ManySmallSlicesAreReadAsProtobufReadsTheWhole) {
  // Slices smaller than a tag or length, and slices that leave some entries whole.
  for (const WireRequest& request : {Typical(), Interleaved(20000)}) {
    const ProtobufReads expected(request.bytes);
    ASSERT_TRUE(expected.parses);
    for (size_t size : {1, 2, 3, 5, 16, 150, 4096, 16384}) {
      EXPECT_TRUE(ParsesInPlace(request, expected, EveryBytes(size, request.bytes.size())))
          << "slices of " << size;
    }
  }
}

TEST(ParseInferRequestTest, OnlyAnEntryAcrossSlicesIsCopied) {
  // Typical()'s entries: 100, 0, 20000 and 3 bytes. Cuts inside the large one copy it alone;
  // cuts between entries (and inside a length) copy none.
  const WireRequest request = Typical();
  const ProtobufReads expected(request.bytes);
  const auto [large_begin, large_end] = request.raw[2];
  EXPECT_TRUE(ParsesInPlace(request, expected, {large_begin + 8000, large_begin + 16000}, 2));
  EXPECT_TRUE(
      ParsesInPlace(request, expected, {request.raw[0].second, large_begin - 1, large_end}, 3));
}

// Parses `bytes` in one slice, in every split into two and in slices of one byte; each must
// give the same answer: what protobuf reads, or the error for bytes that are not a request.
void ExpectSameAnswerInEverySplit(const std::string& bytes) {
  const ProtobufReads expected(bytes);
  std::vector<std::vector<size_t>> splits = {{}, EveryBytes(1, bytes.size())};
  for (size_t cut = 0; cut <= bytes.size(); ++cut) splits.push_back({cut});
  for (const std::vector<size_t>& cuts : splits) {
    const SlicedBytes sliced(bytes, cuts);
    grpc::ByteBuffer buffer = sliced.Buffer();
    ParsedInferRequest parsed;
    const absl::Status status = ParseInferRequest(buffer, &parsed);
    const std::string split = cuts.size() == 1 ? absl::StrCat("cut at ", cuts[0])
                                               : absl::StrCat(cuts.size() + 1, " slices");
    if (expected.parses) {
      ASSERT_TRUE(status.ok()) << split << ": " << status;
      ASSERT_TRUE(SameAs(expected, parsed)) << split;
    } else {
      ASSERT_EQ(status, NotARequest(bytes.size())) << split;
      ASSERT_TRUE(parsed.raw_inputs().empty()) << split;
      ASSERT_EQ(parsed.message().ByteSizeLong(), 0u) << split;
    }
  }
}

TEST(ParseInferRequestTest, TruncatedRequestsAreRefusedInEverySplit) {
  // Cut short anywhere: inside a tag (of one byte or two), a length, an entry, a nested message.
  // Where the cut falls between fields the rest is a request, as protobuf reads it.
  const std::string whole = Interleaved(130).bytes;
  int refused = 0;
  for (size_t size = 0; size < whole.size(); ++size) {
    SCOPED_TRACE(absl::StrCat("the first ", size, " bytes"));
    ExpectSameAnswerInEverySplit(whole.substr(0, size));
    refused += !ProtobufReads(whole.substr(0, size)).parses;
  }
  EXPECT_GT(refused, static_cast<int>(whole.size()) * 9 / 10);
}

TEST(ParseInferRequestTest, BytesThatAreNoRequestAreRefusedInEverySplit) {
  const std::string valid = Interleaved(10).bytes;
  const std::vector<std::string> cases = {
      std::string(kNotAProtobuf),
      // raw_input_contents of 2^32 - 1 bytes: more than INT_MAX.
      std::string("\x3a\xff\xff\xff\xff\x0f", 6),
      // raw_input_contents longer than what follows.
      std::string("\x3a\x05" "abcd", 6),
      // A tag of field 0: alone, after a request, and followed by more.
      std::string("\x00", 1), valid + std::string("\x00", 1), std::string("\x00\x01", 2),
      // A tag cut short after a request (field 100's, of two bytes).
      valid + "\xa0",
      // Varints of 11 bytes: a tag, and raw_input_contents' length.
      std::string(10, '\x80') + "\x01", "\x3a" + std::string(10, '\x80') + "\x01",
      // Wire types 4 (a group's end, with no start), 6 and 7.
      std::string("\x0c", 1), std::string("\x0e", 1), std::string("\x0f", 1)};
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE(absl::StrCat("case ", k));
    ASSERT_FALSE(ProtobufReads(cases[k]).parses);
    ExpectSameAnswerInEverySplit(cases[k]);
  }
}

// Echoes each input to the output of the same index through the staging layouts given: an
// FP16-staged tensor is narrowed while gathered and widened while scattered.
class StagedEchoBackend : public Backend {
 public:
  StagedEchoBackend(ModelMetadata metadata, std::vector<const StagingLayout*> layouts)
      : metadata_(std::move(metadata)), layouts_(std::move(layouts)) {}
  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::memcpy(outputs[i], inputs[i],
                  rows * layouts_[i]->StagedBytes(metadata_.inputs[i].RowBytes()));
    }
    return absl::OkStatus();
  }
  const StagingLayout& InputStaging(int i) const override { return *layouts_[i]; }
  const StagingLayout& OutputStaging(int o) const override { return *layouts_[o]; }
  std::string DeviceDescription() const override { return "staged memcpy"; }

 private:
  const ModelMetadata metadata_;
  const std::vector<const StagingLayout*> layouts_;
};

// HALF is FP16-staged; WHOLE and COUNT travel as they are.
ModelMetadata ThreeTensors() {
  ModelMetadata metadata;
  metadata.name = "three";
  metadata.max_batch_size = 8;
  metadata.inputs = {{"HALF_IN", DataType::kFp32, {4}},
                     {"WHOLE_IN", DataType::kFp32, {3}},
                     {"COUNT_IN", DataType::kInt64, {2}}};
  metadata.outputs = {{"HALF", DataType::kFp32, {4}},
                      {"WHOLE", DataType::kFp32, {3}},
                      {"COUNT", DataType::kInt64, {2}}};
  return metadata;
}

// Values exact in FP16, so the staged round trip keeps them.
const std::vector<float> kHalf = {0.5f, -1.25f, 3.0f, 1024.0f, 2.0f, -0.75f, 6.5f, 0.0f};
const std::vector<float> kWhole = {0.1f, 1e-8f, 123456.789f, -7.0f, 3.14159f, 2.71828f};
const std::vector<int64_t> kCount = {1, -2, 1LL << 40, 4};

template <typename T>
std::string BytesOfValues(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A two-row request for `three`; `typed`: the inputs in typed contents, not raw bytes.
// `asked`: the outputs requested by name (all when empty).
ModelInferRequest Request(bool typed, const std::vector<std::string>& asked) {
  ModelInferRequest request;
  request.set_model_name("three");
  request.set_id(typed ? "typed" : "raw");
  const auto add = [&](const char* name, const char* datatype, int64_t width) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    input->add_shape(2);
    input->add_shape(width);
    return input;
  };
  auto* half = add("HALF_IN", "FP32", 4);
  auto* whole = add("WHOLE_IN", "FP32", 3);
  auto* count = add("COUNT_IN", "INT64", 2);
  if (typed) {
    for (float v : kHalf) half->mutable_contents()->add_fp32_contents(v);
    for (float v : kWhole) whole->mutable_contents()->add_fp32_contents(v);
    for (int64_t v : kCount) count->mutable_contents()->add_int64_contents(v);
  } else {
    request.add_raw_input_contents(BytesOfValues(kHalf));
    request.add_raw_input_contents(BytesOfValues(kWhole));
    request.add_raw_input_contents(BytesOfValues(kCount));
  }
  for (const std::string& name : asked) request.add_outputs()->set_name(name);
  return request;
}

// The answer the server gave before WireOutputs: the message with raw_output_contents filled in.
ModelInferResponse ExpectedAnswer(const ModelInferRequest& request,
                                  const std::vector<std::string>& asked) {
  ModelInferResponse response;
  response.set_model_name("three");
  response.set_model_version("1");
  response.set_id(request.id());
  struct Output {
    const char* name;
    const char* datatype;
    int64_t width;
    std::string bytes;
  };
  const std::vector<Output> all = {{"HALF", "FP32", 4, BytesOfValues(kHalf)},
                                   {"WHOLE", "FP32", 3, BytesOfValues(kWhole)},
                                   {"COUNT", "INT64", 2, BytesOfValues(kCount)}};
  // The outputs asked for in the order asked, else all in the model's order.
  std::vector<const Output*> answered;
  for (const Output& output : all) answered.push_back(&output);
  if (!asked.empty()) {
    answered.clear();
    for (const std::string& name : asked) {
      for (const Output& output : all) {
        if (output.name == name) answered.push_back(&output);
      }
    }
  }
  for (const Output* each : answered) {
    const Output& output = *each;
    auto* tensor = response.add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(output.datatype);
    tensor->add_shape(2);
    tensor->add_shape(output.width);
    response.add_raw_output_contents(output.bytes);
  }
  return response;
}

class WireAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartLoopbackServer(
        std::make_unique<StagedEchoBackend>(
            ThreeTensors(), std::vector<const StagingLayout*>{&StagingLayout::Fp16(),
                                                              &StagingLayout::Wire(),
                                                              &StagingLayout::Wire()}),
        ServedModel::Options());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

const std::vector<std::vector<std::string>> kAsked = {{}, {"COUNT", "HALF"}, {"WHOLE"}};

TEST_F(WireAnswerTest, ModelInferAnswersTheBytesProtobufWrites) {
  for (bool typed : {false, true}) {
    for (const auto& asked : kAsked) {
      SCOPED_TRACE(absl::StrCat(typed ? "typed" : "raw", ", ", asked.size(), " asked"));
      const ModelInferRequest request = Request(typed, asked);
      grpc::ClientContext context;
      grpc::ByteBuffer answer;
      grpc::Status status =
          RawUnaryCall(channel_, &context, "ModelInfer", BytesOf(request), &answer);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(Flatten(answer), ExpectedAnswer(request, asked).SerializeAsString());
    }
  }
  // An error answers a status and no message.
  ModelInferRequest bad = Request(false, {});
  bad.mutable_inputs(1)->set_shape(1, 5);
  grpc::ClientContext context;
  grpc::ByteBuffer answer;
  grpc::Status status = RawUnaryCall(channel_, &context, "ModelInfer", BytesOf(bad), &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WireAnswerTest, ModelStreamInferAnswersTheBytesProtobufWrites) {
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = RawModelStreamInfer(channel_, &context);
  // One at a time, so that the answers come back in order.
  for (bool typed : {false, true}) {
    for (const auto& asked : kAsked) {
      SCOPED_TRACE(absl::StrCat(typed ? "typed" : "raw", ", ", asked.size(), " asked"));
      const ModelInferRequest request = Request(typed, asked);
      ASSERT_TRUE(stream->Write(BytesOf(request)));
      grpc::ByteBuffer answer;
      ASSERT_TRUE(stream->Read(&answer));
      ModelStreamInferResponse expected;
      *expected.mutable_infer_response() = ExpectedAnswer(request, asked);
      EXPECT_EQ(Flatten(answer), expected.SerializeAsString());
    }
  }
  // An error answer: the message in error_message, the request's names and id, no outputs.
  ModelInferRequest bad = Request(false, {});
  bad.set_id("bad");
  bad.mutable_inputs(1)->set_shape(1, 5);
  ASSERT_TRUE(stream->Write(BytesOf(bad)));
  grpc::ByteBuffer answer;
  ASSERT_TRUE(stream->Read(&answer));
  ModelStreamInferResponse parsed;
  ASSERT_TRUE(ParseBytes(answer, &parsed));
  EXPECT_FALSE(parsed.error_message().empty());
  ModelStreamInferResponse expected;
  expected.set_error_message(parsed.error_message());
  expected.mutable_infer_response()->set_model_name("three");
  expected.mutable_infer_response()->set_id("bad");
  EXPECT_EQ(Flatten(answer), expected.SerializeAsString());
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace coalesce
