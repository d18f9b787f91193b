#ifndef COALESCE_ENGINE_REQUEST_TRACE_H_
#define COALESCE_ENGINE_REQUEST_TRACE_H_

#include <cstdint>

#include "absl/time/time.h"

namespace coalesce {

// When one sampled request reached each stage (Clock times), for Triton's trace extension.
// InfinitePast() for a stage it never reached (a request refused before it was queued). The RPC
// layer creates one for a sampled request and keeps it until the request is answered; the
// request points at it (InferRequest::Options::trace) and the executor stamps the compute stage.
// Untraced requests carry a null pointer, so tracing costs them one pointer check.
//
// Not thread-safe: each stage writes it before handing the request on.
struct RequestTrace {
  // REQUEST_START: the server received the request.
  absl::Time request_start = absl::InfinitePast();
  // QUEUE_START: validated and handed to the model's queue.
  absl::Time queue_start = absl::InfinitePast();
  // COMPUTE_START / COMPUTE_END: the backend call of the request's batch.
  absl::Time compute_start = absl::InfinitePast();
  absl::Time compute_end = absl::InfinitePast();
  // REQUEST_END: the answer was handed to the RPC layer.
  absl::Time request_end = absl::InfinitePast();
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_REQUEST_TRACE_H_
