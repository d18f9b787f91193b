#ifndef COALESCE_SERVER_WIRE_MESSAGES_H_
#define COALESCE_SERVER_WIRE_MESSAGES_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"
#include "proto/inference.pb.h"

namespace coalesce {

// The inference calls (ModelInfer, ModelStreamInfer) take their messages as bytes, so that the
// service authorizes a call before it spends time parsing what the call carries, and answers
// bytes that are not a request with an error that says so (gRPC's own parsing answers
// UNIMPLEMENTED with no message, or, on a stream, ends it as if the client had half-closed).

// Parses `bytes` into `request`, consuming them (they are empty afterwards). INVALID_ARGUMENT
// naming the message and its size when they are not a ModelInferRequest; `request` is then
// empty.
absl::Status ParseInferRequest(grpc::ByteBuffer& bytes, inference::ModelInferRequest* request);

// `message` serialized into `bytes` (replacing what they held); INTERNAL if it cannot be.
absl::Status SerializeMessage(const google::protobuf::MessageLite& message,
                              grpc::ByteBuffer* bytes);

}  // namespace coalesce

#endif  // COALESCE_SERVER_WIRE_MESSAGES_H_
