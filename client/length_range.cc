#include "client/length_range.h"

#include <random>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<LengthRange> ParseLengthRange(absl::string_view flag_name,
                                             absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag_name, "='", text, "': ", why,
                                                   "; expected N or MIN:MAX, e.g. 128 or 16:256"));
  };
  const size_t colon = text.find(':');
  const absl::string_view low = absl::StripAsciiWhitespace(text.substr(0, colon));
  const absl::string_view high =
      colon == absl::string_view::npos ? low : absl::StripAsciiWhitespace(text.substr(colon + 1));
  LengthRange range;
  if (!absl::SimpleAtoi(low, &range.min) || range.min < 1) {
    return bad(absl::StrCat("'", low, "' is not a positive integer"));
  }
  if (!absl::SimpleAtoi(high, &range.max) || range.max < 1) {
    return bad(absl::StrCat("'", high, "' is not a positive integer"));
  }
  if (range.min > range.max) return bad("the first length is above the second");
  if (range.count() > kMaxLengthsInRange) {
    return bad(absl::StrCat("the range holds ", range.count(), " lengths, more than the ",
                            kMaxLengthsInRange, " the load generator builds requests for"));
  }
  return range;
}

std::string LengthRangeText(const LengthRange& range) {
  return range.single() ? absl::StrCat(range.min) : absl::StrCat(range.min, ":", range.max);
}

std::vector<int64_t> DrawLengths(const LengthRange& range, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> uniform(range.min, range.max);
  std::vector<int64_t> lengths(count);
  for (int64_t& length : lengths) length = uniform(rng);
  return lengths;
}

}  // namespace coalesce
