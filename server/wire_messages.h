#ifndef COALESCE_SERVER_WIRE_MESSAGES_H_
#define COALESCE_SERVER_WIRE_MESSAGES_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/infer_request.h"
#include "google/protobuf/message_lite.h"
#include "proto/inference.pb.h"

namespace coalesce {

// The inference calls (ModelInfer, ModelStreamInfer) take their messages as bytes, so that the
// service authorizes a call before it spends time parsing what the call carries, and answers
// bytes that are not a request with an error that says so (gRPC's own parsing answers
// UNIMPLEMENTED with no message, or, on a stream, ends it as if the client had half-closed).

// A ModelInferRequest as received. Its raw_input_contents, the bulk of a request, stay where
// gRPC received them when they lie whole in one of its slices: `raw_inputs` views them there (the
// gather then copies them once, into staging). Only an entry split across slices (a message
// larger than what gRPC reads at once arrives in several) is copied, once, into memory the
// request owns.
class ParsedInferRequest {
 public:
  ParsedInferRequest() = default;
  ParsedInferRequest(const ParsedInferRequest&) = delete;
  ParsedInferRequest& operator=(const ParsedInferRequest&) = delete;

  // Every field but raw_input_contents, as sent (its raw_input_contents are empty).
  const inference::ModelInferRequest& message() const { return message_; }
  // Every raw_input_contents entry, in order: views into gRPC's slices or into the copies.
  absl::Span<const absl::string_view> raw_inputs() const { return raw_inputs_; }
  // Empties the request and lets go of gRPC's bytes.
  void Clear();

 private:
  friend absl::Status ParseInferRequest(grpc::ByteBuffer& bytes, ParsedInferRequest* request);

  inference::ModelInferRequest message_;
  std::vector<absl::string_view> raw_inputs_;
  // The entries that straddled slices; a deque, so that a copy's bytes stay where they are.
  std::deque<std::string> copied_;
  // The received bytes that raw_inputs_ view.
  std::vector<grpc::Slice> slices_;
};

// Parses `bytes` into `request`, consuming them (they are empty afterwards; the slices that
// `request` views are its own references). INVALID_ARGUMENT naming the message and its size when
// they are not a ModelInferRequest; `request` is then empty.
absl::Status ParseInferRequest(grpc::ByteBuffer& bytes, ParsedInferRequest* request);

// `message` serialized into `bytes` (replacing what they held); INTERNAL if it cannot be.
absl::Status SerializeMessage(const google::protobuf::MessageLite& message,
                              grpc::ByteBuffer* bytes);

// The raw_output_contents of one ModelInferResponse, held in the memory gRPC sends: the executor
// scatters each output into a slice of its own (an OutputBuffer), and Serialize() builds the
// answer's ByteBuffer from the response's other fields and these slices, so that an output is
// copied once on its way from staging to the wire. The bytes are those protobuf would write for
// the response with these entries appended to its raw_output_contents (the last field of
// ModelInferResponse, so nothing follows them).
//
// Thread-safety: different entries may be written from different threads; Add(), Serialize()
// and MoveInto() need the caller's exclusive use.
class WireOutputs {
 public:
  WireOutputs() = default;
  WireOutputs(const WireOutputs&) = delete;
  WireOutputs& operator=(const WireOutputs&) = delete;

  // The next raw_output_contents entry, empty until written; lives as long as this object or
  // until MoveInto().
  OutputBuffer* Add();
  int size() const { return static_cast<int>(entries_.size()); }
  // Bytes of entry `k`.
  int64_t bytes(int k) const { return static_cast<int64_t>(entries_[k]->slice.size()); }
  // Drops the entries (the answer serialized from them keeps what it shares).
  void Clear() { entries_.clear(); }
  // Appends the entries to `response`'s raw_output_contents (a copy, for the paths that need
  // them in the message: outputs written to shared memory) and drops them.
  void MoveInto(inference::ModelInferResponse* response);
  // Serializes `response` followed by the entries into `bytes` (replacing what they held); with
  // `in_stream`, as the infer_response of a ModelStreamInferResponse with no error_message.
  // INTERNAL if the answer is too large for protobuf (2 GiB). The entries' memory is shared
  // with `bytes`, not copied.
  absl::Status Serialize(const inference::ModelInferResponse& response, bool in_stream,
                         grpc::ByteBuffer* bytes) const;

 private:
  class Entry final : public OutputBuffer {
   public:
    char* Allocate(int64_t bytes) override;
    grpc::Slice slice;
  };
  // Pointers: an entry's address is handed out as the request's OutputBuffer.
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_WIRE_MESSAGES_H_
