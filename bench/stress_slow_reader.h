#ifndef COALESCE_BENCH_STRESS_SLOW_READER_H_
#define COALESCE_BENCH_STRESS_SLOW_READER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/non_reading_client.h"

namespace coalesce::stress {

// The slow-reader traffic of coalesce-stress: two connections that send valid requests and
// never read an answer, one as unary calls, one on a single ModelStreamInfer stream. Each sends
// until the server stops taking more (its stream limit, or flow control once a stream has as
// many requests pending as the server allows) or `requests` have gone, and then holds on until
// destroyed. The server must answer everyone else meanwhile and hold bounded memory for them.
class SlowReaders {
 public:
  // Connects both to `address` and sends up to `requests` copies of `request` (a serialized
  // ModelInferRequest) on each. Fails if a connection cannot be made.
  static absl::StatusOr<std::unique_ptr<SlowReaders>> Start(const std::string& address,
                                                            const std::string& request,
                                                            int requests);

  // Requests sent in full as unary calls, and on the stream.
  int64_t unary_sent() const { return unary_->messages_sent(); }
  int64_t stream_sent() const { return stream_->messages_sent(); }

 private:
  SlowReaders() = default;
  std::unique_ptr<NonReadingClient> unary_;
  std::unique_ptr<NonReadingClient> stream_;
};

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_STRESS_SLOW_READER_H_
