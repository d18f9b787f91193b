#include "server/request_validator.h"

#include <array>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/client_text.h"
#include "server/tensor_parameters.h"

namespace coalesce {
namespace {

using inference::InferTensorContents;
using inference::ModelInferRequest;

std::string TensorNames(const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ",
                       [](std::string* out, const TensorSpec& s) { out->append(s.name); });
}

// The shape a request must send for `spec`: the batch dimension (-1) first if the model batches.
std::vector<int64_t> ExpectedShape(const ModelMetadata& metadata, const TensorSpec& spec) {
  std::vector<int64_t> shape;
  if (metadata.max_batch_size > 0) shape.push_back(-1);
  shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  return shape;
}

// Elements in `shape`, or an error if it is negative or does not fit in int64.
absl::StatusOr<int64_t> CountElements(const std::string& tensor, absl::Span<const int64_t> shape) {
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(absl::StrCat("input '", tensor, "': shape ",
                                                     ShapeToString(shape),
                                                     " has a negative dimension"));
    }
    if (dim != 0 && elements > std::numeric_limits<int64_t>::max() / dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", tensor, "': shape ", ShapeToString(shape), " has too many elements"));
    }
    elements *= dim;
  }
  return elements;
}

// Copies typed values into little-endian bytes of `Out`, refusing values `Out` cannot hold.
template <typename Out, typename In>
absl::Status AppendValues(const std::string& tensor, absl::string_view datatype,
                          const google::protobuf::RepeatedField<In>& values, std::string& bytes) {
  bytes.resize(values.size() * sizeof(Out));
  char* cursor = bytes.data();
  for (In value : values) {
    if constexpr (std::is_integral_v<Out> && !std::is_same_v<Out, In>) {
      if (value < static_cast<In>(std::numeric_limits<Out>::min()) ||
          value > static_cast<In>(std::numeric_limits<Out>::max())) {
        return absl::InvalidArgumentError(absl::StrCat("input '", tensor, "': value ", value,
                                                       " is out of range for ", datatype));
      }
    }
    Out converted = static_cast<Out>(value);
    std::memcpy(cursor, &converted, sizeof(Out));
    cursor += sizeof(Out);
  }
  return absl::OkStatus();
}

// Each typed contents field of `c` by name, with the number of values it holds.
std::array<std::pair<absl::string_view, int>, 8> TypedFields(const InferTensorContents& c) {
  return {{{"bool_contents", c.bool_contents_size()},
           {"int_contents", c.int_contents_size()},
           {"int64_contents", c.int64_contents_size()},
           {"uint_contents", c.uint_contents_size()},
           {"uint64_contents", c.uint64_contents_size()},
           {"fp32_contents", c.fp32_contents_size()},
           {"fp64_contents", c.fp64_contents_size()},
           {"bytes_contents", c.bytes_contents_size()}}};
}

bool HasTypedContents(const InferTensorContents& c) {
  for (const auto& [field, values] : TypedFields(c)) {
    if (values > 0) return true;
  }
  return false;
}

// Decodes `contents` (typed) into the raw bytes of `count` elements of `dtype`.
absl::StatusOr<std::unique_ptr<std::string>> DecodeTypedContents(const std::string& tensor,
                                                                  DataType dtype, int64_t count,
                                                                  const InferTensorContents& c) {
  absl::string_view name = DataTypeName(dtype);
  auto bytes = std::make_unique<std::string>();
  int64_t got = 0;
  const char* field = "";
  absl::Status status;
  switch (dtype) {
    case DataType::kBool:
      field = "bool_contents", got = c.bool_contents_size();
      status = AppendValues<uint8_t>(tensor, name, c.bool_contents(), *bytes);
      break;
    case DataType::kInt8:
      field = "int_contents", got = c.int_contents_size();
      status = AppendValues<int8_t>(tensor, name, c.int_contents(), *bytes);
      break;
    case DataType::kInt16:
      field = "int_contents", got = c.int_contents_size();
      status = AppendValues<int16_t>(tensor, name, c.int_contents(), *bytes);
      break;
    case DataType::kInt32:
      field = "int_contents", got = c.int_contents_size();
      status = AppendValues<int32_t>(tensor, name, c.int_contents(), *bytes);
      break;
    case DataType::kInt64:
      field = "int64_contents", got = c.int64_contents_size();
      status = AppendValues<int64_t>(tensor, name, c.int64_contents(), *bytes);
      break;
    case DataType::kUint8:
      field = "uint_contents", got = c.uint_contents_size();
      status = AppendValues<uint8_t>(tensor, name, c.uint_contents(), *bytes);
      break;
    case DataType::kUint16:
      field = "uint_contents", got = c.uint_contents_size();
      status = AppendValues<uint16_t>(tensor, name, c.uint_contents(), *bytes);
      break;
    case DataType::kUint32:
      field = "uint_contents", got = c.uint_contents_size();
      status = AppendValues<uint32_t>(tensor, name, c.uint_contents(), *bytes);
      break;
    case DataType::kUint64:
      field = "uint64_contents", got = c.uint64_contents_size();
      status = AppendValues<uint64_t>(tensor, name, c.uint64_contents(), *bytes);
      break;
    case DataType::kFp32:
      field = "fp32_contents", got = c.fp32_contents_size();
      status = AppendValues<float>(tensor, name, c.fp32_contents(), *bytes);
      break;
    case DataType::kFp64:
      field = "fp64_contents", got = c.fp64_contents_size();
      status = AppendValues<double>(tensor, name, c.fp64_contents(), *bytes);
      break;
    case DataType::kFp16:
    case DataType::kBf16:
      return absl::InvalidArgumentError(absl::StrCat("input '", tensor, "': ", name,
                                                     " has no typed contents field; send it in "
                                                     "raw_input_contents"));
  }
  // A value in another field would be dropped without a word.
  for (const auto& [other, values] : TypedFields(c)) {
    if (values > 0 && other != field) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", tensor, "': unexpected contents.", other, " (", values,
                       " values) for ", name, ", whose values go in contents.", field, " only"));
    }
  }
  if (got != count) {
    return absl::InvalidArgumentError(absl::StrCat("input '", tensor, "': expected ", count,
                                                   " values in contents.", field, ", got ", got));
  }
  if (!status.ok()) return status;
  return bytes;
}

