// coalesce-echo-server: the ceiling of the Open Inference Protocol on this machine.
//
//   coalesce-echo-server --grpc_address=127.0.0.1:8011
//
// It speaks the same protocol as coalesce and describes itself as a server holding the demo
// model (`demo`, version "1", INPUT0/OUTPUT0 FP32 [-1, 32, 256]), but ModelInfer does no work:
// OUTPUT0 is INPUT0's bytes, answered on the gRPC thread that received the call. No queue, no
// batching, no model, no metrics. Whatever rate a load generator reaches against it is the most
// any server of this protocol can reach on this machine with that load generator; coalesce's
// own numbers are read against it.
//
// SIGINT and SIGTERM shut it down (in-flight calls finish) and it exits 0.
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/flag_parsing.h"
#include "proto/inference.grpc.pb.h"

ABSL_FLAG(std::string, grpc_address, "127.0.0.1:8011", "Address to listen on, host:port.");
ABSL_FLAG(int, max_message_mib, 64, "Largest request or response accepted, in MiB.");
ABSL_FLAG(int, shutdown_timeout_ms, 2000,
          "After SIGINT/SIGTERM, how long in-flight calls may take before they are cancelled.");

namespace {

using inference::GRPCInferenceService;

constexpr char kModelName[] = "demo";
constexpr char kModelVersion[] = "1";
constexpr int64_t kTensorShape[] = {-1, 32, 256};

// Fills `tensor` (either metadata message's TensorMetadata) as the demo model's FP32 tensor.
template <typename TensorMetadata>
void DescribeDemoTensor(const char* name, TensorMetadata* tensor) {
  tensor->set_name(name);
  tensor->set_datatype("FP32");
  for (int64_t dim : kTensorShape) tensor->add_shape(dim);
}

// True when (name, version) names the demo model; an empty version means "the server's choice".
bool IsDemoModel(const std::string& name, const std::string& version) {
  return name == kModelName && (version.empty() || version == kModelVersion);
}

grpc::Status ModelNotFound(const std::string& name, const std::string& version) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("model '", name, "' version '", version,
                                   "' is not served; this server holds only '", kModelName,
                                   "' version '", kModelVersion, "'"));
}

// The echo service. Every handler finishes its reactor before returning, so no call outlives its
// handler and the service keeps no state: thread-safe, and any number of calls may run at once.
class EchoInferenceService final : public GRPCInferenceService::CallbackService {
 public:
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* /*request*/,
                                       inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* /*request*/,
                                        inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override {
    // Triton answers an unknown model with ready=false, not an error.
    response->set_ready(IsDemoModel(request->name(), request->version()));
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* /*request*/,
                                           inference::ServerMetadataResponse* response) override {
    response->set_name("coalesce-echo");
    response->set_version("0.1.0");
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override {
    if (!IsDemoModel(request->name(), request->version())) {
      return Done(context, ModelNotFound(request->name(), request->version()));
    }
    response->set_name(kModelName);
    response->add_versions(kModelVersion);
    response->set_platform("pytorch_libtorch");
    DescribeDemoTensor("INPUT0", response->add_inputs());
    DescribeDemoTensor("OUTPUT0", response->add_outputs());
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    if (!IsDemoModel(request->model_name(), request->model_version())) {
      return Done(context, ModelNotFound(request->model_name(), request->model_version()));
    }
    if (request->inputs_size() < 1) {
      return Done(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "request has no inputs; expected 1 (INPUT0)"));
    }
    const auto& input = request->inputs(0);
    response->set_model_name(kModelName);
    response->set_model_version(kModelVersion);
    response->set_id(request->id());
    auto* output = response->add_outputs();
    output->set_name("OUTPUT0");
    output->set_datatype(input.datatype());
    *output->mutable_shape() = input.shape();
    // The request is const and owned by gRPC, so the bytes are copied (32 KiB per sample:
    // microseconds, small beside the RPC itself). Typed contents are echoed as typed contents.
    if (request->raw_input_contents_size() > 0) {
      *response->add_raw_output_contents() = request->raw_input_contents(0);
    } else {
      *output->mutable_contents() = input.contents();
    }
    return Done(context, grpc::Status::OK);
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                                        const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }
};

// Blocks SIGINT and SIGTERM in the calling thread and, because threads inherit the mask, in
// every thread started after it; WaitForShutdownSignal() then receives them synchronously, so
// no code runs in a signal handler.
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForShutdownSignal(const sigset_t& signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  return signal_number;
}

}  // namespace

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-echo-server",
      "An Open Inference Protocol server whose ModelInfer returns its input unchanged: the "
      "fastest any server of this protocol can be on this machine.\n"
      "Example: coalesce-echo-server --grpc_address=127.0.0.1:8011");
  const sigset_t shutdown_signals = BlockShutdownSignals();

  const std::string address = absl::GetFlag(FLAGS_grpc_address);
  const int max_message_bytes = absl::GetFlag(FLAGS_max_message_mib) * 1024 * 1024;
  EchoInferenceService service;
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::cerr << "coalesce-echo-server: cannot listen on " << address << "\n";
    return 1;
  }
  std::cout << "coalesce-echo-server listening on " << address << std::endl;

  const int signal_number = WaitForShutdownSignal(shutdown_signals);
  std::cout << "coalesce-echo-server: signal " << signal_number << ", shutting down" << std::endl;
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::GetFlag(FLAGS_shutdown_timeout_ms)));
  server->Wait();
  return 0;
}
