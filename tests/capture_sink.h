#ifndef COALESCE_TESTS_CAPTURE_SINK_H_
#define COALESCE_TESTS_CAPTURE_SINK_H_

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "spdlog/sinks/base_sink.h"

namespace coalesce {

// A spdlog sink that keeps every formatted line, for tests that read what the server logs
// (install it with LogControl::Global().Install()). Thread-safe.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  std::vector<std::string> LinesContaining(const std::string& text) {
    std::vector<std::string> found;
    for (std::string& line : Lines()) {
      if (absl::StrContains(line, text)) found.push_back(std::move(line));
    }
    return found;
  }
  int CountContaining(const std::string& text) {
    return static_cast<int>(LinesContaining(text).size());
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    lines_.emplace_back(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

}  // namespace coalesce

#endif  // COALESCE_TESTS_CAPTURE_SINK_H_
