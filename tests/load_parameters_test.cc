// RepositoryModelLoad's parameters as Triton defines them: "config" (a JSON ModelConfig over the
// model's config.pbtxt) and "file:<path>" (the model's files, with a config), over a real server
// on loopback; and the hostile ones, which never write outside a private temporary folder.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "proto/inference.grpc.pb.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

class LoadParametersTest : public RepositoryServerTest {
 protected:
  void SetUp() override {
    RepositoryServerTest::SetUp();
    ASSERT_TRUE(WriteRepositoryModel(root_, "scale", ScaleModelConfig("scale"), 1,
                                     ScaleModelForward(3))
                    .ok());
    // A TorchScript file the tests send as a load's file.
    scratch_ = root_.parent_path() / absl::StrCat(root_.filename().string(), "_scratch");
    fs::create_directories(scratch_ / "tmp");
    ASSERT_TRUE(SaveTorchScript((scratch_ / "model.pt").string(), ScaleModelForward(5)).ok());
    model_bytes_ = ReadAll(scratch_ / "model.pt");
    ASSERT_FALSE(model_bytes_.empty());
  }
  void TearDown() override {
    RepositoryServerTest::TearDown();
    fs::remove_all(scratch_);
  }

  // Serves the repository in explicit mode, with load folders made under scratch_/tmp.
  void StartExplicit(OverrideModelFolder::Options limits = {}) {
    limits.parent = (scratch_ / "tmp").string();
    Start(ControlMode::kExplicit, {"scale"}, limits);
  }

  static inference::RepositoryModelLoadRequest WithConfig(const std::string& name,
                                                          const std::string& json) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    (*request.mutable_parameters())["config"].set_string_param(json);
    return request;
  }
  static void AddFile(inference::RepositoryModelLoadRequest& request, const std::string& path,
                      const std::string& bytes) {
    (*request.mutable_parameters())[absl::StrCat("file:", path)].set_bytes_param(bytes);
  }
  inference::ModelConfig Config(const std::string& name) {
    grpc::ClientContext context;
    inference::ModelConfigRequest request;
    request.set_name(name);
    inference::ModelConfigResponse response;
    EXPECT_TRUE(stub_->ModelConfig(&context, request, &response).ok());
    return response.config();
  }
  inference::ModelMetadataResponse Metadata(const std::string& name) {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name(name);
    inference::ModelMetadataResponse response;
    EXPECT_TRUE(stub_->ModelMetadata(&context, request, &response).ok());
    return response;
  }
  // Every coalesce-model-* folder where the server makes them.
  int TemporaryModelFolders() const {
    int count = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(scratch_ / "tmp", ec)) {
      if (entry.path().filename().string().rfind("coalesce-model-", 0) == 0) ++count;
    }
    return count;
  }

  fs::path scratch_;
  std::string model_bytes_;
};

TEST_F(LoadParametersTest, AJsonConfigOverridesOnlyTheFieldsItNames) {
  StartExplicit();
  ASSERT_EQ(Config("scale").max_batch_size(), 16);
  // As Triton's simple_grpc_model_control.py sends it: an int64 field as a JSON string.
  grpc::Status loaded = Load(WithConfig("scale", R"({"max_batch_size": "4"})"));
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  inference::ModelConfig config = Config("scale");
  EXPECT_EQ(config.max_batch_size(), 4);
  ASSERT_EQ(config.input_size(), 1);  // Kept from config.pbtxt.
  EXPECT_EQ(config.input(0).name(), "X");

  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("scale", &response, 4).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{3, 6, 3, 6, 3, 6, 3, 6}));
  grpc::Status too_many = Infer("scale", &response, 5);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << too_many.error_message();

  // A load without parameters goes back to the repository's config.
  ASSERT_TRUE(Load("scale").ok());
  EXPECT_EQ(Config("scale").max_batch_size(), 16);
}

TEST_F(LoadParametersTest, AJsonConfigCanChangeTheInputsAndMetadataFollows) {
  StartExplicit();
  // A model with no batch dimension: the input is exactly [3, 2].
  grpc::Status loaded = Load(WithConfig("scale", R"({"max_batch_size": 0,
      "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [3, 2]}],
      "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [3, 2]}]})"));
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  inference::ModelMetadataResponse metadata = Metadata("scale");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(),
                                 metadata.inputs(0).shape().end()),
            (std::vector<int64_t>{3, 2}));
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("scale", &response, 3).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{3, 6, 3, 6, 3, 6}));
}

TEST_F(LoadParametersTest, FilesWithAConfigLoadAModelThatIsNotInTheRepository) {
  StartExplicit();
  inference::RepositoryModelLoadRequest request = WithConfig("sent", R"({
      "max_batch_size": 8,
      "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
      "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]})");
  AddFile(request, "1/model.pt", model_bytes_);
  grpc::Status loaded = Load(request);
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  EXPECT_TRUE(Ready("sent"));
  EXPECT_EQ(Config("sent").max_batch_size(), 8);
  EXPECT_EQ(Config("sent").platform(), "pytorch_libtorch");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("sent", &response, 2).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{5, 10, 5, 10}));
  EXPECT_FALSE(fs::exists(root_ / "sent"));  // Nothing written into the repository.
  EXPECT_EQ(TemporaryModelFolders(), 1);

  // Unloading removes the temporary folder.
  ASSERT_TRUE(Unload("sent").ok());
  EXPECT_FALSE(Ready("sent"));
  EXPECT_EQ(TemporaryModelFolders(), 0);
}

