#ifndef COALESCE_BENCH_MODEL_DIR_H_
#define COALESCE_BENCH_MODEL_DIR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model_metadata.h"

namespace coalesce {

// A model folder of a repository, as the benchmarks' --model_dir names it: its model file and
// metadata.
struct ModelOnDisk {
  std::string file;
  ModelMetadata metadata;
};

// Reads DIR/config.pbtxt as the server would and names DIR/`version`/<model file>. NOT_FOUND or
// INVALID_ARGUMENT, naming the problem, for a folder a benchmark cannot run: no config, a
// config the server would refuse, a tensor with variable dims while `variable_dim` is 0, or a
// max_batch_size below `max_rows`. With `variable_dim` > 0, every -1 of the tensors' dims (and
// reshapes) becomes `variable_dim`: the model as requests of that size run it.
absl::StatusOr<ModelOnDisk> ReadModelDir(const std::string& dir, int version, int64_t max_rows,
                                         int64_t variable_dim = 0);

// The flags --model_dir, --model_version and --variable_dim (defined here, for every program that links this):
// nothing without --model_dir (the program runs the built-in demo), else ReadModelDir() of them.
absl::StatusOr<std::optional<ModelOnDisk>> ModelDirFromFlags(int64_t max_rows);

}  // namespace coalesce

#endif  // COALESCE_BENCH_MODEL_DIR_H_
