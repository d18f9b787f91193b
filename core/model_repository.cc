#include "core/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model_config.h"
#include "core/model_config_override.h"

namespace coalesce {
namespace fs = std::filesystem;
namespace {

constexpr char kConfigFile[] = "config.pbtxt";

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The numeric version folders of a model folder, ascending.
std::vector<int64_t> VersionFolders(const fs::path& dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    int64_t version = 0;
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") == std::string::npos &&
        absl::SimpleAtoi(name, &version) && version > 0) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

// Changes whenever the config or any version's files change: the config's text plus each
// version folder's files with their sizes and modification times.
std::string Fingerprint(const fs::path& dir, const std::string& config_text) {
  std::string print = config_text;
  std::error_code ec;
  for (int64_t version : VersionFolders(dir)) {
    fs::path vdir = dir / std::to_string(version);
    std::vector<std::string> files;
    for (const fs::directory_entry& entry : fs::recursive_directory_iterator(vdir, ec)) {
      if (!entry.is_regular_file(ec)) continue;
      files.push_back(absl::StrCat(
          entry.path().string(), ":", entry.file_size(ec), ":",
          entry.last_write_time(ec).time_since_epoch().count()));
    }
    std::sort(files.begin(), files.end());
    absl::StrAppend(&print, "\n", version, "\n", absl::StrJoin(files, "\n"));
  }
  return print;
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

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    const Options& options, ModelRegistry* registry, ServerMetrics* metrics, Clock* clock) {
  const std::string& mode = options.control_mode;
  if (mode != "none" && mode != "explicit" && mode != "poll") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model control mode must be none, explicit or poll, got '", mode, "'"));
  }
  if (mode == "poll" && options.poll_interval <= absl::ZeroDuration()) {
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
  bool all = mode != "explicit" ||
             std::count(options.startup_models.begin(), options.startup_models.end(), "*") > 0;
  if (all) {
    for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
      std::string name = entry.path().filename().string();
      if (entry.is_directory(ec) && IsPlainModelName(name)) startup.push_back(name);
    }
    std::sort(startup.begin(), startup.end());
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
  if (mode == "poll") repo->poller_ = std::thread([r = repo.get()] { r->PollLoop(); });
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
    if (state.state == "READY") {
      for (const std::string& version : state.versions) {
        index.push_back({name, version, "READY", ""});
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
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.root, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory(ec) && IsPlainModelName(name) && states_.count(name) == 0) {
      index.push_back({name, "", "", ""});
    }
  }
  std::sort(index.begin(), index.end(), [](const IndexEntry& a, const IndexEntry& b) {
    return std::tie(a.name, a.version) < std::tie(b.name, b.version);
  });
  return index;
}

absl::Status ModelRepository::CheckExplicitControl() const {
  if (options_.control_mode == "explicit") return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "explicit model load / unload is not allowed if polling is enabled (coalesce: it needs "
      "--model_control_mode=explicit, and the mode is '",
      options_.control_mode, "')"));
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
  if (it == states_.end() || it->second.state != "READY") {
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
  fs::path real = fs::canonical(repository_dir, ec);
  std::string root_prefix = options_.root + "/";
  if (ec || real.string().compare(0, root_prefix.size(), root_prefix) != 0) {
    return LoadPollFailure(model,
                           absl::StrCat("model folder '", model, "' leads outside the repository"));
  }
  if (!overrides.config_json.has_value()) return absl::OkStatus();
  // The JSON applies over the folder's config, which must itself be valid.
  std::optional<inference::ModelConfig> base;
  if (absl::StatusOr<std::string> text = ReadFile(repository_dir / kConfigFile); text.ok()) {
    absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(*text, model);
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
  std::string dir;
  std::optional<std::string> config_text;
  std::shared_ptr<OverrideModelFolder> folder;
  if (absl::Status s = ResolveOverrides(model, overrides, &dir, &config_text, &folder); !s.ok()) {
    return s;
  }
  inference::ModelConfig config;
  std::string fingerprint;
  absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> built =
      Build(model, dir, config_text, &config, &fingerprint);
  if (!built.ok()) {
    absl::MutexLock lock(&mu_);
    ModelState& state = states_[model];
    state.fingerprint = fingerprint;
    state.reason = std::string(built.status().message());
    // Versions already serving keep serving; the index shows the failure.
    if (state.state != "READY") {
      state.state = "UNAVAILABLE";
      state.versions.clear();
      registry_->SetUnavailable(model, state.reason);
    }
    return built.status();
  }
  std::vector<std::string> versions;
  for (const auto& served : *built) versions.push_back(served->metadata().version);
  if (absl::Status s = registry_->Replace(model, *std::move(built)); !s.ok()) return s;
  // The versions served from a previous folder have retired (Replace() returned), so it can
  // go; it is removed here, after the lock.
  std::shared_ptr<OverrideModelFolder> previous;
  absl::MutexLock lock(&mu_);
  ModelState& state = states_[model];
  state.state = "READY";
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
      state.state = "UNAVAILABLE";
      state.reason = "unloaded";
      state.config.Clear();
      state.fingerprint.clear();
    }
  }
  return registry_->Replace(model, {});
}

