#include "client/level_list.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace coalesce {

absl::StatusOr<std::vector<double>> ParseLevelList(absl::string_view flag_name,
                                                   absl::string_view text, bool integers) {
  const char* expected = integers ? "a positive integer" : "a positive number";
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag_name, " is empty; expected a comma-separated list of ", expected, "s"));
  }
  std::vector<double> levels;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    double value = 0;
    int64_t integer = 0;
    const bool parsed =
        integers ? absl::SimpleAtoi(item, &integer) : absl::SimpleAtod(item, &value);
    if (integers) value = static_cast<double>(integer);
    if (!parsed || !std::isfinite(value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag_name, ": '", item, "' is not ", expected));
    }
    levels.push_back(value);
  }
  return levels;
}

}  // namespace coalesce