// Checks one input's datatype and shape; returns its batch dimension (1 if the model does not
// batch) and element count.
absl::Status ValidateShape(const ModelMetadata& metadata, const TensorSpec& spec,
                           const ModelInferRequest::InferInputTensor& input, int64_t& rows,
                           int64_t& elements) {
  if (input.datatype() == "BYTES") {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': model '",
                                                   metadata.name, "' takes ",
                                                   DataTypeName(spec.dtype),
                                                   ", not BYTES tensors"));
  }
  std::optional<DataType> dtype = ParseDataType(input.datatype());
  if (!dtype.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': unknown datatype '",
                                                   ClientText(input.datatype()), "', expected ",
                                                   DataTypeName(spec.dtype)));
  }
  if (*dtype != spec.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': expected datatype ",
                                                   DataTypeName(spec.dtype), ", got ",
                                                   input.datatype()));
  }
  std::vector<int64_t> expected = ExpectedShape(metadata, spec);
  absl::Span<const int64_t> shape(input.shape().data(), input.shape_size());
  for (int64_t dim : shape) {
    if (dim < 0) {
      // -1 reads as "any size" in metadata; in a request it is an error of its own.
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", spec.name, "': shape ", ShapeToString(shape),
          " has a negative dimension; send the actual sizes (expected ",
          ShapeToString(expected), ")"));
    }
  }
  bool matches = shape.size() == expected.size();
  for (size_t d = 0; matches && d < shape.size(); ++d) {
    matches = expected[d] == -1 ? shape[d] >= 0 : shape[d] == expected[d];
  }
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': expected shape ",
                                                   ShapeToString(expected), ", got ",
                                                   ShapeToString(shape)));
  }
  absl::StatusOr<int64_t> count = CountElements(spec.name, shape);
  if (!count.ok()) return count.status();
  elements = *count;
  rows = metadata.max_batch_size > 0 ? shape[0] : 1;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedRequest> ValidateInferRequest(const ModelMetadata& metadata,
                                                      const ModelInferRequest& request) {
  return ValidateInferRequest(metadata, request, {});
}

absl::StatusOr<ValidatedRequest> ValidateInferRequest(
    const ModelMetadata& metadata, const ModelInferRequest& request,
    absl::Span<const std::optional<ExternalInput>> external) {
  const std::vector<absl::string_view> raw_contents(request.raw_input_contents().begin(),
                                                    request.raw_input_contents().end());
  return ValidateInferRequest(metadata, request, raw_contents, external);
}

