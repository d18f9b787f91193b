#include "server/wire_messages.h"

#include <algorithm>
#include <climits>
#include <new>
#include <optional>
#include <string>

#include <grpc/slice.h>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace coalesce {
namespace {

using google::protobuf::io::CodedOutputStream;

// The tag of a length-delimited field (wire type 2).
constexpr uint8_t LengthDelimitedTag(int field) { return static_cast<uint8_t>(field << 3 | 2); }
constexpr uint8_t kInferResponseTag = LengthDelimitedTag(2);     // ModelStreamInferResponse.
constexpr uint8_t kRawOutputContentsTag = LengthDelimitedTag(6);  // ModelInferResponse.
constexpr uint8_t kRawInputContentsTag = LengthDelimitedTag(7);   // ModelInferRequest.

// Bytes of a length-delimited field's tag and length for `bytes` bytes of content.
size_t FieldHeaderBytes(size_t bytes) { return 1 + CodedOutputStream::VarintSize64(bytes); }

uint8_t* WriteFieldHeader(uint8_t tag, size_t bytes, uint8_t* out) {
  *out++ = tag;
  return CodedOutputStream::WriteVarint64ToArray(bytes, out);
}

void DeleteBytes(void* bytes) { ::operator delete(bytes); }

}  // namespace

void ParsedInferRequest::Clear() {
  message_.Clear();
  raw_inputs_.clear();
  copied_.clear();
  slices_.clear();
}

namespace {

// The received slices as one stream of bytes: a CodedInputStream reads tags and lengths through
// it wherever they fall, and the bytes between two of its positions are viewed where they lie
// when one slice holds them all.
class ReceivedBytes final : public google::protobuf::io::ZeroCopyInputStream {
 public:
  // `slices` must outlive this object. Their total size must be at most INT_MAX.
  explicit ReceivedBytes(const std::vector<grpc::Slice>& slices) : slices_(slices) {
    ends_.reserve(slices.size());
    int64_t end = 0;
    for (const grpc::Slice& slice : slices) ends_.push_back(end += slice.size());
  }

  // The bytes in [begin, end), if one slice holds them all.
  std::optional<absl::string_view> View(int64_t begin, int64_t end) const {
    // The first slice that reaches `end`; an earlier one ends before it.
    const size_t k = std::lower_bound(ends_.begin(), ends_.end(), end) - ends_.begin();
    if (k == ends_.size() || Start(k) > begin) return std::nullopt;
    return absl::string_view(Data(k) + (begin - Start(k)), end - begin);
  }

  // Appends the bytes in [begin, end) to `out`, from as many slices as hold them.
  void AppendTo(int64_t begin, int64_t end, std::string* out) const {
    for (size_t k = SliceAt(begin); begin < end; ++k) {
      const int64_t stop = std::min(end, ends_[k]);
      if (stop > begin) out->append(Data(k) + (begin - Start(k)), stop - begin);
      begin = stop;
    }
  }

  bool Next(const void** data, int* size) override {
    if (position_ == Size()) return false;
    const size_t k = SliceAt(position_);
    *data = Data(k) + (position_ - Start(k));
    *size = static_cast<int>(ends_[k] - position_);
    position_ = ends_[k];
    return true;
  }
  void BackUp(int count) override { position_ -= count; }
  bool Skip(int count) override {
    if (count > Size() - position_) {
      position_ = Size();
      return false;
    }
    position_ += count;
    return true;
  }
  int64_t ByteCount() const override { return position_; }

 private:
  int64_t Size() const { return ends_.empty() ? 0 : ends_.back(); }
  int64_t Start(size_t k) const { return k == 0 ? 0 : ends_[k - 1]; }
  const char* Data(size_t k) const { return reinterpret_cast<const char*>(slices_[k].begin()); }
  // The slice holding the byte at `position` (< Size()).
  size_t SliceAt(int64_t position) const {
    return std::upper_bound(ends_.begin(), ends_.end(), position) - ends_.begin();
  }

  const std::vector<grpc::Slice>& slices_;
  // ends_[k]: the position just past slice k.
  std::vector<int64_t> ends_;
  // Where Next() continues.
  int64_t position_ = 0;
};

}  // namespace

