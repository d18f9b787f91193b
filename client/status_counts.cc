#include "client/status_counts.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce {

std::string GrpcCodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[StatusCounts::kNumCodes] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  const int value = static_cast<int>(code);
  if (value >= 0 && value < StatusCounts::kNumCodes) return kNames[value];
  return absl::StrCat("CODE_", value);
}

void StatusCounts::Merge(const StatusCounts& other) {
  for (int i = 0; i < kNumCodes; ++i) counts_[i] += other.counts_[i];
}

int64_t StatusCounts::errors() const {
  int64_t total = 0;
  for (int i = 1; i < kNumCodes; ++i) total += counts_[i];
  return total;
}

std::vector<std::pair<std::string, int64_t>> StatusCounts::ErrorCounts() const {
  std::vector<std::pair<std::string, int64_t>> result;
  for (int i = 1; i < kNumCodes; ++i) {
    if (counts_[i] != 0) {
      result.emplace_back(GrpcCodeName(static_cast<grpc::StatusCode>(i)), counts_[i]);
    }
  }
  return result;
}

std::string StatusCounts::ErrorString(absl::string_view separator) const {
  return absl::StrJoin(ErrorCounts(), separator, absl::PairFormatter("="));
}

}  // namespace coalesce
