#ifndef COALESCE_REPOSITORY_MODEL_REPOSITORY_H_
#define COALESCE_REPOSITORY_MODEL_REPOSITORY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/clock.h"
#include "execution/backend.h"
#include "execution/device.h"
#include "proto/model_config.pb.h"
#include "repository/model_config.h"
#include "repository/override_model_folder.h"
#include "serving/metrics.h"
#include "serving/model_registry.h"
#include "serving/served_model.h"

namespace coalesce {

// A Triton-style model repository on disk, loaded into a ModelRegistry:
//
//   <root>/<model>/config.pbtxt        protobuf text of inference.ModelConfig
//   <root>/<model>/<version>/model.pt  TorchScript (or config's default_model_filename)
//
// Each model is loaded with the versions its version_policy selects (default: the latest one);
// every version gets its own backend, batcher and workers. A model that cannot be loaded (no
// config, a config that does not parse or contradicts the model's real shapes, a file that is
// not TorchScript, no version folder) is recorded as UNAVAILABLE with the reason, and the server
// goes on serving the others. Reloading a model swaps the new versions in at once; requests the
// old ones hold finish there (ModelRegistry::Replace()).
//
// Model names from requests are checked to be plain folder names directly under the root; no
// request can make the repository read outside it. Links (a model folder, a version folder, a
// config or model file that is a symbolic link) must resolve inside the root, unless
// Options::allow_links_outside_root. Only regular files are read, a config within
// kMaxConfigBytes (repository/repository_files.h): no folder can make a load or a poll block, read
// without end or walk a whole tree.
//
// Any failure while loading, an allocation failure included (std::bad_alloc, an accelerator out
// of memory), fails that model's load and is recorded with the reason; it never ends the process.
//
// Thread-safe: Load(), Unload() and Index() may be called from RPC threads while serving; loads
// and unloads are serialised.
class ModelRepository {
 public:
  // What changes the set of served models after start (--model_control_mode).
  enum class ControlMode {
    // Every model loaded at start; no changes after.
    kNone,
    // `startup_models` loaded at start; RepositoryModelLoad/Unload change what is served.
    kExplicit,
    // Every model loaded at start, and the root rescanned every `poll_interval`: new and
    // changed models loaded, removed ones unloaded.
    kPoll,
  };
  // "none", "explicit", "poll": the flag's spellings, for messages.
  static absl::string_view ControlModeName(ControlMode mode);

  // A model's state in Index(). The wire carries Triton's names for them ("READY",
  // "UNAVAILABLE", "" for kNotLoaded); server/ converts.
  enum class State {
    // A model folder that was never loaded (explicit mode).
    kNotLoaded,
    kReady,
    kUnavailable,
  };

  // What a model's config asks of its backend, besides its metadata.
  struct BackendSettings {
    // Unset for the server's default, or the config's instance_group kind.
    std::optional<DeviceKind> device;
    // The CUDA device to load on (cuda:N), from the model's placement; -1 for the backend's
    // default device.
    int gpu = -1;
    // Executor workers that will call the backend (the instances on this device).
    int num_workers = 1;
    // optimization.cuda.graphs: CUDA graphs whatever the server's default.
    bool cuda_graphs = false;
  };
  // Turns one model version on disk into a backend, on one device. `path` is the model file; the
  // metadata comes from the config. Called once per device a version's instances are placed on
  // (repository/instance_placement.h), with no lock held; may be slow.
  using BackendFactory = std::function<absl::StatusOr<std::unique_ptr<Backend>>(
      const std::string& path, const ModelMetadata& metadata, const BackendSettings& settings)>;