absl::Status ParseInferRequest(grpc::ByteBuffer& bytes, ParsedInferRequest* request) {
  request->Clear();
  const size_t size = bytes.Length();
  std::vector<grpc::Slice> slices;
  // Protobuf parses no message over INT_MAX bytes.
  bool parsed = bytes.Dump(&slices).ok() && size <= static_cast<size_t>(INT_MAX);
  bytes.Clear();
  if (parsed) {
    // The fields other than raw_input_contents (names, shapes, parameters: small) are copied
    // out and parsed by protobuf; each raw_input_contents entry is viewed where it lies, or,
    // when it straddles slices (a message larger than what gRPC reads at once), copied once.
    // Protobuf appends a repeated field's entries in the order they come, so parsing the rest
    // apart from them reads the message as one parse would. The walk is the same whatever the
    // slices: the CodedInputStream reads a tag or length across a slice boundary.
    ReceivedBytes received(slices);
    google::protobuf::io::CodedInputStream input(&received);
    std::string rest;
    while (parsed) {
      const int start = input.CurrentPosition();
      const uint32_t tag = input.ReadTag();
      if (tag == 0) {
        // The end, or bytes protobuf refuses too: a tag of field 0, a tag cut short.
        parsed = start == static_cast<int>(size);
        break;
      }
      if (tag == kRawInputContentsTag) {
        uint32_t length = 0;
        // Skip() fails for a length past the end.
        parsed = input.ReadVarint32(&length) && length <= static_cast<uint32_t>(INT_MAX) &&
                 input.Skip(static_cast<int>(length));
        if (parsed) {
          const int64_t end = input.CurrentPosition();
          std::optional<absl::string_view> view = received.View(end - length, end);
          if (!view.has_value()) {
            std::string& copy = request->copied_.emplace_back();
            copy.reserve(length);
            received.AppendTo(end - length, end, &copy);
            view = copy;
          }
          request->raw_inputs_.push_back(*view);
        }
        continue;
      }
      parsed = google::protobuf::internal::WireFormatLite::SkipField(&input, tag);
      if (parsed) received.AppendTo(start, input.CurrentPosition(), &rest);
    }
    parsed = parsed && request->message_.ParseFromString(rest);
  }
  if (parsed) {
    request->slices_ = std::move(slices);
    return absl::OkStatus();
  }
  // Whatever parsed before the bad part (an id, say) may be wrong too.
  request->Clear();
  // Protobuf says no more than that the bytes do not parse (proto3 has no required fields).
  return absl::InvalidArgumentError(absl::StrCat(
      "request is not a valid ModelInferRequest: ", size, " bytes that do not parse as one"));
}

absl::Status SerializeMessage(const google::protobuf::MessageLite& message,
                              grpc::ByteBuffer* bytes) {
  bool own_buffer = false;
  grpc::Status status =
      grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(message, bytes,
                                                                          &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot serialize the answer: ",
                                          status.error_message()));
}

}  // namespace coalesce

namespace coalesce {

char* WireOutputs::Entry::Allocate(int64_t bytes) {
  // operator new's memory is aligned for any element type (16 bytes), which a slice's own
  // allocation (grpc_slice_malloc) does not promise; the slice frees it with its last reference,
  // which gRPC may hold after the call has gone.
  void* memory = ::operator new(static_cast<size_t>(bytes));
  slice = grpc::Slice(memory, static_cast<size_t>(bytes), &DeleteBytes);
  return static_cast<char*>(memory);
}

OutputBuffer* WireOutputs::Add() {
  entries_.push_back(std::make_unique<Entry>());
  return entries_.back().get();
}

void WireOutputs::MoveInto(inference::ModelInferResponse* response) {
  for (const std::unique_ptr<Entry>& entry : entries_) {
    response->add_raw_output_contents()->assign(reinterpret_cast<const char*>(entry->slice.begin()),
                                               entry->slice.size());
  }
  entries_.clear();
}

absl::Status WireOutputs::Serialize(const inference::ModelInferResponse& response, bool in_stream,
                                    grpc::ByteBuffer* bytes) const {
  const size_t fields = response.ByteSizeLong();
  size_t message = fields;
  for (const std::unique_ptr<Entry>& entry : entries_) {
    message += FieldHeaderBytes(entry->slice.size()) + entry->slice.size();
  }
  const size_t prefix = in_stream ? FieldHeaderBytes(message) : 0;
  if (prefix + message > static_cast<size_t>(INT_MAX)) {
    return absl::InternalError(absl::StrCat("cannot serialize the answer: ", prefix + message,
                                            " bytes, more than protobuf's limit"));
  }
  // The first slice holds the stream's field header, the response's other fields and the first
  // entry's field header; each later entry's header gets a small slice of its own before it.
  std::vector<grpc::Slice> slices;
  slices.reserve(2 * entries_.size() + 1);
  const auto add_slice = [&slices](size_t size, auto write) {
    grpc_slice slice = grpc_slice_malloc(size);
    write(GRPC_SLICE_START_PTR(slice));
    slices.emplace_back(slice, grpc::Slice::STEAL_REF);
  };
  const size_t first_header = entries_.empty() ? 0 : FieldHeaderBytes(entries_[0]->slice.size());
  add_slice(prefix + fields + first_header, [&](uint8_t* out) {
    if (in_stream) out = WriteFieldHeader(kInferResponseTag, message, out);
    // ByteSizeLong() above cached the sizes this writes with.
    out = response.SerializeWithCachedSizesToArray(out);
    if (!entries_.empty()) {
      WriteFieldHeader(kRawOutputContentsTag, entries_[0]->slice.size(), out);
    }
  });
  for (size_t k = 0; k < entries_.size(); ++k) {
    const grpc::Slice& entry = entries_[k]->slice;
    if (k > 0) {
      add_slice(FieldHeaderBytes(entry.size()), [&](uint8_t* out) {
        WriteFieldHeader(kRawOutputContentsTag, entry.size(), out);
      });
    }
    if (entry.size() > 0) slices.push_back(entry);
  }
  grpc::ByteBuffer answer(slices.data(), slices.size());
  bytes->Swap(&answer);
  return absl::OkStatus();
}

}  // namespace coalesce