absl::StatusOr<ValidatedRequest> ValidateInferRequest(
    const ModelMetadata& metadata, const ModelInferRequest& request,
    absl::Span<const absl::string_view> raw_contents,
    absl::Span<const std::optional<ExternalInput>> external) {
  const int raw_count = static_cast<int>(raw_contents.size());
  if (absl::Status s = CheckTensorParameters(metadata.name, request); !s.ok()) return s;
  if (!external.empty() && static_cast<int>(external.size()) != request.inputs_size()) {
    return absl::InternalError(absl::StrCat("ValidateInferRequest: ", external.size(),
                                            " external inputs for ", request.inputs_size(),
                                            " request inputs"));
  }
  auto external_of = [&external](int r) -> const ExternalInput* {
    return external.empty() || !external[r].has_value() ? nullptr : &*external[r];
  };
  // Map each model input to the request tensor that carries it.
  std::vector<int> source(metadata.inputs.size(), -1);
  for (int r = 0; r < request.inputs_size(); ++r) {
    const std::string& name = request.inputs(r).name();
    int found = -1;
    for (size_t i = 0; i < metadata.inputs.size(); ++i) {
      if (metadata.inputs[i].name == name) found = static_cast<int>(i);
    }
    if (found < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", metadata.name, "' has no input named '", ClientText(name),
                       "' (its inputs: ", TensorNames(metadata.inputs), ")"));
    }
    if (source[found] >= 0) {
      // One of the model's names by now: no need to cut it.
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "' is given twice"));
    }
    source[found] = r;
  }
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    if (source[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("missing input '", metadata.inputs[i].name,
                                                     "' of model '", metadata.name, "'"));
    }
  }
  // raw_input_contents holds the inputs that travel in the message, in request order.
  std::vector<int> raw_index(request.inputs_size(), -1);
  int in_message = 0;
  for (int r = 0; r < request.inputs_size(); ++r) {
    if (external_of(r) == nullptr) raw_index[r] = in_message++;
  }
  const bool raw = raw_count > 0;
  // Before the count of raw contents, as Triton checks it, with Triton's text first: its clients
  // match it.
  for (int r = 0; raw && r < request.inputs_size(); ++r) {
    if (external_of(r) == nullptr && HasTypedContents(request.inputs(r).contents())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contents field must not be specified when using raw_input_contents for '",
          request.inputs(r).name(), "' for model '", metadata.name,
          "' (send every input in raw_input_contents or every input in typed contents)"));
    }
  }
  if (raw && raw_count != in_message) {
    if (in_message == request.inputs_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request has ", raw_count, " raw_input_contents for ",
                       request.inputs_size(),
                       " inputs; send one per input, in the order of inputs"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "request has ", raw_count, " raw_input_contents for ", in_message,
        " inputs outside shared memory (", request.inputs_size() - in_message, " of ",
        request.inputs_size(), " inputs are in shared memory); send one per input that is not, "
        "in the order of inputs"));
  }

  ValidatedRequest validated;
  validated.inputs.resize(metadata.inputs.size());
  validated.input_shapes.resize(metadata.inputs.size());
  std::string first_batched;
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const TensorSpec& spec = metadata.inputs[i];
    const auto& input = request.inputs(source[i]);
    int64_t rows = 0;
    int64_t elements = 0;
    if (absl::Status s = ValidateShape(metadata, spec, input, rows, elements); !s.ok()) return s;
    if (metadata.max_batch_size > 0) {
      if (rows < 1 || rows > metadata.max_batch_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", spec.name, "': batch size ", rows, " is outside 1..", metadata.max_batch_size,
            " (max_batch_size of model '", metadata.name, "')"));
      }
      if (i > 0 && rows != validated.rows) {
        return absl::InvalidArgumentError(absl::StrCat(
            "inputs disagree on the batch dimension: '", first_batched, "' has ", validated.rows,
            ", '", spec.name, "' has ", rows));
      }
    }
    if (i == 0) first_batched = spec.name;
    validated.rows = rows;
    validated.input_shapes[i].assign(input.shape().begin(), input.shape().end());

    if (elements > std::numeric_limits<int64_t>::max() / DataTypeSize(spec.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': shape ",
                                                     ShapeToString(validated.input_shapes[i]),
                                                     " has too many elements"));
    }
    int64_t expected_bytes = elements * DataTypeSize(spec.dtype);
    if (const ExternalInput* elsewhere = external_of(source[i]); elsewhere != nullptr) {
      if (HasTypedContents(input.contents())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", spec.name, "' has typed contents, but its data is in ",
            elsewhere->source, "; send one or the other"));
      }
      if (static_cast<int64_t>(elsewhere->bytes.size()) != expected_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", spec.name, "': ", elsewhere->source, " holds ", elsewhere->bytes.size(),
            " bytes, expected ", expected_bytes, " for shape ",
            ShapeToString(validated.input_shapes[i]), " of ", DataTypeName(spec.dtype)));
      }
      validated.inputs[i] = elsewhere->bytes;
    } else if (raw) {
      const int k = raw_index[source[i]];
      const absl::string_view bytes = raw_contents[k];
      if (static_cast<int64_t>(bytes.size()) != expected_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", spec.name, "': raw_input_contents[", k, "] holds ", bytes.size(),
            " bytes, expected ", expected_bytes, " for shape ",
            ShapeToString(validated.input_shapes[i]), " of ", DataTypeName(spec.dtype)));
      }
      validated.inputs[i] = bytes;
    } else {
      absl::StatusOr<std::unique_ptr<std::string>> bytes =
          DecodeTypedContents(spec.name, spec.dtype, elements, input.contents());
      if (!bytes.ok()) return bytes.status();
      validated.inputs[i] = **bytes;
      validated.owned_inputs.push_back(*std::move(bytes));
    }
  }

  if (request.outputs_size() == 0) {
    for (size_t o = 0; o < metadata.outputs.size(); ++o) validated.outputs.push_back(o);
  }
  for (const auto& requested : request.outputs()) {
    int found = -1;
    for (size_t o = 0; o < metadata.outputs.size(); ++o) {
      if (metadata.outputs[o].name == requested.name()) found = static_cast<int>(o);
    }
    if (found < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", metadata.name, "' has no output named '", ClientText(requested.name()),
          "' (its outputs: ", TensorNames(metadata.outputs), ")"));
    }
    for (int already : validated.outputs) {
      if (already == found) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", requested.name(), "' is requested twice"));
      }
    }
    validated.outputs.push_back(found);
  }
  return validated;
}

}  // namespace coalesce
