#ifndef COALESCE_CLIENT_LEVEL_LIST_H_
#define COALESCE_CLIENT_LEVEL_LIST_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// Parses a comma-separated list of load levels such as "1,8,64,256" (spaces around items are
// allowed). Every item must be a positive finite number, and an integer when `integers` is
// true. Returns InvalidArgument naming `flag_name` and the offending item, or the empty list.
absl::StatusOr<std::vector<double>> ParseLevelList(absl::string_view flag_name,
                                                   absl::string_view text, bool integers);

}  // namespace coalesce

#endif  // COALESCE_CLIENT_LEVEL_LIST_H_
