#include "core/model_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce {

absl::Status ModelRegistry::Add(std::unique_ptr<ServedModel> model) {
  std::string name = model->metadata().name;
  if (!models_.emplace(name, std::move(model)).second) {
    return absl::AlreadyExistsError(absl::StrCat("model '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServedModel*> ModelRegistry::Find(absl::string_view name,
                                                 absl::string_view version) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [known, model] : models_) names.push_back(known);
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "' (serving: ",
                                            absl::StrJoin(names, ", "), ")"));
  }
  ServedModel* model = it->second.get();
  if (!version.empty() && version != model->metadata().version) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version '", version,
                                            "' (versions: ", model->metadata().version, ")"));
  }
  return model;
}

std::vector<ServedModel*> ModelRegistry::models() const {
  std::vector<ServedModel*> result;
  for (const auto& [name, model] : models_) result.push_back(model.get());
  return result;
}

void ModelRegistry::ShutdownAll() {
  for (auto& [name, model] : models_) model->Shutdown();
}

}  // namespace coalesce
