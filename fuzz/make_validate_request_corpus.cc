// Writes the seed corpus of validate_request_fuzzer: small serialized ModelInferRequests, valid
// and invalid, for the models of fuzz_models.h. The files are committed under
// fuzz/corpus/validate_request/; rerun this after changing the models or the protocol:
//
//   build-fuzz/fuzz/make_validate_request_corpus fuzz/corpus/validate_request
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "proto/inference.pb.h"

namespace {

using inference::ModelInferRequest;
using Input = ModelInferRequest::InferInputTensor;

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

Input* AddInput(ModelInferRequest& request, const std::string& name, const std::string& dtype,
                std::vector<int64_t> shape) {
  Input* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(dtype);
  for (int64_t d : shape) input->add_shape(d);
  return input;
}

ModelInferRequest Tiny(int64_t rows) {
  ModelInferRequest request;
  request.set_model_name("tiny");
  AddInput(request, "INPUT0", "FP32", {rows, 2});
  std::vector<float> values(rows * 2);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i);
  request.add_raw_input_contents(Bytes(values));
  return request;
}

// Every input of "multi", raw, `rows` rows.
ModelInferRequest Multi(int64_t rows) {
  ModelInferRequest request;
  request.set_model_name("multi");
  AddInput(request, "F32", "FP32", {rows, 2, 3});
  AddInput(request, "I8", "INT8", {rows, 4});
  AddInput(request, "H16", "FP16", {rows, 2});
  AddInput(request, "FLAG", "BOOL", {rows});
  AddInput(request, "U16", "UINT16", {rows, 1, 3});
  request.add_raw_input_contents(Bytes(std::vector<float>(rows * 6, 1.0f)));
  request.add_raw_input_contents(Bytes(std::vector<int8_t>(rows * 4, -3)));
  request.add_raw_input_contents(Bytes(std::vector<uint16_t>(rows * 2, 0x3c00)));
  request.add_raw_input_contents(Bytes(std::vector<uint8_t>(rows, 1)));
  request.add_raw_input_contents(Bytes(std::vector<uint16_t>(rows * 3, 7)));
  return request;
}

// "multi" with typed contents where the protocol has a field for the type (FP16 has none, so
// this one is invalid by design: it reaches the typed-contents decoder's refusal).
ModelInferRequest MultiTyped() {
  ModelInferRequest request;
  request.set_model_name("multi");
  auto* f32 = AddInput(request, "F32", "FP32", {1, 2, 3})->mutable_contents();
  for (int i = 0; i < 6; ++i) f32->add_fp32_contents(0.25f * i);
  auto* i8 = AddInput(request, "I8", "INT8", {1, 4})->mutable_contents();
  for (int v : {-128, -1, 0, 127}) i8->add_int_contents(v);
  AddInput(request, "H16", "FP16", {1, 2});
  AddInput(request, "FLAG", "BOOL", {1})->mutable_contents()->add_bool_contents(true);
  auto* u16 = AddInput(request, "U16", "UINT16", {1, 1, 3})->mutable_contents();
  for (int v : {0, 1, 65535}) u16->add_uint_contents(v);
  return request;
}

ModelInferRequest Single() {
  ModelInferRequest request;
  request.set_model_name("single");
  AddInput(request, "X", "INT32", {2, 2})->mutable_contents();
  for (int v : {1, -2, 3, -4}) request.mutable_inputs(0)->mutable_contents()->add_int_contents(v);
  auto* y = AddInput(request, "Y", "FP64", {3})->mutable_contents();
  for (double v : {1.5, -2.5, 1e300}) y->add_fp64_contents(v);
  return request;
}

