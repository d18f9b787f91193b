#include "repository/model_repository.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "repository/instance_placement.h"
#include "repository/model_config.h"
#include "repository/model_config_override.h"
#include "repository/repository_files.h"

namespace coalesce {
namespace fs = std::filesystem;
namespace {

constexpr char kConfigFile[] = "config.pbtxt";

// The names of the model folders directly under `root` (links followed), sorted. Iterates with
// error codes: a folder removed while it is listed ends the listing, it does not throw (on the
// poller's thread that would end the process).
std::vector<std::string> ModelFolders(const fs::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::error_code kind_ec;
    if (IsPlainModelName(name) && it->is_directory(kind_ec)) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Triton's texts for the stages of a load (its model_repository_manager.cc): reading and checking
// the config is "polling"; a config with nothing to load has "no version"; the backend's own
// failure is "load failed". coalesce's detail follows each. Triton answers the first two
// INTERNAL whatever went wrong (a missing folder, a bad config or load parameter), and its
// clients check that code (simple_grpc_model_control.py), so coalesce does too.
absl::Status NoVersionFailure(const std::string& model, absl::string_view detail) {
  return absl::InternalError(
      absl::StrCat("failed to load '", model, "', no version is available: ", detail));
}
std::string LoadFailure(const std::string& model) {
  return absl::StrCat("load failed for model '", model, "': ");
}
absl::Status WithPrefix(const std::string& prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

absl::Status LoadPollFailure(const std::string& model, absl::string_view detail) {
  return absl::InternalError(
      absl::StrCat("failed to load '", model, "', failed to poll from model repository: ", detail));
}

bool IsPlainModelName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name[0] != '.' &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

ModelRepository::ModelRepository(const Options& options, ModelRegistry* registry,
                                 ServerMetrics* metrics, Clock* clock)
    : options_(options), registry_(registry), metrics_(metrics), clock_(clock) {}

absl::string_view ModelRepository::ControlModeName(ControlMode mode) {
  switch (mode) {
    case ControlMode::kNone:
      return "none";
    case ControlMode::kExplicit:
      return "explicit";
    case ControlMode::kPoll:
      return "poll";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    const Options& options, ModelRegistry* registry, ServerMetrics* metrics, Clock* clock) {
  const ControlMode mode = options.control_mode;
  if (mode == ControlMode::kPoll && options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("repository poll interval must be positive, got ",
                                                   absl::FormatDuration(options.poll_interval)));
  }
  if (!options.backend_factory) {
    return absl::InvalidArgumentError("model repository needs a backend factory");
  }
  std::error_code ec;
  fs::path root = fs::canonical(options.root, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository '", options.root, "' is not a readable folder"));
  }
  Options resolved = options;
  resolved.root = root.string();
  std::unique_ptr<ModelRepository> repo(new ModelRepository(resolved, registry, metrics, clock));
  repo->name_ = root.filename().string();

  std::vector<std::string> startup;
  bool all = mode != ControlMode::kExplicit ||
             std::count(options.startup_models.begin(), options.startup_models.end(), "*") > 0;
  if (all) {
    startup = ModelFolders(root);
  } else {
    // A model named at start that is not there is a configuration error, not a load failure.
    for (const std::string& model : options.startup_models) {
      if (!IsPlainModelName(model) || !fs::is_directory(root / model, ec)) {
        return absl::NotFoundError(absl::StrCat("--load_model: no model folder '", model,
                                                "' in ", root.string()));
      }
      startup.push_back(model);
    }
  }
  {
    absl::MutexLock lock(&repo->load_mu_);
    // A model that fails is recorded UNAVAILABLE with its reason; the others still load.
    for (const std::string& model : startup) repo->LoadLocked(model).IgnoreError();
  }
  if (mode == ControlMode::kPoll) repo->poller_ = std::thread([r = repo.get()] { r->PollLoop(); });
  return repo;
}

ModelRepository::~ModelRepository() {
  stop_.Notify();
  if (poller_.joinable()) poller_.join();
}

std::vector<ModelRepository::IndexEntry> ModelRepository::Index(bool ready_only) const {
  std::vector<IndexEntry> index;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, state] : states_) {
    if (state.state == State::kReady) {
      for (const std::string& version : state.versions) {
        index.push_back({name, version, State::kReady, state.reason});
      }
    } else if (!ready_only) {
      // An unloaded model lists the versions it served, as Triton's index does.
      if (state.versions.empty()) index.push_back({name, "", state.state, state.reason});
      for (const std::string& version : state.versions) {
        index.push_back({name, version, state.state, state.reason});
      }
    }
  }
  if (ready_only) return index;
  // Folders never loaded (explicit mode) are listed too, with no state, as Triton does.
  for (const std::string& name : ModelFolders(options_.root)) {
    if (states_.count(name) == 0) index.push_back({name, "", State::kNotLoaded, ""});
  }
  std::sort(index.begin(), index.end(), [](const IndexEntry& a, const IndexEntry& b) {
    return std::tie(a.name, a.version) < std::tie(b.name, b.version);
  });
  return index;
}

absl::Status ModelRepository::CheckExplicitControl() const {
  if (options_.control_mode == ControlMode::kExplicit) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "explicit model load / unload is not allowed if polling is enabled (coalesce: it needs "
      "--model_control_mode=explicit, and the mode is '",
      ControlModeName(options_.control_mode), "')"));
}

