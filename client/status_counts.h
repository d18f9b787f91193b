#ifndef COALESCE_CLIENT_STATUS_COUNTS_H_
#define COALESCE_CLIENT_STATUS_COUNTS_H_

#include <grpcpp/support/status.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace coalesce {

// The canonical name of a gRPC status code ("OK", "DEADLINE_EXCEEDED", ...); a value outside
// the 17 defined codes is named "CODE_<n>".
std::string GrpcCodeName(grpc::StatusCode code);

// StatusCounts counts completed calls by their gRPC status code. A code outside the 17 defined
// codes is counted as UNKNOWN, which is what gRPC itself reports for such a status.
//
// Not thread-safe: give each thread its own instance and Merge() them afterwards.
class StatusCounts {
 public:
  static constexpr int kNumCodes = 17;  // OK (0) .. UNAUTHENTICATED (16)

  StatusCounts() { counts_.fill(0); }

  void Add(grpc::StatusCode code, int64_t n = 1) { counts_[Index(code)] += n; }
  void Merge(const StatusCounts& other);

  int64_t count(grpc::StatusCode code) const { return counts_[Index(code)]; }
  int64_t ok() const { return counts_[0]; }
  // Calls that completed with any code other than OK.
  int64_t errors() const;

  // (code name, count) for every non-OK code with a non-zero count, in code order.
  std::vector<std::pair<std::string, int64_t>> ErrorCounts() const;

  // ErrorCounts() as "NAME=count" joined by `separator`, e.g. "DEADLINE_EXCEEDED=3;UNAVAILABLE=1";
  // empty when there were no errors.
  std::string ErrorString(absl::string_view separator) const;

 private:
  static int Index(grpc::StatusCode code) {
    const int value = static_cast<int>(code);
    return value >= 0 && value < kNumCodes ? value : static_cast<int>(grpc::StatusCode::UNKNOWN);
  }

  std::array<int64_t, kNumCodes> counts_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_STATUS_COUNTS_H_
