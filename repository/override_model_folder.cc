#include "repository/override_model_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace coalesce {
namespace {

constexpr size_t kMaxComponentBytes = 255;  // NAME_MAX.
constexpr size_t kMaxPathBytes = 1024;
constexpr int kMaxDepth = 8;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Writes `contents` to a new file at `path` (which must not exist), mode 0600.
absl::Status WriteNewFile(const std::string& path, const std::string& contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    return absl::InvalidArgumentError(
        absl::StrCat("file parameter for '", path, "' names a folder another file is in"));
  }
  if (fd < 0) return Errno(absl::StrCat("cannot create ", path));
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno(absl::StrCat("cannot write ", path));
      ::close(fd);
      return s;
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Errno(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Creates the folders of `relative`'s parent under `root`, each new or already made by this
// load (mkdir never follows a link; an existing link or file fails the next step's open).
absl::Status MakeParents(const std::string& root, const std::string& relative) {
  std::vector<std::string> parts = absl::StrSplit(relative, '/');
  std::string dir = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    dir = absl::StrCat(dir, "/", parts[i]);
    if (::mkdir(dir.c_str(), 0700) == 0) continue;
    struct stat st;
    if (errno == EEXIST && ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    return absl::InvalidArgumentError(absl::StrCat("file parameter 'file:", relative, "': '",
                                                   parts[i], "' is a file, not a folder"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckOverrideFilePath(const std::string& path) {
  auto refuse = [&path](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("file parameter 'file:", path,
                     "' must be a relative path inside the model folder (", why, ")"));
  };
  if (path.empty()) return refuse("it is empty");
  if (path.size() > kMaxPathBytes) {
    return refuse(absl::StrCat("at most ", kMaxPathBytes, " bytes, got ", path.size()));
  }
  if (path[0] == '/') return refuse("it is absolute");
  if (path.find('\0') != std::string::npos) return refuse("it holds a NUL byte");
  if (path.find('\\') != std::string::npos) return refuse("it holds a '\\'");
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (parts.size() > static_cast<size_t>(kMaxDepth)) {
    return refuse(absl::StrCat("at most ", kMaxDepth, " levels, got ", parts.size()));
  }
  for (absl::string_view part : parts) {
    if (part.empty()) return refuse("an empty component");
    if (part == "." || part == "..") return refuse(absl::StrCat("a '", part, "' component"));
    if (part.size() > kMaxComponentBytes) {
      return refuse(
          absl::StrCat("a component of ", part.size(), " bytes; at most ", kMaxComponentBytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OverrideModelFolder>> OverrideModelFolder::Create(
    const Options& options, const std::string& config_text, const std::vector<File>& files) {
  if (static_cast<int64_t>(files.size()) > options.max_files) {
    return absl::InvalidArgumentError(
        absl::StrCat("a load may bring at most ", options.max_files, " files, got ", files.size()));
  }
  int64_t total = 0;
  std::set<std::string> seen;
  for (const auto& [path, contents] : files) {
    if (absl::Status s = CheckOverrideFilePath(path); !s.ok()) return s;
    if (path == "config.pbtxt") {
      return absl::InvalidArgumentError(
          "file parameter 'file:config.pbtxt' is not allowed: the model's config comes from "
          "the 'config' parameter");
    }
    if (!seen.insert(path).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("file parameter 'file:", path, "' is given twice"));
    }
    const int64_t size = static_cast<int64_t>(contents.size());
    if (size > options.max_file_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("file parameter 'file:", path, "' holds ",
                                                     size, " bytes; at most ",
                                                     options.max_file_bytes, " per file"));
    }
    total += size;
  }
  if (total > options.max_total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the load's files hold ", total, " bytes; at most ", options.max_total_bytes, " in all"));
  }

  std::string parent = options.parent;
  if (parent.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    parent = tmpdir != nullptr && tmpdir[0] != '\0' ? tmpdir : "/tmp";
  }
  std::string pattern = absl::StrCat(parent, "/coalesce-model-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Errno(absl::StrCat("cannot make a temporary model folder in ", parent));
  }
  // From here on, the destructor removes whatever was written.
  std::unique_ptr<OverrideModelFolder> folder(new OverrideModelFolder(pattern));
  if (absl::Status s = WriteNewFile(pattern + "/config.pbtxt", config_text); !s.ok()) return s;
  for (const auto& [path, contents] : files) {
    if (absl::Status s = MakeParents(pattern, path); !s.ok()) return s;
    if (absl::Status s = WriteNewFile(absl::StrCat(pattern, "/", path), contents); !s.ok()) {
      return s;
    }
  }
  return folder;
}

OverrideModelFolder::~OverrideModelFolder() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace coalesce