TEST_F(LoadParametersTest, FilesReplaceARepositoryModelUntilTheNextPlainLoad) {
  StartExplicit();
  inference::RepositoryModelLoadRequest request = WithConfig("scale", ReadAll(root_ / "scale" /
                                                                              "config.pbtxt"));
  // The config must be JSON, not a config.pbtxt.
  grpc::Status text = Load(request);
  EXPECT_EQ(text.error_code(), grpc::StatusCode::INTERNAL);
  request = WithConfig("scale", R"({"max_batch_size": 16,
      "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
      "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]})");
  AddFile(request, "1/model.pt", model_bytes_);
  ASSERT_TRUE(Load(request).ok());
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("scale", &response).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{5, 10}));
  ASSERT_TRUE(Load("scale").ok());
  ASSERT_TRUE(Infer("scale", &response).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{3, 6}));
  EXPECT_EQ(TemporaryModelFolders(), 0);
}

// Loads `files` (path -> bytes) into "evil" with a valid config; returns the status.
class HostileLoadTest : public LoadParametersTest {
 protected:
  grpc::Status LoadFiles(const std::vector<std::pair<std::string, std::string>>& files) {
    inference::RepositoryModelLoadRequest request = WithConfig("evil", R"({
        "max_batch_size": 8,
        "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
        "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]})");
    for (const auto& [path, bytes] : files) AddFile(request, path, bytes);
    return Load(request);
  }
  // Triton's code and text for a load that fails while polling, as its
  // simple_grpc_model_control.py checks for an over-long file name.
  void ExpectRefused(const grpc::Status& status, const std::string& named) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
    EXPECT_EQ(status.error_message().rfind(
                  "failed to load 'evil', failed to poll from model repository: ", 0),
              0u)
        << status.error_message();
    EXPECT_NE(status.error_message().find(named), std::string::npos) << status.error_message();
    EXPECT_EQ(TemporaryModelFolders(), 0);
    EXPECT_FALSE(Ready("evil"));
  }
};

TEST_F(HostileLoadTest, PathsThatLeaveTheModelFolderAreRefused) {
  StartExplicit();
  ExpectRefused(LoadFiles({{"../x", "a"}}), "'file:../x' must be a relative path");
  ExpectRefused(LoadFiles({{"/etc/passwd", "a"}}), "'file:/etc/passwd'");
  ExpectRefused(LoadFiles({{"1/../../x", "a"}}), "a '..' component");
  ExpectRefused(LoadFiles({{"1//model.pt", "a"}}), "an empty component");
  ExpectRefused(LoadFiles({{"", "a"}}), "it is empty");
  ExpectRefused(LoadFiles({{std::string(256, 'A'), "a"}}), "a component of 256 bytes");
  ExpectRefused(LoadFiles({{"config.pbtxt", "name: 'x'"}}), "'file:config.pbtxt'");
  EXPECT_FALSE(fs::exists(root_.parent_path() / "x"));
}

TEST_F(HostileLoadTest, FilesWithoutAConfigAreRefused) {
  StartExplicit();
  inference::RepositoryModelLoadRequest request;
  request.set_model_name("evil");
  AddFile(request, "1/model.pt", model_bytes_);
  ExpectRefused(Load(request), "need the 'config' parameter");
}

TEST_F(HostileLoadTest, OversizeFilesAreRefusedNamingTheLimit) {
  OverrideModelFolder::Options limits;
  limits.max_file_bytes = 1000;
  limits.max_total_bytes = 1500;
  limits.max_files = 3;
  StartExplicit(limits);
  ExpectRefused(LoadFiles({{"1/model.pt", std::string(1001, 'x')}}),
                "holds 1001 bytes; at most 1000 per file");
  ExpectRefused(LoadFiles({{"1/a", std::string(800, 'x')}, {"1/b", std::string(800, 'x')}}),
                "hold 1600 bytes; at most 1500 in all");
  ExpectRefused(LoadFiles({{"1/a", "x"}, {"1/b", "x"}, {"1/c", "x"}, {"1/d", "x"}}),
                "at most 3 files, got 4");
}

TEST_F(HostileLoadTest, BadConfigsAndParametersFailAsTritonsPollingDoesNamingTheProblem) {
  StartExplicit();
  grpc::Status not_json = Load(WithConfig("scale", R"("parameters": {"config": {{"max"}})"));
  EXPECT_EQ(not_json.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(not_json.error_message().rfind("failed to load 'scale', failed to poll from model "
                                           "repository: config is not a JSON ModelConfig",
                                           0),
            0u)
      << not_json.error_message();
  grpc::Status unknown_field = Load(WithConfig("scale", R"({"max_batch_sizes": 4})"));
  EXPECT_EQ(unknown_field.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(unknown_field.error_message().find("max_batch_sizes"), std::string::npos)
      << unknown_field.error_message();
  grpc::Status refused = Load(WithConfig("scale", R"({"max_batch_size": -1})"));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(refused.error_message().find("max_batch_size"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(Ready("scale"));  // The served version is untouched.

  inference::RepositoryModelLoadRequest request;
  request.set_model_name("scale");
  (*request.mutable_parameters())["priority"].set_int64_param(1);
  grpc::Status unknown = Load(request);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(unknown.error_message().rfind(
                "failed to load 'scale', failed to poll from model repository: Unrecognized load "
                "parameter 'priority' with type 'INT'",
                0),
            0u)
      << unknown.error_message();
  request = WithConfig("scale", "{}");
  (*request.mutable_parameters())["file:1/model.pt"].set_string_param("not bytes");
  grpc::Status typed = Load(request);
  EXPECT_EQ(typed.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(typed.error_message().rfind(
                "failed to load 'scale', failed to poll from model repository: File parameter "
                "'file:1/model.pt' must have bytes type for its value",
                0),
            0u)
      << typed.error_message();
}

}  // namespace
}  // namespace coalesce
