#include "bench/stress_traffic.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce::stress {
namespace {

using grpc::StatusCode;

std::string Shape(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Checks one output tensor of a valid answer against the pool's expected rows.
bool CheckOutput(const Call& call, const ModelShape& model, const SamplePool& pool, int o,
                 Check check, double atol, double rtol, std::string* why) {
  const ModelShape::Tensor& spec = model.outputs[o];
  const auto& tensor = call.response.outputs(o);
  const std::string& raw = call.response.raw_output_contents(o);
  const int64_t rows = static_cast<int64_t>(call.rows.size());
  std::vector<int64_t> shape;
  if (model.batched) shape.push_back(rows);
  shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  std::vector<int64_t> got(tensor.shape().begin(), tensor.shape().end());
  if (tensor.name() != spec.name || tensor.datatype() != "FP32" || got != shape) {
    *why = absl::StrCat("output ", o, " is ", tensor.name(), " ", tensor.datatype(), " ",
                        Shape(got), ", expected ", spec.name, " FP32 ", Shape(shape));
    return false;
  }
  if (static_cast<int64_t>(raw.size()) != rows * spec.row_bytes) {
    *why = absl::StrCat("output ", spec.name, " holds ", raw.size(), " bytes, expected ",
                        rows * spec.row_bytes);
    return false;
  }
  for (int64_t r = 0; r < rows; ++r) {
    absl::string_view want = pool.expected(o, call.rows[r]);
    const char* row = raw.data() + r * spec.row_bytes;
    if (check == Check::kEcho) {
      if (std::memcmp(row, want.data(), want.size()) != 0) {
        *why = absl::StrCat("output ", spec.name, " row ", r, " is not the input row (pool row ",
                            call.rows[r], ")");
        return false;
      }
      continue;
    }
    for (int64_t e = 0; e < spec.row_bytes / 4; ++e) {
      float a, b;
      std::memcpy(&a, row + 4 * e, 4);
      std::memcpy(&b, want.data() + 4 * e, 4);
      if (!std::isfinite(a) || std::fabs(a - b) > atol + rtol * std::fabs(b)) {
        *why = absl::StrCat("output ", spec.name, " row ", r, " element ", e, " is ", a,
                            ", the reference for pool row ", call.rows[r], " is ", b);
        return false;
      }
    }
  }
  return true;
}

bool CheckAnswer(const Call& call, const ModelShape& model, const SamplePool& pool, Check check,
                 double atol, double rtol, std::string* why) {
  if (call.response.id() != call.request.id()) {
    *why = absl::StrCat("answer has id '", call.response.id(), "', the request had '",
                        call.request.id(), "'");
    return false;
  }
  if (call.response.outputs_size() != static_cast<int>(model.outputs.size()) ||
      call.response.raw_output_contents_size() != static_cast<int>(model.outputs.size())) {
    *why = absl::StrCat("answer has ", call.response.outputs_size(), " outputs and ",
                        call.response.raw_output_contents_size(), " raw contents, expected ",
                        model.outputs.size());
    return false;
  }
  for (size_t o = 0; o < model.outputs.size(); ++o) {
    if (!CheckOutput(call, model, pool, o, check, atol, rtol, why)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ModelShape> ModelShape::FromMetadata(const inference::ModelMetadataResponse& m) {
  ModelShape model;
  model.name = m.name();
  auto convert = [&](const inference::ModelMetadataResponse::TensorMetadata& t,
                     bool& batched) -> absl::StatusOr<Tensor> {
    if (t.datatype() != "FP32") {
      return absl::UnimplementedError(absl::StrCat("tensor '", t.name(), "' is ", t.datatype(),
                                                   "; stress traffic needs FP32 tensors"));
    }
    Tensor tensor;
    tensor.name = t.name();
    batched = t.shape_size() > 0 && t.shape(0) == -1;
    int64_t elements = 1;
    for (int d = batched ? 1 : 0; d < t.shape_size(); ++d) {
      if (t.shape(d) < 0) {
        return absl::UnimplementedError(absl::StrCat("tensor '", t.name(), "' has a variable "
                                                     "dimension; stress traffic needs fixed dims"));
      }
      tensor.dims.push_back(t.shape(d));
      elements *= t.shape(d);
    }
    tensor.row_bytes = elements * 4;
    return tensor;
  };
  for (const auto& t : m.inputs()) {
    absl::StatusOr<Tensor> tensor = convert(t, model.batched);
    if (!tensor.ok()) return tensor.status();
    model.inputs.push_back(*std::move(tensor));
  }
  for (const auto& t : m.outputs()) {
    bool batched = false;
    absl::StatusOr<Tensor> tensor = convert(t, batched);
    if (!tensor.ok()) return tensor.status();
    model.outputs.push_back(*std::move(tensor));
  }
  if (model.inputs.empty() || model.outputs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("model '", m.name(), "' has ",
                                                      m.inputs_size(), " inputs and ",
                                                      m.outputs_size(), " outputs"));
  }
  return model;
}

SamplePool::SamplePool(const ModelShape& model, int rows, uint64_t seed)
    : model_(model), rows_(rows) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const auto& spec : model.inputs) {
    std::string bytes(rows * spec.row_bytes, '\0');
    for (size_t i = 0; i < bytes.size(); i += 4) {
      float v = dist(rng);
      std::memcpy(&bytes[i], &v, 4);
    }
    inputs_.push_back(std::move(bytes));
  }
  expected_.resize(model.outputs.size());
}

absl::string_view SamplePool::input(int tensor, int row) const {
  int64_t row_bytes = model_.inputs[tensor].row_bytes;
  return absl::string_view(inputs_[tensor]).substr(row * row_bytes, row_bytes);
}

absl::string_view SamplePool::expected(int tensor, int row) const {
  int64_t row_bytes = model_.outputs[tensor].row_bytes;
  return absl::string_view(expected_[tensor]).substr(row * row_bytes, row_bytes);
}

absl::Status SamplePool::Prepare(Check check, inference::GRPCInferenceService::Stub& stub) {
  if (check == Check::kEcho) {
    if (model_.inputs.size() != model_.outputs.size()) {
      return absl::FailedPreconditionError("--check=echo needs as many outputs as inputs");
    }
    for (size_t o = 0; o < model_.outputs.size(); ++o) {
      if (model_.outputs[o].row_bytes != model_.inputs[o].row_bytes) {
        return absl::FailedPreconditionError(
            absl::StrCat("--check=echo: output ", o, " is not shaped like input ", o));
      }
      expected_[o] = inputs_[o];
    }
    return absl::OkStatus();
  }
  for (int r = 0; r < rows_; ++r) {
    inference::ModelInferRequest request;
    request.set_model_name(model_.name);
    for (size_t i = 0; i < model_.inputs.size(); ++i) {
      auto* tensor = request.add_inputs();
      tensor->set_name(model_.inputs[i].name);
      tensor->set_datatype("FP32");
      if (model_.batched) tensor->add_shape(1);
      for (int64_t d : model_.inputs[i].dims) tensor->add_shape(d);
      request.add_raw_input_contents(std::string(input(i, r)));
    }
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status status = stub.ModelInfer(&context, request, &response);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("reference call for pool row ", r, " failed: ",
                                                 status.error_code(), " ",
                                                 status.error_message()));
    }
    if (response.raw_output_contents_size() != static_cast<int>(model_.outputs.size())) {
      return absl::InternalError(absl::StrCat("reference call for pool row ", r, " returned ",
                                              response.raw_output_contents_size(), " outputs"));
    }
    for (size_t o = 0; o < model_.outputs.size(); ++o) {
      const std::string& raw = response.raw_output_contents(o);
      if (static_cast<int64_t>(raw.size()) != model_.outputs[o].row_bytes) {
        return absl::InternalError(absl::StrCat("reference output ", o, " holds ", raw.size(),
                                                " bytes"));
      }
      for (size_t e = 0; e < raw.size(); e += 4) {
        float v;
        std::memcpy(&v, raw.data() + e, 4);
        if (!std::isfinite(v)) {
          return absl::InternalError(absl::StrCat("reference output ", o, " of pool row ", r,
                                                  " is not finite"));
        }
      }
      expected_[o].append(raw);
    }
  }
  return absl::OkStatus();
}

