#ifndef COALESCE_REPOSITORY_REPOSITORY_FILES_H_
#define COALESCE_REPOSITORY_REPOSITORY_FILES_H_

// How a model repository (repository/model_repository.h) touches the files of a model folder, so that
// no folder can stall or exhaust the server that reads it:
//  - only regular files are read: a FIFO would block the reader (and with it a poll and
//    shutdown), a device file such as /dev/zero never ends;
//  - a file is read only up to a bound;
//  - a folder is listed only up to a bound, one level deep: a poll looks at what a model needs
//    (its config, its version folders and each version's model file), never at whole trees.
//
// Stateless functions; thread-safe.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coalesce {

// Entries of one model folder that a load or a poll looks at before giving up on it.
inline constexpr int64_t kMaxModelFolderEntries = 10000;

// The contents of `path`, which must be a regular file (links followed) of at most `max_bytes`.
// The file is opened without blocking (a FIFO then opens at once instead of waiting for a
// writer) and the opened file itself is checked, so what is read is what was checked. Errors
// call the file `name` (a path relative to the repository, so that no message shows where the
// repository is): NOT_FOUND if nothing is there, FAILED_PRECONDITION saying what it is ("a
// FIFO", "a character device", ...) or that it is larger than `max_bytes`.
absl::StatusOr<std::string> ReadRegularFile(const std::filesystem::path& path,
                                            const std::string& name, int64_t max_bytes);

// OK if `path` is a regular file (links followed), checked without opening it; otherwise as
// ReadRegularFile(). For files that another library opens by path (the model file).
absl::Status CheckRegularFile(const std::filesystem::path& path, const std::string& name);

// `model`'s config.pbtxt in its folder `dir`, read by ReadRegularFile() with the bound
// kMaxConfigBytes and named "MODEL/config.pbtxt".
absl::StatusOr<std::string> ReadModelConfig(const std::string& model,
                                            const std::filesystem::path& dir);

// Changes whenever what a load of `model` from folder `dir` reads changes: the config's text (or
// why it cannot be read), the version folders, and each one's model file (its size and
// modification time). Looks at nothing else, so that a poll costs the same whatever else the
// folders hold (a version folder linked to /usr would hold a whole tree).
std::string ModelFolderFingerprint(const std::string& model, const std::filesystem::path& dir);

// Whether `path`, every link in it resolved, lies inside `root` (a canonical path; `root` itself
// is not inside). False if it cannot be resolved.
bool ResolvesInside(const std::filesystem::path& path, const std::filesystem::path& root);

// The numeric version folders of model folder `dir` (links followed), ascending, from one listing
// of at most kMaxModelFolderEntries entries. FAILED_PRECONDITION for a folder with more.
absl::StatusOr<std::vector<int64_t>> ListVersionFolders(const std::filesystem::path& dir);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_REPOSITORY_FILES_H_
