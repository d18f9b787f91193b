// A model folder cannot take the server down or stall it: a config nested past the parser's
// bound, a max_batch_size whose staging cannot be allocated, a FIFO where a file should be, links
// out of the repository, a version folder holding a large tree, a reload that fails while
// polling. Each over a real server on loopback; the other models keep serving throughout.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "execution/echo_backend.h"
#include "proto/inference.grpc.pb.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

// `levels` unknown fields inside one another: "a { a { ... } }".
std::string NestedConfig(const std::string& name, int levels) {
  std::string text = ScaleModelConfig(name);
  text.reserve(text.size() + 4 * static_cast<size_t>(levels));
  for (int i = 0; i < levels; ++i) text += "a {";
  for (int i = 0; i < levels; ++i) text += "}";
  return text;
}

class RepositoryLimitsTest : public RepositoryServerTest {
 protected:
  void SetUp() override {
    RepositoryServerTest::SetUp();
    ASSERT_TRUE(WriteRepositoryModel(root_, "scale", ScaleModelConfig("scale"), 1,
                                     ScaleModelForward(3))
                    .ok());
    outside_ = root_.parent_path() / absl::StrCat(root_.filename().string(), "_outside");
    fs::create_directories(outside_);
  }
  void TearDown() override {
    RepositoryServerTest::TearDown();
    fs::remove_all(outside_);
  }