Verdict Judge(const Call& call, const ModelShape& model, const SamplePool& pool, Check check,
              double atol, double rtol, std::string* why) {
  int answers = call.answers.load(std::memory_order_acquire);
  if (answers == 0) {
    *why = absl::StrCat(call.kind, ": no answer");
    return Verdict::kLost;
  }
  if (answers > 1) {
    *why = absl::StrCat(call.kind, ": answered ", answers, " times");
    return Verdict::kDuplicated;
  }
  const grpc::Status& status = call.status;
  if (status.ok()) {
    if (!call.expect.answer_allowed) {
      *why = absl::StrCat(call.kind, ": answered OK, expected one of codes ",
                          absl::StrJoin(call.expect.errors, ","));
      return Verdict::kWrong;
    }
    if (CheckAnswer(call, model, pool, check, atol, rtol, why)) return Verdict::kAnswered;
    *why = absl::StrCat(call.kind, ": ", *why);
    return Verdict::kWrong;
  }
  for (StatusCode code : call.expect.errors) {
    if (status.error_code() == code) return Verdict::kExpectedError;
  }
  *why = absl::StrCat(call.kind, ": got ", status.error_code(), " (", status.error_message(),
                      "), expected ",
                      call.expect.answer_allowed ? "the answer or one of codes " : "one of codes ",
                      absl::StrJoin(call.expect.errors, ","));
  return Verdict::kWrong;
}