absl::Status ModelRepository::Load(const std::string& model, const LoadOverrides& overrides) {
  if (absl::Status s = CheckExplicitControl(); !s.ok()) return s;
  absl::MutexLock lock(&load_mu_);
  return LoadLocked(model, overrides);
}

absl::Status ModelRepository::Unload(const std::string& model) {
  if (absl::Status s = CheckExplicitControl(); !s.ok()) return s;
  absl::MutexLock lock(&load_mu_);
  return UnloadLocked(model, /*forget=*/false);
}

absl::StatusOr<inference::ModelConfig> ModelRepository::Config(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model);
  if (it == states_.end() || it->second.state != State::kReady) {
    return absl::NotFoundError(absl::StrCat("model '", model, "' is not loaded"));
  }
  return it->second.config;
}

absl::Status ModelRepository::ResolveOverrides(const std::string& model,
                                              const LoadOverrides& overrides, std::string* dir,
                                              std::optional<std::string>* config_text,
                                              std::shared_ptr<OverrideModelFolder>* folder) {
  const fs::path repository_dir = fs::path(options_.root) / model;
  *dir = repository_dir.string();
  std::error_code ec;
  if (overrides.config_json.has_value() &&
      overrides.config_json->size() > static_cast<size_t>(kMaxConfigBytes)) {
    return LoadPollFailure(model, absl::StrCat("the 'config' parameter: expected at most ",
                                               kMaxConfigBytes, " bytes, got ",
                                               overrides.config_json->size()));
  }
  if (!overrides.files.empty()) {
    // As Triton: the files are the whole model folder, so the config must come with them.
    if (!overrides.config_json.has_value()) {
      return LoadPollFailure(model,
                             absl::StrCat("file parameters ('file:", overrides.files.front().first,
                                          "', ...) need the 'config' parameter: the config "
                                          "of the model they make up"));
    }
    absl::StatusOr<inference::ModelConfig> config =
        OverrideModelConfig(*overrides.config_json, nullptr);
    if (!config.ok()) return LoadPollFailure(model, config.status().message());
    absl::StatusOr<std::unique_ptr<OverrideModelFolder>> written = OverrideModelFolder::Create(
        options_.override_files, ModelConfigToText(*config), overrides.files);
    if (!written.ok()) return LoadPollFailure(model, written.status().message());
    *folder = *std::move(written);
    *dir = (*folder)->path();
    return absl::OkStatus();
  }
  if (!fs::is_directory(repository_dir, ec)) {
    return LoadPollFailure(model,
                           absl::StrCat("no folder '", model, "' in repository '", name_, "'"));
  }
  // A symbolic link may not lead out of the repository.
  if (!ResolvesInside(repository_dir, options_.root)) {
    return LoadPollFailure(model,
                           absl::StrCat("model folder '", model, "' leads outside the repository"));
  }
  if (!overrides.config_json.has_value()) return absl::OkStatus();
  // The JSON applies over the folder's config, which must itself be valid.
  std::optional<inference::ModelConfig> base;
  absl::StatusOr<std::string> text = ReadModelConfig(model, repository_dir);
  if (!text.ok() && !absl::IsNotFound(text.status())) {
    return LoadPollFailure(model, text.status().message());
  }
  if (text.ok()) {
    absl::StatusOr<ParsedModelConfig> parsed =
        ParseModelConfig(*text, model, options_.config_limits);
    if (!parsed.ok()) {
      return LoadPollFailure(
          model, absl::StrCat(model, "/", kConfigFile, ": ", parsed.status().message()));
    }
    base = std::move(parsed->config);
  }
  absl::StatusOr<inference::ModelConfig> config =
      OverrideModelConfig(*overrides.config_json, base ? &*base : nullptr);
  if (!config.ok()) return LoadPollFailure(model, config.status().message());
  *config_text = ModelConfigToText(*config);
  return absl::OkStatus();
}