  // Every index row as "name|version|state|reason".
  std::map<std::string, std::string> Index() {
    grpc::ClientContext context;
    inference::RepositoryIndexRequest request;
    inference::RepositoryIndexResponse response;
    EXPECT_TRUE(stub_->RepositoryIndex(&context, request, &response).ok());
    std::map<std::string, std::string> rows;
    for (const auto& m : response.models()) {
      rows[m.name()] = absl::StrCat(m.version(), "|", m.state(), "|", m.reason());
    }
    return rows;
  }
  // A load of `model` fails with `code` and exactly `message`, and leaves it not ready.
  void ExpectLoadFails(const std::string& model, grpc::StatusCode code,
                       const std::string& message) {
    grpc::Status status = Load(model);
    EXPECT_EQ(status.error_code(), code) << model;
    EXPECT_EQ(status.error_message(), message);
    EXPECT_FALSE(Ready(model));
  }
  // `scale` still answers, with its factor 3.
  void ExpectScaleServes() {
    inference::ModelInferResponse response;
    grpc::Status status = Infer("scale", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(Floats(response), (std::vector<float>{3, 6}));
  }

  fs::path outside_;
};

TEST_F(RepositoryLimitsTest, ADeeplyNestedConfigFailsItsLoadWhileTheOthersServe) {
  ASSERT_TRUE(WriteRepositoryModel(root_, "nested", NestedConfig("nested", 100000), 1,
                                   ScaleModelForward(1))
                  .ok());
  Start(ControlMode::kExplicit, {"scale"});
  const std::string expected =
      "failed to load 'nested', failed to poll from model repository: nested/config.pbtxt: "
      "config.pbtxt of model 'nested': line 6:305: expected messages and lists nested at most "
      "100 deep, got deeper";
  ExpectLoadFails("nested", grpc::StatusCode::INTERNAL, expected);
  // A load with a `config` parameter reads the folder's config.pbtxt too.
  inference::RepositoryModelLoadRequest with_config;
  with_config.set_model_name("nested");
  (*with_config.mutable_parameters())["config"].set_string_param(R"({"max_batch_size": 8})");
  grpc::Status overridden = Load(with_config);
  EXPECT_EQ(overridden.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(overridden.error_message(), expected);

  EXPECT_FALSE(Ready("nested"));
  EXPECT_EQ(Index()["nested"], "|UNAVAILABLE|" + expected);
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, ADeeplyNestedConfigFoundByAPollIsUnavailableWhileTheOthersServe) {
  configure_ = [](ModelRepository::Options& options) { options.poll_interval = absl::Hours(1); };
  Start(ControlMode::kPoll, {});
  ASSERT_TRUE(WriteRepositoryModel(root_, "nested", NestedConfig("nested", 100000), 1,
                                   ScaleModelForward(1))
                  .ok());
  repository_->PollOnce();
  EXPECT_FALSE(Ready("nested"));
  EXPECT_EQ(Index()["nested"],
            "|UNAVAILABLE|failed to load 'nested', failed to poll from model repository: "
            "nested/config.pbtxt: config.pbtxt of model 'nested': line 6:305: expected messages "
            "and lists nested at most 100 deep, got deeper");
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, AMaxBatchSizePastTheBoundIsRefusedBeforeAnythingIsAllocated) {
  std::string config = ScaleModelConfig("huge");
  config.replace(config.find("max_batch_size: 16"), 18, "max_batch_size: 2147483647");
  ASSERT_TRUE(WriteRepositoryModel(root_, "huge", config, 1, ScaleModelForward(1)).ok());
  Start(ControlMode::kExplicit, {"scale"});
  ExpectLoadFails(
      "huge", grpc::StatusCode::INTERNAL,
      "failed to load 'huge', failed to poll from model repository: huge/config.pbtxt: "
      "config.pbtxt of model 'huge': max_batch_size: expected 0..1048576, got 2147483647");
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, StagingPastTheLimitIsRefusedNamingTheLimit) {
  // 1024 rows x (4 MiB in + 4 MiB out) = 8 GiB per executor thread.
  const std::string config = R"pb(
    max_batch_size: 1024
    input [ { name: "X" data_type: TYPE_FP32 dims: [ 1024, 1024 ] } ]
    output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1024, 1024 ] } ]
  )pb";
  ASSERT_TRUE(WriteRepositoryModel(root_, "wide", config, 1, ScaleModelForward(1)).ok());
  Start(ControlMode::kExplicit, {"scale"});
  grpc::Status status = Load("wide");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(status.error_message().find(
                "max_batch_size 1024 x 8388608 bytes per sample (inputs and outputs of fixed "
                "dims) = 8589934592 bytes of staging per executor thread; expected at most "
                "4294967296 (--max_staging_bytes)"),
            std::string::npos)
      << status.error_message();
  EXPECT_FALSE(Ready("wide"));
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, StagingThatCannotBeAllocatedFailsTheLoadInsteadOfTheProcess) {
  // With the limit lifted, a batch of 2^20 rows of 1 TiB each: no machine can allocate it.
  const std::string config = R"pb(
    max_batch_size: 1048576
    input [ { name: "X" data_type: TYPE_INT8 dims: [ 1099511627776 ] } ]
    output [ { name: "Y" data_type: TYPE_INT8 dims: [ 1099511627776 ] } ]
  )pb";
  ASSERT_TRUE(WriteRepositoryModel(root_, "vast", config, 1, ScaleModelForward(1)).ok());
  configure_ = [](ModelRepository::Options& options) {
    options.config_limits.max_staging_bytes = std::numeric_limits<int64_t>::max();
    // A profile without dry runs (they would allocate first) and an echo backend (no
    // TorchScript dry run): what is left to allocate is the executor's staging.
    options.model_defaults.time_batch = [](int64_t) { return absl::Milliseconds(1); };
    options.backend_factory = [real = options.backend_factory](
                                  const std::string& path, const ModelMetadata& metadata,
                                  const ModelRepository::BackendSettings& settings)
        -> absl::StatusOr<std::unique_ptr<Backend>> {
      if (metadata.name != "vast") return real(path, metadata, settings);
      auto echo = EchoBackend::Create(metadata);
      if (!echo.ok()) return echo.status();
      return std::unique_ptr<Backend>(*std::move(echo));
    };
  };
  Start(ControlMode::kExplicit, {"scale"});
  grpc::Status status = Load("vast");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(status.error_message().rfind("load failed for model 'vast': version 1: model 'vast' "
                                         "input 'X': cannot allocate ",
                                         0),
            0u)
      << status.error_message();
  EXPECT_FALSE(Ready("vast"));
  EXPECT_NE(Index()["vast"].find("|UNAVAILABLE|load failed for model 'vast'"), std::string::npos)
      << Index()["vast"];
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, AFifoIsNeverOpenedAsAConfigOrAModelFile) {
  fs::create_directories(root_ / "piped" / "1");
  ASSERT_EQ(mkfifo((root_ / "piped" / "config.pbtxt").c_str(), 0600), 0);
  ASSERT_TRUE(WriteRepositoryModel(root_, "pipedfile", ScaleModelConfig("pipedfile"), 1,
                                   ScaleModelForward(1))
                  .ok());
  fs::remove(root_ / "pipedfile" / "1" / "model.pt");
  ASSERT_EQ(mkfifo((root_ / "pipedfile" / "1" / "model.pt").c_str(), 0600), 0);
  Start(ControlMode::kExplicit, {"scale"});
  // Bounds a hang (a reader blocked on the FIFO would never answer); never reached when fixed.
  auto load = [&](const std::string& name) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(&context, request, &response);
  };
  grpc::Status config = load("piped");
  EXPECT_EQ(config.error_code(), grpc::StatusCode::INTERNAL) << config.error_message();
  EXPECT_NE(config.error_message().find("config.pbtxt' is a FIFO; expected a regular file"),
            std::string::npos)
      << config.error_message();
  grpc::Status file = load("pipedfile");
  EXPECT_EQ(file.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << file.error_message();
  EXPECT_NE(file.error_message().find("model.pt' is a FIFO; expected a regular file"),
            std::string::npos)
      << file.error_message();
  EXPECT_FALSE(Ready("piped"));
  EXPECT_FALSE(Ready("pipedfile"));
  ExpectScaleServes();
}