std::vector<std::pair<std::string, ModelInferRequest>> Seeds() {
  std::vector<std::pair<std::string, ModelInferRequest>> seeds;
  seeds.emplace_back("tiny_valid_1_row", Tiny(1));
  seeds.emplace_back("tiny_valid_4_rows", Tiny(4));
  {
    ModelInferRequest r;
    r.set_model_name("tiny");
    auto* c = AddInput(r, "INPUT0", "FP32", {2, 2})->mutable_contents();
    for (float v : {1.0f, 2.0f, 3.0f, 4.0f}) c->add_fp32_contents(v);
    r.add_outputs()->set_name("OUTPUT0");
    seeds.emplace_back("tiny_valid_typed_named_output", r);
  }
  {
    ModelInferRequest r = Tiny(5);
    seeds.emplace_back("tiny_invalid_batch_too_large", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->set_datatype("FP64");
    seeds.emplace_back("tiny_invalid_dtype", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->set_shape(1, 3);
    seeds.emplace_back("tiny_invalid_shape", r);
  }
  {
    ModelInferRequest r = Tiny(2);
    r.mutable_raw_input_contents(0)->pop_back();
    seeds.emplace_back("tiny_invalid_byte_size", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->set_name("INPUT9");
    seeds.emplace_back("tiny_invalid_unknown_input", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    *r.add_inputs() = r.inputs(0);
    seeds.emplace_back("tiny_invalid_input_twice", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
    seeds.emplace_back("tiny_invalid_raw_and_typed", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->set_shape(0, -1);
    seeds.emplace_back("tiny_invalid_negative_batch", r);
  }
  {
    ModelInferRequest r = Tiny(1);
    r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62);
    seeds.emplace_back("tiny_invalid_huge_batch", r);
  }
  seeds.emplace_back("multi_valid_3_rows", Multi(3));
  {
    ModelInferRequest r = Multi(2);
    r.add_outputs()->set_name("OUT_C");
    r.add_outputs()->set_name("OUT_A");
    seeds.emplace_back("multi_valid_two_outputs", r);
  }
  {
    ModelInferRequest r = Multi(2);
    r.add_outputs()->set_name("OUT_B");
    r.add_outputs()->set_name("OUT_B");
    seeds.emplace_back("multi_invalid_output_twice", r);
  }
  {
    ModelInferRequest r = Multi(2);
    r.add_outputs()->set_name("NOPE");
    seeds.emplace_back("multi_invalid_unknown_output", r);
  }
  {
    ModelInferRequest r = Multi(2);
    r.mutable_inputs(3)->set_shape(0, 1);
    seeds.emplace_back("multi_invalid_batch_disagrees", r);
  }
  {
    ModelInferRequest r = Multi(1);
    r.mutable_inputs()->RemoveLast();
    r.mutable_raw_input_contents()->RemoveLast();
    seeds.emplace_back("multi_invalid_missing_input", r);
  }
  {
    ModelInferRequest r = Multi(1);
    r.mutable_raw_input_contents()->RemoveLast();
    seeds.emplace_back("multi_invalid_raw_count", r);
  }
  seeds.emplace_back("multi_invalid_typed_fp16", MultiTyped());
  {
    ModelInferRequest r = MultiTyped();
    r.mutable_inputs(1)->mutable_contents()->set_int_contents(0, 128);
    seeds.emplace_back("multi_invalid_typed_int8_range", r);
  }
  seeds.emplace_back("single_valid_typed", Single());
  {
    ModelInferRequest r = Single();
    r.mutable_inputs(0)->add_shape(1);
    seeds.emplace_back("single_invalid_rank", r);
  }
  {
    ModelInferRequest r;
    r.set_model_name("demo");
    AddInput(r, "INPUT0", "FP32", {1, 32, 255});
    r.add_raw_input_contents(std::string(16, '\0'));
    seeds.emplace_back("demo_invalid_shape", r);
  }
  {
    ModelInferRequest r;
    r.set_model_name("demo");
    AddInput(r, "INPUT0", "BYTES", {1, 32, 256});
    r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("x");
    seeds.emplace_back("demo_invalid_bytes", r);
  }
  seeds.emplace_back("empty", ModelInferRequest());
  return seeds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  for (const auto& [name, request] : Seeds()) {
    std::string path = std::string(argv[1]) + "/" + name + ".pb";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << request.SerializeAsString();
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("%s\n", path.c_str());
  }
  return 0;
}
