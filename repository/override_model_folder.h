#ifndef COALESCE_REPOSITORY_OVERRIDE_MODEL_FOLDER_H_
#define COALESCE_REPOSITORY_OVERRIDE_MODEL_FOLDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace coalesce {

// A model folder that a load request brought with it (Triton's "file:<path>" load parameters),
// written into a fresh private temporary folder and removed when this object is destroyed.
//
//   <parent>/coalesce-model-XXXXXX/   mkdtemp: mode 0700, a name nobody could guess or pre-create
//     config.pbtxt                    the request's config
//     1/model.pt                      each file at its relative path, mode 0600
//
// No path can leave the folder: a file's path must be relative, made of plain components (not
// empty, ".", "..", no '\\' or NUL, at most 255 bytes each), and every file and folder is
// created new inside the fresh folder (O_EXCL | O_NOFOLLOW), so neither a path nor a link
// planted in between can redirect a write.
//
// Not thread-safe; immutable after Create().
class OverrideModelFolder {
 public:
  struct Options {
    // Where the temporary folder is made; empty: $TMPDIR, else /tmp.
    std::string parent;
    // Bounds on what one load may write. The gRPC message size bounds a request first (64 MiB
    // by default, --max_message_mib); these hold whatever that is set to.
    int max_files = 64;
    int64_t max_file_bytes = int64_t{1} << 30;
    int64_t max_total_bytes = int64_t{2} << 30;
  };
  // A file of the model folder: its path relative to the folder, and its contents.
  using File = std::pair<std::string, std::string>;

  // Writes `config_text` as config.pbtxt and every file of `files`. INVALID_ARGUMENT, naming the
  // path and the rule, for a path that is not a plain relative path, a path given twice, or one
  // that names config.pbtxt; for more files or bytes than the options allow (naming the limit
  // and the size); INTERNAL if the file system refuses. Nothing is left behind on failure.
  static absl::StatusOr<std::unique_ptr<OverrideModelFolder>> Create(
      const Options& options, const std::string& config_text, const std::vector<File>& files);
  // Removes the folder and everything in it.
  ~OverrideModelFolder();

  OverrideModelFolder(const OverrideModelFolder&) = delete;
  OverrideModelFolder& operator=(const OverrideModelFolder&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit OverrideModelFolder(std::string path) : path_(std::move(path)) {}

  const std::string path_;
};

// Whether `path` is a relative path of plain components (see OverrideModelFolder); if not, why.
absl::Status CheckOverrideFilePath(const std::string& path);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_OVERRIDE_MODEL_FOLDER_H_
