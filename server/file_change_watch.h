#ifndef COALESCE_SERVER_FILE_CHANGE_WATCH_H_
#define COALESCE_SERVER_FILE_CHANGE_WATCH_H_

#include <sys/stat.h>

#include <string>
#include <vector>

namespace coalesce {

// Tells, when asked, whether a set of files has changed: the server asks every
// --credential_check_interval and reloads its TLS and token files when they have, as SIGHUP does.
//
// A file's state is what stat() says of it: device, inode, size and modification time (to the
// nanosecond), and whether it exists. stat() follows symbolic links, so a file replaced by a
// rename (a new inode) and a Kubernetes Secret volume (whose files are links into a directory
// that the kubelet swaps for a new one) both count as changed. Reading no contents keeps a
// check to a few system calls.
//
// A change is reported only once the files look the same on two checks in a row, so that a
// file an operator's tool writes in place, or a certificate and key replaced one after the
// other, is read whole rather than halfway: a reload then sees the final contents. Each
// change is reported once, whether the reload that follows accepts the files or not: a bad
// file is logged once, not at every check, and the next change is reported again.
//
// Not thread-safe: one caller (the server's reload thread).
class FileChangeWatch {
 public:
  // Takes the first look at `paths`; empty paths are left out.
  explicit FileChangeWatch(const std::vector<std::string>& paths);

  // True if the files differ from what the last change reported (or construction) saw, and
  // look the same as at the previous call.
  bool Changed();

  // Takes the files as they are now as reported: after a reload that read them anyway (SIGHUP).
  void Reset();

  bool empty() const { return paths_.empty(); }

 private:
  // What stat() says of one file; `exists` false (and the rest zero) when it fails.
  struct FileState {
    bool exists = false;
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    timespec modified{};

    bool operator==(const FileState& other) const;
  };
  std::vector<FileState> Look() const;
  static bool Same(const std::vector<FileState>& a, const std::vector<FileState>& b);

  std::vector<std::string> paths_;
  // What the last reported change (or construction) saw.
  std::vector<FileState> reported_;
  // What the previous call saw.
  std::vector<FileState> previous_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_FILE_CHANGE_WATCH_H_
