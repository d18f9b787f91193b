#include "server/shared_memory_tensors.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "engine/data_type.h"
#include "server/shared_memory_checks.h"
#include "server/shared_memory_manager.h"

namespace coalesce {
namespace {

constexpr char kRegion[] = "shared_memory_region";
constexpr char kOffset[] = "shared_memory_offset";
constexpr char kByteSize[] = "shared_memory_byte_size";

template <typename Tensor>
bool HasSharedMemoryParameters(const Tensor& tensor) {
  if (tensor.parameters().empty()) return false;
  return tensor.parameters().count(kRegion) + tensor.parameters().count(kOffset) +
             tensor.parameters().count(kByteSize) >
         0;
}

struct SliceParameters {
  std::string region;
  int64_t offset = 0;
  int64_t byte_size = 0;
};

// Triton's rules and texts (ParseSharedMemoryParams).
template <typename Tensor>
absl::StatusOr<SliceParameters> ParseSliceParameters(const Tensor& tensor) {
  const auto& params = tensor.parameters();
  auto region = params.find(kRegion);
  auto offset = params.find(kOffset);
  auto byte_size = params.find(kByteSize);
  if (region == params.end()) {
    const char* given = offset != params.end() ? kOffset : kByteSize;
    return absl::InvalidArgumentError(absl::StrCat("'", given, "' can not be specified without '",
                                                   kRegion, "' parameter for tensor '",
                                                   ClientText(tensor.name()), "'"));
  }
  auto wrong_type = [&tensor](const char* parameter, const char* expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value type for '", parameter, "' parameter for tensor '",
                     ClientText(tensor.name()), "', expected ", expected, "."));
  };
  SliceParameters out;
  if (region->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return wrong_type(kRegion, "string_param");
  }
  out.region = region->second.string_param();
  if (offset != params.end()) {
    if (offset->second.parameter_choice_case() != inference::InferParameter::kInt64Param) {
      return wrong_type(kOffset, "int64_param");
    }
    out.offset = offset->second.int64_param();
  }
  if (byte_size == params.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", kByteSize, "' must be specified along with '", kRegion,
                     "' parameter for tensor '", ClientText(tensor.name()), "'"));
  }
  if (byte_size->second.parameter_choice_case() != inference::InferParameter::kInt64Param) {
    return wrong_type(kByteSize, "int64_param");
  }
  out.byte_size = byte_size->second.int64_param();
  return out;
}

absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> FindRegion(
    const SharedMemoryManager* manager, const std::string& region, const std::string& tensor) {
  absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> found = absl::NotFoundError(
      absl::StrCat("Unable to find shared memory region: '", ClientText(region), "'"));
  if (manager != nullptr) found = manager->Find(region);
  if (!found.ok()) {
    return absl::Status(found.status().code(),
                        absl::StrCat(found.status().message(), " (named by ", tensor, ")"));
  }
  return found;
}

// A tensor's slice of a registered region: its parameters parsed, the region found (for the
// caller to hold), and the slice checked to lie inside it. `label` names the tensor in messages.
struct FoundSlice {
  SliceParameters slice;
  std::shared_ptr<const SharedMemoryRegion> region;
};

template <typename Tensor>
absl::StatusOr<FoundSlice> FindSlice(const SharedMemoryManager* manager, const Tensor& tensor,
                                     const std::string& label) {
  absl::StatusOr<SliceParameters> slice = ParseSliceParameters(tensor);
  if (!slice.ok()) return slice.status();
  absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> region =
      FindRegion(manager, slice->region, label);
  if (!region.ok()) return region.status();
  if (absl::Status s = CheckSliceInRegion(label, slice->region, (*region)->byte_size(),
                                          slice->offset, slice->byte_size);
      !s.ok()) {
    return s;
  }
  return FoundSlice{*std::move(slice), *std::move(region)};
}

