#ifndef COALESCE_TESTS_TEST_REQUESTS_H_
#define COALESCE_TESTS_TEST_REQUESTS_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/infer_request.h"
#include "engine/request_queue.h"

namespace coalesce {

// What a test request's done callback saw: how many times it ran and the last status.
struct Answer {
  int calls = 0;
  absl::Status status;
};

// A request made of `options` whose answer lands in `answer`.
inline std::unique_ptr<InferRequest> MakeRequest(Answer* answer, InferRequest::Options options) {
  return std::make_unique<InferRequest>(std::move(options), [answer](absl::Status s) {
    ++answer->calls;
    answer->status = std::move(s);
  });
}

// A request with `rows` rows and no payload whose answer lands in `answer`.
inline std::unique_ptr<InferRequest> MakeRequest(Answer* answer, absl::Time arrival,
                                                 int64_t rows = 1) {
  InferRequest::Options options;
  options.rows = rows;
  options.arrival = arrival;
  return MakeRequest(answer, std::move(options));
}

inline RequestQueue::Options Capacity(int64_t capacity) {
  RequestQueue::Options options;
  options.capacity = capacity;
  return options;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_TEST_REQUESTS_H_