absl::Status ModelRepository::LoadLocked(const std::string& model,
                                         const LoadOverrides& overrides) {
  if (model.empty()) {
    return absl::InvalidArgumentError(
        "Model name cannot be empty. Please enter a valid name to deploy.");
  }
  if (!IsPlainModelName(model)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid model name '", model,
        "', model name must not contain path traversal characters (a model is a folder directly "
        "in the repository: no '/' or '\\', not starting with '.')"));
  }
  const fs::path repository_dir = fs::path(options_.root) / model;
  // Taken before reading, so that a change made during the load shows at the next poll.
  std::string fingerprint = ModelFolderFingerprint(model, repository_dir);
  std::string dir;
  std::optional<std::string> config_text;
  std::shared_ptr<OverrideModelFolder> folder;
  inference::ModelConfig config;
  absl::Status resolved = ResolveOverrides(model, overrides, &dir, &config_text, &folder);
  absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> built =
      resolved.ok() ? BuildGuarded(model, dir, folder != nullptr ? folder->path() : options_.root,
                                   config_text, &config)
                    : resolved;
  std::error_code ec;
  if (!built.ok() && fs::is_directory(repository_dir, ec)) {
    absl::MutexLock lock(&mu_);
    ModelState& state = states_[model];
    state.fingerprint = std::move(fingerprint);
    // Versions already serving keep serving; the index shows the failure.
    if (state.state == State::kReady) {
      state.reason = absl::StrCat("reload failed, serving the versions loaded before: ",
                                  built.status().message());
    } else {
      state.reason = std::string(built.status().message());
      state.state = State::kUnavailable;
      state.versions.clear();
      registry_->SetUnavailable(model, state.reason);
    }
  }
  if (!built.ok()) return built.status();
  std::vector<std::string> versions;
  for (const auto& served : *built) versions.push_back(served->metadata().version);
  if (absl::Status s = registry_->Replace(model, *std::move(built)); !s.ok()) return s;
  // The versions served from a previous folder have retired (Replace() returned), so it can
  // go; it is removed here, after the lock.
  std::shared_ptr<OverrideModelFolder> previous;
  absl::MutexLock lock(&mu_);
  ModelState& state = states_[model];
  state.state = State::kReady;
  state.reason.clear();
  state.versions = std::move(versions);
  state.config = std::move(config);
  state.fingerprint = std::move(fingerprint);
  previous = std::exchange(state.folder, std::move(folder));
  return absl::OkStatus();
}