TrafficBuilder::TrafficBuilder(const ModelShape& model, const SamplePool& pool,
                               int64_t max_batch_size, int64_t max_message_bytes, uint64_t seed)
    : model_(model),
      pool_(pool),
      max_batch_size_(max_batch_size),
      max_message_bytes_(max_message_bytes),
      rng_(seed) {}

std::unique_ptr<Call> TrafficBuilder::Base(const std::string& kind, int rows, bool typed) {
  auto call = std::make_unique<Call>();
  call->kind = kind;
  call->request.set_model_name(model_.name);
  call->request.set_id(absl::StrCat(kind, "-", next_id_++));
  for (int r = 0; r < rows; ++r) {
    call->rows.push_back(static_cast<int>(rng_() % pool_.rows()));
  }
  for (size_t i = 0; i < model_.inputs.size(); ++i) {
    auto* tensor = call->request.add_inputs();
    tensor->set_name(model_.inputs[i].name);
    tensor->set_datatype("FP32");
    if (model_.batched) tensor->add_shape(rows);
    for (int64_t d : model_.inputs[i].dims) tensor->add_shape(d);
    std::string bytes;
    bytes.reserve(rows * model_.inputs[i].row_bytes);
    for (int row : call->rows) {
      absl::string_view sample = pool_.input(i, row);
      bytes.append(sample.data(), sample.size());
    }
    if (typed) {
      auto* values = tensor->mutable_contents()->mutable_fp32_contents();
      values->Resize(static_cast<int>(bytes.size() / 4), 0.0f);
      std::memcpy(values->mutable_data(), bytes.data(), bytes.size());
    } else {
      call->request.add_raw_input_contents(std::move(bytes));
    }
  }
  call->expect.answer_allowed = true;
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return call;
}

std::unique_ptr<Call> TrafficBuilder::Valid(int rows, bool typed) {
  return Base(typed ? "valid_typed" : rows == 1 ? "valid_single" : "valid_multi", rows, typed);
}

std::unique_ptr<Call> TrafficBuilder::Flood() {
  auto call = Base("flood", 1, false);
  call->expect.errors = {StatusCode::RESOURCE_EXHAUSTED};
  return call;
}

std::unique_ptr<Call> TrafficBuilder::Cancelled(int64_t after_us) {
  const int64_t most = std::clamp<int64_t>(max_batch_size_, 1, 8);
  const int rows = 1 + static_cast<int>(rng_() % most);
  auto call = Base("cancelled", rows, false);
  call->cancel_after_us = after_us;
  call->expect.errors = {StatusCode::CANCELLED};
  return call;
}

std::unique_ptr<Call> TrafficBuilder::ImpossibleDeadline() {
  auto call = Base("deadline_1us", 1, false);
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::microseconds(1));
  call->rows.clear();
  call->expect = {false, {StatusCode::DEADLINE_EXCEEDED}};
  return call;
}

std::unique_ptr<Call> TrafficBuilder::Oversized() {
  // Enough rows to pass the limit by one row; the shape matches the bytes, so only the size is
  // wrong. gRPC refuses it before the service sees it.
  const int64_t row_bytes = model_.inputs[0].row_bytes;
  const int rows = static_cast<int>(max_message_bytes_ / row_bytes + 1);
  auto call = std::make_unique<Call>();
  call->kind = "oversized";
  call->request.set_model_name(model_.name);
  call->request.set_id(absl::StrCat("oversized-", next_id_++));
  for (size_t i = 0; i < model_.inputs.size(); ++i) {
    auto* tensor = call->request.add_inputs();
    tensor->set_name(model_.inputs[i].name);
    tensor->set_datatype("FP32");
    if (model_.batched) tensor->add_shape(rows);
    for (int64_t d : model_.inputs[i].dims) tensor->add_shape(d);
    call->request.add_raw_input_contents(std::string(rows * model_.inputs[i].row_bytes, '\1'));
  }
  call->expect = {false, {StatusCode::RESOURCE_EXHAUSTED}};
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return call;
}

