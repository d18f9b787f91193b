#include "serving/model_registry.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/client_text.h"

namespace coalesce {

absl::StatusOr<int64_t> ParseModelVersion(absl::string_view version) {
  int64_t number = 0;
  bool digits_only = !version.empty() && version.find_first_not_of("0123456789") ==
                                             absl::string_view::npos;
  if (!digits_only || !absl::SimpleAtoi(version, &number) || number < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version must be a positive integer, got '", ClientText(version), "'"));
  }
  return number;
}

absl::StatusOr<int64_t> ParseRequestedVersion(absl::string_view version) {
  if (version.empty()) return -1;
  const bool negative = version[0] == '-';
  absl::string_view digits = negative ? version.substr(1) : version;
  int64_t number = 0;
  if (digits.empty() || digits.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(digits, &number)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "failed to get model version from specified version string '", ClientText(version),
        "' (details: stol), version should be an integral value > 0"));
  }
  if (negative && number > 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid model version specified '",
                                                   ClientText(version),
                                                   "' , version should be an integral value > 0"));
  }
  return number;
}

ModelRegistry::~ModelRegistry() { ShutdownAll(); }

absl::Status ModelRegistry::Add(std::unique_ptr<ServedModel> model) {
  const std::string name = model->metadata().name;
  absl::StatusOr<int64_t> version = ParseModelVersion(model->metadata().version);
  if (!version.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "': ", version.status().message()));
  }
  absl::MutexLock lock(&mu_);
  Versions& versions = models_[name];
  if (!versions.emplace(*version, std::shared_ptr<ServedModel>(std::move(model))).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("model '", name, "' version ", *version, " is already registered"));
  }
  unavailable_.erase(name);
  return absl::OkStatus();
}

absl::Status ModelRegistry::Replace(const std::string& name,
                                    std::vector<std::unique_ptr<ServedModel>> models) {
  Versions incoming;
  for (auto& model : models) {
    if (model->metadata().name != name) {
      return absl::InvalidArgumentError(absl::StrCat("model '", model->metadata().name,
                                                     "' cannot be served as '", name, "'"));
    }
    absl::StatusOr<int64_t> version = ParseModelVersion(model->metadata().version);
    if (!version.ok()) return version.status();
    incoming[*version] = std::shared_ptr<ServedModel>(std::move(model));
  }
  Versions outgoing;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) outgoing = std::move(it->second);
    if (incoming.empty()) {
      if (it != models_.end()) models_.erase(it);
    } else {
      models_[name] = std::move(incoming);
    }
    unavailable_.erase(name);
  }
  for (auto& [version, model] : outgoing) Retire(std::move(model));
  return absl::OkStatus();
}

void ModelRegistry::Retire(std::shared_ptr<ServedModel> model) const {
  // A call that found the model before it left the index holds a reference only between Find()
  // and Submit(), which is microseconds; once the count is ours alone, nobody can submit to it
  // any more, and Shutdown() runs what it already queued.
  // A holder that keeps it longer (a test, a slow statistics call) only delays this, up to a
  // bound: past it the model shuts down anyway, and a late Submit() is answered UNAVAILABLE.
  const absl::Time give_up = clock_->Now() + absl::Seconds(5);
  while (model.use_count() > 1 && clock_->Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  model->Shutdown();
}

void ModelRegistry::SetUnavailable(const std::string& name, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  unavailable_[name] = reason;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRegistry::Find(
    absl::string_view name, absl::string_view version) const {
  absl::StatusOr<int64_t> number = ParseRequestedVersion(version);
  if (!number.ok()) return number.status();
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) {
    if (auto why = unavailable_.find(name); why != unavailable_.end()) {
      return absl::UnavailableError(absl::StrCat("Request for unknown model: '", ClientText(name),
                                                 "' has no available versions (", why->second,
                                                 ")"));
    }
    std::vector<std::string> names;
    for (const auto& [known, versions] : models_) names.push_back(known);
    return absl::NotFoundError(absl::StrCat("Request for unknown model: '", ClientText(name),
                                            "' is not found (serving: ", absl::StrJoin(names, ", "),
                                            ")"));
  }
  const Versions& versions = it->second;
  if (*number < 0) return versions.rbegin()->second;
  auto found = versions.find(*number);
  if (found == versions.end()) {
    std::vector<int64_t> known;
    for (const auto& [v, model] : versions) known.push_back(v);
    return absl::NotFoundError(
        absl::StrCat("Request for unknown model: '", name, "' version ", ClientText(version),
                     " is not found (versions: ", absl::StrJoin(known, ", "), ")"));
  }
  return found->second;
}

std::vector<std::shared_ptr<ServedModel>> ModelRegistry::models() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ServedModel>> result;
  for (const auto& [name, versions] : models_) {
    for (const auto& [version, model] : versions) result.push_back(model);
  }
  return result;
}

void ModelRegistry::ShutdownAll() {
  for (const std::shared_ptr<ServedModel>& model : models()) model->Shutdown();
}

}  // namespace coalesce
