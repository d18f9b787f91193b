// Model readiness and model control as Triton's client sees them: ModelReady answers "not
// ready" (never an error) for models that are unknown, not loaded or unloaded, and errors start
// with Triton's texts, over a real server on loopback.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/inference.grpc.pb.h"
#include "server/log_control.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "tests/capture_sink.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

class ModelControlTest : public RepositoryServerTest {
 protected:
  void SetUp() override {
    RepositoryServerTest::SetUp();
    ASSERT_TRUE(WriteRepositoryModel(root_, "scale", ScaleModelConfig("scale"), 1,
                                     ScaleModelForward(3))
                    .ok());
    ASSERT_TRUE(WriteRepositoryModel(root_, "idle", ScaleModelConfig("idle"), 1,
                                     ScaleModelForward(1))
                    .ok());
    std::filesystem::create_directories(root_ / "noconfig" / "1");
  }
};

TEST_F(ModelControlTest, ModelReadyIsFalseNotAnErrorForUnknownAndUnloadedModels) {
  Start(ControlMode::kExplicit, {"scale"});
  EXPECT_TRUE(Ready("scale"));
  EXPECT_TRUE(Ready("scale", "1"));
  EXPECT_FALSE(Ready("scale", "2"));     // A version that is not served.
  EXPECT_FALSE(Ready("no_such_model"));  // Not in the repository at all.
  EXPECT_FALSE(Ready("idle"));           // In the repository, never loaded.

  ASSERT_TRUE(Unload("scale").ok());
  EXPECT_FALSE(Ready("scale"));
  ASSERT_TRUE(Load("scale").ok());
  EXPECT_TRUE(Ready("scale"));
}

TEST_F(ModelControlTest, ModelReadyIsFalseForAModelThatFailedToLoad) {
  Start(ControlMode::kExplicit, {"scale"});
  EXPECT_FALSE(Load("noconfig").ok());
  EXPECT_FALSE(Ready("noconfig"));
}

TEST_F(ModelControlTest, UnloadingAModelThatIsNotLoadedSucceedsAsInTriton) {
  Start(ControlMode::kExplicit, {"scale"});
  EXPECT_TRUE(Unload("idle").ok());
  EXPECT_TRUE(Unload("no_such_model").ok());
  EXPECT_TRUE(Ready("scale"));
}

TEST_F(ModelControlTest, LoadFailuresStartWithTritonsTextAndPollFailuresAreInternalAsInTriton) {
  Start(ControlMode::kExplicit, {"scale"});
  // simple_grpc_model_control.py checks INTERNAL and "failed to poll from model repository".
  grpc::Status missing = Load("no_such_model");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(missing.error_message(),
            absl::StrCat("failed to load 'no_such_model', failed to poll from model repository: "
                         "no folder 'no_such_model' in repository '",
                         root_.filename().string(), "'"));

  grpc::Status no_config = Load("noconfig");
  EXPECT_EQ(no_config.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(no_config.error_message(),
            "failed to load 'noconfig', failed to poll from model repository: model 'noconfig' "
            "has no config.pbtxt");

  grpc::Status traversal = Load("../etc");
  EXPECT_EQ(traversal.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(traversal.error_message().rfind("invalid model name '../etc', model name must not "
                                            "contain path traversal characters",
                                            0),
            0u)
      << traversal.error_message();

  grpc::Status empty = Load("");
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty.error_message(),
            "Model name cannot be empty. Please enter a valid name to deploy.");
}

TEST_F(ModelControlTest, RepositoryIndexListsAnUnloadedModelsVersionsUnavailableUnloaded) {
  Start(ControlMode::kExplicit, {"scale"});
  ASSERT_TRUE(Unload("scale").ok());
  auto index = [&](bool ready_only) {
    grpc::ClientContext context;
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    inference::RepositoryIndexResponse response;
    EXPECT_TRUE(stub_->RepositoryIndex(&context, request, &response).ok());
    std::vector<std::string> rows;
    for (const auto& m : response.models()) {
      rows.push_back(absl::StrCat(m.name(), "|", m.version(), "|", m.state(), "|", m.reason()));
    }
    return rows;
  };
  // As Triton lists them: the unloaded model with the version it served, a folder never loaded
  // with nothing, a folder that never loaded with nothing.
  EXPECT_EQ(index(false), (std::vector<std::string>{"idle|||", "noconfig|||",
                                                    "scale|1|UNAVAILABLE|unloaded"}));
  EXPECT_EQ(index(true), std::vector<std::string>{});

  ASSERT_TRUE(Load("scale").ok());
  EXPECT_EQ(index(true), std::vector<std::string>{"scale|1|READY|"});
}

TEST_F(ModelControlTest, ABackendFailureIsTritonsLoadFailedText) {
  fs::create_directories(root_ / "garbage" / "1");
  std::ofstream(root_ / "garbage" / "config.pbtxt") << ScaleModelConfig("garbage");
  std::ofstream(root_ / "garbage" / "1" / "model.pt") << "not TorchScript";
  Start(ControlMode::kExplicit, {"scale"});
  grpc::Status status = Load("garbage");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_message().rfind("load failed for model 'garbage': ", 0), 0u)
      << status.error_message();
}