std::vector<std::unique_ptr<Call>> TrafficBuilder::Invalid() {
  std::vector<std::unique_ptr<Call>> calls;
  auto add = [&](const std::string& kind, StatusCode code, auto mutate) {
    auto call = Base(kind, 1, false);
    mutate(call->request);
    call->rows.clear();
    call->expect = {false, {code}};
    calls.push_back(std::move(call));
  };
  add("wrong_shape", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
    auto* shape = r.mutable_inputs(0)->mutable_shape();
    shape->Set(shape->size() - 1, shape->Get(shape->size() - 1) + 1);
  });
  add("wrong_rank", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->add_shape(1); });
  add("wrong_dtype", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->set_datatype("FP64"); });
  add("unknown_dtype", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->set_datatype("FP8"); });
  add("bytes_dtype", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->set_datatype("BYTES"); });
  add("byte_size", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_raw_input_contents(0)->pop_back(); });
  add("missing_input", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
    r.clear_inputs();
    r.clear_raw_input_contents();
  });
  add("unknown_input", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->set_name("NO_SUCH_INPUT"); });
  add("input_twice", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
    *r.add_inputs() = r.inputs(0);
    r.add_raw_input_contents(r.raw_input_contents(0));
  });
  add("raw_count", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.add_raw_input_contents("extra"); });
  add("typed_count", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
    r.clear_raw_input_contents();
    for (auto& input : *r.mutable_inputs()) input.mutable_contents()->add_fp32_contents(1.0f);
  });
  add("raw_and_typed", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
  });
  add("unknown_output", StatusCode::INVALID_ARGUMENT,
      [](inference::ModelInferRequest& r) { r.add_outputs()->set_name("NO_SUCH_OUTPUT"); });
  add("unknown_model", StatusCode::NOT_FOUND,
      [](inference::ModelInferRequest& r) { r.set_model_name("no-such-model"); });
  add("unknown_version", StatusCode::NOT_FOUND,
      [](inference::ModelInferRequest& r) { r.set_model_version("999"); });
  if (model_.batched) {
    add("zero_rows", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
      r.mutable_inputs(0)->set_shape(0, 0);
      r.mutable_raw_input_contents(0)->clear();
    });
    add("negative_rows", StatusCode::INVALID_ARGUMENT,
        [](inference::ModelInferRequest& r) { r.mutable_inputs(0)->set_shape(0, -1); });
    int64_t too_many = max_batch_size_ + 1;
    add("batch_too_large", StatusCode::INVALID_ARGUMENT,
        [too_many](inference::ModelInferRequest& r) {
          r.mutable_inputs(0)->set_shape(0, too_many);
        });
    add("huge_dims", StatusCode::INVALID_ARGUMENT, [](inference::ModelInferRequest& r) {
      r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62);
    });
  }
  return calls;
}

std::unique_ptr<Call> TrafficBuilder::Garbage() {
  auto call = std::make_unique<Call>();
  call->kind = "garbage";
  call->generic = true;
  std::string bytes;
  if (rng_() % 2 == 0) {
    bytes.resize(1 + rng_() % 256);
    for (char& c : bytes) c = static_cast<char>(rng_());
  } else {
    auto valid = Base("garbage", 1, false);
    bytes = valid->request.SerializeAsString();
    bytes.resize(rng_() % bytes.size());
  }
  grpc::Slice slice(bytes);
  call->raw_request = grpc::ByteBuffer(&slice, 1);
  // gRPC's callback API answers a request it cannot parse UNIMPLEMENTED (with no message)
  // before the service sees it; bytes that do parse are refused by validation.
  call->expect = {false,
                  {StatusCode::UNIMPLEMENTED, StatusCode::INTERNAL, StatusCode::INVALID_ARGUMENT,
                   StatusCode::NOT_FOUND}};
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return call;
}

}  // namespace coalesce::stress
