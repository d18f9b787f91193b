#ifndef COALESCE_CLIENT_LENGTH_RANGE_H_
#define COALESCE_CLIENT_LENGTH_RANGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// The sizes a load generator gives the later -1 dims of a model's inputs (a token input's
// length, say): one size for every request, or each request's size drawn uniformly from
// [min, max], both included, so that a benchmark sees traffic of mixed lengths.
struct LengthRange {
  int64_t min = 1;
  int64_t max = 1;

  bool single() const { return min == max; }
  // How many lengths the range holds.
  int64_t count() const { return max - min + 1; }
};

// The most lengths a range may hold: the load generator builds one request per length, so
// that a call picks its request rather than building one.
inline constexpr int64_t kMaxLengthsInRange = 1024;

// Parses "N" (every request N) or "MIN:MAX" (each request's length drawn from MIN..MAX); spaces
// around the numbers are allowed. Returns InvalidArgument naming `flag_name` and the text when a
// number is not a positive integer, MIN > MAX, or the range holds more than kMaxLengthsInRange
// lengths.
absl::StatusOr<LengthRange> ParseLengthRange(absl::string_view flag_name, absl::string_view text);

// "N" or "MIN:MAX", as ParseLengthRange() reads it.
std::string LengthRangeText(const LengthRange& range);

// `count` lengths drawn uniformly from `range` by a generator seeded with `seed`: equal seeds
// give equal sequences (with one standard library).
std::vector<int64_t> DrawLengths(const LengthRange& range, int64_t count, uint64_t seed);

}  // namespace coalesce

#endif  // COALESCE_CLIENT_LENGTH_RANGE_H_
