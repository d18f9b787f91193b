#ifndef COALESCE_REPOSITORY_PADDING_CONFIG_H_
#define COALESCE_REPOSITORY_PADDING_CONFIG_H_

#include <optional>

#include "absl/status/statusor.h"
#include "engine/model_metadata.h"
#include "proto/model_config.pb.h"

namespace coalesce {

// The model config `parameters` that declare padded batching (docs/batching.md, "Padded
// batching"), each a `string_value`:
//   coalesce.pad_buckets    "16,32,64,128"  the padded lengths, ascending; required with padding
//   coalesce.pad.<input>    "0"             input <input> is padded with this value
//   coalesce.cut.<output>   "<input>"       output <output>'s variable dim follows the length of
//                                           padded input <input>, and is cut back to it
//   coalesce.pad_max_ratio  "0.5"           PaddingSpec::max_padding_ratio, in [0, 1)
// Other parameters are kept and not interpreted, as before.
inline constexpr char kPadBucketsParameter[] = "coalesce.pad_buckets";
inline constexpr char kPadInputPrefix[] = "coalesce.pad.";
inline constexpr char kCutOutputPrefix[] = "coalesce.cut.";
inline constexpr char kPadMaxRatioParameter[] = "coalesce.pad_max_ratio";

// The longest bucket, and the bytes one block of pad values of it may take (PaddedRows keeps one
// per padded input).
inline constexpr int64_t kMaxPadBucket = int64_t{1} << 20;
inline constexpr int64_t kMaxPadBlockBytes = int64_t{64} << 20;

// The padding `config` declares, nullopt for none (the model batches only requests of equal
// dims). INVALID_ARGUMENT naming the model, the parameter and the problem for: a coalesce.pad*
// or coalesce.cut.* key of no form above; padding on a model with max_batch_size 0; buckets
// missing, empty, not whole numbers in 1..kMaxPadBucket, or not ascending; a pad value that is
// not a number its input's type holds exactly; a padded input or cut output that does not
// exist, has no or more than one variable dim, or has a reshape; a cut naming an input that is
// not padded; a variable input not padded or a variable output not cut (a model pads all of
// them or none); a ratio outside [0, 1); a pad block above kMaxPadBlockBytes.
absl::StatusOr<std::optional<PaddingSpec>> PaddingFromConfig(const inference::ModelConfig& config);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_PADDING_CONFIG_H_