TEST_F(RepositoryLimitsTest, LinksLeadingOutOfTheRepositoryAreRefusedUnlessAllowed) {
  // A version folder that is a link to a folder outside, and a model file that is one.
  ASSERT_TRUE(SaveTorchScript((outside_ / "model.pt").string(), ScaleModelForward(7)).ok());
  fs::create_directories(root_ / "linkedversion");
  std::ofstream(root_ / "linkedversion" / "config.pbtxt") << ScaleModelConfig("linkedversion");
  fs::create_directory_symlink(outside_, root_ / "linkedversion" / "1");
  fs::create_directories(root_ / "linkedfile" / "1");
  std::ofstream(root_ / "linkedfile" / "config.pbtxt") << ScaleModelConfig("linkedfile");
  fs::create_symlink(outside_ / "model.pt", root_ / "linkedfile" / "1" / "model.pt");
  // A link that stays inside the repository is fine.
  fs::create_directories(root_ / "linkedinside" / "1");
  std::ofstream(root_ / "linkedinside" / "config.pbtxt") << ScaleModelConfig("linkedinside");
  fs::create_symlink(root_ / "scale" / "1" / "model.pt",
                     root_ / "linkedinside" / "1" / "model.pt");
  Start(ControlMode::kExplicit, {"scale"});
  ExpectLoadFails("linkedversion", grpc::StatusCode::PERMISSION_DENIED,
                  "load failed for model 'linkedversion': version 1: 'linkedversion/1' leads "
                  "outside the repository; --allow_links_outside_repository follows such links");
  ExpectLoadFails("linkedfile", grpc::StatusCode::PERMISSION_DENIED,
                  "load failed for model 'linkedfile': version 1: 'linkedfile/1/model.pt' leads "
                  "outside the repository; --allow_links_outside_repository follows such links");
  EXPECT_TRUE(Load("linkedinside").ok());
  EXPECT_TRUE(Ready("linkedinside"));

  // Allowed, the same links are followed.
  server_->Shutdown(absl::Seconds(5));
  configure_ = [](ModelRepository::Options& options) {
    options.allow_links_outside_root = true;
  };
  Start(ControlMode::kExplicit, {"scale"});
  for (const char* model : {"linkedversion", "linkedfile"}) {
    ASSERT_TRUE(Load(model).ok()) << model;
    inference::ModelInferResponse response;
    ASSERT_TRUE(Infer(model, &response).ok()) << model;
    EXPECT_EQ(Floats(response), (std::vector<float>{7, 14})) << model;
  }
}

