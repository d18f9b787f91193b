// coalesce-client: sends one ModelInfer request and prints what came back.
//
//   coalesce-client --address=127.0.0.1:8001 --model=demo --batch=1
//   coalesce-client --address=127.0.0.1:8001 --health     (exit 0 iff the server is SERVING)
//
// The input is read from the model's metadata (every input gets random values from --seed), so
// the same command works against any model with numeric inputs.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client_security_flags.h"
#include "common/flag_parsing.h"
#include "proto/health.grpc.pb.h"
#include "proto/inference.grpc.pb.h"

ABSL_FLAG(std::string, address, "127.0.0.1:8001", "Server address, host:port.");
ABSL_FLAG(std::string, model, "demo", "Model name.");
ABSL_FLAG(std::string, model_version, "", "Model version; empty lets the server choose.");
ABSL_FLAG(int64_t, batch, 1, "Samples in the request (the first dimension of every input).");
ABSL_FLAG(int64_t, variable_dim, 1,
          "Size of every later -1 dimension of the inputs: a token input's length, for example.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random input values (uniform in [-1, 1)).");
ABSL_FLAG(int64_t, timeout_ms, 10000, "Deadline of the call in milliseconds.");
ABSL_FLAG(int, print, 8, "How many leading values of each output to print.");
ABSL_FLAG(bool, health, false,
          "Instead of inferring, ask grpc.health.v1.Health/Check for the server (or for "
          "--health_service) and exit 0 if it is SERVING, 1 otherwise: a container HEALTHCHECK "
          "or a probe.");
ABSL_FLAG(std::string, health_service, "", "With --health: the service to ask about; empty is "
          "the whole server.");

namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelMetadataRequest;
using inference::ModelMetadataResponse;

int ElementSize(const std::string& datatype) {
  if (datatype == "FP32" || datatype == "INT32" || datatype == "UINT32") return 4;
  if (datatype == "FP64" || datatype == "INT64" || datatype == "UINT64") return 8;
  if (datatype == "FP16" || datatype == "BF16" || datatype == "INT16" || datatype == "UINT16") {
    return 2;
  }
  if (datatype == "INT8" || datatype == "UINT8" || datatype == "BOOL") return 1;
  return 0;
}

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Random bytes for one input; FP32 inputs get uniform values in [-1, 1), others 0 or 1.
std::string RandomInput(const std::string& datatype, int64_t elements, std::mt19937_64& rng) {
  std::string bytes(elements * ElementSize(datatype), '\0');
  if (datatype == "FP32") {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < elements; ++i) {
      float v = dist(rng);
      std::memcpy(&bytes[i * 4], &v, 4);
    }
  } else {
    // Each element 0 or 1 (its low byte; the wire is little-endian), not each byte: a model
    // that takes token ids must get ids a vocabulary holds.
    const int size = ElementSize(datatype);
    for (int64_t i = 0; i < elements; ++i) bytes[i * size] = static_cast<char>(rng() % 2);
  }
  return bytes;
}

void PrintOutput(const ModelInferResponse::InferOutputTensor& output, const std::string& raw,
                 int count) {
  std::cout << absl::StreamFormat("%s %s %s", output.name(), output.datatype(),
                                  ShapeString(output.shape()));
  if (output.datatype() == "FP32") {
    int64_t n = std::min<int64_t>(count, raw.size() / 4);
    std::vector<float> values(n);
    std::memcpy(values.data(), raw.data(), n * 4);
    std::cout << ": " << absl::StrJoin(values, " ", [](std::string* out, float v) {
      absl::StrAppendFormat(out, "%.6f", v);
    });
    if (n * 4 < static_cast<int64_t>(raw.size())) std::cout << " ...";
  } else {
    std::cout << absl::StreamFormat(": %d bytes", raw.size());
  }
  std::cout << "\n";
}

// grpc.health.v1.Health/Check: prints the status and returns the exit code (0 iff SERVING).
int CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                const coalesce::ClientSecurity& security,
                std::chrono::system_clock::time_point deadline) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_health_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(deadline);
  security.Apply(context);
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "Health/Check failed: " << status.error_code() << " " << status.error_message()
              << "\n";
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-client",
      "Sends one ModelInfer request to a server that speaks the Open Inference Protocol and "
      "prints each output's shape and first values.\n"
      "Example: coalesce-client --address=127.0.0.1:8001 --model=demo --batch=4");

  absl::StatusOr<coalesce::ClientSecurity> security =
      coalesce::ClientSecurity::Load(coalesce::ClientSecurityOptionsFromFlags());
  if (!security.ok()) {
    std::cerr << "coalesce-client: " << security.status().message() << "\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_address), security->credentials());
  auto stub = GRPCInferenceService::NewStub(channel);
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::milliseconds(absl::GetFlag(FLAGS_timeout_ms));
  if (absl::GetFlag(FLAGS_health)) return CheckHealth(channel, *security, deadline);

  ModelMetadataRequest metadata_request;
  metadata_request.set_name(absl::GetFlag(FLAGS_model));
  metadata_request.set_version(absl::GetFlag(FLAGS_model_version));
  ModelMetadataResponse metadata;
  {
    grpc::ClientContext context;
    context.set_deadline(deadline);
    security->Apply(context);
    grpc::Status status = stub->ModelMetadata(&context, metadata_request, &metadata);
    if (!status.ok()) {
      std::cerr << "ModelMetadata failed: " << status.error_code() << " "
                << status.error_message() << "\n";
      return 1;
    }
  }

  ModelInferRequest request;
  request.set_model_name(absl::GetFlag(FLAGS_model));
  request.set_model_version(absl::GetFlag(FLAGS_model_version));
  request.set_id("coalesce-client");
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  for (const auto& input : metadata.inputs()) {
    auto* tensor = request.add_inputs();
    tensor->set_name(input.name());
    tensor->set_datatype(input.datatype());
    int64_t elements = 1;
    for (int i = 0; i < input.shape_size(); ++i) {
      // The first -1 is the batch dimension; a later one takes --variable_dim.
      int64_t dim = input.shape(i) == -1
                        ? (i == 0 ? absl::GetFlag(FLAGS_batch) : absl::GetFlag(FLAGS_variable_dim))
                        : input.shape(i);
      tensor->add_shape(dim);
      elements *= dim;
    }
    if (ElementSize(input.datatype()) == 0) {
      std::cerr << "input " << input.name() << " has datatype " << input.datatype()
                << ", which this client cannot generate\n";
      return 1;
    }
    *request.add_raw_input_contents() = RandomInput(input.datatype(), elements, rng);
  }

  ModelInferResponse response;
  grpc::ClientContext context;
  context.set_deadline(deadline);
  security->Apply(context);
  grpc::Status status = stub->ModelInfer(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "ModelInfer failed: " << status.error_code() << " " << status.error_message()
              << "\n";
    return 1;
  }
  std::cout << "model " << response.model_name() << " version " << response.model_version()
            << " id " << response.id() << "\n";
  for (int i = 0; i < response.outputs_size(); ++i) {
    PrintOutput(response.outputs(i),
                i < response.raw_output_contents_size() ? response.raw_output_contents(i) : "",
                absl::GetFlag(FLAGS_print));
  }
  return 0;
}
