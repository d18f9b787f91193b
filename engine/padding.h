#ifndef COALESCE_ENGINE_PADDING_H_
#define COALESCE_ENGINE_PADDING_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/batch_policy.h"
#include "engine/model_metadata.h"

namespace coalesce {

// Where one request of a model that pads (PaddingSpec) stands among its buckets.
struct PaddedLength {
  // The size of the variable dim of its padded inputs.
  int64_t length = 0;
  // The bucket its padded inputs pad to in a batch; 0 when it runs as sent, with requests of
  // exactly its dims only: its length is past the last bucket, or its padded inputs' lengths
  // differ (then the model meets it as it would alone, and answers what it would alone).
  int64_t bucket = 0;
};

// The length and bucket of a request whose inputs have `input_dims` (each input's dims without
// the batch dimension, InferRequest::input_dims()).
PaddedLength LengthOf(const PaddingSpec& padding,
                      const std::vector<std::vector<int64_t>>& input_dims);

// `input_dims` with the variable dim of every padded input set to `length`.
std::vector<std::vector<int64_t>> WithLength(const PaddingSpec& padding,
                                             std::vector<std::vector<int64_t>> input_dims,
                                             int64_t length);

// OK if `ratio` is a valid max_padding_ratio of a batch policy, in [0, 1); otherwise
// INVALID_ARGUMENT naming it. Both policies check their option with it.
absl::Status CheckMaxPaddingRatio(double ratio);

// The policies' rule for padding against waiting (docs/batching.md, "Padded batching"): a batch
// formed for one bucket that has room left takes requests of smaller buckets, padded up, rather
// than leave them to wait for a batch of their own, as long as padding stays at most
// `max_padding_ratio` of the batch's padded-input elements.
//
// `batch` holds ascending indices into `pending`, every one of the bucket of pending[batch[0]]
// (a bucket > 0). The requests of `candidates` (ascending indices, those the policy still
// considers) whose bucket is smaller join in order while the batch stays within `max_rows`, its
// padding within the ratio, and `may_join(i, rows)` (the policy's own test, given the batch's
// rows with request i) returns true. `batch` stays ascending. Returns the batch's rows.
int64_t JoinSmallerBuckets(absl::Span<const PendingRequest> pending,
                           absl::Span<const int64_t> candidates, int64_t max_rows,
                           double max_padding_ratio, std::vector<int64_t>& batch,
                           absl::FunctionRef<bool(int64_t, int64_t)> may_join);

}  // namespace coalesce

#endif  // COALESCE_ENGINE_PADDING_H_