  struct Options {
    // The repository folder. Must exist.
    std::string root;
    ControlMode control_mode = ControlMode::kNone;
    // Models to load at start in explicit mode; "*" loads every model.
    std::vector<std::string> startup_models;
    absl::Duration poll_interval = absl::Seconds(15);
    // Settings of a model whose config does not say (from the server's flags).
    ServedModel::Options model_defaults;
    BackendFactory backend_factory;
    // The server's --device (unset: auto) and how many CUDA devices the process sees, which
    // place a model's instances on GPUs (PlaceInstances()). Unset visible_gpus: none, so every
    // model runs on the one device its backend picks.
    std::optional<DeviceKind> server_device;
    std::function<int()> visible_gpus;
    // Where and how much a load that brings its own files (LoadOverrides::files) may write.
    OverrideModelFolder::Options override_files;
    // Bounds a config is checked against (ParseModelConfig()).
    ModelConfigLimits config_limits;
    // Follow links that lead out of the root (a version folder or model file linked to a shared
    // store). Off, such a model fails to load, naming the link.
    bool allow_links_outside_root = false;
    // Receives each warning about a config field accepted but ignored, as "MODEL/config.pbtxt:
    // TEXT", on the thread that loads; the server passes them to its log. Unset: one line each
    // on stderr.
    std::function<void(const std::string& warning)> warn;
    // Receives one line for each load a poll tries that fails, once per change to the model's
    // folder (a poll retries a model only when its fingerprint changed). Unset: stderr.
    std::function<void(const std::string& error)> error;
  };

  // What a load request changes about the model it loads (Triton's load parameters).
  struct LoadOverrides {
    // "config": a JSON ModelConfig applied over the model's config.pbtxt for this load (see
    // OverrideModelConfig()); with `files`, the whole config.
    std::optional<std::string> config_json;
    // "file:<path>": the model folder's files (e.g. {"1/model.pt", bytes}); the model is then
    // loaded from them, in a private temporary folder, instead of the repository's folder.
    // Needs `config_json`.
    std::vector<OverrideModelFolder::File> files;
  };

  // A model (and version) as RepositoryIndex lists it.
  struct IndexEntry {
    std::string name;
    std::string version;
    State state = State::kNotLoaded;
    // Why UNAVAILABLE; for READY, empty unless the last load of a served model failed (its
    // earlier versions keep serving), then "reload failed, serving the versions loaded before:
    // " and why.
    std::string reason;
  };

  // Scans `root` and loads the start-up models into `registry`. A model that fails to load does
  // not fail Create(); it is listed UNAVAILABLE. `registry`, `metrics` and `clock` must outlive
  // the repository.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(const Options& options,
                                                                 ModelRegistry* registry,
                                                                 ServerMetrics* metrics,
                                                                 Clock* clock);
  // Stops polling.
  ~ModelRepository();

  // The repository's name in RepositoryIndex requests: the root folder's base name.
  const std::string& name() const { return name_; }
  ControlMode control_mode() const { return options_.control_mode; }

  // Every model folder under the root, with its state; only ready ones if `ready_only`.
  std::vector<IndexEntry> Index(bool ready_only) const;

  // Loads or reloads `model` from disk. FAILED_PRECONDITION unless the control mode is
  // kExplicit; INVALID_ARGUMENT for a name that is not a plain folder name; otherwise the
  // load's error (the model is then listed UNAVAILABLE, or, if it was serving, keeps serving
  // its versions and is listed READY with the failure as reason), with Triton's text and code
  // for the stage that failed: INTERNAL "failed to load
  // 'NAME', failed to poll from model repository: ..." (no such folder, no or a bad config, bad
  // `overrides`), INTERNAL "failed to load 'NAME', no version is available: ...", and "load
  // failed for model 'NAME': ..." with the backend's own code (RESOURCE_EXHAUSTED for memory
  // that cannot be allocated, PERMISSION_DENIED for a link leading outside the root).
  // With `overrides`, the model loads with that config and/or from those files, until the
  // next load without them: files need a config, the config must be JSON of a ModelConfig,
  // and OverrideModelFolder must accept the files (else the "failed to poll" error).
  absl::Status Load(const std::string& model, const LoadOverrides& overrides = {});
  // Stops serving `model` once the requests it holds are answered; Index() then lists the
  // versions it served as UNAVAILABLE, reason "unloaded". FAILED_PRECONDITION unless the control
  // mode is kExplicit. A model that is not loaded is OK, as in Triton.
  absl::Status Unload(const std::string& model);