// Bytes of a tensor of `datatype` and `shape`; nullopt when a dimension is still unknown (-1)
// or the datatype has no fixed size, int64 max when it does not fit.
std::optional<int64_t> TensorBytes(const std::string& datatype,
                                   const google::protobuf::RepeatedField<int64_t>& shape) {
  std::optional<DataType> dtype = ParseDataType(datatype);
  if (!dtype.has_value()) return std::nullopt;
  int64_t bytes = DataTypeSize(*dtype);
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (dim != 0 && bytes > std::numeric_limits<int64_t>::max() / dim) {
      return std::numeric_limits<int64_t>::max();
    }
    bytes *= dim;
  }
  return bytes;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SharedMemoryTensors>> SharedMemoryTensors::Resolve(
    const SharedMemoryManager* manager, const inference::ModelInferRequest& request) {
  bool any = false;
  for (const auto& input : request.inputs()) any = any || HasSharedMemoryParameters(input);
  for (const auto& output : request.outputs()) any = any || HasSharedMemoryParameters(output);
  if (!any) return nullptr;

  std::unique_ptr<SharedMemoryTensors> tensors(new SharedMemoryTensors());
  tensors->inputs_.resize(request.inputs_size());
  for (int r = 0; r < request.inputs_size(); ++r) {
    const auto& input = request.inputs(r);
    if (!HasSharedMemoryParameters(input)) continue;
    absl::StatusOr<FoundSlice> found =
        FindSlice(manager, input, absl::StrCat("input '", ClientText(input.name()), "'"));
    if (!found.ok()) return found.status();
    const SliceParameters& slice = found->slice;
    auto scratch = std::make_unique<std::string>();
    absl::StatusOr<absl::string_view> bytes =
        found->region->Read(slice.offset, slice.byte_size, *scratch);
    if (!bytes.ok()) return bytes.status();
    if (!scratch->empty()) tensors->scratch_.push_back(std::move(scratch));
    tensors->inputs_[r] = ExternalInput{
        *bytes, absl::StrCat("shared memory region '", ClientText(slice.region), "' (offset ",
                             slice.offset, ", byte_size ", slice.byte_size, ")")};
    tensors->held_.push_back(std::move(found->region));
  }
  for (const auto& output : request.outputs()) {
    if (!HasSharedMemoryParameters(output)) continue;
    absl::StatusOr<FoundSlice> found =
        FindSlice(manager, output, absl::StrCat("output '", ClientText(output.name()), "'"));
    if (!found.ok()) return found.status();
    tensors->outputs_.push_back(OutputSlice{
        output.name(), Slice{found->region, found->slice.offset, found->slice.byte_size}});
    tensors->held_.push_back(std::move(found->region));
  }
  return tensors;
}

const SharedMemoryTensors::OutputSlice* SharedMemoryTensors::FindOutput(
    const std::string& name) const {
  for (const OutputSlice& output : outputs_) {
    if (output.name == name) return &output;
  }
  return nullptr;
}

namespace {

absl::Status TooSmall(const std::string& output, const std::string& region, int64_t offset,
                      int64_t slice_bytes, int64_t needed) {
  return absl::InvalidArgumentError(absl::StrCat(
      "shared memory size specified with the request for output '", output, "' (", slice_bytes,
      " bytes) should be at least ", needed, " bytes to hold the results (region '", region,
      "', offset ", offset, ")"));
}

}  // namespace

absl::Status SharedMemoryTensors::CheckOutputsFit(
    const inference::ModelInferResponse& response) const {
  for (const auto& output : response.outputs()) {
    const OutputSlice* out = FindOutput(output.name());
    if (out == nullptr) continue;
    std::optional<int64_t> bytes = TensorBytes(output.datatype(), output.shape());
    if (bytes.has_value() && *bytes > out->slice.byte_size) {
      return TooSmall(out->name, out->slice.region->name(), out->slice.offset,
                      out->slice.byte_size, *bytes);
    }
  }
  return absl::OkStatus();
}

absl::Status SharedMemoryTensors::WriteOutputs(inference::ModelInferResponse& response) const {
  for (int k = 0; k < response.outputs_size(); ++k) {
    auto* output = response.mutable_outputs(k);
    const OutputSlice* out = FindOutput(output->name());
    if (out == nullptr) continue;
    if (k >= response.raw_output_contents_size()) {
      return absl::InternalError(absl::StrCat("output '", output->name(),
                                              "' has no raw_output_contents entry to move into "
                                              "shared memory"));
    }
    std::string* bytes = response.mutable_raw_output_contents(k);
    const int64_t size = static_cast<int64_t>(bytes->size());
    if (size > out->slice.byte_size) {
      return TooSmall(out->name, out->slice.region->name(), out->slice.offset,
                      out->slice.byte_size, size);
    }
    if (absl::Status s = out->slice.region->Write(out->slice.offset, *bytes); !s.ok()) return s;
    std::string().swap(*bytes);
    auto& params = *output->mutable_parameters();
    params[kRegion].set_string_param(out->slice.region->name());
    params[kOffset].set_int64_param(out->slice.offset);
    params[kByteSize].set_int64_param(size);
  }
  return absl::OkStatus();
}

}  // namespace coalesce
