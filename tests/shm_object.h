#ifndef COALESCE_TESTS_SHM_OBJECT_H_
#define COALESCE_TESTS_SHM_OBJECT_H_

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace coalesce {

// A POSIX shared-memory object the way a client makes one: created under a key unique to this
// process, sized, and mapped for the test to read and write. Unlinked and unmapped on
// destruction. Not thread-safe; the bytes it maps may be read from any thread.
class ShmObject {
 public:
  explicit ShmObject(size_t bytes) : bytes_(bytes) {
    static std::atomic<int> counter{0};
    key_ = absl::StrCat("/coalesce_test_", getpid(), "_", counter.fetch_add(1));
    const int fd = shm_open(key_.c_str(), O_RDWR | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
    if (fd < 0) return;
    if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
      void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (mapped != MAP_FAILED) data_ = static_cast<char*>(mapped);
    }
    close(fd);
  }
  ~ShmObject() {
    if (data_ != nullptr) munmap(data_, bytes_);
    shm_unlink(key_.c_str());
  }
  ShmObject(const ShmObject&) = delete;
  ShmObject& operator=(const ShmObject&) = delete;

  bool ok() const { return data_ != nullptr; }
  const std::string& key() const { return key_; }
  size_t bytes() const { return bytes_; }
  char* data() const { return data_; }

  // Writes `values` at byte `offset`.
  void WriteFloats(size_t offset, const std::vector<float>& values) const {
    std::memcpy(data_ + offset, values.data(), values.size() * sizeof(float));
  }
  // Reads `count` floats at byte `offset`.
  std::vector<float> ReadFloats(size_t offset, size_t count) const {
    std::vector<float> values(count);
    std::memcpy(values.data(), data_ + offset, count * sizeof(float));
    return values;
  }

 private:
  const size_t bytes_;
  std::string key_;
  char* data_ = nullptr;
};

}  // namespace coalesce

#endif  // COALESCE_TESTS_SHM_OBJECT_H_
