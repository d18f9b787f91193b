#include "repository/repository_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "repository/model_config.h"

namespace coalesce {
namespace fs = std::filesystem;
namespace {

// "a FIFO", "a folder", ... for a file that is not a regular one.
const char* Kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

absl::Status NotRegular(const std::string& name, mode_t mode) {
  return absl::FailedPreconditionError(
      absl::StrCat("'", name, "' is ", Kind(mode), "; expected a regular file"));
}

absl::Status ErrnoStatus(const std::string& name, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat("cannot read '", name, "': ", std::strerror(error)));
}

absl::Status TooLarge(const std::string& name, int64_t max_bytes) {
  return absl::FailedPreconditionError(
      absl::StrCat("'", name, "': expected at most ", max_bytes, " bytes, got more"));
}

}  // namespace

absl::StatusOr<std::string> ReadRegularFile(const fs::path& path, const std::string& name,
                                            int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return ErrnoStatus(name, errno);
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  struct stat info;
  if (::fstat(fd, &info) != 0) return ErrnoStatus(name, errno);
  if (!S_ISREG(info.st_mode)) return NotRegular(name, info.st_mode);
  if (info.st_size > max_bytes) return TooLarge(name, max_bytes);
  // Read one byte past the bound: the file may have grown since fstat().
  std::string contents(static_cast<size_t>(info.st_size) + 1, '\0');
  size_t used = 0;
  while (true) {
    if (used == contents.size()) {
      if (static_cast<int64_t>(used) > max_bytes) return TooLarge(name, max_bytes);
      contents.resize(std::min<size_t>(used * 2, static_cast<size_t>(max_bytes) + 1));
    }
    const ssize_t n = ::read(fd, &contents[used], contents.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(name, errno);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  contents.resize(used);
  return contents;
}

absl::Status CheckRegularFile(const fs::path& path, const std::string& name) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return ErrnoStatus(name, errno);
  if (!S_ISREG(info.st_mode)) return NotRegular(name, info.st_mode);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadModelConfig(const std::string& model, const fs::path& dir) {
  return ReadRegularFile(dir / "config.pbtxt", absl::StrCat(model, "/config.pbtxt"),
                         kMaxConfigBytes);
}

std::string ModelFolderFingerprint(const std::string& model, const fs::path& dir) {
  absl::StatusOr<std::string> text = ReadModelConfig(model, dir);
  std::string print = text.ok() ? *text : text.status().ToString();
  absl::StatusOr<std::vector<int64_t>> versions = ListVersionFolders(dir);
  if (!versions.ok()) return absl::StrCat(print, "\n", versions.status().ToString());
  std::string file = "model.pt";
  if (text.ok()) {
    // Only the file name is wanted here: no limit on what the server's flags may allow.
    ModelConfigLimits unlimited;
    unlimited.max_staging_bytes = std::numeric_limits<int64_t>::max();
    absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(*text, model, unlimited);
    if (parsed.ok()) file = ModelFileName(parsed->config);
  }
  for (int64_t version : *versions) {
    std::error_code ec;
    const fs::path path = dir / std::to_string(version) / file;
    const uintmax_t size = fs::file_size(path, ec);
    const int64_t modified =
        ec ? 0 : static_cast<int64_t>(fs::last_write_time(path, ec).time_since_epoch().count());
    absl::StrAppend(&print, "\n", version, ":", ec ? "none" : absl::StrCat(size, ":", modified));
  }
  return print;
}

bool ResolvesInside(const fs::path& path, const fs::path& root) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) return false;
  const std::string& text = real.native();
  const std::string& prefix = root.native();
  return text.size() > prefix.size() && text.compare(0, prefix.size(), prefix) == 0 &&
         (prefix.back() == '/' || text[prefix.size()] == '/');
}

absl::StatusOr<std::vector<int64_t>> ListVersionFolders(const fs::path& dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  int64_t entries = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (++entries > kMaxModelFolderEntries) {
      return absl::FailedPreconditionError(
          absl::StrCat("model folder '", dir.filename().string(), "' has more than ",
                       kMaxModelFolderEntries, " entries; expected its config and version "
                       "folders"));
    }
    const std::string name = it->path().filename().string();
    int64_t version = 0;
    if (name.find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(name, &version) || version <= 0) {
      continue;
    }
    std::error_code kind_ec;
    if (it->is_directory(kind_ec)) versions.push_back(version);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

}  // namespace coalesce