absl::Status ModelRepository::UnloadLocked(const std::string& model, bool forget) {
  // Outlives the versions served from it, which Replace() retires.
  std::shared_ptr<OverrideModelFolder> folder;
  {
    absl::MutexLock lock(&mu_);
    // As in Triton, unloading a model that is not loaded succeeds: the goal state holds.
    auto it = states_.find(model);
    if (it == states_.end()) return absl::OkStatus();
    folder = std::move(it->second.folder);
    if (forget) {
      states_.erase(it);
    } else {
      ModelState& state = it->second;
      state.state = State::kUnavailable;
      state.reason = "unloaded";
      state.config.Clear();
      state.fingerprint.clear();
    }
  }
  return registry_->Replace(model, {});
}

absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> ModelRepository::BuildGuarded(
    const std::string& model, const std::string& dir, const std::string& root,
    const std::optional<std::string>& config_text, inference::ModelConfig* config) {
  // One model's load must not end the process, whatever it throws: an allocation too large for
  // this machine (std::bad_alloc), an accelerator out of memory (LibTorch's c10::Error).
  try {
    return Build(model, dir, root, config_text, config);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(LoadFailure(model), "out of memory while loading"));
  } catch (const std::exception& e) {
    // LibTorch's messages carry a backtrace after the first line.
    const std::string what = e.what();
    return absl::InternalError(
        absl::StrCat(LoadFailure(model), what.substr(0, what.find('\n'))));
  }
}

absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> ModelRepository::Build(
    const std::string& model, const std::string& folder, const std::string& root,
    const std::optional<std::string>& config_text, inference::ModelConfig* config) {
  const fs::path dir(folder);
  // A link may lead out of the repository only where allowed; each failure names the link.
  auto check_inside = [&](const fs::path& path, const std::string& name) -> absl::Status {
    if (options_.allow_links_outside_root || ResolvesInside(path, root)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        absl::StrCat("'", name, "' leads outside the repository; "
                     "--allow_links_outside_repository follows such links"));
  };
  const std::string config_name = absl::StrCat(model, "/", kConfigFile);
  absl::StatusOr<std::string> text = config_text.has_value()
                                         ? absl::StatusOr<std::string>(*config_text)
                                         : ReadModelConfig(model, dir);
  if (!config_text.has_value()) {
    if (absl::IsNotFound(text.status())) {
      return LoadPollFailure(model, absl::StrCat("model '", model, "' has no ", kConfigFile));
    }
    absl::Status usable = text.status();
    if (usable.ok()) usable = check_inside(dir / kConfigFile, config_name);
    if (!usable.ok()) return LoadPollFailure(model, usable.message());
  }
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(*text, model, options_.config_limits);
  if (!parsed.ok()) {
    return LoadPollFailure(model,
                           absl::StrCat(model, "/", kConfigFile, ": ", parsed.status().message()));
  }
  for (const std::string& warning : parsed->warnings) {
    const std::string line = absl::StrCat(model, "/", kConfigFile, ": ", warning);
    if (options_.warn) {
      options_.warn(line);
    } else {
      std::fprintf(stderr, "coalesce: %s\n", line.c_str());
    }
  }
  *config = parsed->config;
  absl::StatusOr<std::vector<int64_t>> present = ListVersionFolders(dir);
  if (!present.ok()) return NoVersionFailure(model, present.status().message());
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(config->version_policy(), *std::move(present));
  if (!versions.ok()) {
    return NoVersionFailure(model, versions.status().message());
  }
  if (versions->empty()) {
    return NoVersionFailure(model, absl::StrCat("model '", model, "' has no version folder (",
                                                model, "/1/", ModelFileName(*config), ")"));
  }
  absl::StatusOr<ModelConfigOverrides> overrides =
      ApplyModelConfig(*config, options_.model_defaults);
  if (!overrides.ok()) return LoadPollFailure(model, overrides.status().message());
  PlacementContext devices;
  devices.server_device = options_.server_device;
  devices.default_instances = options_.model_defaults.num_workers;
  devices.visible_gpus = options_.visible_gpus ? options_.visible_gpus() : 0;
  absl::StatusOr<InstancePlacement> placement = PlaceInstances(*config, devices);
  if (!placement.ok()) return WithPrefix(LoadFailure(model), placement.status());

  std::vector<std::unique_ptr<ServedModel>> served;
  for (int64_t version : *versions) {
    absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(*config, std::to_string(version));
    if (!metadata.ok()) return LoadPollFailure(model, metadata.status().message());
    const std::string version_name = absl::StrCat(model, "/", version);
    const std::string file_name = absl::StrCat(version_name, "/", ModelFileName(*config));
    const fs::path file = dir / std::to_string(version) / ModelFileName(*config);
    absl::Status usable = check_inside(dir / std::to_string(version), version_name);
    std::error_code ec;
    if (usable.ok() && !fs::exists(fs::symlink_status(file, ec))) {
      return absl::NotFoundError(absl::StrCat(LoadFailure(model), "version ", version,
                                              ": no file ", file.filename().string()));
    }
    if (usable.ok()) usable = check_inside(file, file_name);
    if (usable.ok()) usable = CheckRegularFile(file, file_name);
    if (!usable.ok()) {
      return WithPrefix(absl::StrCat(LoadFailure(model), "version ", version, ": "), usable);
    }
    std::vector<ServedModel::DeviceInstances> instances;
    for (const DeviceShare& share : placement->shares) {
      BackendSettings settings;
      settings.device = placement->device;
      settings.gpu = share.gpu;
      settings.num_workers = share.instances;
      settings.cuda_graphs = overrides->cuda_graphs;
      absl::StatusOr<std::unique_ptr<Backend>> backend =
          options_.backend_factory(file.string(), *metadata, settings);
      if (!backend.ok()) return WithPrefix(LoadFailure(model), backend.status());
      instances.push_back({*std::move(backend), share.instances});
    }
    absl::StatusOr<std::unique_ptr<ServedModel>> model_version =
        ServedModel::Create(overrides->model, std::move(instances), metrics_, clock_);
    if (!model_version.ok()) {
      return WithPrefix(absl::StrCat(LoadFailure(model), "version ", version, ": "),
                        model_version.status());
    }
    served.push_back(*std::move(model_version));
  }
  return served;
}