TEST_F(ModelControlTest, InferringOnUnavailableOrUnloadedModelsNamesThemInTritonsWords) {
  Start(ControlMode::kExplicit, {"scale"});
  ASSERT_FALSE(Load("noconfig").ok());
  inference::ModelInferResponse response;
  grpc::Status failed = Infer("noconfig", &response);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(failed.error_message(),
            "Request for unknown model: 'noconfig' has no available versions (failed to load "
            "'noconfig', failed to poll from model repository: model 'noconfig' has no "
            "config.pbtxt)");

  grpc::Status never_loaded = Infer("idle", &response);
  EXPECT_EQ(never_loaded.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(never_loaded.error_message(),
            "Request for unknown model: 'idle' is not found (serving: scale)");

  ASSERT_TRUE(Unload("scale").ok());
  grpc::Status unloaded = Infer("scale", &response);
  EXPECT_EQ(unloaded.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unloaded.error_message().rfind("Request for unknown model: 'scale' is not found", 0),
            0u)
      << unloaded.error_message();
}

TEST_F(ModelControlTest, ControlOutsideExplicitModeIsRefusedInTritonsWords) {
  Start(ControlMode::kNone, {});
  grpc::Status status = Load("scale");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message().rfind(
                "explicit model load / unload is not allowed if polling is enabled", 0),
            0u)
      << status.error_message();
  EXPECT_NE(status.error_message().find("--model_control_mode=explicit"), std::string::npos);
}

// RepositoryModelLoad logs its outcome at info, quoting the name and the error: a line break in
// the name must not start a line of the log.
TEST_F(ModelControlTest, ALoadOfANameWithALineBreakLeavesOneEscapedLogLine) {
  auto capture = std::make_shared<CaptureSink>();
  ASSERT_TRUE(LogControl::Global().Apply(LogSettings()).ok());
  LogControl::Global().Install(capture);
  absl::Cleanup restore = [] {
    LogControl::Global().Install(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  };
  Start(ControlMode::kExplicit, {"scale"});
  EXPECT_EQ(Load("a\nFORGED line").error_code(), grpc::StatusCode::INTERNAL);
  // The line is written before the answer is sent.
  std::vector<std::string> mentioning = capture->LinesContaining("FORGED");
  ASSERT_EQ(mentioning.size(), 1u) << absl::StrJoin(mentioning, "|");
  EXPECT_TRUE(absl::StrContains(mentioning[0], "RepositoryModelLoad 'a\\nFORGED line'"))
      << mentioning[0];
  EXPECT_EQ(mentioning[0].find('\n'), mentioning[0].size() - 1) << mentioning[0];
}

// The repository quotes the name it could not load; a client with gRPC's default metadata limit
// (8 KiB) still reads the error, not RESOURCE_EXHAUSTED.
TEST_F(ModelControlTest, ALoadOfAMegabyteNameIsRefusedWithAMessageAClientCanRead) {
  Start(ControlMode::kExplicit, {"scale"});
  grpc::Status status = Load(std::string(1 << 20, 'n'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message().substr(0, 200);
  EXPECT_EQ(status.error_message().rfind("invalid model name 'nnn", 0), 0u)
      << status.error_message().substr(0, 200);
  EXPECT_LE(status.error_message().size(), 4096u);
}

}  // namespace
}  // namespace coalesce
