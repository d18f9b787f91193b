#include "server/request_tracer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/json_log_formatter.h"

namespace coalesce {
namespace {

int OpenForAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

absl::Status CheckSettings(const RequestTracer::Settings& s, bool have_file) {
  if (s.rate == 0) return absl::InvalidArgumentError("trace_rate must be at least 1, got 0");
  if (s.count < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace_count must be -1 (unlimited) or more, got ", s.count));
  }
  if (s.level != RequestTracer::Level::kOff && !have_file) {
    return absl::FailedPreconditionError(
        "trace_level TIMESTAMPS needs a trace file: start the server with --trace_file");
  }
  return absl::OkStatus();
}

template <typename T>
void ApplyGlobal(const RequestTracer::Change<T>& change, T default_value, T* field) {
  if (change.action == RequestTracer::Change<T>::kSet) *field = change.value;
  if (change.action == RequestTracer::Change<T>::kClear) *field = default_value;
}

template <typename T>
void ApplyModel(const RequestTracer::Change<T>& change, std::optional<T>* field) {
  if (change.action == RequestTracer::Change<T>::kSet) *field = change.value;
  if (change.action == RequestTracer::Change<T>::kClear) field->reset();
}

void AppendStage(const char* name, absl::Time when, bool* first, std::string* line) {
  if (when == absl::InfinitePast()) return;
  absl::StrAppend(line, *first ? "" : ",", "{\"name\":\"", name,
                  "\",\"ns\":", absl::ToUnixNanos(when), "}");
  *first = false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RequestTracer>> RequestTracer::Create(const Options& options) {
  if (absl::Status s = CheckSettings(options.initial, !options.file.empty()); !s.ok()) return s;
  std::unique_ptr<RequestTracer> tracer(new RequestTracer(options));
  if (!options.file.empty()) {
    // Refuse a path that cannot be written now, rather than losing every trace later.
    int fd = OpenForAppend(options.file);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace file '", options.file, "' is not writable: ", std::strerror(errno)));
    }
    ::close(fd);
  }
  {
    absl::MutexLock lock(&tracer->mu_);
    tracer->global_ = options.initial;
    tracer->global_counters_.remaining = options.initial.count;
    tracer->RefreshAnyOnLocked();
  }
  return tracer;
}

RequestTracer::~RequestTracer() {
  absl::MutexLock lock(&file_mu_);
  if (fd_ >= 0) ::close(fd_);
}

RequestTracer::Settings RequestTracer::EffectiveLocked(const std::string& model) const {
  Settings settings = global_;
  settings.count = global_counters_.remaining;
  auto it = overrides_.find(model);
  if (model.empty() || it == overrides_.end()) return settings;
  const ModelOverride& o = it->second;
  settings.level = o.level.value_or(global_.level);
  settings.rate = o.rate.value_or(global_.rate);
  settings.count = override_counters_.at(model).remaining;
  return settings;
}

RequestTracer::Settings RequestTracer::Get(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  return EffectiveLocked(model);
}

void RequestTracer::RefreshAnyOnLocked() {
  bool on = global_.level != Level::kOff;
  for (const auto& [model, o] : overrides_) {
    on = on || o.level.value_or(global_.level) != Level::kOff;
  }
  any_on_.store(on, std::memory_order_release);
}

absl::Status RequestTracer::Apply(const std::string& model, const Update& update) {
  absl::MutexLock lock(&mu_);
  if (model.empty()) {
    Settings next = global_;
    ApplyGlobal(update.level, Level::kOff, &next.level);
    ApplyGlobal(update.rate, Settings().rate, &next.rate);
    ApplyGlobal(update.count, Settings().count, &next.count);
    ApplyGlobal(update.log_frequency, Settings().log_frequency, &next.log_frequency);
    if (absl::Status s = CheckSettings(next, !options_.file.empty()); !s.ok()) return s;
    global_ = next;
    if (update.count.action != Change<int64_t>::kKeep) {
      // A new count restarts the global counter and the models' that follow it.
      global_counters_.remaining = next.count;
      for (auto& [name, o] : overrides_) {
        if (!o.count.has_value()) override_counters_[name].remaining = next.count;
      }
    }
    RefreshAnyOnLocked();
    return absl::OkStatus();
  }
  if (update.log_frequency.action != Change<uint32_t>::kKeep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_frequency is a global setting; it cannot be set for model '", model, "'"));
  }
  const bool existed = overrides_.count(model) > 0;
  ModelOverride next = existed ? overrides_[model] : ModelOverride();
  ApplyModel(update.level, &next.level);
  ApplyModel(update.rate, &next.rate);
  ApplyModel(update.count, &next.count);
  Settings effective = global_;
  effective.level = next.level.value_or(global_.level);
  effective.rate = next.rate.value_or(global_.rate);
  effective.count = next.count.value_or(global_.count);
  if (absl::Status s = CheckSettings(effective, !options_.file.empty()); !s.ok()) return s;
  overrides_[model] = next;
  if (!existed || update.count.action != Change<int64_t>::kKeep) {
    override_counters_[model] = Counters{0, effective.count};
  }
  RefreshAnyOnLocked();
  return absl::OkStatus();
}

std::unique_ptr<RequestTracer::Trace> RequestTracer::SampleSlow(const std::string& model) {
  absl::MutexLock lock(&mu_);
  auto it = overrides_.find(model);
  const bool own = it != overrides_.end();
  Level level = own ? it->second.level.value_or(global_.level) : global_.level;
  uint32_t rate = own ? it->second.rate.value_or(global_.rate) : global_.rate;
  Counters& counters = own ? override_counters_[model] : global_counters_;
  if (level == Level::kOff || counters.remaining == 0) return nullptr;
  // The first request of a scope is traced, then every rate-th.
  if (counters.seen++ % rate != 0) return nullptr;
  if (counters.remaining > 0) --counters.remaining;
  auto trace = std::make_unique<Trace>();
  trace->id = next_id_++;
  return trace;
}

void RequestTracer::Write(const Trace& trace, const std::string& model, const std::string& version,
                          const std::string& request_id) {
  std::string line = absl::StrCat("{\"id\":", trace.id, ",\"model_name\":");
  AppendJsonString(model, &line);
  line += ",\"model_version\":";
  AppendJsonString(version, &line);
  line += ",\"request_id\":";
  AppendJsonString(request_id, &line);
  line += ",\"timestamps\":[";
  bool first = true;
  const RequestTrace& s = trace.stages;
  AppendStage("REQUEST_START", s.request_start, &first, &line);
  AppendStage("QUEUE_START", s.queue_start, &first, &line);
  AppendStage("COMPUTE_START", s.compute_start, &first, &line);
  AppendStage("COMPUTE_END", s.compute_end, &first, &line);
  AppendStage("REQUEST_END", s.request_end, &first, &line);
  line += "]}\n";

  uint32_t log_frequency;
  {
    absl::MutexLock lock(&mu_);
    log_frequency = global_.log_frequency;
  }
  absl::MutexLock lock(&file_mu_);
  const int64_t index = log_frequency == 0 ? -1 : static_cast<int64_t>(written_ / log_frequency);
  if (fd_ < 0 || index != file_index_) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = OpenForAppend(index < 0 ? options_.file : absl::StrCat(options_.file, ".", index));
    file_index_ = index;
  }
  if (fd_ < 0) return;  // The file went away; the next trace tries again.
  // One write() per line: appends of whole lines, in the order they were written.
  if (::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size())) ++written_;
}

}  // namespace coalesce