absl::StatusOr<std::vector<std::unique_ptr<ServedModel>>> ModelRepository::Build(
    const std::string& model, const std::string& folder,
    const std::optional<std::string>& config_text, inference::ModelConfig* config,
    std::string* fingerprint) {
  const fs::path dir(folder);
  absl::StatusOr<std::string> text = config_text.has_value()
                                         ? absl::StatusOr<std::string>(*config_text)
                                         : ReadFile(dir / kConfigFile);
  *fingerprint = Fingerprint(dir, text.ok() ? *text : "");
  if (!text.ok()) {
    return LoadPollFailure(model, absl::StrCat("model '", model, "' has no ", kConfigFile));
  }
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(*text, model);
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
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(config->version_policy(), VersionFolders(dir));
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

  std::vector<std::unique_ptr<ServedModel>> served;
  for (int64_t version : *versions) {
    absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(*config, std::to_string(version));
    if (!metadata.ok()) return LoadPollFailure(model, metadata.status().message());
    fs::path file = dir / std::to_string(version) / ModelFileName(*config);
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
      return absl::NotFoundError(absl::StrCat(LoadFailure(model), "version ", version,
                                              ": no file ", file.filename().string()));
    }
    BackendSettings settings;
    settings.device = overrides->device;
    settings.num_workers = overrides->model.num_workers;
    settings.cuda_graphs = overrides->cuda_graphs;
    absl::StatusOr<std::unique_ptr<Backend>> backend =
        options_.backend_factory(file.string(), *metadata, settings);
    if (!backend.ok()) return WithPrefix(LoadFailure(model), backend.status());
    absl::StatusOr<std::unique_ptr<ServedModel>> model_version =
        ServedModel::Create(overrides->model, *std::move(backend), metrics_, clock_);
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
  std::error_code ec;
  std::vector<std::string> present;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.root, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory(ec) && IsPlainModelName(name)) present.push_back(name);
  }
  std::map<std::string, std::string> known;
  {
    absl::MutexLock state_lock(&mu_);
    for (const auto& [name, state] : states_) known[name] = state.fingerprint;
  }
  for (const auto& [name, print] : known) {
    if (std::find(present.begin(), present.end(), name) == present.end()) {
      // Gone from disk: nothing left to report to, or to list.
      UnloadLocked(name, /*forget=*/true).IgnoreError();
    }
  }
  for (const std::string& name : present) {
    const fs::path dir = fs::path(options_.root) / name;
    absl::StatusOr<std::string> text = ReadFile(dir / kConfigFile);
    std::string print = Fingerprint(dir, text.ok() ? *text : "");
    auto it = known.find(name);
    if (it != known.end() && it->second == print) continue;
    // New or changed; a failure is recorded in the index.
    LoadLocked(name).IgnoreError();
  }
}

void ModelRepository::PollLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) PollOnce();
}

}  // namespace coalesce