TEST_F(RepositoryLimitsTest, AFailedReloadWhilePollingIsLoggedOnceAndShownWhileTheOldOneServes) {
  std::vector<std::string> errors;
  absl::Mutex mu;
  configure_ = [&](ModelRepository::Options& options) {
    options.poll_interval = absl::Hours(1);
    options.error = [&](const std::string& line) {
      absl::MutexLock lock(&mu);
      errors.push_back(line);
    };
  };
  Start(ControlMode::kPoll, {});
  ASSERT_TRUE(Ready("scale"));
  std::string config = ScaleModelConfig("scale");
  config.replace(config.find("max_batch_size: 16"), 18, "max_batch_size: -1");
  std::ofstream(root_ / "scale" / "config.pbtxt", std::ios::trunc) << config;
  repository_->PollOnce();
  repository_->PollOnce();  // Nothing changed since: no second line.
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0],
              "model scale: reload failed; the versions loaded before keep serving: failed to "
              "load 'scale', failed to poll from model repository: scale/config.pbtxt: "
              "config.pbtxt of model 'scale': max_batch_size: expected 0..1048576, got -1");
  }
  EXPECT_TRUE(Ready("scale"));
  EXPECT_EQ(Index()["scale"],
            "1|READY|reload failed, serving the versions loaded before: failed to load 'scale', "
            "failed to poll from model repository: scale/config.pbtxt: config.pbtxt of model "
            "'scale': max_batch_size: expected 0..1048576, got -1");
  ExpectScaleServes();

  // Fixed: the reload goes through and the index forgets the failure.
  std::ofstream(root_ / "scale" / "config.pbtxt", std::ios::trunc) << ScaleModelConfig("scale");
  repository_->PollOnce();
  EXPECT_EQ(Index()["scale"], "1|READY|");
}

TEST_F(RepositoryLimitsTest, PollingLooksAtEachVersionsModelFileNotAtWhatElseItsFolderHolds) {
  // A version folder that also holds a tree of files (as one linked to /usr would).
  for (int d = 0; d < 20; ++d) {
    const fs::path dir = root_ / "scale" / "1" / "tree" / std::to_string(d) / "deeper";
    fs::create_directories(dir);
    for (int f = 0; f < 20; ++f) std::ofstream(dir / std::to_string(f)) << f;
  }
  int loads = 0;
  absl::Mutex mu;
  configure_ = [&](ModelRepository::Options& options) {
    options.poll_interval = absl::Hours(1);
    options.backend_factory = [&, real = options.backend_factory](
                                  const std::string& path, const ModelMetadata& metadata,
                                  const ModelRepository::BackendSettings& settings) {
      {
        absl::MutexLock lock(&mu);
        ++loads;
      }
      return real(path, metadata, settings);
    };
  };
  Start(ControlMode::kPoll, {});
  auto load_count = [&] {
    absl::MutexLock lock(&mu);
    return loads;
  };
  ASSERT_EQ(load_count(), 1);
  // A change deep in the tree is not the model's: no reload.
  std::ofstream(root_ / "scale" / "1" / "tree" / "7" / "deeper" / "3", std::ios::app) << "more";
  std::ofstream(root_ / "scale" / "1" / "tree" / "new", std::ios::binary) << "new";
  repository_->PollOnce();
  EXPECT_EQ(load_count(), 1);
  // A new model file is: one reload.
  ASSERT_TRUE(SaveTorchScript((root_ / "scale" / "1" / "model.pt").string(), ScaleModelForward(4))
                  .ok());
  repository_->PollOnce();
  EXPECT_EQ(load_count(), 2);
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("scale", &response).ok());
  EXPECT_EQ(Floats(response), (std::vector<float>{4, 8}));
}

}  // namespace
}  // namespace coalesce
