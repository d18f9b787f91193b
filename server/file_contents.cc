#include "server/file_contents.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

absl::Status ReadError(const std::string& path, absl::string_view what, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, ": cannot read '", path, "': ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                        &std::fclose);
  if (file == nullptr) return ReadError(path, what, errno);
  std::string contents;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) contents.append(buffer, n);
  // A directory opens, then fails to read with EISDIR.
  if (std::ferror(file.get())) return ReadError(path, what, errno);
  return contents;
}

}  // namespace coalesce