  // The config a served model was loaded with; NOT_FOUND if `model` is not loaded.
  absl::StatusOr<inference::ModelConfig> Config(const std::string& model) const;

  // Scans the root once as poll mode does (exposed for tests): loads new models, reloads those
  // whose config, version folders or versions' model files changed, unloads those whose folder
  // went away. A load that fails goes to Options::error.
  void PollOnce();

 private:
  struct ModelState {
    State state = State::kUnavailable;  // kReady or kUnavailable.
    std::string reason;                 // Why UNAVAILABLE.
    // Served versions when READY; the versions it served once unloaded; else none.
    std::vector<std::string> versions;
    inference::ModelConfig config;
    // What PollOnce() compares to notice a change (ModelFolderFingerprint()).
    std::string fingerprint;
    // The folder of files the load brought, if it brought any; kept while the model is served.
    std::shared_ptr<OverrideModelFolder> folder;
  };

  ModelRepository(const Options& options, ModelRegistry* registry, ServerMetrics* metrics,
                  Clock* clock);

  // FAILED_PRECONDITION unless the control mode is kExplicit.
  absl::Status CheckExplicitControl() const;
  // Loads `model` (a checked folder name) and records the outcome. REQUIRES: load_mu_ held.
  absl::Status LoadLocked(const std::string& model, const LoadOverrides& overrides = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mu_);
  // Stops serving `model`. Unless `forget` (poll mode, the folder went away), the index keeps
  // listing the versions it served as UNAVAILABLE, reason "unloaded", as Triton's does.
  // REQUIRES: load_mu_ held.
  absl::Status UnloadLocked(const std::string& model, bool forget)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mu_);
  // Reads config (`config_text` if given, else `dir`/config.pbtxt) and model files from `dir`
  // and builds every selected version. Links must resolve inside `root` (unless allowed).
  // Exceptions propagate.
  absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> Build(
      const std::string& model, const std::string& dir, const std::string& root,
      const std::optional<std::string>& config_text, inference::ModelConfig* config);
  // Build(), with any exception turned into the load's error.
  absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> BuildGuarded(
      const std::string& model, const std::string& dir, const std::string& root,
      const std::optional<std::string>& config_text, inference::ModelConfig* config);
  // Options::error, or stderr.
  void ReportError(const std::string& line) const;
  // Where `model` loads from with `overrides`: the repository's folder or a folder of the
  // request's files (then set in `folder`), and the config text when the request changes it.
  absl::Status ResolveOverrides(const std::string& model, const LoadOverrides& overrides,
                                std::string* dir, std::optional<std::string>* config_text,
                                std::shared_ptr<OverrideModelFolder>* folder);
  void PollLoop();

  const Options options_;
  std::string name_;
  ModelRegistry* const registry_;
  ServerMetrics* const metrics_;
  Clock* const clock_;

  // Held for a whole load or unload, so that they run one at a time.
  absl::Mutex load_mu_;
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(load_mu_);
  std::map<std::string, ModelState> states_ ABSL_GUARDED_BY(mu_);

  absl::Notification stop_;
  std::thread poller_;
};

// Triton's answer to a load that fails before the model is read (no such folder, no or a bad
// config, bad load parameters): INTERNAL "failed to load 'MODEL', failed to poll from model
// repository: " and `detail`. Triton's clients check both the text and the code.
absl::Status LoadPollFailure(const std::string& model, absl::string_view detail);

// Whether `name` may name a model folder: non-empty, at most 255 bytes, no '/', '\\' or NUL,
// not "." or "..", not starting with '.'.
bool IsPlainModelName(const std::string& name);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_MODEL_REPOSITORY_H_
