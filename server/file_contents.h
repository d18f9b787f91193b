#ifndef COALESCE_SERVER_FILE_CONTENTS_H_
#define COALESCE_SERVER_FILE_CONTENTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// Reads the whole of `path`. `what` names the file in errors, usually the flag that gave the path
// ("--grpc_tls_cert: cannot read '/etc/x.pem': No such file or directory"). Returns NOT_FOUND or
// PERMISSION_DENIED (from errno) when the file cannot be read. Thread-safe.
absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what);

}  // namespace coalesce

#endif  // COALESCE_SERVER_FILE_CONTENTS_H_
