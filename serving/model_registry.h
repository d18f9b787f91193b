#ifndef COALESCE_SERVING_MODEL_REGISTRY_H_
#define COALESCE_SERVING_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "engine/clock.h"
#include "serving/served_model.h"

namespace coalesce {

// The models a server serves, by name and version, and how a (name, version) in a request
// resolves to one: an empty version means the highest version being served, as in Triton.
// Versions are positive integers (the repository's version folders).
//
// Models come and go while serving (the repository's load and unload). A caller keeps the model
// it found alive by holding the returned shared_ptr; `Replace()` takes models out of the index at
// once but shuts each down only when no caller holds it any more and its queued requests have
// run, so a request that found a model is always served by it.
//
// Thread-safe.
class ModelRegistry {
 public:
  // `clock` bounds how long a retiring model waits for its holders; must outlive the registry.
  explicit ModelRegistry(Clock* clock = Clock::Real()) : clock_(clock) {}
  // Shuts every model down (see ShutdownAll()).
  ~ModelRegistry();

  // Serves `model` under its metadata's name and version. Fails with ALREADY_EXISTS if that
  // name and version is served, INVALID_ARGUMENT if the version is not a positive integer.
  absl::Status Add(std::unique_ptr<ServedModel> model);

  // Makes `models` (versions of `name`; possibly none) the versions served under `name`, in one
  // step, and clears any unavailability recorded for it. The versions they replace are retired:
  // shut down once their in-flight requests are answered. Returns after those have stopped.
  absl::Status Replace(const std::string& name, std::vector<std::unique_ptr<ServedModel>> models);

  // Records why `name` cannot be served; Find() answers UNAVAILABLE with that reason while no
  // version of it is served.
  void SetUnavailable(const std::string& name, const std::string& reason);

  // The model `name` at `version` (empty: the highest served). INVALID_ARGUMENT for a version
  // string that is not a number (ParseRequestedVersion()), checked before the name as Triton
  // does; NOT_FOUND, naming what exists, for an unknown name or version; UNAVAILABLE with the
  // reason for a model that failed to load.
  // Messages start as Triton's do ("Request for unknown model: 'NAME' is not found", "... 'NAME'
  // version V is not found", "... 'NAME' has no available versions"), so that clients matching
  // Triton's texts work unchanged.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name,
                                                    absl::string_view version) const;

  // Every served model version, by name then version.
  std::vector<std::shared_ptr<ServedModel>> models() const;

  // Shuts every model down (see ServedModel::Shutdown()). Idempotent.
  void ShutdownAll();

 private:
  using Versions = std::map<int64_t, std::shared_ptr<ServedModel>>;

  // Waits until nobody but `model`'s last owner holds it, then shuts it down.
  void Retire(std::shared_ptr<ServedModel> model) const;

  Clock* const clock_;

  mutable absl::Mutex mu_;
  std::map<std::string, Versions, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string, std::less<>> unavailable_ ABSL_GUARDED_BY(mu_);
};

// A model version as a number: "3" -> 3. Fails for anything but a positive decimal integer.
absl::StatusOr<int64_t> ParseModelVersion(absl::string_view version);

// The version a request names: "" is -1 (the highest served), decimal digits are that number
// (0 included: it names no version, which the lookup then reports). Anything else is
// INVALID_ARGUMENT with the text of Triton's GetModelVersionFromString ("failed to get model
// version from specified version string 'X' (details: stol), version should be an integral
// value > 0"; for a negative number "invalid model version specified '-1' , version should be
// an integral value > 0"), which Triton's clients and examples match. Unlike Triton's std::stol,
// a number followed by other characters ("1a", " 1") is refused rather than read as 1.
absl::StatusOr<int64_t> ParseRequestedVersion(absl::string_view version);

}  // namespace coalesce

#endif  // COALESCE_SERVING_MODEL_REGISTRY_H_
