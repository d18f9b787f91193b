// ParseInferRequest() (server/wire_messages.h): it reads what protobuf reads from the whole
// message however gRPC sliced it, views each raw_input_contents entry that lies whole in one
// slice where it lies (no copy before the gather), copies only one that straddles slices, and
// gives bytes that are not a request the same error in every split.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "proto/inference.pb.h"
#include "server/wire_messages.h"
#include "tests/raw_calls.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;

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

}  // namespace
}  // namespace coalesce
