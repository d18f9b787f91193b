#ifndef COALESCE_CORE_MODEL_REGISTRY_H_
#define COALESCE_CORE_MODEL_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/served_model.h"

namespace coalesce {

// The models a server serves, by name, and how a (name, version) in a request resolves to one.
//
// Thread-safety: populated before the server starts (`Add()`), then read-only; `Find()` is safe
// from any thread once serving.
class ModelRegistry {
 public:
  // Fails with ALREADY_EXISTS if a model of that name is registered.
  absl::Status Add(std::unique_ptr<ServedModel> model);

  // The model `name` at `version`; an empty version means the model's current one. NOT_FOUND,
  // naming what exists, for an unknown name or version.
  absl::StatusOr<ServedModel*> Find(absl::string_view name, absl::string_view version) const;

  std::vector<ServedModel*> models() const;

  // Shuts every model down (see ServedModel::Shutdown()).
  void ShutdownAll();

 private:
  std::map<std::string, std::unique_ptr<ServedModel>, std::less<>> models_;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_MODEL_REGISTRY_H_
