#include "server/file_change_watch.h"

#include <algorithm>

namespace coalesce {

bool FileChangeWatch::FileState::operator==(const FileState& other) const {
  return exists == other.exists && device == other.device && inode == other.inode &&
         size == other.size && modified.tv_sec == other.modified.tv_sec &&
         modified.tv_nsec == other.modified.tv_nsec;
}

FileChangeWatch::FileChangeWatch(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    if (!path.empty()) paths_.push_back(path);
  }
  Reset();
}

void FileChangeWatch::Reset() {
  reported_ = Look();
  previous_ = reported_;
}

bool FileChangeWatch::Changed() {
  std::vector<FileState> now = Look();
  const bool settled = Same(now, previous_);
  previous_ = now;
  if (!settled || Same(now, reported_)) return false;
  reported_ = std::move(now);
  return true;
}

std::vector<FileChangeWatch::FileState> FileChangeWatch::Look() const {
  std::vector<FileState> states(paths_.size());
  for (size_t i = 0; i < paths_.size(); ++i) {
    struct stat info;
    if (stat(paths_[i].c_str(), &info) != 0) continue;
    states[i].exists = true;
    states[i].device = info.st_dev;
    states[i].inode = info.st_ino;
    states[i].size = info.st_size;
    states[i].modified = info.st_mtim;
  }
  return states;
}

bool FileChangeWatch::Same(const std::vector<FileState>& a, const std::vector<FileState>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

}  // namespace coalesce
