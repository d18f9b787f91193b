#include "server/wire_messages.h"

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::Status ParseInferRequest(grpc::ByteBuffer& bytes, inference::ModelInferRequest* request) {
  const size_t size = bytes.Length();
  grpc::Status parsed =
      grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&bytes, request);
  bytes.Clear();
  if (parsed.ok()) return absl::OkStatus();
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
