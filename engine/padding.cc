#include "engine/padding.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace coalesce {

PaddedLength LengthOf(const PaddingSpec& padding,
                      const std::vector<std::vector<int64_t>>& input_dims) {
  PaddedLength result;
  if (padding.inputs.empty() || input_dims.empty()) return result;
  const PaddingSpec::Input& first = padding.inputs.front();
  result.length = input_dims[first.input][first.dim];
  for (const PaddingSpec::Input& in : padding.inputs) {
    if (input_dims[in.input][in.dim] != result.length) return result;
  }
  auto bucket = std::lower_bound(padding.buckets.begin(), padding.buckets.end(), result.length);
  if (bucket != padding.buckets.end()) result.bucket = *bucket;
  return result;
}

std::vector<std::vector<int64_t>> WithLength(const PaddingSpec& padding,
                                             std::vector<std::vector<int64_t>> input_dims,
                                             int64_t length) {
  for (const PaddingSpec::Input& in : padding.inputs) input_dims[in.input][in.dim] = length;
  return input_dims;
}

absl::Status CheckMaxPaddingRatio(double ratio) {
  if (ratio >= 0 && ratio < 1) return absl::OkStatus();  // NaN fails both comparisons.
  return absl::InvalidArgumentError(
      absl::StrCat("max_padding_ratio must be in [0, 1), got ", ratio));
}

int64_t JoinSmallerBuckets(absl::Span<const PendingRequest> pending,
                           absl::Span<const int64_t> candidates, int64_t max_rows,
                           double max_padding_ratio, std::vector<int64_t>& batch,
                           absl::FunctionRef<bool(int64_t, int64_t)> may_join) {
  int64_t rows = 0;
  // Elements of the padded dim that hold the requests' own values, over the batch's rows.
  double own = 0;
  for (int64_t i : batch) {
    rows += pending[i].rows;
    own += static_cast<double>(pending[i].rows * pending[i].length);
  }
  const int64_t bucket = batch.empty() ? 0 : pending[batch.front()].bucket;
  if (bucket <= 0 || max_padding_ratio <= 0) return rows;
  std::vector<int64_t> joined;
  for (int64_t i : candidates) {
    const PendingRequest& r = pending[i];
    if (r.bucket <= 0 || r.bucket >= bucket) continue;
    if (rows + r.rows > max_rows) break;
    const double with = own + static_cast<double>(r.rows * r.length);
    const double staged = static_cast<double>((rows + r.rows) * bucket);
    if (1.0 - with / staged > max_padding_ratio) continue;
    if (!may_join(i, rows + r.rows)) continue;
    joined.push_back(i);
    rows += r.rows;
    own = with;
  }
  if (!joined.empty()) {
    std::vector<int64_t> merged;
    merged.reserve(batch.size() + joined.size());
    std::merge(batch.begin(), batch.end(), joined.begin(), joined.end(),
               std::back_inserter(merged));
    batch = std::move(merged);
  }
  return rows;
}

}  // namespace coalesce
