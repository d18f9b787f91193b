#ifndef COALESCE_TESTS_RAW_CALLS_H_
#define COALESCE_TESTS_RAW_CALLS_H_

// Calls of the inference service with messages as raw bytes, so that tests can send bytes that
// are no valid message.

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/support/sync_stream.h>

#include "google/protobuf/message_lite.h"

namespace coalesce {

// Bytes that no protobuf parser accepts: field 1, length-delimited, with a length past the end.
inline constexpr char kNotAProtobuf[] = "\x0a\xff\xff\xff\xff\x0f";

// `size` bytes counting up from `first`: contents whose every byte says where it came from.
inline std::string Pattern(size_t size, int first) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(first + i);
  return bytes;
}

inline grpc::ByteBuffer BytesOf(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline grpc::ByteBuffer BytesOf(const google::protobuf::MessageLite& message) {
  return BytesOf(message.SerializeAsString());
}

// Parses `bytes` as a `Message`; false if they are not one.
template <typename Message>
bool ParseBytes(const grpc::ByteBuffer& bytes, Message* message) {
  grpc::ByteBuffer copy(bytes);
  return grpc::SerializationTraits<Message>::Deserialize(&copy, message).ok();
}

// The unary inference.GRPCInferenceService/`method` with `request` as its message.
inline grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                                 grpc::ClientContext* context, const std::string& method,
                                 const grpc::ByteBuffer& request, grpc::ByteBuffer* response) {
  const std::string path = "/inference.GRPCInferenceService/" + method;
  grpc::internal::RpcMethod rpc(path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(), rpc, context, request, response);
}

// A ModelStreamInfer stream whose messages are bytes.
using RawStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
inline std::unique_ptr<RawStream> RawModelStreamInfer(const std::shared_ptr<grpc::Channel>& channel,
                                                      grpc::ClientContext* context) {
  static const char kPath[] = "/inference.GRPCInferenceService/ModelStreamInfer";
  grpc::internal::RpcMethod rpc(kPath, grpc::internal::RpcMethod::BIDI_STREAMING);
  return std::unique_ptr<RawStream>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), rpc, context));
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_RAW_CALLS_H_
