#include "bench/model_dir.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "repository/model_config.h"

ABSL_FLAG(std::string, model_dir, "",
          "A model folder of a repository (config.pbtxt, VERSION/model.pt) to run instead of the "
          "built-in demo; its tensors need fixed dims, or --variable_dim.");
ABSL_FLAG(int, model_version, 1, "With --model_dir: the version folder to load.");
ABSL_FLAG(int64_t, variable_dim, 0,
          "With --model_dir: the size every -1 dimension of the model's tensors takes (a token "
          "input's length, say), as if the config said so; 0 refuses such models.");

namespace coalesce {

absl::StatusOr<ModelOnDisk> ReadModelDir(const std::string& dir, int version, int64_t max_rows,
                                         int64_t variable_dim) {
  std::ifstream in(dir + "/config.pbtxt");
  if (!in) return absl::NotFoundError(absl::StrCat("--model_dir: no ", dir, "/config.pbtxt"));
  std::stringstream text;
  text << in.rdbuf();
  std::string name = dir;
  while (!name.empty() && name.back() == '/') name.pop_back();
  name = name.substr(name.find_last_of('/') + 1);
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(text.str(), name);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_dir: ", dir, "/config.pbtxt: ", parsed.status().message()));
  }
  absl::StatusOr<ModelMetadata> metadata =
      MetadataFromConfig(parsed->config, std::to_string(version));
  if (!metadata.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_dir: ", dir, ": ", metadata.status().message()));
  }
  if (metadata->HasVariableDims() && variable_dim > 0) {
    // The model sees the same shape whichever way it is described, so fixing the dims here
    // measures what the server runs for requests of that size.
    for (auto* tensors : {&metadata->inputs, &metadata->outputs}) {
      for (TensorSpec& spec : *tensors) {
        for (int64_t& dim : spec.dims) {
          if (dim == -1) dim = variable_dim;
        }
        if (spec.reshape.has_value()) {
          for (int64_t& dim : *spec.reshape) {
            if (dim == -1) dim = variable_dim;
          }
        }
      }
    }
  }
  if (metadata->HasVariableDims()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_dir: model '", name, "' has a tensor with variable dims (-1); the benchmarks "
        "need fixed ones (give --variable_dim)"));
  }
  if (metadata->max_batch_size < max_rows) {
    return absl::InvalidArgumentError(absl::StrCat("--model_dir: model '", name,
                                                   "' has max_batch_size ",
                                                   metadata->max_batch_size, ", below batch ",
                                                   max_rows, " of --batch_sizes"));
  }
  return ModelOnDisk{absl::StrCat(dir, "/", version, "/", ModelFileName(parsed->config)),
                     *std::move(metadata)};
}

absl::StatusOr<std::optional<ModelOnDisk>> ModelDirFromFlags(int64_t max_rows) {
  const std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty()) return std::nullopt;
  absl::StatusOr<ModelOnDisk> model = ReadModelDir(dir, absl::GetFlag(FLAGS_model_version),
                                                   max_rows, absl::GetFlag(FLAGS_variable_dim));
  if (!model.ok()) return model.status();
  return *std::move(model);
}

}  // namespace coalesce
