#include "bench/stress_slow_reader.h"

#include "absl/time/time.h"

namespace coalesce::stress {
namespace {

constexpr char kModelInfer[] = "/inference.GRPCInferenceService/ModelInfer";
constexpr char kModelStreamInfer[] = "/inference.GRPCInferenceService/ModelStreamInfer";
// How long a send may wait for the server to take it before the client counts itself held back.
constexpr absl::Duration kHeldBack = absl::Seconds(1);

}  // namespace

absl::StatusOr<std::unique_ptr<SlowReaders>> SlowReaders::Start(const std::string& address,
                                                                const std::string& request,
                                                                int requests) {
  std::unique_ptr<SlowReaders> readers(new SlowReaders());
  absl::StatusOr<std::unique_ptr<NonReadingClient>> unary = NonReadingClient::Connect(address);
  if (!unary.ok()) return unary.status();
  readers->unary_ = *std::move(unary);
  absl::StatusOr<std::unique_ptr<NonReadingClient>> stream = NonReadingClient::Connect(address);
  if (!stream.ok()) return stream.status();
  readers->stream_ = *std::move(stream);
  for (int i = 0; i < requests; ++i) {
    if (!readers->unary_->Unary(kModelInfer, request, kHeldBack)) break;
  }
  if (readers->stream_->OpenStream(kModelStreamInfer, kHeldBack)) {
    for (int i = 0; i < requests; ++i) {
      if (!readers->stream_->SendOnStream(request, kHeldBack)) break;
    }
  }
  return readers;
}

}  // namespace coalesce::stress