void ModelRepository::PollOnce() {
  absl::MutexLock lock(&load_mu_);
  const std::vector<std::string> present = ModelFolders(options_.root);
  // Each known model's fingerprint, and whether it is serving.
  std::map<std::string, std::pair<std::string, bool>> known;
  {
    absl::MutexLock state_lock(&mu_);
    for (const auto& [name, state] : states_) {
      known[name] = {state.fingerprint, state.state == State::kReady};
    }
  }
  for (const auto& [name, unused] : known) {
    if (!std::binary_search(present.begin(), present.end(), name)) {
      // Gone from disk: nothing left to report to, or to list.
      UnloadLocked(name, /*forget=*/true).IgnoreError();
    }
  }
  for (const std::string& name : present) {
    auto it = known.find(name);
    if (it != known.end() &&
        it->second.first == ModelFolderFingerprint(name, fs::path(options_.root) / name)) {
      continue;
    }
    // New or changed. A failure is recorded in the index, with its fingerprint, so that the
    // same failure is neither retried nor reported at every poll.
    const bool serving = it != known.end() && it->second.second;
    absl::Status status = LoadLocked(name);
    if (!status.ok()) {
      ReportError(absl::StrCat("model ", name, ": ",
                               serving ? "reload failed; the versions loaded before keep serving: "
                                       : "load failed: ",
                               status.message()));
    }
  }
}

void ModelRepository::ReportError(const std::string& line) const {
  if (options_.error) {
    options_.error(line);
  } else {
    std::fprintf(stderr, "coalesce: %s\n", line.c_str());
  }
}

void ModelRepository::PollLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) PollOnce();
}

}  // namespace coalesce
